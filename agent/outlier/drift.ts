import type { DriftBaseline, Histogram } from '../../shared/schemas/index.js';

/** Small floor on bin shares so an empty bin does not make PSI infinite. */
const EPS = 1e-4;

/**
 * Population Stability Index between an expected and an actual distribution (same bins).
 * Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift.
 */
export function psi(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  const n = Math.min(expected.length, actual.length);
  let se = 0;
  let sa = 0;
  for (let i = 0; i < n; i++) {
    se += expected[i] as number;
    sa += actual[i] as number;
  }
  if (se <= 0 || sa <= 0) return 0;
  let total = 0;
  for (let i = 0; i < n; i++) {
    const e = Math.max(EPS, (expected[i] as number) / se);
    const a = Math.max(EPS, (actual[i] as number) / sa);
    total += (a - e) * Math.log(a / e);
  }
  return total;
}

/** Index of the bin `x` falls in; values outside the edges go to the first/last bin. */
export function binOf(edges: readonly number[], x: number): number {
  const bins = edges.length - 1;
  for (let i = 1; i < edges.length - 1; i++) if (x < (edges[i] as number)) return i - 1;
  return bins - 1;
}

/** Fixed-size ring of recent bin indices with running counts: O(1) per observation. */
class RollingCounts {
  private readonly ring: Int32Array;
  private pos = 0;
  private filled = 0;
  readonly counts: Float64Array;

  constructor(bins: number, window: number) {
    this.ring = new Int32Array(window);
    this.counts = new Float64Array(bins);
  }

  add(bin: number): void {
    if (this.filled === this.ring.length) this.counts[this.ring[this.pos] as number]! -= 1;
    else this.filled++;
    this.ring[this.pos] = bin;
    this.counts[bin]! += 1;
    this.pos = (this.pos + 1) % this.ring.length;
  }

  get size(): number {
    return this.filled;
  }
}

export interface DriftReport {
  class_psi: number | null;
  brightness_psi: number | null;
  contrast_psi: number | null;
  window: number;
}

/**
 * Drift monitor: running predicted-class histogram and input brightness/contrast histograms
 * over the last `window` inputs, each compared with the manifest baseline as PSI. Reports
 * null until `minSamples` observations so a fresh device does not raise false alarms.
 */
export class DriftMonitor {
  private readonly classes: RollingCounts | null;
  private readonly brightness: RollingCounts | null;
  private readonly contrast: RollingCounts | null;

  constructor(
    private readonly baseline: DriftBaseline | undefined,
    classCount: number,
    private readonly minSamples = 50,
  ) {
    const w = baseline?.window ?? 500;
    this.classes = baseline?.class_distribution ? new RollingCounts(classCount, w) : null;
    this.brightness = baseline?.brightness ? new RollingCounts(baseline.brightness.freqs.length, w) : null;
    this.contrast = baseline?.contrast ? new RollingCounts(baseline.contrast.freqs.length, w) : null;
  }

  observe(predictedIndex: number, stats?: { brightness: number; contrast: number }): void {
    if (this.classes && predictedIndex < this.classes.counts.length) this.classes.add(predictedIndex);
    if (stats && this.baseline?.brightness && this.brightness) this.brightness.add(binOf(this.baseline.brightness.edges, stats.brightness));
    if (stats && this.baseline?.contrast && this.contrast) this.contrast.add(binOf(this.baseline.contrast.edges, stats.contrast));
  }

  private psiOf(rc: RollingCounts | null, expected: ArrayLike<number> | undefined): number | null {
    if (!rc || !expected || rc.size < this.minSamples) return null;
    return psi(expected, rc.counts);
  }

  report(): DriftReport {
    return {
      class_psi: this.psiOf(this.classes, this.baseline?.class_distribution),
      brightness_psi: this.psiOf(this.brightness, this.baseline?.brightness?.freqs),
      contrast_psi: this.psiOf(this.contrast, this.baseline?.contrast?.freqs),
      window: this.classes?.size ?? this.brightness?.size ?? 0,
    };
  }
}

/** Build a histogram baseline from observed values (used when packaging a model). */
export function histogramOf(values: readonly number[], edges: readonly number[]): Histogram {
  const freqs = new Array<number>(edges.length - 1).fill(0);
  for (const v of values) freqs[binOf(edges, v)]! += 1;
  const total = values.length || 1;
  return { edges: [...edges], freqs: freqs.map((f) => f / total) };
}
