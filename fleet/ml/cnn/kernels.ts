/**
 * The digit CNN's layer kernels, forward and backward, over flat Float32Arrays: valid 5×5
 * convolutions, ReLU + 2×2 max-pool, dense layers and softmax. They know the layer geometry
 * (a 28×28×1 input, 5×5 kernels, 2×2 pools) but not the network: model.ts composes them.
 * Pure arithmetic in a fixed order, so the same inputs give bit-identical outputs.
 *
 * Why the loops look the way they do (speed is what makes <= 120 s for the base model on two
 * shared cores possible; the figures are in docs/decisions/0001-cnn-kernel-loops.md):
 * - convolutions are "valid" (no padding), so the maps shrink 28 → 24 → 12 → 8 → 4 and the
 *   whole forward pass is ~0.34 M multiply-adds;
 * - conv1 is a direct convolution with the 25 weights of a channel in locals (five row sums per
 *   output); conv2 uses a position-major im2col ([64][200]) and computes 4 channels × 2
 *   positions per pass, so each loaded weight and column value serves several sums;
 * - backward passes only touch the positions max-pooling selected (a quarter of the map, and
 *   none where the pooled value is 0 after ReLU); the conv2 weight gradient is summed in locals
 *   per channel and its input gradient is scattered straight onto pool 1's output.
 */
import { DIGIT_SIZE } from '../digit-size.js';
import { axpy, dot } from '../linalg.js';

const S = DIGIT_SIZE; // input side
const K = 5; // kernel side
const KK = K * K;
const A1 = S - K + 1; // 24: conv1 output side
const P1 = A1 / 2; // 12: after pool 1
const A2 = P1 - K + 1; // 8: conv2 output side
const P2 = A2 / 2; // 4: after pool 2

/** The geometry the kernels are written for: sides of the input, the kernels and each layer's output maps. */
export const CNN_GEOMETRY = { input: S, kernel: K, conv1: A1, pool1: P1, conv2: A2, pool2: P2 } as const;

/** ReLU + 2×2 max-pool of `c` maps of side `side`; m = index of the max in `a`, or -1 when the pooled value is 0. */
export function reluPool(a: Float32Array, c: number, side: number, p: Float32Array, m: Int32Array): void {
  const half = side / 2;
  for (let ch = 0, o = 0; ch < c; ch++) {
    const base = ch * side * side;
    for (let y = 0; y < half; y++) {
      for (let x = 0; x < half; x++, o++) {
        const i0 = base + 2 * y * side + 2 * x;
        let best = i0;
        let v = a[i0] as number;
        const i1 = i0 + 1;
        const i2 = i0 + side;
        const i3 = i2 + 1;
        if ((a[i1] as number) > v) [best, v] = [i1, a[i1] as number];
        if ((a[i2] as number) > v) [best, v] = [i2, a[i2] as number];
        if ((a[i3] as number) > v) [best, v] = [i3, a[i3] as number];
        if (v > 0) {
          p[o] = v;
          m[o] = best;
        } else {
          p[o] = 0;
          m[o] = -1;
        }
      }
    }
  }
}

// Each stage is its own small function: V8 optimises small hot functions well, and one big
// forward body ran several times slower.

/**
 * Direct 5×5 convolution of the 28×28 input: the channel's 25 weights live in locals and each
 * output is five row sums (independent chains) added in a fixed order.
 */
