import type { Clock, Random } from '../../shared/ids.js';
import { OUTLIER_DEFAULT_PRIORITIES as DEFAULT_PRIORITIES, OUTLIER_DEFAULT_RATE_LIMITS as DEFAULT_RATE_LIMITS, type OutlierPolicy, type OutlierReason } from '../../shared/schemas/index.js';
import type { Classification } from '../../shared/inference/postprocess.js';
import type { DriftReport } from './drift.js';
import { TokenBucket } from './rate-limit.js';

/**
 * Highest queue priority an outlier can have, whatever a manifest or config says: alerts (9)
 * always drain first and are never evicted to make room for an outlier (eviction takes the
 * lowest priority first and never a higher one for a lower one, agent/queue/eviction.ts).
 */
const OUTLIER_MAX_PRIORITY = 8;

/** Pure scoring: which reasons does this prediction match? Order = most important first. */
export function matchReasons(c: Pick<Classification, 'score' | 'margin' | 'entropy'>, policy: OutlierPolicy, random: Random, extra: OutlierReason[] = []): OutlierReason[] {
  const reasons: OutlierReason[] = [...extra];
  if (c.score < policy.min_confidence) reasons.push('low_confidence');
  if (c.margin < policy.min_margin) reasons.push('low_margin');
  if (c.entropy > policy.max_entropy) reasons.push('high_entropy');
  // Random sampling of normal traffic only: outliers are already kept, and an unbiased
  // monitor needs the "everything looks fine" cases too.
  if (reasons.length === 0 && policy.random_sample_rate > 0 && random() < policy.random_sample_rate) reasons.push('random');
  return reasons;
}

export interface CaptureDecision {
  capture: boolean;
  reasons: OutlierReason[];
  suppressed: OutlierReason[];
  priority: number;
}

/**
 * Outlier capture with per-reason rate limits and priorities. A sample is kept when at least
 * one matched reason still has budget; its priority is the highest of its kept reasons.
 */
export class OutlierCapturePolicy {
  private readonly buckets = new Map<OutlierReason, TokenBucket>();

  constructor(
    readonly policy: OutlierPolicy,
    private readonly clock: Clock,
    private readonly random: Random,
  ) {}

  priorityOf(reason: OutlierReason): number {
    return Math.min(OUTLIER_MAX_PRIORITY, this.policy.priorities[reason] ?? DEFAULT_PRIORITIES[reason]);
  }

  private bucket(reason: OutlierReason): TokenBucket {
    let b = this.buckets.get(reason);
    if (!b) {
      const lim = this.policy.rate_limits[reason] ?? DEFAULT_RATE_LIMITS[reason];
      b = new TokenBucket(lim.per_minute, lim.burst, this.clock);
      this.buckets.set(reason, b);
    }
    return b;
  }

  /**
   * Whether the inputs have drifted past the policy's `drift_psi`: brightness or contrast PSI
   * (never when it is null or nothing is known yet). The predicted-class PSI does not count: a
   * shift in which classes a camera sees (the demo's feed has no 5s at all) is not a reason to
   * send its confident frames back.
   */
  drifting(report: () => Pick<DriftReport, 'brightness_psi' | 'contrast_psi'>): boolean {
    const limit = this.policy.drift_psi;
    // Off (the default): no report is computed, so the per-frame path costs nothing.
    if (limit === null || limit === undefined) return false;
    const r = report();
    return [r.brightness_psi, r.contrast_psi].some((v) => v !== null && v > limit);
  }

  decide(c: Pick<Classification, 'score' | 'margin' | 'entropy'>, extra: OutlierReason[] = []): CaptureDecision {
    return this.keep(matchReasons(c, this.policy, this.random, extra));
  }

  /** A detector's frame (agent/outlier/detection.ts decides which reasons match). */
  decideDetection(matched: (random: Random) => OutlierReason[]): CaptureDecision {
    return this.keep(matched(this.random));
  }

  /** Matched reasons through their rate limits: kept or suppressed, and the sample's priority. */
  private keep(matched: OutlierReason[]): CaptureDecision {
    const kept: OutlierReason[] = [];
    const suppressed: OutlierReason[] = [];
    for (const r of matched) (this.bucket(r).tryTake() ? kept : suppressed).push(r);
    const priority = kept.reduce((p, r) => Math.max(p, this.priorityOf(r)), 0);
    return { capture: kept.length > 0, reasons: kept, suppressed, priority };
  }
}

/** Manifest defaults overridden key by key by the device config. */
export function mergePolicy<P extends OutlierPolicy>(base: P, override: Partial<OutlierPolicy> | undefined): P {
  if (!override) return base;
  return {
    ...base,
    ...Object.fromEntries(Object.entries(override).filter(([, v]) => v !== undefined)),
    rate_limits: { ...base.rate_limits, ...(override.rate_limits ?? {}) },
    priorities: { ...base.priorities, ...(override.priorities ?? {}) },
  };
}
