/**
 * A small, dependency-free trainer for a one-hidden-layer MLP digit classifier (784 → H → 10),
 * used by the fleet to produce retrained models without a Python stack. Pure computation: no I/O.
 *
 * Model: `p = softmax(relu(x·w1 + b1)·w2 + b2)`, weights row-major `[in, out]` so they drop
 * straight into ONNX `Gemm` (transB = 0). Loss: softmax cross-entropy. Optimiser: mini-batch SGD
 * with (heavy-ball) momentum. Everything random (init, shuffling) comes from one seeded PRNG, and
 * the arithmetic order is fixed, so the same inputs and seed give bit-identical weights.
 */
import { GraphBuilder } from '../../shared/onnx/builder.js';
import { heUniform, mulberry32, uniformArray } from '../../fleet/ml/init.js';

/** Trained (or freshly initialised) MLP parameters. */
export interface MlpWeights {
  inputSize: number;
  hidden: number;
  classes: number;
  /** `[inputSize, hidden]` row-major. */
  w1: Float32Array;
  b1: Float32Array;
  /** `[hidden, classes]` row-major. */
  w2: Float32Array;
  b2: Float32Array;
}

/** Options for {@link trainMlp}. */
export interface TrainMlpOptions {
  /** Flattened images, all the same length (784 for 28×28 digits), values in [0, 1]. */
  images: readonly Float32Array[];
  /** Class index per image, 0 ≤ label < classes. */
  labels: readonly number[];
  hidden: number;
  epochs: number;
  /** Initial learning rate; it decays linearly to 10% of this over the run. */
  lr: number;
  batchSize: number;
  seed: number;
  /** Default 10 (digits). */
  classes?: number;
  /** Default 0.9. */
  momentum?: number;
  /** L2 penalty on w1/w2 (not biases); default 0. */
  weightDecay?: number;
  /** Called after each epoch with the mean training loss and the running training accuracy. */
  onProgress?(epoch: number, loss: number, accuracy: number): void;
}

/** Result of {@link trainMlp}. */
export interface TrainMlpResult {
  weights: MlpWeights;
  /** Accuracy of the final weights on the training set. */
  trainAccuracy: number;
  /** Mean cross-entropy over the last epoch. */
  finalLoss: number;
}

/**
 * Hyper-parameters that reach ≈95% holdout accuracy on 8 000 training digits from the `mnist`
 * package (holdout = the remaining 2 000) in roughly 10 s of CPU on a 2-core machine.
 */
export const DIGIT_MLP_RECIPE = { hidden: 64, epochs: 10, lr: 0.05, batchSize: 16, momentum: 0.9, weightDecay: 5e-4 } as const;

/** ONNX tensor names used by {@link exportMlpOnnx}. */
export const MLP_ONNX_INPUT = 'input';
export const MLP_ONNX_OUTPUT = 'probabilities';

/** Sparse view of an image: MNIST is ~80% zeros, so skipping them makes training ~5× faster. */
interface SparseImage {
  index: Int32Array;
  value: Float32Array;
}

function toSparse(image: Float32Array): SparseImage {
  let nz = 0;
  for (let i = 0; i < image.length; i++) if (image[i] !== 0) nz++;
  const index = new Int32Array(nz);
  const value = new Float32Array(nz);
  for (let i = 0, k = 0; i < image.length; i++) {
    const v = image[i] as number;
    if (v !== 0) {
      index[k] = i;
      value[k++] = v;
    }
  }
  return { index, value };
}

/** Creates seeded initial weights: He-uniform for the ReLU layer, Glorot-like for the output. */
export function initMlp(inputSize: number, hidden: number, classes: number, seed: number): MlpWeights {
  const rand = mulberry32(seed);
  return {
    inputSize,
    hidden,
    classes,
    w1: heUniform(rand, inputSize * hidden, inputSize),
    b1: new Float32Array(hidden),
    w2: uniformArray(rand, hidden * classes, Math.sqrt(6 / (hidden + classes))),
    b2: new Float32Array(classes),
  };
}

/**
 * Forward pass for one sparse image. Writes hidden activations into `h` and class probabilities
 * into `p`; returns nothing so the hot loop allocates nothing.
 */
function forwardSparse(w: MlpWeights, x: SparseImage, h: Float32Array, p: Float32Array): void {
  const { hidden: H, classes: C, w1, b1, w2, b2 } = w;
  h.set(b1);
  for (let k = 0; k < x.index.length; k++) axpy(x.value[k] as number, w1, (x.index[k] as number) * H, h);
  for (let j = 0; j < H; j++) if ((h[j] as number) < 0) h[j] = 0;
  p.set(b2);
  for (let j = 0; j < H; j++) {
    const hj = h[j] as number;
    if (hj === 0) continue;
    const row = j * C;
    for (let c = 0; c < C; c++) p[c] = (p[c] as number) + hj * (w2[row + c] as number);
  }
  softmaxInPlace(p);
}

// The two hot loops of training. Unrolled by four: V8 does not vectorise, and unrolling cut the
// time per multiply-add by roughly 40% in a micro-benchmark on our 2-core test box.