export function conv1(w1: Float32Array, b1: Float32Array, c1: number, x: Float32Array, a1: Float32Array): void {
  const n1 = A1 * A1;
  for (let c = 0; c < c1; c++) {
    const o = c * KK;
    const w00 = w1[o] as number, w01 = w1[o + 1] as number, w02 = w1[o + 2] as number, w03 = w1[o + 3] as number, w04 = w1[o + 4] as number;
    const w10 = w1[o + 5] as number, w11 = w1[o + 6] as number, w12 = w1[o + 7] as number, w13 = w1[o + 8] as number, w14 = w1[o + 9] as number;
    const w20 = w1[o + 10] as number, w21 = w1[o + 11] as number, w22 = w1[o + 12] as number, w23 = w1[o + 13] as number, w24 = w1[o + 14] as number;
    const w30 = w1[o + 15] as number, w31 = w1[o + 16] as number, w32 = w1[o + 17] as number, w33 = w1[o + 18] as number, w34 = w1[o + 19] as number;
    const w40 = w1[o + 20] as number, w41 = w1[o + 21] as number, w42 = w1[o + 22] as number, w43 = w1[o + 23] as number, w44 = w1[o + 24] as number;
    const b = b1[c] as number;
    for (let oy = 0; oy < A1; oy++) {
      const dst = c * n1 + oy * A1;
      for (let ox = 0; ox < A1; ox++) {
        const i0 = oy * S + ox;
        const i1 = i0 + S;
        const i2 = i1 + S;
        const i3 = i2 + S;
        const i4 = i3 + S;
        const r0 = w00 * (x[i0] as number) + w01 * (x[i0 + 1] as number) + w02 * (x[i0 + 2] as number) + w03 * (x[i0 + 3] as number) + w04 * (x[i0 + 4] as number);
        const r1 = w10 * (x[i1] as number) + w11 * (x[i1 + 1] as number) + w12 * (x[i1 + 2] as number) + w13 * (x[i1 + 3] as number) + w14 * (x[i1 + 4] as number);
        const r2 = w20 * (x[i2] as number) + w21 * (x[i2 + 1] as number) + w22 * (x[i2 + 2] as number) + w23 * (x[i2 + 3] as number) + w24 * (x[i2 + 4] as number);
        const r3 = w30 * (x[i3] as number) + w31 * (x[i3 + 1] as number) + w32 * (x[i3 + 2] as number) + w33 * (x[i3 + 3] as number) + w34 * (x[i3 + 4] as number);
        const r4 = w40 * (x[i4] as number) + w41 * (x[i4 + 1] as number) + w42 * (x[i4 + 2] as number) + w43 * (x[i4 + 3] as number) + w44 * (x[i4 + 4] as number);
        a1[dst + ox] = b + (r0 + r1) + (r2 + r3) + r4;
      }
    }
  }
}

/** im2col, position-major: col2[p][ci·25 + ky·5 + kx] = p1[ci][oy+ky][ox+kx]. */
export function im2col2(p1: Float32Array, c1: number, col2: Float32Array): void {
  const k2 = c1 * KK;
  for (let oy = 0; oy < A2; oy++) {
    for (let ox = 0; ox < A2; ox++) {
      let o = (oy * A2 + ox) * k2;
      for (let ci = 0; ci < c1; ci++) {
        for (let ky = 0; ky < K; ky++) {
          const src = ci * P1 * P1 + (oy + ky) * P1 + ox;
          for (let kx = 0; kx < K; kx++) col2[o++] = p1[src + kx] as number;
        }
      }
    }
  }
}

/**
 * a2[co][p] = b2[co] + w2[co] · col2[p]: blocks of 4 output channels × 2 positions share each
 * loaded weight and column value (8 independent sums); a scalar tail covers other channel counts.
 */
export function conv2(w2: Float32Array, b2: Float32Array, c1: number, c2: number, col2: Float32Array, a2: Float32Array): void {
  const k2 = c1 * KK;
  const n2 = A2 * A2;
  const c4 = c2 - (c2 % 4);
  for (let p = 0; p < n2; p += 2) {
    const xa = p * k2;
    const xb = xa + k2;
    let co = 0;
    for (; co < c4; co += 4) {
      const o0 = co * k2;
      const o1 = o0 + k2;
      const o2 = o1 + k2;
      const o3 = o2 + k2;
      let a0 = 0, a1 = 0, a2s = 0, a3 = 0, b0 = 0, b1 = 0, b2s = 0, b3 = 0;
      for (let j = 0; j < k2; j++) {
        const u = col2[xa + j] as number;
        const v = col2[xb + j] as number;
        const q0 = w2[o0 + j] as number;
        const q1 = w2[o1 + j] as number;
        const q2 = w2[o2 + j] as number;
        const q3 = w2[o3 + j] as number;
        a0 += q0 * u;
        a1 += q1 * u;
        a2s += q2 * u;
        a3 += q3 * u;
        b0 += q0 * v;
        b1 += q1 * v;
        b2s += q2 * v;
        b3 += q3 * v;
      }
      a2[co * n2 + p] = (b2[co] as number) + a0;
      a2[co * n2 + p + 1] = (b2[co] as number) + b0;
      a2[(co + 1) * n2 + p] = (b2[co + 1] as number) + a1;
      a2[(co + 1) * n2 + p + 1] = (b2[co + 1] as number) + b1;
      a2[(co + 2) * n2 + p] = (b2[co + 2] as number) + a2s;
      a2[(co + 2) * n2 + p + 1] = (b2[co + 2] as number) + b2s;
      a2[(co + 3) * n2 + p] = (b2[co + 3] as number) + a3;
      a2[(co + 3) * n2 + p + 1] = (b2[co + 3] as number) + b3;
    }
    for (; co < c2; co++) {
      const b = b2[co] as number;
      a2[co * n2 + p] = b + dot(k2, w2, co * k2, col2, xa);
      a2[co * n2 + p + 1] = b + dot(k2, w2, co * k2, col2, xb);
    }
  }
}

