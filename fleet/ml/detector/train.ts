/**
 * Training the detector: mini-batch Adam with a cosine-decayed step and weighted sampling. The
 * gradients of every batch are computed on worker threads (gradient-worker.ts; each takes a fixed
 * share of the batch), so the calling thread only adds the shares in a fixed order and steps
 * Adam: a service training in-process keeps answering while it trains, and an abort stops the
 * run at the next batch.
 *
 * Deterministic: the data order, every draw's shift and the init come from the seed and the
 * shares are added in a fixed order, so the same data, seed and thread count give bit-identical
 * weights.
 */
import { startWorker } from '../../../shared/ts-entry.js';
import { mulberry32 } from '../init.js';
import type { DetectorWorkerInit, DetectorWorkerReply } from './gradient-worker.js';
import type { Draw } from './gradients.js';
import { checkDetectorShape, cloneDetector, detectorFromParams, detectorParams, detectorParamSizes, initDetector, type DetectorShape, type DetectorWeights, type TrainBox } from './model.js';
import { adamStep } from '../linalg.js';

export interface TrainDetectorOptions {
  /** size×size grey images, ink = 1 (the package's preprocessing). */
  images: readonly Float32Array[];
  /** Per image, its boxes in input pixels (an empty list: nothing there, every cell a negative). */
  boxes: ReadonlyArray<readonly TrainBox[]>;
  /** Relative sampling weight per image (default 1). */
  weights?: readonly number[];
  /** Fine-tune from these weights (not mutated) instead of a fresh init of `shape`. */
  initial?: DetectorWeights;
  shape?: DetectorShape;
  epochs: number;
  batchSize: number;
  /** Adam step size; decays with a cosine to 5% over the run. */
  lr: number;
  seed: number;
  /** Random shift of each draw by up to this many pixels (default 0). */
  maxShift?: number;
  /** Gradient worker threads (default 1). */
  threads?: number;
  onEpoch?(epoch: number, loss: number): void;
  signal?: AbortSignal;
}

export interface TrainDetectorResult {
  weights: DetectorWeights;
  /** Mean loss per draw over the last epoch. */
  finalLoss: number;
}

interface GradientWorker {
  grads: Float32Array[];
  run(draws: Draw[]): Promise<number>;
  close(): Promise<void>;
}

