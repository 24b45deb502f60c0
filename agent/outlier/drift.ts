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
  /** A detector's: boxes per frame, box scores, box sizes (only when the baseline has them). */
  box_count_psi?: number | null;
  box_score_psi?: number | null;
  box_size_psi?: number | null;
  window: number;
}

export type { BoxStats } from '../../shared/inference/drift-stats.js';
import type { BoxStats } from '../../shared/inference/drift-stats.js';

const BOX_KEYS = ['box_count', 'box_score', 'box_size'] as const;

/**
 * Drift monitor: running predicted-class histogram and input brightness/contrast histograms
 * over the last `window` inputs, each compared with the manifest baseline as PSI. Reports
 * null until `minSamples` observations so a fresh device does not raise false alarms.
 */
export class DriftMonitor {
  private readonly classes: RollingCounts | null;
  private readonly brightness: RollingCounts | null;
  private readonly contrast: RollingCounts | null;
  private readonly boxes: Record<(typeof BOX_KEYS)[number], RollingCounts | null>;

  constructor(
    private readonly baseline: DriftBaseline | undefined,
    classCount: number,
    private readonly minSamples = 50,
  ) {
    const w = baseline?.window ?? 500;
    this.classes = baseline?.class_distribution ? new RollingCounts(classCount, w) : null;
    this.brightness = baseline?.brightness ? new RollingCounts(baseline.brightness.freqs.length, w) : null;
    this.contrast = baseline?.contrast ? new RollingCounts(baseline.contrast.freqs.length, w) : null;
    const box = (k: (typeof BOX_KEYS)[number]): RollingCounts | null => {
      const h = baseline?.[k];
      return h ? new RollingCounts(h.freqs.length, w) : null;
    };
    this.boxes = { box_count: box('box_count'), box_score: box('box_score'), box_size: box('box_size') };
  }

  /** A detector's frame: box count per frame, score and size per box, against the baseline's histograms. */
  observeBoxes(b: BoxStats): void {
    const bl = this.baseline;
    if (!bl) return;
    if (bl.box_count && this.boxes.box_count) this.boxes.box_count.add(binOf(bl.box_count.edges, b.count));
    if (bl.box_score && this.boxes.box_score) for (const s of b.scores) this.boxes.box_score.add(binOf(bl.box_score.edges, s));
    if (bl.box_size && this.boxes.box_size) for (const s of b.sizes) this.boxes.box_size.add(binOf(bl.box_size.edges, s));
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
    const boxes: Partial<DriftReport> = {};
    for (const k of BOX_KEYS) if (this.boxes[k]) boxes[`${k}_psi`] = this.psiOf(this.boxes[k], this.baseline?.[k]?.freqs);
    return {
      class_psi: this.psiOf(this.classes, this.baseline?.class_distribution),
      brightness_psi: this.psiOf(this.brightness, this.baseline?.brightness?.freqs),
      contrast_psi: this.psiOf(this.contrast, this.baseline?.contrast?.freqs),
      ...boxes,
      window: this.classes?.size ?? this.brightness?.size ?? this.boxes.box_count?.size ?? 0,
    };
  }
}