/** y = b + x · W for `n` inputs and `m` outputs (W [n][m] row-major); inputs that are 0 are skipped. */
export function dense(x: Float32Array, n: number, w: Float32Array, b: Float32Array, y: Float32Array, m: number): void {
  y.set(b);
  for (let i = 0; i < n; i++) {
    const v = x[i] as number;
    if (v !== 0) axpy(m, v, w, i * m, y, 0);
  }
}

/** ReLU in place. */
export function relu(v: Float32Array): void {
  for (let j = 0; j < v.length; j++) if ((v[j] as number) < 0) v[j] = 0;
}

/** Softmax in place; returns the arg-max. */
export function softmax(z: Float32Array): number {
  let max = -Infinity;
  let best = 0;
  for (let c = 0; c < z.length; c++) if ((z[c] as number) > max) [max, best] = [z[c] as number, c];
  let sum = 0;
  for (let c = 0; c < z.length; c++) {
    const e = Math.exp((z[c] as number) - max);
    z[c] = e;
    sum += e;
  }
  for (let c = 0; c < z.length; c++) z[c] = (z[c] as number) / sum;
  return best;
}

/**
 * Backward through a dense layer y = b + x · W whose input came out of a ReLU (the output layer):
 * adds x ⊗ dy to `gw` and dy to `gb`, and writes dL/dx to `dx`, 0 where x is 0 (the ReLU's
 * gradient).
 */
export function denseBackward(x: Float32Array, n: number, w: Float32Array, dy: Float32Array, m: number, gw: Float32Array, gb: Float32Array, dx: Float32Array): void {
  for (let j = 0; j < n; j++) {
    const xj = x[j] as number;
    if (xj === 0) {
      dx[j] = 0;
      continue;
    }
    axpy(m, xj, dy, 0, gw, j * m);
    dx[j] = dot(m, w, j * m, dy, 0);
  }
  for (let c = 0; c < m; c++) gb[c] = (gb[c] as number) + (dy[c] as number);
}

/**
 * {@link denseBackward} for the hidden layer's wide rows (p2 = the pooled maps in, dh = dL/dh):
 * only non-zero pooled inputs carry weight gradient and pass gradient back, and one pass over each
 * row does both. Its own summation order (two partial sums), which trained weights depend on bit
 * for bit.
 */
export function denseBackwardWide(p2: Float32Array, flat: number, w3: Float32Array, dh: Float32Array, hidden: number, g3: Float32Array, gb3: Float32Array, dp2: Float32Array): void {
  for (let j = 0; j < hidden; j++) gb3[j] = (gb3[j] as number) + (dh[j] as number);
  for (let i = 0; i < flat; i++) {
    const v = p2[i] as number;
    if (v === 0) {
      dp2[i] = 0;
      continue;
    }
    // One pass over the row: the weight-gradient update and the back-propagated dot share dh.
    const r = i * hidden;
    let s0 = 0;
    let s1 = 0;
    let j = 0;
    for (; j + 1 < hidden; j += 2) {
      const d0 = dh[j] as number;
      const d1 = dh[j + 1] as number;
      g3[r + j] = (g3[r + j] as number) + v * d0;
      g3[r + j + 1] = (g3[r + j + 1] as number) + v * d1;
      s0 += (w3[r + j] as number) * d0;
      s1 += (w3[r + j + 1] as number) * d1;
    }
    for (; j < hidden; j++) {
      g3[r + j] = (g3[r + j] as number) + v * (dh[j] as number);
      s0 += (w3[r + j] as number) * (dh[j] as number);
    }
    dp2[i] = s0 + s1;
  }
}

/**
 * Conv 2 backward from dp2 (the gradient at pool 2's output) and m2 (pool 2's selections): adds
 * the weight and bias gradients to `g2`, `gb2` and writes the gradient at pool 1's output to `dp1`.
 * `selP`, `selD` are scratch of P2 × P2 entries.
 */
