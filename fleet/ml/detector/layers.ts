/**
 * The detector's layer kernels over flat Float32Arrays in CHW order: 3×3 "same" convolutions,
 * 1×1 convolutions, ReLU and 2×2 max-pooling, forward and backward. Unlike the digit CNN's
 * kernels (fleet/ml/cnn/kernels.ts, written for one fixed 28×28 geometry), these take any
 * map size, since a detector's input size is a training parameter.
 *
 * Every convolution is a sequence of row-wise multiply-adds over whole rows (the weight in a
 * local, the row loop unrolled by four), which V8 compiles to tight loops; the summation order
 * is fixed, so the same inputs give bit-identical outputs.
 */
import { axpy, dot } from '../linalg.js';

/** The overlap of an output row with the input row shifted by kx - 1 (zero padding outside). */
function span(kx: number, side: number): { x0: number; len: number } {
  const x0 = kx === 0 ? 1 : 0;
  const x1 = kx === 2 ? side - 1 : side;
  return { x0, len: x1 - x0 };
}

/** out[co] = b[co] + Σ w[co, ci, ky, kx] · in[ci] shifted; 3×3, stride 1, zero padding 1. `in` is [ci, side, side]. */
export function conv3x3(w: Float32Array, b: Float32Array, ci: number, co: number, side: number, input: Float32Array, out: Float32Array): void {
  const hw = side * side;
  for (let o = 0; o < co; o++) {
    out.fill(b[o] as number, o * hw, (o + 1) * hw);
    for (let c = 0; c < ci; c++) {
      for (let ky = 0; ky < 3; ky++) {
        const y0 = ky === 0 ? 1 : 0;
        const y1 = ky === 2 ? side - 1 : side;
        for (let kx = 0; kx < 3; kx++) {
          const wv = w[((o * ci + c) * 3 + ky) * 3 + kx] as number;
          if (wv === 0) continue;
          const { x0, len } = span(kx, side);
          for (let y = y0; y < y1; y++) axpy(len, wv, input, c * hw + (y + ky - 1) * side + x0 + kx - 1, out, o * hw + y * side + x0);
        }
      }
    }
  }
}

/**
 * Backward of {@link conv3x3}: adds the weight and bias gradients from `dout`, and (when `din`
 * is given) writes the gradient at the input. The first layer passes no `din`: nothing needs it.
 */
export function conv3x3Backward(w: Float32Array, ci: number, co: number, side: number, input: Float32Array, dout: Float32Array, gw: Float32Array, gb: Float32Array, din: Float32Array | null): void {
  const hw = side * side;
  if (din) din.fill(0);
  for (let o = 0; o < co; o++) {
    let db = 0;
    for (let i = o * hw; i < (o + 1) * hw; i++) db += dout[i] as number;
    gb[o] = (gb[o] as number) + db;
    for (let c = 0; c < ci; c++) {
      for (let ky = 0; ky < 3; ky++) {
        const y0 = ky === 0 ? 1 : 0;
        const y1 = ky === 2 ? side - 1 : side;
        for (let kx = 0; kx < 3; kx++) {
          const wi = ((o * ci + c) * 3 + ky) * 3 + kx;
          const wv = w[wi] as number;
          const { x0, len } = span(kx, side);
          let g = 0;
          for (let y = y0; y < y1; y++) {
            const src = c * hw + (y + ky - 1) * side + x0 + kx - 1;
            const dst = o * hw + y * side + x0;
            g += dot(len, input, src, dout, dst);
            if (din) axpy(len, wv, dout, dst, din, src);
          }
          gw[wi] = (gw[wi] as number) + g;
        }
      }
    }
  }
}

/** out[co] = b[co] + Σ w[co, ci] · in[ci] over `hw` positions (a 1×1 convolution). */
export function conv1x1(w: Float32Array, b: Float32Array, ci: number, co: number, hw: number, input: Float32Array, out: Float32Array): void {
  for (let o = 0; o < co; o++) {
    out.fill(b[o] as number, o * hw, (o + 1) * hw);
    for (let c = 0; c < ci; c++) {
      const wv = w[o * ci + c] as number;
      if (wv !== 0) axpy(hw, wv, input, c * hw, out, o * hw);
    }
  }
}

/** Backward of {@link conv1x1}: weight and bias gradients, and the input's gradient into `din` (overwritten). */
export function conv1x1Backward(w: Float32Array, ci: number, co: number, hw: number, input: Float32Array, dout: Float32Array, gw: Float32Array, gb: Float32Array, din: Float32Array): void {
  din.fill(0);
  for (let o = 0; o < co; o++) {
    let db = 0;
    for (let i = o * hw; i < (o + 1) * hw; i++) db += dout[i] as number;
    gb[o] = (gb[o] as number) + db;
    for (let c = 0; c < ci; c++) {
      gw[o * ci + c] = (gw[o * ci + c] as number) + dot(hw, input, c * hw, dout, o * hw);
      axpy(hw, w[o * ci + c] as number, dout, o * hw, din, c * hw);
    }
  }
}

/** ReLU in place. */
export function relu(v: Float32Array): void {
  for (let j = 0; j < v.length; j++) if ((v[j] as number) < 0) v[j] = 0;
}

/** dv = 0 where the ReLU's output `a` is 0 (in place). */
export function reluBackward(a: Float32Array, dv: Float32Array): void {
  for (let j = 0; j < a.length; j++) if ((a[j] as number) <= 0) dv[j] = 0;
}

/** 2×2 max-pool of `c` maps of side `side` (even); m = index of each maximum in `a`. */
export function maxPool(a: Float32Array, c: number, side: number, p: Float32Array, m: Int32Array): void {
  const half = side >> 1;
  for (let ch = 0, o = 0; ch < c; ch++) {
    const base = ch * side * side;
    for (let y = 0; y < half; y++) {
      for (let x = 0; x < half; x++, o++) {
        const i0 = base + 2 * y * side + 2 * x;
        let best = i0;
        let v = a[i0] as number;
        if ((a[i0 + 1] as number) > v) [best, v] = [i0 + 1, a[i0 + 1] as number];
        if ((a[i0 + side] as number) > v) [best, v] = [i0 + side, a[i0 + side] as number];
        if ((a[i0 + side + 1] as number) > v) [best, v] = [i0 + side + 1, a[i0 + side + 1] as number];
        p[o] = v;
        m[o] = best;
      }
    }
  }
}

/** Backward of {@link maxPool}: each pooled gradient goes to the position that won (`da` overwritten). */
export function maxPoolBackward(dp: Float32Array, m: Int32Array, da: Float32Array): void {
  da.fill(0);
  for (let o = 0; o < dp.length; o++) {
    const idx = m[o] as number;
    da[idx] = (da[idx] as number) + (dp[o] as number);
  }
}
