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
}

export interface DeviceLedger {
  device_id: string;
  /** Sample ids `/v1/infer` returned to a caller. */
  returned: ReadonlySet<string>;
  /** Sample ids the fleet lists for the device, every row (a repeat would be a duplicate). */
  stored: readonly string[];
  counters: QueueCounters;
}

export interface DeviceAccount {
  device_id: string;
  captured: number;
  received: number;
  evicted: number;
  queued: number;
  /** Returned to a caller, not stored: allowed only up to what the device evicted (or still holds). */
  missing: number;
  lost: number;
  duplicated: number;
}

/**
 * Account one device. Evicted ids are not observable one by one (the queue counts them), so
 * the rule is by count, from two sides, and the worse of the two is the loss:
 *
 * - ids: returned ids the fleet does not have must not outnumber the device's evictions plus
 *   what it still holds;
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
  for (const id of d.returned) if (!distinct.has(id)) missing++;
  const c = d.counters;
  const byIds = Math.max(0, missing - c.evictedTotal - c.depth);
  const byCounters = Math.max(0, c.enqueuedTotal - c.evictedTotal - c.depth - distinct.size, c.ackedTotal - distinct.size);
  return {
    device_id: d.device_id,
    captured: d.returned.size,
    received: distinct.size,
    evicted: c.evictedTotal,
    queued: c.depth,
    missing,
    lost: Math.max(byIds, byCounters),
    duplicated: d.stored.length - distinct.size,
  };
}

export interface Totals {
  captured: number;
  received: number;
  evicted: number;
  /** Returned ids not stored, each covered by a device's eviction count: the slack of accounting by count. */
  missing: number;
  lost: number;
  duplicated: number;
}

export function sumAccounts(accounts: readonly DeviceAccount[]): Totals {
  const t: Totals = { captured: 0, received: 0, evicted: 0, missing: 0, lost: 0, duplicated: 0 };
  for (const a of accounts) {
    t.captured += a.captured;
    t.received += a.received;
    t.evicted += a.evicted;
    t.missing += a.missing;
    t.lost += a.lost;
    t.duplicated += a.duplicated;
  }
  return t;
}
