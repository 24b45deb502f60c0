import { binOf, psi } from '../../shared/inference/drift-stats.js';
import type { DriftBaseline } from '../../shared/schemas/index.js';

export { binOf, histogramOf, psi } from '../../shared/inference/drift-stats.js';

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
