import type { Random } from '../../shared/ids.js';

/** Reconnect backoff bounds, in milliseconds. */
export interface BackoffOptions {
  /** Upper bound of the first delay. */
  initialMs: number;
  /** Upper bound of every delay. */
  maxMs: number;
  /**
   * Floor of every delay. Full jitter can draw 0; AWS IoT Core allows one CONNECT per
   * second per client id and throttles beyond, so the MQTT uplink uses a floor of 1 s.
   */
  minMs?: number;
}

/**
 * Exponential backoff with full jitter ("Exponential Backoff And Jitter", AWS Architecture
 * Blog): the delay is uniform in [minMs, min(maxMs, initialMs * 2^attempt)). Full jitter
 * spreads a fleet that lost its broker at the same moment, instead of having every device
 * reconnect in lock step. `attempt` counts from 0.
 */
export function nextDelay(attempt: number, opts: BackoffOptions, random: Random): number {
  const minMs = Math.max(0, opts.minMs ?? 0);
  // 2 ** 1024 is Infinity; the exponent cap keeps the arithmetic finite for any attempt count.
  const ceiling = Math.min(opts.maxMs, opts.initialMs * 2 ** Math.min(Math.max(0, attempt), 52));
  if (ceiling <= minMs) return minMs;
  return Math.floor(minMs + random() * (ceiling - minMs));
}
