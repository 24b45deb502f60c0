/**
 * Queue eviction rule, as a pure function (no I/O, no clock).
 *
 * When a new item does not fit, room is made by evicting the least valuable items first:
 * lowest priority, then oldest. An item is never evicted to admit an item of lower
 * priority: if the space can only be found by evicting strictly higher-priority items,
 * the new item is the one dropped, and nothing else is touched.
 */

/** A queued item that could be evicted. */
export interface EvictionCandidate {
  id: string;
  priority: number;
  bytes: number;
}

export interface EvictionInput {
  /** The new item's priority and size. */
  priority: number;
  bytes: number;
  quotaBytes: number;
  /** Bytes currently queued. */
  usedBytes: number;
  /**
   * Queued items in eviction order: priority ascending, then oldest (seq) first. Consumed
   * lazily and only as far as needed, so a database cursor can be passed directly.
   */
  candidates: Iterable<EvictionCandidate>;
}

export type EvictionDecision =
  /** Store the new item after removing `evict` (empty when it already fits). */
  | { action: 'admit'; evict: EvictionCandidate[]; freedBytes: number }
  /** Drop the new item: making room would need items of higher priority evicted. */
  | { action: 'reject'; reason: 'lower_priority_than_all' }
  /** The item alone exceeds the quota; the queue turns this into `QUEUE_ITEM_TOO_LARGE`. */
  | { action: 'too_large' };

/** Decide what, if anything, to evict so the new item fits within the quota. */
export function decideEviction(input: EvictionInput): EvictionDecision {
  const { priority, bytes, quotaBytes, usedBytes, candidates } = input;
  if (bytes > quotaBytes) return { action: 'too_large' };
  const needed = usedBytes + bytes - quotaBytes;
  if (needed <= 0) return { action: 'admit', evict: [], freedBytes: 0 };

  const evict: EvictionCandidate[] = [];
  let freed = 0;
  for (const candidate of candidates) {
    // Candidates are ordered by priority ascending, so the first one above the new item's
    // priority means every remaining one is too valuable to give up for it.
    if (candidate.priority > priority) break;
    evict.push(candidate);
    freed += candidate.bytes;
    if (freed >= needed) return { action: 'admit', evict, freedBytes: freed };
  }
  // Not enough lower-or-equal priority bytes: evicting some of them would lose data without
  // admitting the new item, so evict none.
  return { action: 'reject', reason: 'lower_priority_than_all' };
}
