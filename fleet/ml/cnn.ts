/**
 * A small convolutional digit classifier trained in pure TypeScript (no Python stack, no native
 * code): 28×28×1 → Conv5×5(C1) → ReLU → MaxPool2 → Conv5×5(C2) → ReLU → MaxPool2 → Dense(128) →
 * ReLU → Dense(10) → Softmax. Pure computation: no I/O.
 *
 * Speed (this is what makes <= 120 s on two shared cores possible):
 * - convolutions are "valid" (no padding), so the maps shrink 28 → 24 → 12 → 8 → 4 and the
 *   whole forward pass is ~0.34 M multiply-adds;
 * - conv1 is a direct convolution with the 25 weights of a channel in locals (five row sums per
 *   output); conv2 uses a position-major im2col ([64][200]) and computes 4 channels × 2
 *   positions per pass, so each loaded weight and column value serves several sums;
 * - backward passes only touch the positions max-pooling selected (a quarter of the map, and
 *   none where the pooled value is 0 after ReLU), which cuts the conv backward work by ~4×; the
 *   conv2 weight gradient is summed in locals per channel and its input gradient is scattered
 *   straight onto pool 1's output.
 * Measured (one epoch, 2,000 digits, one thread, shared box): 3.5-4.3 CPU-s before these loops,
 * 1.3-2.2 after.
 * Determinism: every random choice comes from one seeded PRNG and the arithmetic order is fixed,
 * so the same data and seed give bit-identical weights.
 */
import { GraphBuilder } from '../../shared/onnx/builder.js';
import type { OnnxInitializer } from '../../shared/onnx/reader.js';
import { heUniform, mulberry32, uniformArray } from './init.js';
import { affineAugment, type AugmentOptions } from './augment.js';
import { PARAM_ORDER, startGradientWorker } from './cnn-pool.js';

const S = 28; // input side
const K = 5; // kernel side
const KK = K * K;
const A1 = S - K + 1; // 24: conv1 output side
const P1 = A1 / 2; // 12: after pool 1
const A2 = P1 - K + 1; // 8: conv2 output side
const P2 = A2 / 2; // 4: after pool 2

/** Layer sizes. */
export interface CnnShape {
  c1: number;
  c2: number;
  hidden: number;
  classes: number;
}

/** Trained (or freshly initialised) parameters; layouts match the ONNX initializers. */
export interface CnnWeights extends CnnShape {
  /** [c1, 1, 5, 5] */
  w1: Float32Array;
  b1: Float32Array;
  /** [c2, c1, 5, 5] */
  w2: Float32Array;
  b2: Float32Array;
  /** [c2·4·4, hidden] row-major (Gemm, transB = 0) */
  w3: Float32Array;
  b3: Float32Array;
  /** [hidden, classes] */
  w4: Float32Array;
  b4: Float32Array;
}

export const DIGIT_CNN_SHAPE: CnnShape = { c1: 8, c2: 16, hidden: 128, classes: 10 };

/** ONNX tensor names. */
export const CNN_ONNX_INPUT = 'input';
export const CNN_ONNX_OUTPUT = 'probabilities';
const PARAM_NAMES = PARAM_ORDER;
type ParamName = (typeof PARAM_NAMES)[number];

function paramDims(s: CnnShape): Record<ParamName, number[]> {
  const flat = s.c2 * P2 * P2;
  return { w1: [s.c1, 1, K, K], b1: [s.c1], w2: [s.c2, s.c1, K, K], b2: [s.c2], w3: [flat, s.hidden], b3: [s.hidden], w4: [s.hidden, s.classes], b4: [s.classes] };
}

function params(w: CnnWeights): Float32Array[] {
  return PARAM_NAMES.map((n) => w[n]);
}

