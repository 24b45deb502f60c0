import type { Clock } from '../../../shared/ids.js';
import { touchBounded } from '../../../shared/lru.js';

/** Per-device ingest limits (`edgeloop serve --limits FILE`, section `ingest`). */
export interface DeviceLimitOptions {
  /** Sample messages (chunks) per second a device may send, sustained. */
  messagesPerSecond: number;
  /** Messages a device may send in a burst above the sustained rate. */
  burst: number;
  /** Payload bytes a device may send per UTC day. */
  dailyBytes: number;
  /** Devices tracked at once; the longest-idle ones are forgotten beyond (their budgets start afresh). */
  maxDevices?: number;
}

/** What {@link DeviceLimits.take} decided about one message. */
export type LimitVerdict =
  | { ok: true }
  /** `notify`: the first refusal of its window, the one worth telling the device and logging. */
  | { ok: false; reason: 'rate' | 'daily_bytes'; retryAfterMs: number; notify: boolean };

interface Budget {
  tokens: number;
  refilledAt: number;
  day: number;
  dayBytes: number;
  /** Refusals before this time were already told. */
  toldUntil: number;
}

const DAY_MS = 86_400_000;

/**
 * A token bucket (messages per second, with a burst) and a daily byte quota per device, so one
 * flooding device is slowed at the door while every other device keeps its own budget. Memory
 * is bounded: at most `maxDevices` budgets, the longest-idle forgotten first.
 */
export class DeviceLimits {
  private readonly budgets = new Map<string, Budget>();
  private readonly maxDevices: number;

  constructor(
    private readonly o: DeviceLimitOptions,
    private readonly clock: Clock,
  ) {
    this.maxDevices = o.maxDevices ?? 100_000;
  }

  /** Charge one message of `bytes` to `device`, or say why not and when to try again. */
  take(device: string, bytes: number): LimitVerdict {
    const now = this.clock.now();
    const b = this.budgetOf(device, now);
    const day = Math.floor(now / DAY_MS);
    if (b.day !== day) {
      b.day = day;
      b.dayBytes = 0;
    }
    b.tokens = Math.min(this.o.burst, b.tokens + ((now - b.refilledAt) / 1000) * this.o.messagesPerSecond);
    b.refilledAt = now;
    if (b.dayBytes + bytes > this.o.dailyBytes) return this.refuse(b, now, 'daily_bytes', (day + 1) * DAY_MS - now);
    // Wait until half the burst is back, not for one token: a device paused that briefly would
    // come straight back into the limit.
    if (b.tokens < 1) return this.refuse(b, now, 'rate', Math.max(1, Math.ceil(((this.o.burst / 2 - b.tokens) / this.o.messagesPerSecond) * 1000)));
    b.tokens -= 1;
    b.dayBytes += bytes;
    return { ok: true };
  }

  private refuse(b: Budget, now: number, reason: 'rate' | 'daily_bytes', retryAfterMs: number): LimitVerdict {
    const notify = now >= b.toldUntil;
    if (notify) b.toldUntil = now + retryAfterMs;
    return { ok: false, reason, retryAfterMs, notify };
  }

  /** Bytes `device` sent today (UTC). */
  bytesToday(device: string): number {
    const b = this.budgets.get(device);
    return b && b.day === Math.floor(this.clock.now() / DAY_MS) ? b.dayBytes : 0;
  }

  private budgetOf(device: string, now: number): Budget {
    // Most recently used last: the first entry is the longest idle, forgotten first.
    const b = this.budgets.get(device) ?? { tokens: this.o.burst, refilledAt: now, day: Math.floor(now / DAY_MS), dayBytes: 0, toldUntil: 0 };
    return touchBounded(this.budgets, device, b, this.maxDevices);
  }
}
