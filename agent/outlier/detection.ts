import type { Random } from '../../shared/ids.js';
import type { DetectionOutlierPolicy, OutlierReason } from '../../shared/schemas/index.js';
import type { BoxStats } from './drift.js';

/** Frames the history needs before count changes and "nothing found" are judged: a fresh camera has no habit yet. */
const MIN_HISTORY = 5;

/** What the recent frames of a camera looked like: mean box count, share of frames with a box. */
export interface CountHabit {
  frames: number;
  meanCount: number;
  foundShare: number;
}

/** The last `size` frames' box counts, with running sums: O(1) per frame. */
export class CountHistory {
  private readonly ring: Int32Array;
  private pos = 0;
  private filled = 0;
  private sum = 0;
  private found = 0;

  constructor(size: number) {
    this.ring = new Int32Array(Math.max(1, size));
  }

  observe(count: number): void {
    if (this.filled === this.ring.length) {
      const old = this.ring[this.pos]!;
      this.sum -= old;
      if (old > 0) this.found--;
    } else this.filled++;
    this.ring[this.pos] = count;
    this.sum += count;
    if (count > 0) this.found++;
    this.pos = (this.pos + 1) % this.ring.length;
  }

  get habit(): CountHabit {
    return { frames: this.filled, meanCount: this.filled ? this.sum / this.filled : 0, foundShare: this.filled ? this.found / this.filled : 0 };
  }
}

/**
 * Which reasons a detector's frame matches, most important first, judged against the frames
 * before it (pure): a box whose score sits in the uncertainty band (`uncertain_box`); a count
 * that jumps from the recent mean by `count_change` or more (`count_change`); no box where the
 * camera usually finds one (`nothing_found`); else the random slice of normal traffic.
 */
export function matchDetectionReasons(b: BoxStats, policy: DetectionOutlierPolicy, habit: CountHabit, random: Random, extra: OutlierReason[] = []): OutlierReason[] {
  const reasons: OutlierReason[] = [...extra];
  const [lo, hi] = policy.uncertain_band;
  if (b.scores.some((s) => s >= lo && s < hi)) reasons.push('uncertain_box');
  if (habit.frames >= MIN_HISTORY) {
    if (Math.abs(b.count - habit.meanCount) >= policy.count_change) reasons.push('count_change');
    if (b.count === 0 && habit.foundShare >= policy.usually_finds) reasons.push('nothing_found');
  }
  if (reasons.length === 0 && policy.random_sample_rate > 0 && random() < policy.random_sample_rate) reasons.push('random');
  return reasons;
}

export { boxStats } from '../../shared/inference/drift-stats.js';
