/** Folding telemetry windows into per-device running sums, and reading means back out. */
import type { MetricsWindow, ShadowWindow } from './event-schema.js';
import type { MetricsAgg, ShadowAgg } from './state-schema.js';

export function emptyMetrics(): MetricsAgg {
  return { windows: 0, count: 0, errors: 0, latency_sum: 0, latency_weight: 0, confidence_sum: 0, confidence_weight: 0, outlier_sum: 0, outlier_weight: 0 };
}

export function emptyShadow(): ShadowAgg {
  return { windows: 0, count: 0, agreement_sum: 0, agreement_weight: 0, confidence_sum: 0, confidence_weight: 0, latency_sum: 0, latency_weight: 0 };
}

/** Adds a window; a window with no inferences carries no information and is skipped. */
export function addWindow(agg: MetricsAgg, w: MetricsWindow): MetricsAgg {
  if (w.count + w.errors === 0) return agg;
  const n = w.count;
  return {
    windows: agg.windows + 1,
    count: agg.count + w.count,
    errors: agg.errors + w.errors,
    latency_sum: agg.latency_sum + (w.latency_p95_ms === null ? 0 : w.latency_p95_ms * n),
    latency_weight: agg.latency_weight + (w.latency_p95_ms === null ? 0 : n),
    confidence_sum: agg.confidence_sum + (w.confidence_mean === null ? 0 : w.confidence_mean * n),
    confidence_weight: agg.confidence_weight + (w.confidence_mean === null ? 0 : n),
    outlier_sum: agg.outlier_sum + (w.outlier_rate === null ? 0 : w.outlier_rate * n),
    outlier_weight: agg.outlier_weight + (w.outlier_rate === null ? 0 : n),
  };
}

export function addShadow(agg: ShadowAgg, s: ShadowWindow): ShadowAgg {
  if (s.count === 0) return agg;
  const n = s.count;
  return {
    windows: agg.windows + 1,
    count: agg.count + n,
    agreement_sum: agg.agreement_sum + (s.agreement === null ? 0 : s.agreement * n),
    agreement_weight: agg.agreement_weight + (s.agreement === null ? 0 : n),
    confidence_sum: agg.confidence_sum + (s.confidence_mean === null ? 0 : s.confidence_mean * n),
    confidence_weight: agg.confidence_weight + (s.confidence_mean === null ? 0 : n),
    latency_sum: agg.latency_sum + (s.latency_p95_ms === null ? 0 : s.latency_p95_ms * n),
    latency_weight: agg.latency_weight + (s.latency_p95_ms === null ? 0 : n),
  };
}

/** Inferences seen, failed ones included: a candidate that errors on everything still "reports". */
export function samples(agg: MetricsAgg): number {
  return agg.count + agg.errors;
}

export function mean(sum: number, weight: number): number | null {
  return weight > 0 ? sum / weight : null;
}

export function errorRate(agg: MetricsAgg): number | null {
  const n = samples(agg);
  return n > 0 ? agg.errors / n : null;
}
