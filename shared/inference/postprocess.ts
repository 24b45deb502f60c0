import type { TopkEntry } from '../schemas/index.js';

/** Numerically stable softmax (subtract the max first). */
export function softmax(logits: ArrayLike<number>): Float32Array {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i] as number);
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i] as number) - max);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = (out[i] as number) / sum;
  return out;
}

/**
 * Highest `k` scores, best first; ties keep the lower class index first. One pass with a small
 * sorted buffer (O(n*k)): with 1000 classes and k=5 this is far cheaper than sorting.
 */
export function topK(scores: ArrayLike<number>, k: number, labels: readonly string[]): TopkEntry[] {
  const n = Math.min(k, scores.length);
  const idx: number[] = [];
  for (let i = 0; i < scores.length; i++) {
    const v = scores[i] as number;
    if (idx.length === n && v <= (scores[idx[n - 1] as number] as number)) continue;
    let at = idx.length;
    while (at > 0 && v > (scores[idx[at - 1] as number] as number)) at--;
    idx.splice(at, 0, i);
    if (idx.length > n) idx.pop();
  }
  return idx.map((i) => ({ index: i, label: labels[i] ?? String(i), score: scores[i] as number }));
}

/** Shannon entropy normalised to 0..1 by ln(classes): 0 = certain, 1 = uniform. */
export function normalisedEntropy(probs: ArrayLike<number>): number {
  if (probs.length < 2) return 0;
  let h = 0;
  for (let i = 0; i < probs.length; i++) {
    const p = probs[i] as number;
    if (p > 0) h -= p * Math.log(p);
  }
  return h / Math.log(probs.length);
}

export interface Classification {
  probs: Float32Array;
  topk: TopkEntry[];
  label: string;
  index: number;
  score: number;
  margin: number;
  entropy: number;
}

/** Scores of one example -> everything the caller and the outlier policy need. */
export function classify(scores: ArrayLike<number>, opts: { softmax: boolean; topK: number; labels: readonly string[] }): Classification {
  const probs = opts.softmax ? softmax(scores) : Float32Array.from(scores as ArrayLike<number>);
  const top = topK(probs, Math.max(2, opts.topK), opts.labels);
  const first = top[0] ?? { index: 0, label: opts.labels[0] ?? '0', score: 0 };
  const second = top[1]?.score ?? 0;
  return {
    probs,
    topk: top.slice(0, opts.topK),
    label: first.label,
    index: first.index,
    score: first.score,
    margin: first.score - second,
    entropy: normalisedEntropy(probs),
  };
}