/** y[j] += a · m[offset + j] for j < y.length. */
function axpy(a: number, m: Float32Array, offset: number, y: Float32Array): void {
  const n = y.length;
  const n4 = n - (n % 4);
  let j = 0;
  for (let r = offset; j < n4; j += 4, r += 4) {
    y[j] = (y[j] as number) + a * (m[r] as number);
    y[j + 1] = (y[j + 1] as number) + a * (m[r + 1] as number);
    y[j + 2] = (y[j + 2] as number) + a * (m[r + 2] as number);
    y[j + 3] = (y[j + 3] as number) + a * (m[r + 3] as number);
  }
  for (; j < n; j++) y[j] = (y[j] as number) + a * (m[offset + j] as number);
}

/** m[offset + j] += a · x[j] for j < x.length. */
function axpyInto(a: number, x: Float32Array, m: Float32Array, offset: number): void {
  const n = x.length;
  const n4 = n - (n % 4);
  let j = 0;
  for (let r = offset; j < n4; j += 4, r += 4) {
    m[r] = (m[r] as number) + a * (x[j] as number);
    m[r + 1] = (m[r + 1] as number) + a * (x[j + 1] as number);
    m[r + 2] = (m[r + 2] as number) + a * (x[j + 2] as number);
    m[r + 3] = (m[r + 3] as number) + a * (x[j + 3] as number);
  }
  for (; j < n; j++) m[offset + j] = (m[offset + j] as number) + a * (x[j] as number);
}

function softmaxInPlace(p: Float32Array): void {
  let max = -Infinity;
  for (let c = 0; c < p.length; c++) max = Math.max(max, p[c] as number);
  let sum = 0;
  for (let c = 0; c < p.length; c++) {
    const e = Math.exp((p[c] as number) - max);
    p[c] = e;
    sum += e;
  }
  for (let c = 0; c < p.length; c++) p[c] = (p[c] as number) / sum;
}

function argmax(p: ArrayLike<number>): number {
  let best = 0;
  for (let c = 1; c < p.length; c++) if ((p[c] as number) > (p[best] as number)) best = c;
  return best;
}

function validate(images: readonly Float32Array[], labels: readonly number[], inputSize: number, classes: number): void {
  if (images.length !== labels.length) throw new RangeError(`${images.length} images but ${labels.length} labels`);
  for (let i = 0; i < images.length; i++) {
    if (images[i]?.length !== inputSize) throw new RangeError(`image ${i} has ${images[i]?.length} values, expected ${inputSize}`);
    const l = labels[i] as number;
    if (!Number.isInteger(l) || l < 0 || l >= classes) throw new RangeError(`label ${i} is ${l}, expected 0..${classes - 1}`);
  }
}

/** Trains the MLP with mini-batch SGD + momentum; deterministic for a given seed and data order. */
export function trainMlp(opts: TrainMlpOptions): TrainMlpResult {
  const { images, labels, hidden, epochs, lr, batchSize, seed } = opts;
  const classes = opts.classes ?? 10;
  const momentum = opts.momentum ?? 0.9;
  const weightDecay = opts.weightDecay ?? 0;
  if (images.length === 0) throw new RangeError('trainMlp needs at least one image');
  const inputSize = (images[0] as Float32Array).length;
  validate(images, labels, inputSize, classes);
  const positiveInts = [hidden, epochs, batchSize].every((v) => Number.isInteger(v) && v > 0);
  if (!positiveInts || !(lr > 0)) throw new RangeError('hidden, epochs and batchSize must be positive integers and lr positive');

  const w = initMlp(inputSize, hidden, classes, seed);
  // Shuffling gets its own stream so changing the init scheme does not change the data order.
  const rand = mulberry32((seed ^ 0x9e3779b9) >>> 0);
  const sparse = images.map(toSparse);
  const params = [w.w1, w.b1, w.w2, w.b2] as const;
  const grads = params.map((p) => new Float32Array(p.length));
  const velocity = params.map((p) => new Float32Array(p.length));
  const [gw1, gb1, gw2, gb2] = grads as [Float32Array, Float32Array, Float32Array, Float32Array];
  const h = new Float32Array(hidden);
  const p = new Float32Array(classes);
  const dh = new Float32Array(hidden);
  const order = Int32Array.from(images.keys());
  const totalSteps = epochs * Math.ceil(images.length / batchSize);
  let step = 0;
  let finalLoss = NaN;

  for (let epoch = 0; epoch < epochs; epoch++) {
    shuffle(order, rand);
    let lossSum = 0;
    let correct = 0;
    for (let start = 0; start < order.length; start += batchSize) {
      const end = Math.min(start + batchSize, order.length);
      for (const g of grads) g.fill(0);
      for (let n = start; n < end; n++) {
        const idx = order[n] as number;
        const x = sparse[idx] as SparseImage;
        const y = labels[idx] as number;
        forwardSparse(w, x, h, p);
        lossSum -= Math.log(Math.max(p[y] as number, 1e-12));
        if (argmax(p) === y) correct++;
        p[y] = (p[y] as number) - 1; // dL/dlogits = p - onehot(y)
        backwardSparse(w, x, h, p, dh, gw1, gb1, gw2, gb2);
      }
      // Linear decay to 10% keeps early progress fast and lets the last epochs settle.
      const rate = (lr * (1 - 0.9 * (step++ / totalSteps))) / (end - start);
      const n = end - start;
      // Decay only the weight matrices (params 0 and 2); biases are few and need no regularising.
      for (let t = 0; t < params.length; t++) momentumStep(params[t] as Float32Array, grads[t] as Float32Array, velocity[t] as Float32Array, momentum, rate, t % 2 === 0 ? weightDecay * n : 0);
    }
    finalLoss = lossSum / order.length;
    opts.onProgress?.(epoch + 1, finalLoss, correct / order.length);
  }
  return { weights: w, trainAccuracy: evaluateMlp(w, images, labels), finalLoss };
}

