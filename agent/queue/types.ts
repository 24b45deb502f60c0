/**
 * The store-and-forward sample queue port.
 *
 * A "sample" is what the agent decided to keep (an image or tensor plus JSON metadata:
 * why it was captured, the prediction, the model version...). It waits here, possibly for
 * days offline, until the uplink delivers it and acks it.
 *
 * Size accounting: an item's `bytes` is `blob.byteLength` plus the UTF-8 length of
 * `JSON.stringify(meta)`. Ids, kind, priority and per-row storage overhead are not counted,
 * so `quotaBytes` bounds the payload the queue holds, not the exact size of the file on disk.
 */

/** Milliseconds since the epoch (the project's one `Clock`): injected, core code never reads `Date.now()`. */
export type { Clock } from '../../shared/ids.js';

/** Lowest and highest allowed priority. Higher means more important. */
export const MIN_PRIORITY = 0;
export const MAX_PRIORITY = 9;

/** What a producer hands to the queue. */
export interface QueueItemInput {
  /** Globally unique sample id; the queue and the fleet are idempotent on it. */
  id: string;
  /** What the sample is (`image`, `tensor`, ...), for the uplink to route on. */
  kind: string;
  /** 0..9, higher = more important: sent first, evicted last. */
  priority: number;
  /** JSON-serialisable metadata (stored as JSON; values JSON cannot hold are dropped or rejected). */
  meta: Record<string, unknown>;
  /** Optional payload (encoded image, raw tensor bytes). */
  blob?: Uint8Array;
  /** Capture time in ms; defaults to the queue clock's `now()` at enqueue. */
  createdAt?: number;
}

/** An item as stored. */
export interface QueueItem extends QueueItemInput {
  /**
   * `meta` exactly as stored: the `JSON.stringify` of the enqueued meta. A sender can splice
   * it into its message as is; `meta` is decoded from it on first access, so a sender that
   * never reads `meta` pays for no JSON parse. (Assigning `meta` does not change it.)
   */
  metaJson: string;
  /** Monotonic insertion number: FIFO order within a priority. Never reused. */
  seq: number;
  /** Blob length + JSON-encoded meta length (see the module comment). */
  bytes: number;
  createdAt: number;
  /** How many times a lease on this item was released (a send failed). */
  attempts: number;
}

/** An item removed to make room, as reported to the producer and the log. */
export interface EvictedItem {
  id: string;
  priority: number;
  bytes: number;
}

/**
 * A sample the queue dropped for space, as kept in its record of drops (newest last):
 * `evicted` when a queued item made room for a more valuable one, `rejected` when the new
 * item itself could not be admitted. Lets an operator (or a fault campaign's accounting)
 * tell which captures never left the device, id by id, not only how many.
 */
export interface DroppedItem {
  /** Increasing position in the record; survives restarts. */
  ord: number;
  id: string;
  priority: number;
  bytes: number;
  reason: 'evicted' | 'rejected';
  /** When it was dropped (queue clock, ms). */
  at: number;
}

/**
 * Outcome of one enqueue.
 *
 * - `accepted`: this call stored the item (it is durable when the call returns/resolves).
 * - `duplicate`: the id is already queued, or was recently acked; nothing was written.
 * - `evicted`: queued items removed to make room for this one (lowest priority, oldest first).
 * - `rejected`: the new item itself was dropped, because room could only be made by evicting
 *   items of strictly higher priority. The drop is counted in `evictedTotal` too.
 */
export interface EnqueueResult {
  accepted: boolean;
  duplicate: boolean;
  evicted: EvictedItem[];
  rejected?: 'lower_priority_than_all';
}

/** A point-in-time view for health reports and sizing ("how many days offline fit?"). */
export interface QueueStats {
  depth: number;
  bytes: number;
  quotaBytes: number;
  /** Only priorities that currently hold items appear. */
  byPriority: Record<number, { depth: number; bytes: number }>;
  /** Items dropped for space: queued items evicted plus new items rejected. Persistent. */
  evictedTotal: number;
  evictedBytesTotal: number;
  duplicatesTotal: number;
  ackedTotal: number;
  enqueuedTotal: number;
  /** Smallest `createdAt` among queued items, or null when empty. */
  oldestCreatedAt: number | null;
  /**
   * Drops the queue still has on record, id by id (see {@link DroppedItem}); the oldest are
   * forgotten beyond `droppedMemory`, so this equals `evictedTotal` until then.
   */
  droppedOnRecord: number;
}

/** Options for {@link SampleQueue.lease}. */
export interface LeaseOptions {
  /**
   * Stop before the running total of `bytes` would exceed this. The first item is always
   * returned even when it alone is larger, so one big item cannot block the queue forever;
   * the uplink decides what to do with it.
   */
  maxBytes?: number;
}

/**
 * A bounded, prioritised, crash-safe queue of samples with at-least-once delivery:
 * lease -> send -> ack (delete) or release (retry later). Leases expire on their own, so a
 * sender that dies mid-send never strands items.
 *
 * Single consumer: `release` does not check who holds a lease. Eviction may remove an item
 * that is currently leased (a full queue must still admit more valuable samples); a later
 * ack or release of it is simply ignored.
 */
export interface SampleQueue {
  /** Store one item; durable when it returns. Throws (agent catalogue) `QUEUE_ITEM_TOO_LARGE`, `INPUT_INVALID`, `STORAGE_FAILED`. */
  enqueue(item: QueueItemInput): EnqueueResult;
  /** Store several items in one transaction (all validated first: one bad item writes nothing). */
  enqueueMany(items: QueueItemInput[]): EnqueueResult[];
  /**
   * Group commit: captures arriving close together (same tick, or within the configured
   * window) are written in one transaction. The promise resolves only after that transaction
   * committed, so durable-before-acknowledged still holds. A bad item rejects only its own
   * promise; a storage failure rejects every promise of the failed batch. FIFO order is
   * commit order: a synchronous `enqueue` made while captures wait for their batch is stored
   * ahead of them.
   */
  enqueueAsync(item: QueueItemInput): Promise<EnqueueResult>;
  /**
   * Next items to send: highest priority first, FIFO (seq) within a priority, skipping items
   * whose lease is still running. Leases them until `now + leaseMs`.
   */
  lease(max: number, leaseMs: number, opts?: LeaseOptions): QueueItem[];
  /** Give leases back (send failed): the items are eligible again at once, attempts + 1. Unknown or unleased ids are ignored. */
  release(ids: string[]): void;
  /** Delete delivered items; returns how many were deleted. Unknown ids are ignored, so ack is idempotent. */
  ack(ids: string[]): number;
  stats(): QueueStats;
  /** The record of drops, oldest first, after position `afterOrd` (default: from the start), at most `limit`. */
  dropped(opts?: { afterOrd?: number; limit?: number }): DroppedItem[];
  /**
   * Optional: commit pending `enqueueAsync` items and fold the write-ahead log into the main
   * database file, so the file is complete by itself before the process is replaced (a
   * Greengrass component update). Nothing is lost without it; it only shortens recovery.
   */
  checkpoint?(): void;
  /**
   * Give disk space freed by deleted rows back to the file system, a bounded step at a time
   * (at most `maxPages` pages per call, so a capture never waits long behind it). Returns the
   * bytes still reclaimable: call again while it is above what is worth a step.
   */
  reclaim?(maxPages: number): { reclaimableBytes: number; fileBytes: number };
  /** Commits pending `enqueueAsync` items, then closes. Idempotent. */
  close(): void;
}
