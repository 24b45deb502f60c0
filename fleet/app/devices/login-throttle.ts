import type { Clock } from '../../../shared/ids.js';
import { touchBounded } from '../../../shared/lru.js';

/** Options of {@link LoginThrottle}. */
export interface LoginThrottleOptions {
  clock: Clock;
  /** Failures a key may have before it waits. Default 5. */
  freeFailures?: number;
  /** First wait after the free failures, doubling with each further failure. Default 1 s. */
  baseMs?: number;
  /** Longest wait of a source address. Default 60 s. */
  maxSourceMs?: number;
  /**
   * Longest wait of a user name. Short on purpose (default 10 s): an attacker who fails as a
   * real device's name only slows that device's next new login (its known-good credentials
   * skip the throttle), never locks it out.
   */
  maxUserMs?: number;
  /** Keys remembered; the longest-idle go first beyond. Default 100 000. */
  maxEntries?: number;
}

interface Failures {
  count: number;
  lastAt: number;
}

/**
 * Failed logins per source address and per user name, with exponential backoff: after a few
 * failures, further attempts from that source, or as that name, are refused at once for a
 * while, without spending a password hash on them. Memory is bounded.
 */
export class LoginThrottle {
  private readonly bySource = new Map<string, Failures>();
  private readonly byUser = new Map<string, Failures>();
  private readonly free: number;
  private readonly baseMs: number;
  private readonly maxSourceMs: number;
  private readonly maxUserMs: number;
  private readonly maxEntries: number;

  constructor(private readonly o: LoginThrottleOptions) {
    this.free = o.freeFailures ?? 5;
    this.baseMs = o.baseMs ?? 1000;
    this.maxSourceMs = o.maxSourceMs ?? 60_000;
    this.maxUserMs = o.maxUserMs ?? 10_000;
    this.maxEntries = o.maxEntries ?? 100_000;
  }

  /** How long this attempt must wait before it may be checked; 0: check it now. */
  waitMs(source: string, user: string): number {
    const now = this.o.clock.now();
    return Math.max(this.remaining(this.bySource.get(source), this.maxSourceMs, now), this.remaining(this.byUser.get(user), this.maxUserMs, now));
  }

  failed(source: string, user: string): void {
    const now = this.o.clock.now();
    this.bump(this.bySource, source, now);
    this.bump(this.byUser, user, now);
  }

  /** A failure with no user name to charge (a TLS handshake refused before any identity). */
  failedFrom(source: string): void {
    this.bump(this.bySource, source, this.o.clock.now());
  }

  /** How long an attempt from `source` must wait, whatever name it will give. */
  sourceWaitMs(source: string): number {
    return this.remaining(this.bySource.get(source), this.maxSourceMs, this.o.clock.now());
  }

  succeeded(source: string, user: string): void {
    this.bySource.delete(source);
    this.byUser.delete(user);
  }

  private remaining(f: Failures | undefined, maxMs: number, now: number): number {
    if (!f || f.count < this.free) return 0;
    const wait = Math.min(maxMs, this.baseMs * 2 ** Math.min(f.count - this.free, 30));
    return Math.max(0, f.lastAt + wait - now);
  }

  private bump(map: Map<string, Failures>, key: string, now: number): void {
    const f = map.get(key) ?? { count: 0, lastAt: now };
    f.count++;
    f.lastAt = now;
    touchBounded(map, key, f, this.maxEntries);
  }
}