async function startGradientWorker(init: DetectorWorkerInit, sizes: readonly number[]): Promise<GradientWorker> {
  const worker = startWorker(import.meta.url, 'gradient-worker');
  let pending: { resolve(loss: number): void; reject(err: Error): void } | null = null;
  let failure: Error | null = null;
  const fail = (err: Error): void => {
    failure = err;
    pending?.reject(err);
    pending = null;
  };
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', (m: DetectorWorkerReply) => (m.type === 'ready' ? resolve() : reject(new Error(`detector gradient worker: ${JSON.stringify(m)}`))));
    worker.postMessage(init);
  });
  worker.on('message', (m: DetectorWorkerReply) => {
    if (m.type === 'done') {
      pending?.resolve(m.loss);
      pending = null;
    } else if (m.type === 'error') fail(new Error(`detector gradient worker failed: ${m.message}`));
  });
  worker.on('error', (err) => fail(err));
  worker.on('exit', (code) => fail(new Error(`detector gradient worker exited (code ${code})`)));
  let offset = 0;
  const grads = sizes.map((n) => {
    const v = new Float32Array(init.grads, offset * 4, n);
    offset += n;
    return v;
  });
  return {
    grads,
    run: (draws) =>
      new Promise<number>((resolve, reject) => {
        if (failure) return reject(failure);
        pending = { resolve, reject };
        worker.postMessage(draws);
      }),
    close: async () => {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

function epochOrder(n: number, weights: readonly number[] | null, rand: () => number): Int32Array {
  const picks: number[] = [];
  for (let i = 0; i < n; i++) {
    const wi = weights ? (weights[i] ?? 1) : 1;
    let k = Math.floor(wi);
    if (rand() < wi - k) k++;
    for (let r = 0; r < k; r++) picks.push(i);
  }
  const order = Int32Array.from(picks);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    const t = order[i]!;
    order[i] = order[j]!;
    order[j] = t;
  }
  return order;
}

/** Mini-batch Adam over the images and boxes; see the module comment. */
export async function trainDetector(o: TrainDetectorOptions): Promise<TrainDetectorResult> {
  const shape = o.initial ?? o.shape;
  if (!shape) throw new RangeError('trainDetector needs a shape or initial weights');
  checkDetectorShape(shape);
  const n = o.images.length;
  if (n === 0) throw new RangeError('trainDetector needs at least one image');
  if (o.boxes.length !== n) throw new RangeError(`${n} images but ${o.boxes.length} box lists`);
  const px = shape.size * shape.size;
  o.images.forEach((im, i) => {
    if (im.length !== px) throw new RangeError(`image ${i} has ${im.length} values, expected ${px}`);
  });
  if (![o.epochs, o.batchSize].every((v) => Number.isInteger(v) && v > 0) || !(o.lr > 0)) throw new RangeError('epochs and batchSize must be positive integers and lr positive');
  const threads = Math.max(1, Math.min(8, Math.floor(o.threads ?? 1)));
  const sizes = detectorParamSizes(shape);
  const total = sizes.reduce((a, b) => a + b, 0);
  const start = o.initial ? cloneDetector(o.initial) : initDetector(shape, o.seed);
  const paramBuf = new SharedArrayBuffer(total * 4);
  let offset = 0;
  const params = detectorParams(start).map((p) => {
    const v = new Float32Array(paramBuf, offset * 4, p.length);
    v.set(p);
    offset += p.length;
    return v;
  });
  const imageBuf = new SharedArrayBuffer(n * px * 4);
  o.images.forEach((im, i) => new Float32Array(imageBuf, i * px * 4, px).set(im));
  const boxes = o.boxes.map((b) => b.map((x) => ({ cls: x.cls, x1: x.x1, y1: x.y1, x2: x.x2, y2: x.y2 })));
  const workers: GradientWorker[] = [];
  try {
    for (let t = 0; t < threads; t++) {
      workers.push(await startGradientWorker({ shape: { size: shape.size, widths: shape.widths, hidden: shape.hidden, classes: shape.classes }, sizes, params: paramBuf, grads: new SharedArrayBuffer(total * 4), images: imageBuf, count: n, boxes, maxShift: o.maxShift ?? 0 }, sizes));
    }
    const rand = mulberry32((o.seed ^ 0x9e3779b9) >>> 0);
    const orders: Int32Array[] = [];
    for (let e = 0; e < o.epochs; e++) orders.push(epochOrder(n, o.weights ?? null, rand));
    const totalSteps = orders.reduce((a, ord) => a + Math.ceil(ord.length / o.batchSize), 0);
    const m = params.map((p) => new Float32Array(p.length));
    const v = params.map((p) => new Float32Array(p.length));
    const sum = params.map((p) => new Float32Array(p.length));
    let step = 0;
    let finalLoss = NaN;
    for (let epoch = 0; epoch < o.epochs; epoch++) {
      const order = orders[epoch]!;
      const epochSeed = Math.floor(rand() * 4294967296) >>> 0;
      let epochLoss = 0;
      for (let begin = 0; begin < order.length; begin += o.batchSize) {
        if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error('training aborted');
        const end = Math.min(begin + o.batchSize, order.length);
        const draws: Draw[] = [];
        for (let b = begin; b < end; b++) draws.push({ index: order[b]!, seed: (Math.imul(b + 1, 0x9e3779b1) ^ epochSeed) >>> 0 });
        // Fixed shares: worker t takes draws [t·k, (t+1)·k), so the split does not depend on timing.
        const k = Math.ceil(draws.length / workers.length);
        const shares = workers.map((wk, t) => draws.slice(t * k, (t + 1) * k));
        const losses = await Promise.all(workers.map((wk, t) => (shares[t]!.length ? wk.run(shares[t]!) : Promise.resolve(0))));
        for (let p = 0; p < sum.length; p++) {
          const acc = sum[p]!;
          acc.fill(0);
          workers.forEach((wk, t) => {
            if (!shares[t]!.length) return;
            const g = wk.grads[p]!;
            for (let i = 0; i < acc.length; i++) acc[i] = (acc[i] as number) + (g[i] as number);
          });
        }
        epochLoss += losses.reduce((a, b) => a + b, 0);
        const lr = o.lr * (0.05 + 0.95 * 0.5 * (1 + Math.cos((Math.PI * step) / totalSteps)));
        step++;
        adamStep(params, sum, m, v, lr, 1 / (end - begin), step);
      }
      finalLoss = epochLoss / order.length;
      o.onEpoch?.(epoch + 1, finalLoss);
    }
    return { weights: cloneDetector(detectorFromParams(shape, params)), finalLoss };
  } finally {
    await Promise.all(workers.map((w) => w.close()));
  }
}

