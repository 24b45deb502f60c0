/**
 * The digit CNN, a small convolutional classifier in pure TypeScript (no Python stack, no native
 * code): 28×28×1 → Conv5×5(C1) → ReLU → MaxPool2 → Conv5×5(C2) → ReLU → MaxPool2 → Dense(hidden)
 * → ReLU → Dense(classes) → Softmax. This module is the architecture: layer sizes, the parameter
 * layout (shared with the ONNX initializers and the worker threads' shared memory),
 * initialisation, the forward and backward passes over the kernels (kernels.ts), prediction and
 * ONNX export. Pure computation: no I/O.
 *
 * Determinism: every random choice comes from one seeded PRNG and the arithmetic order is fixed,
 * so the same data and seed give bit-identical weights.
 */
import { GraphBuilder } from '../../../shared/onnx/builder.js';
import type { OnnxInitializer } from '../../../shared/onnx/reader.js';
import { DIGIT_CLASSES, DIGIT_PIXELS } from '../digit-size.js';
import { heUniform, mulberry32, uniformArray } from '../init.js';
import { CNN_GEOMETRY, conv1, conv1WeightGradient, conv2, conv2Backward, dense, denseBackward, denseBackwardWide, im2col2, relu, reluPool, softmax } from './kernels.js';

const { input: S, kernel: K, conv1: A1, pool1: P1, conv2: A2, pool2: P2 } = CNN_GEOMETRY;
const KK = K * K;

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

export const DIGIT_CNN_SHAPE: CnnShape = { c1: 8, c2: 16, hidden: 128, classes: DIGIT_CLASSES };

/** ONNX tensor names. */
const CNN_ONNX_INPUT = 'input';
const CNN_ONNX_OUTPUT = 'probabilities';

/** The parameters in layout order: gradients, optimiser state and shared memory follow it. */
const PARAM_ORDER = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'w4', 'b4'] as const;
type ParamName = (typeof PARAM_ORDER)[number];

function paramDims(s: CnnShape): Record<ParamName, number[]> {
  const flat = s.c2 * P2 * P2;
  return { w1: [s.c1, 1, K, K], b1: [s.c1], w2: [s.c2, s.c1, K, K], b2: [s.c2], w3: [flat, s.hidden], b3: [s.hidden], w4: [s.hidden, s.classes], b4: [s.classes] };
}

/** The parameter arrays in layout order (views, not copies). */
export function cnnParams(w: CnnWeights): Float32Array[] {
  return PARAM_ORDER.map((n) => w[n]);
}

/** Weights over parameter arrays given in layout order (e.g. views over shared memory; not copied). */
export function cnnFromParams(shape: CnnShape, arrays: readonly Float32Array[]): CnnWeights {
  const [w1, b1, w2, b2, w3, b3, w4, b4] = arrays as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  return { c1: shape.c1, c2: shape.c2, hidden: shape.hidden, classes: shape.classes, w1, b1, w2, b2, w3, b3, w4, b4 };
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
  for (const n of PARAM_ORDER) {
    const t = init.get(n);
    if (!t || t.dims.join(',') !== dims[n].join(',')) return null;
    out[n] = t.data.slice();
  }
  return { ...shape, ...(out as Record<ParamName, Float32Array>) };
}

/** Per-sample scratch buffers (activations, selections, gradients of one image), allocated once per run. */
export class Scratch {
  readonly aug = new Float32Array(DIGIT_PIXELS);
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

/** Forward pass of one DIGIT_PIXELS-value image; leaves activations in `s`, logits in `s.z`. */
export function forwardCnn(w: CnnWeights, x: Float32Array, s: Scratch): void {
  conv1(w.w1, w.b1, w.c1, x, s.a1);
  reluPool(s.a1, w.c1, A1, s.p1, s.m1);
  im2col2(s.p1, w.c1, s.col2);
  conv2(w.w2, w.b2, w.c1, w.c2, s.col2, s.a2);
  reluPool(s.a2, w.c2, A2, s.p2, s.m2);
  dense(s.p2, w.c2 * P2 * P2, w.w3, w.b3, s.h, w.hidden);
  relu(s.h);
  dense(s.h, w.hidden, w.w4, w.b4, s.z, w.classes);
}

/** Adds one sample's gradients into `g` (layout order, {@link PARAM_ORDER}); `s.z` holds dL/dlogits. */
export function backwardCnn(w: CnnWeights, x: Float32Array, s: Scratch, g: Float32Array[]): void {
  const [g1, gb1, g2, gb2, g3, gb3, g4, gb4] = g as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  denseBackward(s.h, w.hidden, w.w4, s.z, w.classes, g4, gb4, s.dh);
  denseBackwardWide(s.p2, w.c2 * P2 * P2, w.w3, s.dh, w.hidden, g3, gb3, s.dp2);
  conv2Backward(w.c1, w.c2, s.m2, s.dp2, s.col2, w.w2, g2, gb2, s.selP, s.selD, s.dp1);
  conv1WeightGradient(w.c1, s.m1, s.dp1, x, g1, gb1);
}

/** Class probabilities for each image (pure-TS forward pass, for golden choice and checks). */
export function predictCnn(w: CnnWeights, images: readonly Float32Array[]): Float32Array[] {
  const s = new Scratch(w);
  return images.map((x) => {
    if (x.length !== DIGIT_PIXELS) throw new RangeError(`image has ${x.length} values, expected ${DIGIT_PIXELS}`);
    forwardCnn(w, x, s);
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
 * Cross-entropy loss of one image and its gradients (layout order w1, b1, w2, b2, w3, b3, w4, b4):
 * the same code path as training, exposed so tests can check it against finite differences.
 */
export function cnnLossAndGradients(w: CnnWeights, x: Float32Array, label: number): { loss: number; grads: Float32Array[] } {
  const s = new Scratch(w);
  const grads = cnnParams(w).map((p) => new Float32Array(p.length));
  forwardCnn(w, x, s);
  softmax(s.z);
  const loss = -Math.log(Math.max(s.z[label] as number, 1e-12));
  s.z[label] = (s.z[label] as number) - 1;
  backwardCnn(w, x, s, grads);
  return { loss, grads };
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