export function conv2Backward(
  c1: number,
  c2: number,
  m2: Int32Array,
  dp2: Float32Array,
  col2: Float32Array,
  w2: Float32Array,
  g2: Float32Array,
  gb2: Float32Array,
  selP: Int32Array,
  selD: Float64Array,
  dp1: Float32Array,
): void {
  // Conv 2, only at the positions pool 2 selected, one output channel at a time: its weight
  // gradient row is summed in locals over the channel's selections (in selection order), and the
  // input gradient is scattered straight onto pool 1's output (no dcol2 / col2im pass).
  const k2 = c1 * KK;
  const n2 = A2 * A2;
  const q2 = P2 * P2;
  dp1.fill(0);
  for (let co = 0; co < c2; co++) {
    let ns = 0;
    let db = 0;
    for (let q = 0; q < q2; q++) {
      const i = co * q2 + q;
      const idx = m2[i] as number;
      const d = dp2[i] as number;
      if (idx < 0 || d === 0) continue;
      selP[ns] = idx - co * n2;
      selD[ns] = d;
      ns++;
      db += d;
    }
    if (ns === 0) continue;
    gb2[co] = (gb2[co] as number) + db;
    const gr = co * k2;
    let j = 0;
    for (; j + 3 < k2; j += 4) {
      let e0 = g2[gr + j] as number;
      let e1 = g2[gr + j + 1] as number;
      let e2 = g2[gr + j + 2] as number;
      let e3 = g2[gr + j + 3] as number;
      for (let t = 0; t < ns; t++) {
        const d = selD[t] as number;
        const o = (selP[t] as number) * k2 + j;
        e0 += d * (col2[o] as number);
        e1 += d * (col2[o + 1] as number);
        e2 += d * (col2[o + 2] as number);
        e3 += d * (col2[o + 3] as number);
      }
      g2[gr + j] = e0;
      g2[gr + j + 1] = e1;
      g2[gr + j + 2] = e2;
      g2[gr + j + 3] = e3;
    }
    for (; j < k2; j++) {
      let acc = g2[gr + j] as number;
      for (let t = 0; t < ns; t++) acc += (selD[t] as number) * (col2[(selP[t] as number) * k2 + j] as number);
      g2[gr + j] = acc;
    }
    for (let t = 0; t < ns; t++) {
      const d = selD[t] as number;
      const p = selP[t] as number;
      const oy = (p / A2) | 0;
      const ox = p - oy * A2;
      let o = gr;
      for (let ci = 0; ci < c1; ci++) {
        for (let ky = 0; ky < K; ky++, o += K) {
          const dst = ci * P1 * P1 + (oy + ky) * P1 + ox;
          dp1[dst] = (dp1[dst] as number) + d * (w2[o] as number);
          dp1[dst + 1] = (dp1[dst + 1] as number) + d * (w2[o + 1] as number);
          dp1[dst + 2] = (dp1[dst + 2] as number) + d * (w2[o + 2] as number);
          dp1[dst + 3] = (dp1[dst + 3] as number) + d * (w2[o + 3] as number);
          dp1[dst + 4] = (dp1[dst + 4] as number) + d * (w2[o + 4] as number);
        }
      }
    }
  }
}

/** Conv 1's weight and bias gradients from dp1 (the gradient at pool 1's output), m1 (pool 1's selections) and the input. */
export function conv1WeightGradient(c1: number, m1: Int32Array, dp1: Float32Array, x: Float32Array, g1: Float32Array, gb1: Float32Array): void {
  const n1 = A1 * A1;
  const pooled1 = c1 * P1 * P1;
  for (let i = 0; i < pooled1; i++) {
    const idx = m1[i] as number;
    const d = dp1[i] as number;
    if (idx < 0 || d === 0) continue;
    const c = (i / (P1 * P1)) | 0;
    const p = idx - c * n1;
    const oy = (p / A1) | 0;
    const ox = p - oy * A1;
    gb1[c] = (gb1[c] as number) + d;
    const gk = c * KK;
    for (let ky = 0; ky < K; ky++) {
      const src = (oy + ky) * S + ox;
      for (let kx = 0; kx < K; kx++) g1[gk + ky * K + kx] = (g1[gk + ky * K + kx] as number) + d * (x[src + kx] as number);
    }
  }
}
