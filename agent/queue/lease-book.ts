import { MAX_PRIORITY } from './types.js';

/** One lease held in memory. */
export interface Lease {
  seq: number;
  priority: number;
  bytes: number;
  until: number;
  /** Set once the expiry lowered its lane's floor, so the expiry sweep handles each lease once. */
  expiredNoted: boolean;
}

/**
 * Leases of the SQLite queue, kept in memory only (pure: no I/O, time passed in).
 *
 * Why not a column: a lease is thrown away at open anyway (after a crash everything unacked
 * is eligible again; resends are harmless, ids are idempotent), so persisting it bought
 * nothing, and writing `lease_until` cost a row rewrite plus an index update per leased
 * item (~40 µs of the ~45 µs a lease took on the 2-core reference box).
 *
 * Leasing scans each priority lane in seq order. So that a scan does not walk past the
 * items already leased at the head of the lane on every call, each lane has a floor:
 * every item of that priority with `seq <= floor` is leased (and not expired) or gone.
 * A release or an expiry lowers the floor below the item that became eligible again.
 */
export class LeaseBook {
  private readonly byId = new Map<string, Lease>();
  private readonly bySeq = new Map<number, Lease>();
  private readonly floors: number[] = new Array<number>(MAX_PRIORITY + 1).fill(0);
  /** No lease expires before this; the sweep runs only once it is reached. */
  private nextExpiry = Number.POSITIVE_INFINITY;

  get size(): number {
    return this.byId.size;
  }

  get(id: string): Lease | undefined {
    return this.byId.get(id);
  }

  /** Where a scan of `priority` starts (exclusive). Sweeps expired leases first. */
  floor(priority: number, now: number): number {
    if (now >= this.nextExpiry) this.sweep(now);
    return this.floors[priority] as number;
  }

  /** Move a lane's floor up after a scan proved everything up to `seq` ineligible. */
  raiseFloor(priority: number, seq: number): void {
    if (seq > (this.floors[priority] as number)) this.floors[priority] = seq;
  }

  /** True when the item is leased and the lease is still running at `now`. */
  isHeld(seq: number, now: number): boolean {
    const lease = this.bySeq.get(seq);
    return lease !== undefined && lease.until > now;
  }

  grant(id: string, seq: number, priority: number, bytes: number, until: number): void {
    const previous = this.byId.get(id);
    if (previous) this.bySeq.delete(previous.seq);
    const lease: Lease = { seq, priority, bytes, until, expiredNoted: false };
    this.byId.set(id, lease);
    this.bySeq.set(seq, lease);
    if (until < this.nextExpiry) this.nextExpiry = until;
  }

  /** Forget a lease and make its item eligible again at once (release). */
  giveBack(id: string): Lease | undefined {
    const lease = this.drop(id);
    if (lease) this.lowerFloor(lease);
    return lease;
  }

  /** Forget a lease whose item is gone (acked or evicted). */
  drop(id: string): Lease | undefined {
    const lease = this.byId.get(id);
    if (!lease) return undefined;
    this.byId.delete(id);
    this.bySeq.delete(lease.seq);
    return lease;
  }

  clear(): void {
    this.byId.clear();
    this.bySeq.clear();
    this.floors.fill(0);
    this.nextExpiry = Number.POSITIVE_INFINITY;
  }

  /**
   * Lower the floor of every lane that has a lease expired at `now`. The lease itself stays
   * (a release of an expired lease still counts an attempt, as it did with the column); the
   * scan sees its item as eligible and re-leasing replaces it.
   */
  private sweep(now: number): void {
    let next = Number.POSITIVE_INFINITY;
    for (const lease of this.byId.values()) {
      if (lease.expiredNoted) continue;
      if (lease.until <= now) {
        lease.expiredNoted = true;
        this.lowerFloor(lease);
      } else if (lease.until < next) {
        next = lease.until;
      }
    }
    this.nextExpiry = next;
  }

  private lowerFloor(lease: Lease): void {
    if (lease.seq - 1 < (this.floors[lease.priority] as number)) this.floors[lease.priority] = lease.seq - 1;
  }
}