/** Seeded He-uniform init for the ReLU layers, Glorot-like for the output layer; zero biases. */
export function initCnn(shape: CnnShape, seed: number): CnnWeights {
  const rand = mulberry32(seed);
  const flat = shape.c2 * P2 * P2;
  return {
    ...shape,
    w1: heUniform(rand, shape.c1 * KK, KK),
    b1: new Float32Array(shape.c1),
    w2: heUniform(rand, shape.c2 * shape.c1 * KK, shape.c1 * KK),
    b2: new Float32Array(shape.c2),
    w3: heUniform(rand, flat * shape.hidden, flat),
    b3: new Float32Array(shape.hidden),
    w4: uniformArray(rand, shape.hidden * shape.classes, Math.sqrt(6 / (shape.hidden + shape.classes))),
    b4: new Float32Array(shape.classes),
  };
}

/** A deep copy (fine-tuning must not mutate the parent's weights). */
export function cloneCnn(w: CnnWeights): CnnWeights {
  return { c1: w.c1, c2: w.c2, hidden: w.hidden, classes: w.classes, w1: w.w1.slice(), b1: w.b1.slice(), w2: w.w2.slice(), b2: w.b2.slice(), w3: w.w3.slice(), b3: w.b3.slice(), w4: w.w4.slice(), b4: w.b4.slice() };
}

/**
 * Rebuilds weights from a model's initializers (as written by {@link exportCnnOnnx}). Returns null
 * when the initializers are not this architecture (another trainer's model, the old MLP).
 */
export function cnnFromInitializers(init: ReadonlyMap<string, OnnxInitializer>): CnnWeights | null {
  const w1 = init.get('w1');
  const w2 = init.get('w2');
  const w3 = init.get('w3');
  const w4 = init.get('w4');
  if (!w1 || !w2 || !w3 || !w4 || w1.dims.length !== 4 || w2.dims.length !== 4 || w3.dims.length !== 2 || w4.dims.length !== 2) return null;
  const shape: CnnShape = { c1: w1.dims[0]!, c2: w2.dims[0]!, hidden: w3.dims[1]!, classes: w4.dims[1]! };
  const dims = paramDims(shape);
  const out: Partial<Record<ParamName, Float32Array>> = {};
  for (const n of PARAM_NAMES) {
    const t = init.get(n);
    if (!t || t.dims.join(',') !== dims[n].join(',')) return null;
    out[n] = t.data.slice();
  }
  return { ...shape, ...(out as Record<ParamName, Float32Array>) };
}

/** Per-sample scratch buffers, allocated once per training run. */
export class Scratch {
  readonly aug = new Float32Array(S * S);
  readonly a1: Float32Array;
  readonly p1: Float32Array;
  readonly m1: Int32Array;
  readonly col2: Float32Array;
  readonly a2: Float32Array;
  readonly p2: Float32Array;
  readonly m2: Int32Array;
  readonly h: Float32Array;
  readonly z: Float32Array;
  readonly dh: Float32Array;
  readonly dp2: Float32Array;
  /** Pool 2's selections grouped by channel: position and gradient. */
  readonly selP: Int32Array;
  readonly selD: Float64Array;
  readonly dp1: Float32Array;
  constructor(s: CnnShape) {
    this.a1 = new Float32Array(s.c1 * A1 * A1);
    this.p1 = new Float32Array(s.c1 * P1 * P1);
    this.m1 = new Int32Array(s.c1 * P1 * P1);
    this.col2 = new Float32Array(A2 * A2 * s.c1 * KK);
    this.a2 = new Float32Array(s.c2 * A2 * A2);
    this.p2 = new Float32Array(s.c2 * P2 * P2);
    this.m2 = new Int32Array(s.c2 * P2 * P2);
    this.h = new Float32Array(s.hidden);
    this.z = new Float32Array(s.classes);
    this.dh = new Float32Array(s.hidden);
    this.dp2 = new Float32Array(s.c2 * P2 * P2);
    this.selP = new Int32Array(P2 * P2);
    this.selD = new Float64Array(P2 * P2);
    this.dp1 = new Float32Array(s.c1 * P1 * P1);
  }
}

