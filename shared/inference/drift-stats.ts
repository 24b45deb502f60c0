import type { Histogram } from '../schemas/index.js';

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

/** Build a histogram baseline from observed values (used when packaging a model). */
export function histogramOf(values: readonly number[], edges: readonly number[]): Histogram {
  const freqs = new Array<number>(edges.length - 1).fill(0);
  for (const v of values) freqs[binOf(edges, v)]! += 1;
  const total = values.length || 1;
  return { edges: [...edges], freqs: freqs.map((f) => f / total) };
}

/** `n` equal bins from `lo` to `hi`: the `n + 1` edges of a histogram. */
export function evenEdges(lo: number, hi: number, n: number): number[] {
  return Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
}

/** What a detector's frame adds to drift: its box count, and each box's score and size (sqrt of its share of the image, 0..1). */
export interface BoxStats {
  count: number;
  scores: readonly number[];
  sizes: readonly number[];
}

/** A frame's boxes as drift and outlier statistics: sizes are sqrt(box area / image area), 0..1. */
export function boxStats(detections: ReadonlyArray<{ score: number; box: readonly number[] }>, image: { width: number; height: number }): BoxStats {
  const area = Math.max(1, image.width * image.height);
  return {
    count: detections.length,
    scores: detections.map((d) => d.score),
    sizes: detections.map((d) => Math.min(1, Math.sqrt(Math.max(0, (d.box[2]! - d.box[0]!) * (d.box[3]! - d.box[1]!)) / area))),
  };
}
