import type { Clock } from '../../shared/ids.js';

/** Refill rate and capacity of a {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** Tokens added per second. */
  ratePerS: number;
  /** Capacity: the most that can be taken at once after an idle period. */
  burst: number;
}

/**
 * A token bucket (pure; time from the injected clock). Over any window of T seconds it
 * lets through at most `burst + ratePerS * T` tokens; so with the AWS IoT per-connection
 * limit as `ratePerS`, keep `burst` small (the default is a tenth of a second's worth).
 *
 * A request larger than `burst` (one 128 KB message against a small bytes/s budget) is
 * allowed once the bucket is full and drives it negative, instead of waiting forever.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly opts: TokenBucketOptions,
    private readonly clock: Clock,
  ) {
    if (!(opts.ratePerS > 0) || !(opts.burst > 0)) throw new RangeError('token bucket rate and burst must be positive');
    this.tokens = opts.burst;
    this.last = clock.now();
  }

  /** Milliseconds until `n` tokens can be taken; 0 when they can be now. */
  waitMs(n: number): number {
    this.refill();
    const need = Math.min(n, this.opts.burst);
    // Refills accumulate float error (0.9 + 0.1 < 1): a hair short counts as enough.
    if (this.tokens + 1e-9 >= need) return 0;
    // The epsilon keeps float residue (0.1 + 0.2) from adding a spurious millisecond.
    return Math.max(1, Math.ceil(((need - this.tokens) / this.opts.ratePerS) * 1000 - 1e-6));
  }

  /** Take `n` tokens unconditionally (call after `waitMs(n) === 0`). */
  take(n: number): void {
    this.refill();
    this.tokens -= n;
  }

  /** Take `n` tokens if possible now; returns 0 when taken, else the wait in ms. */
  tryTake(n: number): number {
    const wait = this.waitMs(n);
    if (wait === 0) this.tokens -= n;
    return wait;
  }

  private refill(): void {
    const now = this.clock.now();
    if (now > this.last) {
      this.tokens = Math.min(this.opts.burst, this.tokens + ((now - this.last) / 1000) * this.opts.ratePerS);
      this.last = now;
    }
  }
}

/** Limits on what the uplink may send. */
export interface PublishLimitOptions {
  /** Publishes per second, all lanes together. Default 100 (AWS IoT Core per connection). null = no cap. */
  publishesPerS?: number | null;
  /** Publish burst. Default a tenth of a second's worth (at least 1). */
  publishBurst?: number;
  /** Payload bytes per second. Default null (no cap), for metered links set it. */
  bytesPerS?: number | null;
  /** Byte burst. Default a tenth of a second's worth. */
  bytesBurst?: number;
  /**
   * Publishes sent but not yet acknowledged (QoS 1 PUBACK). Default 50; AWS IoT Core
   * allows 100 per client, and a window bounds what a dropped connection has to resend.
   */
  maxInflight?: number;
}

/** Returned by {@link PublishLimiter.tryAcquire} when only a settling publish can free room. */
export const WAIT_FOR_SLOT = Number.POSITIVE_INFINITY;

/**
 * The three uplink limits together: publish rate, bandwidth and in-flight window. Checks
 * all before taking anything, so a publish refused by one limit costs nothing from the others.
 */
export class PublishLimiter {
  private readonly rate: TokenBucket | undefined;
  private readonly bandwidth: TokenBucket | undefined;
  readonly maxInflight: number;
  private inflightCount = 0;

  constructor(opts: PublishLimitOptions, clock: Clock) {
    const publishesPerS = opts.publishesPerS === undefined ? 100 : opts.publishesPerS;
    if (publishesPerS !== null) {
      this.rate = new TokenBucket({ ratePerS: publishesPerS, burst: opts.publishBurst ?? Math.max(1, Math.ceil(publishesPerS / 10)) }, clock);
    }
    const bytesPerS = opts.bytesPerS ?? null;
    if (bytesPerS !== null) {
      this.bandwidth = new TokenBucket({ ratePerS: bytesPerS, burst: opts.bytesBurst ?? Math.max(1, Math.ceil(bytesPerS / 10)) }, clock);
    }
    this.maxInflight = Math.max(1, opts.maxInflight ?? 50);
  }

  /**
   * Reserve one publish of `bytes`. Returns 0 when reserved (call {@link settle} when it is
   * acknowledged or fails), {@link WAIT_FOR_SLOT} when the in-flight window is full, or
   * the milliseconds to wait for the rate or bandwidth budget.
   */
  tryAcquire(bytes: number): number {
    if (this.inflightCount >= this.maxInflight) return WAIT_FOR_SLOT;
    const wait = Math.max(this.rate?.waitMs(1) ?? 0, this.bandwidth?.waitMs(bytes) ?? 0);
    if (wait > 0) return wait;
    this.rate?.take(1);
    this.bandwidth?.take(bytes);
    this.inflightCount++;
    return 0;
  }

  /** A reserved publish was acknowledged or failed: its in-flight slot is free again. */
  settle(): void {
    if (this.inflightCount > 0) this.inflightCount--;
  }

  /** Publishes currently in flight. */
  inflight(): number {
    return this.inflightCount;
  }
}
