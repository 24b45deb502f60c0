/**
 * The inner loops the CNN kernels and the detector share: written once, unrolled by four (V8
 * does not vectorise) with a fixed summation order, so the same inputs give bit-identical
 * outputs on any thread.
 */

/** y[yo + j] += a · x[xo + j], j < n. */
export function axpy(n: number, a: number, x: Float32Array, xo: number, y: Float32Array, yo: number): void {
  const n4 = n - (n % 4);
  let j = 0;
  for (; j < n4; j += 4) {
    y[yo + j] = (y[yo + j] as number) + a * (x[xo + j] as number);
    y[yo + j + 1] = (y[yo + j + 1] as number) + a * (x[xo + j + 1] as number);
    y[yo + j + 2] = (y[yo + j + 2] as number) + a * (x[xo + j + 2] as number);
    y[yo + j + 3] = (y[yo + j + 3] as number) + a * (x[xo + j + 3] as number);
  }
  for (; j < n; j++) y[yo + j] = (y[yo + j] as number) + a * (x[xo + j] as number);
}

/** Σ x[xo + j] · y[yo + j], j < n, with four partial sums (fixed order: deterministic). */
export function dot(n: number, x: Float32Array, xo: number, y: Float32Array, yo: number): number {
  const n4 = n - (n % 4);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let j = 0;
  for (; j < n4; j += 4) {
    s0 += (x[xo + j] as number) * (y[yo + j] as number);
    s1 += (x[xo + j + 1] as number) * (y[yo + j + 1] as number);
    s2 += (x[xo + j + 2] as number) * (y[yo + j + 2] as number);
    s3 += (x[xo + j + 3] as number) * (y[yo + j + 3] as number);
  }
  for (; j < n; j++) s0 += (x[xo + j] as number) * (y[yo + j] as number);
  return s0 + s1 + s2 + s3;
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** One Adam step (t counts from 1) over every parameter array, gradients scaled by `scale` (1 / batch size). */
export function adamStep(ps: Float32Array[], grads: Float32Array[], m: Float32Array[], v: Float32Array[], lr: number, scale: number, t: number): void {
  const c1 = 1 - BETA1 ** t;
  const c2 = 1 - BETA2 ** t;
  const a = (lr * Math.sqrt(c2)) / c1;
  for (let k = 0; k < ps.length; k++) {
    const p = ps[k]!;
    const g = grads[k]!;
    const mk = m[k]!;
    const vk = v[k]!;
    for (let i = 0; i < p.length; i++) {
      const gi = (g[i] as number) * scale;
      const mi = BETA1 * (mk[i] as number) + (1 - BETA1) * gi;
      const vi = BETA2 * (vk[i] as number) + (1 - BETA2) * gi * gi;
      mk[i] = mi;
      vk[i] = vi;
      p[i] = (p[i] as number) - (a * mi) / (Math.sqrt(vi) + EPS);
    }
  }
}
