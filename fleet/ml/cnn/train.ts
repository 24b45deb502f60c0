/**
 * Training the digit CNN: mini-batch Adam with a cosine-decayed step, weighted sampling and a
 * seeded affine jitter per draw, on this thread. Where each batch's gradients are computed is a
 * {@link BatchExecutor}: this thread by default, or split with a worker thread (parallel.ts, whose
 * `trainCnn` is the library's entry point with the `threads` option).
 *
 * Deterministic: the data order, the jitter of every draw and the init come from the seed, and
 * the arithmetic order is fixed, so the same data, seed and executor give bit-identical weights.
 */
import { affineAugment, type AugmentOptions } from '../augment.js';
import { DIGIT_PIXELS } from '../digit-size.js';
import { mulberry32 } from '../init.js';
import { softmax } from './kernels.js';
import { backwardCnn, cloneCnn, cnnParams, DIGIT_CNN_SHAPE, forwardCnn, initCnn, Scratch, type CnnShape, type CnnWeights } from './model.js';
import { adamStep } from '../linalg.js';

/** Options of a training run. */
export interface TrainCnnOptions {
  /** DIGIT_PIXELS-value images in [0, 1] (ink = 1), as the agent's preprocessing produces them. */
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

/**
 * Computes each batch's gradients for the training loop. The loop owns the weights' updates and
 * the order in which sums are added, so a run is reproducible for a given executor.
 */
export interface BatchExecutor {
  /** The live weights: the loop updates them in place after every batch. */
  readonly weights: CnnWeights;
  /** The epoch's draw order (indices into the images). */
  setOrder(order: Int32Array): void;
  /** Adds the gradients of draws [begin, end) into `grads`, then their loss and hits into `sums`. */
  batch(begin: number, end: number, epochSeed: number, grads: Float32Array[], sums: { loss: number; correct: number }): void;
  /** The trained weights, still valid after `close`. */
  result(): CnnWeights;
  close(): Promise<void>;
}

/** What an executor is started with: the starting weights (not mutated) and the run's data. */
export interface ExecutorData {
  images: readonly Float32Array[];
  labels: readonly number[];
  /** The longest epoch order. */
  maxOrder: number;
  augment: AugmentOptions | null;
}

export type StartBatchExecutor = (start: CnnWeights, data: ExecutorData) => Promise<BatchExecutor>;

/** Seed of the augmentation PRNG of draw `b` of an epoch: independent of which thread computes it. */
function drawSeed(epochSeed: number, b: number): number {
  return (Math.imul(b + 1, 0x9e3779b1) ^ epochSeed) >>> 0;
}

/**
 * One thread's share of a batch: forward + backward over draws [from, to) of `order`, adding
 * into `grads`. Shared by this thread's executor and the gradient worker (gradient-worker.ts).
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
    forwardCnn(w, x, s);
    if (softmax(s.z) === y) correct++;
    loss -= Math.log(Math.max(s.z[y] as number, 1e-12));
    s.z[y] = (s.z[y] as number) - 1;
    backwardCnn(w, x, s, grads);
  }
  return { loss, correct };
}

/** Every batch on this thread. */
const onThisThread: StartBatchExecutor = async (start, data) => {
  const s = new Scratch(start);
  let order: Int32Array = new Int32Array(0);
  return {
    weights: start,
    setOrder: (o) => void (order = o),
    batch(begin, end, epochSeed, grads, sums) {
      const mine = accumulateGradients(start, data.images, data.labels, order, begin, end, data.augment, epochSeed, s, grads);
      sums.loss += mine.loss;
      sums.correct += mine.correct;
    },
    result: () => start,
    close: async () => undefined,
  };
};

/** Mini-batch Adam with the batches computed by `executor`; deterministic for a given seed, executor, data order, weights and options. */
export async function trainCnnWith(o: TrainCnnOptions, executor: StartBatchExecutor = onThisThread): Promise<TrainCnnResult> {
  const shape = o.initial ?? o.shape ?? DIGIT_CNN_SHAPE;
  const n = o.images.length;
  if (n === 0) throw new RangeError('trainCnn needs at least one image');
  if (o.labels.length !== n) throw new RangeError(`${n} images but ${o.labels.length} labels`);
  for (let i = 0; i < n; i++) {
    if (o.images[i]!.length !== DIGIT_PIXELS) throw new RangeError(`image ${i} has ${o.images[i]!.length} values, expected ${DIGIT_PIXELS}`);
    const l = o.labels[i]!;
    if (!Number.isInteger(l) || l < 0 || l >= shape.classes) throw new RangeError(`label ${i} is ${l}, expected 0..${shape.classes - 1}`);
  }
  if (![o.epochs, o.batchSize].every((v) => Number.isInteger(v) && v > 0) || !(o.lr > 0)) throw new RangeError('epochs and batchSize must be positive integers and lr positive');
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
  const ex = await executor(start, { images: o.images, labels: o.labels, maxOrder: Math.max(...epochOrders.map((e) => e.length)), augment: o.augment ?? null });
  try {
    const w = ex.weights;
    const ps = cnnParams(w);
    const grads = ps.map((p) => new Float32Array(p.length));
    const m = ps.map((p) => new Float32Array(p.length));
    const v = ps.map((p) => new Float32Array(p.length));
    let step = 0;
    let finalLoss = NaN;
    let trainAccuracy = 0;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = epochOrders[epoch]!;
      ex.setOrder(order);
      const sums = { loss: 0, correct: 0 };
      for (let begin = 0; begin < order.length; begin += o.batchSize) {
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error('training aborted');
        const end = Math.min(begin + o.batchSize, order.length);
        for (const g of grads) g.fill(0);
        ex.batch(begin, end, epochSeeds[epoch]!, grads, sums);
        const lr = o.lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps)));
        step++;
        adamStep(ps, grads, m, v, lr, 1 / (end - begin), step);
      }
      finalLoss = sums.loss / order.length;
      trainAccuracy = sums.correct / order.length;
      o.onEpoch?.(epoch + 1, finalLoss, trainAccuracy, w);
      // Let timers and signals (Ctrl-C, an abort from another task) run between epochs.
      await new Promise((r) => setImmediate(r));
    }
    return { weights: ex.result(), finalLoss, trainAccuracy };
  } finally {
    await ex.close();
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

