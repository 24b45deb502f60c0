import type { ModelRef, OutlierReason, Telemetry } from '../shared/schemas/index.js';
import { LatencyWindow } from './metrics.js';
import type { DriftReport } from './outlier/drift.js';

/** Counts of one telemetry window; `take` reports them and starts the next window. */
export class TelemetryWindow {
  private count = 0;
  private errors = 0;
  private confidenceSum = 0;
  private outliers = 0;
  private byReason: Record<string, number> = {};
  private readonly latency = new LatencyWindow();
  private started: number;

  constructor(private readonly now: () => number) {
    this.started = now();
  }

  recordInference(latencyMs: number, score: number): void {
    this.count++;
    this.confidenceSum += score;
    this.latency.add(latencyMs);
  }

  recordError(): void {
    this.errors++;
  }

  recordCapture(reasons: readonly OutlierReason[]): void {
    this.outliers++;
    for (const r of reasons) this.byReason[r] = (this.byReason[r] ?? 0) + 1;
  }

  take(
    deviceId: string,
    model: ModelRef | null,
    drift: DriftReport | null,
    queue: Telemetry['queue'],
    shadow?: Telemetry['shadow'],
  ): Telemetry {
    const now = this.now();
    const windowS = Math.max(0.001, (now - this.started) / 1000);
    const lat = this.latency.take();
    const t: Telemetry = {
      type: 'telemetry',
      v: 1,
      device_id: deviceId,
      ts: new Date(now).toISOString(),
      window_s: windowS,
      model,
      inference: { count: this.count, errors: this.errors, rate_per_s: this.count / windowS, latency_ms: { p50: lat.p50, p95: lat.p95, p99: lat.p99 } },
      confidence_mean: this.count ? this.confidenceSum / this.count : null,
      outliers: { count: this.outliers, rate: this.count ? this.outliers / this.count : 0, by_reason: this.byReason },
      drift: {
        class_psi: drift?.class_psi ?? null,
        brightness_psi: drift?.brightness_psi ?? null,
        contrast_psi: drift?.contrast_psi ?? null,
        // A detector's box signals, only when its baseline has them (a classifier's telemetry is unchanged).
        ...(drift?.box_count_psi !== undefined ? { box_count_psi: drift.box_count_psi } : {}),
        ...(drift?.box_score_psi !== undefined ? { box_score_psi: drift.box_score_psi } : {}),
        ...(drift?.box_size_psi !== undefined ? { box_size_psi: drift.box_size_psi } : {}),
      },
      queue,
      ...(shadow ? { shadow } : {}),
    };
    this.started = now;
    this.count = 0;
    this.errors = 0;
    this.confidenceSum = 0;
    this.outliers = 0;
    this.byReason = {};
    return t;
  }
}