/** y[yo + j] += a · x[xo + j], j < n (unrolled by four: V8 does not vectorise). */
function axpy(n: number, a: number, x: Float32Array, xo: number, y: Float32Array, yo: number): void {
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
function dot(n: number, x: Float32Array, xo: number, y: Float32Array, yo: number): number {
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

/** ReLU + 2×2 max-pool of `c` maps of side `side`; m = index of the max in `a`, or -1 when the pooled value is 0. */
function reluPool(a: Float32Array, c: number, side: number, p: Float32Array, m: Int32Array): void {
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

/** Forward pass of one 784-value image; leaves activations in `s`, logits in `s.z`. */
function forward(w: CnnWeights, x: Float32Array, s: Scratch): void {
  conv1(w, x, s.a1);
  reluPool(s.a1, w.c1, A1, s.p1, s.m1);
  im2col2(s.p1, w.c1, s.col2);
  conv2(w, s.col2, s.a2);
  reluPool(s.a2, w.c2, A2, s.p2, s.m2);
  dense(w, s);
}

// Each stage is its own small function: V8 optimises small hot functions well, and one big
// forward body ran several times slower.

/**
 * Direct 5×5 convolution of the 28×28 input: the channel's 25 weights live in locals and each
 * output is five row sums (independent chains) added in a fixed order.
 */
function conv1(w: CnnWeights, x: Float32Array, a1: Float32Array): void {
  const n1 = A1 * A1;
  const w1 = w.w1;
  for (let c = 0; c < w.c1; c++) {
    const o = c * KK;
    const w00 = w1[o] as number, w01 = w1[o + 1] as number, w02 = w1[o + 2] as number, w03 = w1[o + 3] as number, w04 = w1[o + 4] as number;
    const w10 = w1[o + 5] as number, w11 = w1[o + 6] as number, w12 = w1[o + 7] as number, w13 = w1[o + 8] as number, w14 = w1[o + 9] as number;
    const w20 = w1[o + 10] as number, w21 = w1[o + 11] as number, w22 = w1[o + 12] as number, w23 = w1[o + 13] as number, w24 = w1[o + 14] as number;
    const w30 = w1[o + 15] as number, w31 = w1[o + 16] as number, w32 = w1[o + 17] as number, w33 = w1[o + 18] as number, w34 = w1[o + 19] as number;
    const w40 = w1[o + 20] as number, w41 = w1[o + 21] as number, w42 = w1[o + 22] as number, w43 = w1[o + 23] as number, w44 = w1[o + 24] as number;
    const b = w.b1[c] as number;
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
function im2col2(p1: Float32Array, c1: number, col2: Float32Array): void {
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
function conv2(w: CnnWeights, col2: Float32Array, a2: Float32Array): void {
  const k2 = w.c1 * KK;
  const n2 = A2 * A2;
  const w2 = w.w2;
  const b2 = w.b2;
  const c2 = w.c2;
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

function dense(w: CnnWeights, s: Scratch): void {
  const { hidden, classes } = w;
  const flat = w.c2 * P2 * P2;
  const h = s.h;
  const p2 = s.p2;
  h.set(w.b3);
  for (let i = 0; i < flat; i++) {
    const v = p2[i] as number;
    if (v !== 0) axpy(hidden, v, w.w3, i * hidden, h, 0);
  }
  for (let j = 0; j < hidden; j++) if ((h[j] as number) < 0) h[j] = 0;
  const z = s.z;
  z.set(w.b4);
  for (let j = 0; j < hidden; j++) {
    const v = h[j] as number;
    if (v !== 0) axpy(classes, v, w.w4, j * classes, z, 0);
  }
}

/** Softmax in place; returns the arg-max. */
function softmax(z: Float32Array): number {
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

/** Adds one sample's gradients into `g` (same order as {@link PARAM_NAMES}); `s.z` holds dL/dlogits. */
function backward(w: CnnWeights, x: Float32Array, s: Scratch, g: Float32Array[]): void {
  const { c1, c2, hidden, classes } = w;
  const [g1, gb1, g2, gb2, g3, gb3, g4, gb4] = g as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  const { z, h, dh, p2, dp2, m2, col2, dp1, m1 } = s;
  // Dense 2
  for (let j = 0; j < hidden; j++) {
    const hj = h[j] as number;
    if (hj === 0) {
      dh[j] = 0;
      continue;
    }
    axpy(classes, hj, z, 0, g4, j * classes);
    dh[j] = dot(classes, w.w4, j * classes, z, 0);
  }
  for (let c = 0; c < classes; c++) gb4[c] = (gb4[c] as number) + (z[c] as number);
  for (let j = 0; j < hidden; j++) gb3[j] = (gb3[j] as number) + (dh[j] as number);
  // Dense 1: only non-zero pooled inputs carry weight gradient and pass gradient back.
  const flat = c2 * P2 * P2;
  const w3 = w.w3;
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
  // Conv 2, only at the positions pool 2 selected, one output channel at a time: its weight
  // gradient row is summed in locals over the channel's selections (in selection order), and the
  // input gradient is scattered straight onto pool 1's output (no dcol2 / col2im pass).
  const k2 = c1 * KK;
  const n2 = A2 * A2;
  const q2 = P2 * P2;
  const { selP, selD } = s;
  const w2 = w.w2;
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
  // Conv 1 weight gradient straight from the input at pool 1's selected positions.
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

/** Options for {@link trainCnn}. */
export interface TrainCnnOptions {
  /** 784-value images in [0, 1] (ink = 1), as the agent's preprocessing produces them. */
  images: readonly Float32Array[];
  labels: readonly number[];
  /** Relative sampling weight per image (default 1): weight 3 = seen three times per epoch. */
  weights?: readonly number[];
  /** Start from these weights (fine-tuning) instead of a fresh init. Not mutated. */
  initial?: CnnWeights;
  shape?: CnnShape;
  epochs: number;
  batchSize: number;
  /** Adam step size; decays with a cosine to 5% over the run. */
  lr: number;
  /** Images drawn per epoch (default: the weighted total, i.e. Σ weights). */
  perEpoch?: number;
  seed: number;
  /** Random affine jitter of each drawn image (default none); its randomness is seeded per draw. */
  augment?: AugmentOptions;
  /**
   * Threads computing each batch's gradients (default 1): 2 splits every batch in two fixed
   * halves, one on a worker thread. Results are bit-identical for the same seed *and* thread
   * count (the two half-sums are added in a fixed order; float addition is not associative, so
   * 1 and 2 threads differ in the last bits).
   */
  threads?: 1 | 2;
  /** After each epoch; `weights` are the live weights (read them, do not keep or mutate them). */
  onEpoch?(epoch: number, loss: number, accuracy: number, weights: CnnWeights): void;
  /** Checked between batches. */
  signal?: AbortSignal;
}

export interface TrainCnnResult {
  weights: CnnWeights;
  finalLoss: number;
  /** Running accuracy over the last epoch's (augmented) draws. */
  trainAccuracy: number;
}

const BETA1 = 0.9;
const BETA2 = 0.999;
const EPS = 1e-8;

/** Seed of the augmentation PRNG of draw `b` of an epoch: independent of which thread computes it. */
function drawSeed(epochSeed: number, b: number): number {
  return (Math.imul(b + 1, 0x9e3779b1) ^ epochSeed) >>> 0;
}

/**
 * One thread's share of a batch: forward + backward over draws [from, to) of `order`, adding
 * into `grads`. Shared by the main thread and the worker (cnn-worker.ts).
 */
export function accumulateGradients(
  w: CnnWeights,
  images: readonly Float32Array[],
  labels: ArrayLike<number>,
  order: Int32Array,
  from: number,
  to: number,
  augment: AugmentOptions | null,
  epochSeed: number,
  s: Scratch,
  grads: Float32Array[],
): { loss: number; correct: number } {
  const warp = augment ? affineAugment(augment) : null;
  const aug = s.aug;
  let loss = 0;
  let correct = 0;
  for (let b = from; b < to; b++) {
    const idx = order[b]!;
    let x = images[idx]!;
    if (warp) {
      warp(x, aug, mulberry32(drawSeed(epochSeed, b)));
      x = aug;
    }
    const y = labels[idx]!;
    forward(w, x, s);
    if (softmax(s.z) === y) correct++;
    loss -= Math.log(Math.max(s.z[y] as number, 1e-12));
    s.z[y] = (s.z[y] as number) - 1;
    backward(w, x, s, grads);
  }
  return { loss, correct };
}

/** Mini-batch Adam; deterministic for a given seed, thread count, data order, weights and options. */
export async function trainCnn(o: TrainCnnOptions): Promise<TrainCnnResult> {
  const shape = o.initial ?? o.shape ?? DIGIT_CNN_SHAPE;
  const n = o.images.length;
  if (n === 0) throw new RangeError('trainCnn needs at least one image');
  if (o.labels.length !== n) throw new RangeError(`${n} images but ${o.labels.length} labels`);
  for (let i = 0; i < n; i++) {
    if (o.images[i]!.length !== S * S) throw new RangeError(`image ${i} has ${o.images[i]!.length} values, expected ${S * S}`);
    const l = o.labels[i]!;
    if (!Number.isInteger(l) || l < 0 || l >= shape.classes) throw new RangeError(`label ${i} is ${l}, expected 0..${shape.classes - 1}`);
  }
  if (![o.epochs, o.batchSize].every((v) => Number.isInteger(v) && v > 0) || !(o.lr > 0)) throw new RangeError('epochs and batchSize must be positive integers and lr positive');
  const threads = o.threads ?? 1;
  const start = o.initial ? cloneCnn(o.initial) : initCnn(shape, o.seed);
  // Sampling gets its own stream so changing the init scheme does not change the data order.
  const rand = mulberry32((o.seed ^ 0x9e3779b9) >>> 0);
  const epochOrders: Int32Array[] = [];
  const epochSeeds: number[] = [];
  const scratchList: number[] = [];
  for (let epoch = 0; epoch < o.epochs; epoch++) {
    epochOrders.push(epochOrder(n, o.weights ?? null, o.perEpoch, rand, scratchList));
    epochSeeds.push(Math.floor(rand() * 4294967296) >>> 0);
  }
  const totalSteps = epochOrders.reduce((a, e) => a + Math.ceil(e.length / o.batchSize), 0);
  const pool = threads === 2 ? await startGradientWorker(start, o.images, o.labels, Math.max(...epochOrders.map((e) => e.length)), o.augment ?? null) : null;
  const w = pool ? pool.weights : start;
  const images = pool ? pool.images : o.images;
  try {
    const ps = params(w);
    const grads = ps.map((p) => new Float32Array(p.length));
    const m = ps.map((p) => new Float32Array(p.length));
    const v = ps.map((p) => new Float32Array(p.length));
    const s = new Scratch(w);
    let step = 0;
    let finalLoss = NaN;
    let trainAccuracy = 0;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = epochOrders[epoch]!;
      pool?.setOrder(order);
      let lossSum = 0;
      let correct = 0;
      for (let begin = 0; begin < order.length; begin += o.batchSize) {
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error('training aborted');
        const end = Math.min(begin + o.batchSize, order.length);
        for (const g of grads) g.fill(0);
        // With a worker: it takes the second half of the batch while this thread does the first.
        const mid = pool && end - begin > 1 ? begin + ((end - begin) >> 1) : end;
        if (pool && mid < end) pool.start(mid, end, epochSeeds[epoch]!);
        const mine = accumulateGradients(w, images, o.labels, order, begin, mid, o.augment ?? null, epochSeeds[epoch]!, s, grads);
        lossSum += mine.loss;
        correct += mine.correct;
        if (pool && mid < end) {
          const theirs = pool.finish(grads);
          lossSum += theirs.loss;
          correct += theirs.correct;
        }
        const lr = o.lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps)));
        step++;
        adamStep(ps, grads, m, v, lr, 1 / (end - begin), step);
      }
      finalLoss = lossSum / order.length;
      trainAccuracy = correct / order.length;
      o.onEpoch?.(epoch + 1, finalLoss, trainAccuracy, w);
      // Let timers and signals (Ctrl-C, an abort from another task) run between epochs.
      await new Promise((r) => setImmediate(r));
    }
    return { weights: pool ? cloneCnn(w) : w, finalLoss, trainAccuracy };
  } finally {
    await pool?.close();
  }
}

function epochOrder(n: number, weights: readonly number[] | null, perEpoch: number | undefined, rand: () => number, scratch: number[]): Int32Array {
  scratch.length = 0;
  for (let i = 0; i < n; i++) {
    const wi = weights ? (weights[i] ?? 1) : 1;
    let k = Math.floor(wi);
    if (rand() < wi - k) k++;
    for (let r = 0; r < k; r++) scratch.push(i);
  }
  const order = Int32Array.from(scratch);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return perEpoch !== undefined && perEpoch < order.length ? order.subarray(0, perEpoch) : order;
}

function adamStep(ps: Float32Array[], grads: Float32Array[], m: Float32Array[], v: Float32Array[], lr: number, scale: number, t: number): void {
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

/** Class probabilities for each image (pure-TS forward pass, for golden choice and checks). */
export function predictCnn(w: CnnWeights, images: readonly Float32Array[]): Float32Array[] {
  const s = new Scratch(w);
  return images.map((x) => {
    if (x.length !== S * S) throw new RangeError(`image has ${x.length} values, expected ${S * S}`);
    forward(w, x, s);
    softmax(s.z);
    return s.z.slice();
  });
}

/** Fraction of images whose arg-max equals the label (0 for none). */
export function evaluateCnn(w: CnnWeights, images: readonly Float32Array[], labels: readonly number[]): number {
  if (images.length === 0) return 0;
  let correct = 0;
  predictCnn(w, images).forEach((p, i) => {
    let best = 0;
    for (let c = 1; c < p.length; c++) if ((p[c] as number) > (p[best] as number)) best = c;
    if (best === labels[i]) correct++;
  });
  return correct / images.length;
}

/**
 * ONNX export: input `input` [batch, 1, 28, 28] float32 → Conv → Relu → MaxPool → Conv → Relu →
 * MaxPool → Flatten → Gemm → Relu → Gemm → Softmax → `probabilities` [batch, classes].
 * Initializer names are the parameter names, so {@link cnnFromInitializers} can read them back.
 */
export function exportCnnOnnx(w: CnnWeights): Uint8Array {
  const dims = paramDims(w);
  const g = new GraphBuilder('cnn_digits');
  const init = (n: ParamName): string => g.initializer(n, w[n], dims[n]);
  let t = g.input(CNN_ONNX_INPUT, 'float32', ['batch', 1, S, S]);
  t = g.node('Relu', [g.node('Conv', [t, init('w1'), init('b1')], { kernel_shape: [K, K] })]);
  t = g.node('MaxPool', [t], { kernel_shape: [2, 2], strides: [2, 2] });
  t = g.node('Relu', [g.node('Conv', [t, init('w2'), init('b2')], { kernel_shape: [K, K] })]);
  t = g.node('MaxPool', [t], { kernel_shape: [2, 2], strides: [2, 2] });
  t = g.node('Flatten', [t], { axis: 1 });
  t = g.node('Relu', [g.node('Gemm', [t, init('w3'), init('b3')])]);
  t = g.node('Gemm', [t, init('w4'), init('b4')]);
  t = g.node('Softmax', [t], { axis: 1 });
  g.output(t, 'float32', ['batch', w.classes], CNN_ONNX_OUTPUT);
  return g.toBytes();
}

/**
 * Cross-entropy loss of one image and its gradients (parameter order w1, b1, w2, b2, w3, b3,
 * w4, b4): the same code path as training, exposed so tests can check it against finite
 * differences.
 */
export function cnnLossAndGradients(w: CnnWeights, x: Float32Array, label: number): { loss: number; grads: Float32Array[] } {
  const s = new Scratch(w);
  const grads = params(w).map((p) => new Float32Array(p.length));
  forward(w, x, s);
  softmax(s.z);
  const loss = -Math.log(Math.max(s.z[label] as number, 1e-12));
  s.z[label] = (s.z[label] as number) - 1;
  backward(w, x, s, grads);
  return { loss, grads };
}

/** The parameter arrays in gradient order (views, not copies). */
export function cnnParams(w: CnnWeights): Float32Array[] {
  return params(w);
}
