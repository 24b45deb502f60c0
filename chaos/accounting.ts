/**
 * The campaign's ledger, Jepsen-style and without I/O: what callers were told (sample ids
 * returned by `/v1/infer`), what the fleet stores, and what each device's own durable queue
 * counters say it did with its captures.
 */

/** A device's queue counters (`edgeloop-agent queue stats`), read after it stopped. */
export interface QueueCounters {
  depth: number;
  enqueuedTotal: number;
  ackedTotal: number;
  evictedTotal: number;
  /** How many of the evictions the queue still has on record id by id (`queue dropped`). */
  droppedOnRecord: number;
}

export interface DeviceLedger {
  device_id: string;
  /** Sample ids `/v1/infer` returned to a caller. */
  returned: ReadonlySet<string>;
  /** Sample ids the fleet lists for the device, every row (a repeat would be a duplicate). */
  stored: readonly string[];
  counters: QueueCounters;
  /** Ids the device's queue dropped for space, from its own record (`edgeloop-agent queue dropped`). */
  dropped: ReadonlySet<string>;
}

export interface DeviceAccount {
  device_id: string;
  captured: number;
  received: number;
  evicted: number;
  queued: number;
  /** Returned to a caller, not stored: each must be a drop on the device's record, or covered by count (below). */
  missing: number;
  /**
   * Missing ids not on the drop record, accepted because the device still queues as many, or
   * dropped more than its record holds: the part of the ledger kept by count, not by id. Zero
   * means every missing id was matched to a recorded drop.
   */
  by_count: number;
  lost: number;
  duplicated: number;
}

/**
 * Account one device, from two sides, and the worse of the two is the loss:
 *
 * - ids: a returned id the fleet does not have must be on the device's record of drops (its
 *   queue writes each eviction there in the transaction that evicts). Only what the record
 *   cannot show - drops older than it keeps, samples still queued - is accepted by count;
 * - counters: everything the device ever queued is either stored by the fleet, evicted, or still
 *   queued (`enqueued - evicted - depth <= stored`), and everything the fleet acknowledged (the
 *   device deleted it on that ack) is stored, so `acked <= stored`: a fleet that acked and then
 *   lost a sample in a crash fails here.
 *
 * A repeat of a sample id in the fleet's listing is a duplicate: resends are expected, storing
 * one twice is not.
 */
export function accountDevice(d: DeviceLedger): DeviceAccount {
  const distinct = new Set(d.stored);
  let missing = 0;
  let unmatched = 0;
  for (const id of d.returned) {
    if (distinct.has(id)) continue;
    missing++;
    if (!d.dropped.has(id)) unmatched++;
  }
  const c = d.counters;
  const countSlack = c.depth + Math.max(0, c.evictedTotal - c.droppedOnRecord);
  const byIds = Math.max(0, unmatched - countSlack);
  const byCounters = Math.max(0, c.enqueuedTotal - c.evictedTotal - c.depth - distinct.size, c.ackedTotal - distinct.size);
  return {
    device_id: d.device_id,
    captured: d.returned.size,
    received: distinct.size,
    evicted: c.evictedTotal,
    queued: c.depth,
    missing,
    by_count: Math.min(unmatched, countSlack),
    lost: Math.max(byIds, byCounters),
    duplicated: d.stored.length - distinct.size,
  };
}

export interface Totals {
  captured: number;
  received: number;
  evicted: number;
  /** Returned ids not stored: each matched to a recorded drop, or (`by_count`) covered by a count. */
  missing: number;
  by_count: number;
  lost: number;
  duplicated: number;
}

export function sumAccounts(accounts: readonly DeviceAccount[]): Totals {
  const t: Totals = { captured: 0, received: 0, evicted: 0, missing: 0, by_count: 0, lost: 0, duplicated: 0 };
  for (const a of accounts) {
    t.captured += a.captured;
    t.received += a.received;
    t.evicted += a.evicted;
    t.missing += a.missing;
    t.by_count += a.by_count;
    t.lost += a.lost;
    t.duplicated += a.duplicated;
  }
  return t;
}