/**
 * Accumulates the gradients of one sample into the g* buffers, given its forward activations `h`
 * and `dz` = dL/dlogits. Kept separate from the training loop so V8 optimises it as a small hot
 * function (inlined into a big loop body it ran several times slower).
 */
function backwardSparse(w: MlpWeights, x: SparseImage, h: Float32Array, dz: Float32Array, dh: Float32Array, gw1: Float32Array, gb1: Float32Array, gw2: Float32Array, gb2: Float32Array): void {
  const { hidden: H, classes: C, w2 } = w;
  for (let j = 0; j < H; j++) {
    const hj = h[j] as number;
    if (hj === 0) {
      dh[j] = 0; // ReLU gate: no gradient flows through inactive units.
      continue;
    }
    const row = j * C;
    let s = 0;
    for (let c = 0; c < C; c++) {
      const d = dz[c] as number;
      gw2[row + c] = (gw2[row + c] as number) + hj * d;
      s += (w2[row + c] as number) * d;
    }
    dh[j] = s;
  }
  for (let c = 0; c < C; c++) gb2[c] = (gb2[c] as number) + (dz[c] as number);
  for (let j = 0; j < H; j++) gb1[j] = (gb1[j] as number) + (dh[j] as number);
  for (let k = 0; k < x.index.length; k++) axpyInto(x.value[k] as number, dh, gw1, (x.index[k] as number) * H);
}

/** Heavy-ball momentum update with L2 decay: v ← μ·v − rate·(g + decay·θ); θ ← θ + v. */
function momentumStep(param: Float32Array, grad: Float32Array, velocity: Float32Array, momentum: number, rate: number, decay: number): void {
  for (let i = 0; i < param.length; i++) {
    const v = momentum * (velocity[i] as number) - rate * ((grad[i] as number) + decay * (param[i] as number));
    velocity[i] = v;
    param[i] = (param[i] as number) + v;
  }
}

function shuffle(order: Int32Array, rand: () => number): void {
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const tmp = order[i] as number;
    order[i] = order[j] as number;
    order[j] = tmp;
  }
}

/** Class probabilities for one flattened image (pure-JS reference forward pass). */
export function predictMlp(weights: MlpWeights, image: Float32Array): Float32Array {
  if (image.length !== weights.inputSize) throw new RangeError(`image has ${image.length} values, expected ${weights.inputSize}`);
  const p = new Float32Array(weights.classes);
  forwardSparse(weights, toSparse(image), new Float32Array(weights.hidden), p);
  return p;
}

/** Fraction of `images` whose arg-max prediction equals the label (0 for an empty set). */
export function evaluateMlp(weights: MlpWeights, images: readonly Float32Array[], labels: readonly number[]): number {
  validate(images, labels, weights.inputSize, weights.classes);
  if (images.length === 0) return 0;
  let correct = 0;
  for (let i = 0; i < images.length; i++) if (argmax(predictMlp(weights, images[i] as Float32Array)) === labels[i]) correct++;
  return correct / images.length;
}

/**
 * Exports trained 28×28-digit weights as ONNX: input `input` `[batch, 1, 28, 28]` float32 →
 * Flatten → Gemm → Relu → Gemm → Softmax → output `probabilities` `[batch, classes]`. The image
 * shape lives in the graph so the agent can feed preprocessed images without reshaping.
 */
export function exportMlpOnnx(weights: MlpWeights): Uint8Array {
  const { inputSize, hidden, classes } = weights;
  if (inputSize !== 28 * 28) throw new RangeError(`exportMlpOnnx expects 784 inputs (28×28), got ${inputSize}`);
  const g = new GraphBuilder('mlp_digits');
  const x = g.input(MLP_ONNX_INPUT, 'float32', ['batch', 1, 28, 28]);
  let t = g.node('Flatten', [x], { axis: 1 });
  t = g.node('Gemm', [t, g.initializer('w1', weights.w1, [inputSize, hidden]), g.initializer('b1', weights.b1, [hidden])]);
  t = g.node('Relu', [t]);
  t = g.node('Gemm', [t, g.initializer('w2', weights.w2, [hidden, classes]), g.initializer('b2', weights.b2, [classes])]);
  t = g.node('Softmax', [t], { axis: 1 });
  g.output(t, 'float32', ['batch', classes], MLP_ONNX_OUTPUT);
  return g.toBytes();
}
