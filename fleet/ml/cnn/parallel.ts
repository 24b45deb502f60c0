/**
 * Two-thread CNN training: one worker thread (gradient-worker.ts) computes the second half of
 * every batch's gradients while this thread computes the first half. Weights, images, labels
 * and the worker's gradients live in SharedArrayBuffers, so a batch costs two atomic operations
 * and no copies; this thread adds the worker's half-sum to its own in a fixed order, which keeps
 * runs bit-reproducible.
 *
 * `trainCnn` here is the library's entry point: train.ts's loop with one or two threads.
 */
import { startWorker } from '../../../shared/ts-entry.js';
import type { AugmentOptions } from '../augment.js';
import { DIGIT_PIXELS } from '../digit-size.js';
import { cloneCnn, cnnFromParams, cnnParams, Scratch, type CnnShape } from './model.js';
import { accumulateGradients, trainCnnWith, type StartBatchExecutor, type TrainCnnOptions, type TrainCnnResult } from './train.js';

export interface ParallelTrainOptions extends TrainCnnOptions {
  /**
   * Threads computing each batch's gradients (default 1): 2 splits every batch in two fixed
   * halves, one on a worker thread. Results are bit-identical for the same seed *and* thread
   * count (the two half-sums are added in a fixed order; float addition is not associative, so
   * 1 and 2 threads differ in the last bits).
   */
  threads?: 1 | 2;
}

/** Mini-batch Adam on one or two threads; deterministic for a given seed, thread count, data order, weights and options. */
export function trainCnn(o: ParallelTrainOptions): Promise<TrainCnnResult> {
  return trainCnnWith(o, (o.threads ?? 1) === 2 ? withGradientWorker : undefined);
}

/** Shared control words (Int32Array indices). */
export const CTRL = { GEN: 0, FROM: 1, TO: 2, SEED: 3, DONE: 4, CORRECT: 5, QUIT: 6, ERROR: 7 } as const;

/** What the worker receives once. */
export interface WorkerInit {
  shape: CnnShape;
  sizes: number[];
  weights: SharedArrayBuffer;
  grads: SharedArrayBuffer;
  images: SharedArrayBuffer;
  labels: SharedArrayBuffer;
  order: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
  loss: SharedArrayBuffer;
  augment: AugmentOptions | null;
}

/** Float32 views over consecutive slices of one buffer, one per parameter. */
export function viewsOver(buf: SharedArrayBuffer, sizes: readonly number[]): Float32Array[] {
  let offset = 0;
  return sizes.map((n) => {
    const v = new Float32Array(buf, offset * 4, n);
    offset += n;
    return v;
  });
}

/** The batch executor that shares each batch with a gradient worker thread. */
const withGradientWorker: StartBatchExecutor = async (initial, data) => {
  const shape = { c1: initial.c1, c2: initial.c2, hidden: initial.hidden, classes: initial.classes };
  const initialParams = cnnParams(initial);
  const sizes = initialParams.map((p) => p.length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const { images, labels } = data;
  const init: WorkerInit = {
    shape,
    sizes,
    weights: new SharedArrayBuffer(total * 4),
    grads: new SharedArrayBuffer(total * 4),
    images: new SharedArrayBuffer(images.length * DIGIT_PIXELS * 4),
    labels: new SharedArrayBuffer(labels.length * 4),
    order: new SharedArrayBuffer(Math.max(1, data.maxOrder) * 4),
    ctrl: new SharedArrayBuffer(8 * 4),
    loss: new SharedArrayBuffer(8),
    augment: data.augment,
  };
  const wViews = viewsOver(init.weights, sizes);
  initialParams.forEach((p, i) => wViews[i]!.set(p));
  const gViews = viewsOver(init.grads, sizes);
  const imgs = images.map((im, i) => {
    const v = new Float32Array(init.images, i * DIGIT_PIXELS * 4, DIGIT_PIXELS);
    v.set(im);
    return v;
  });
  new Int32Array(init.labels).set(labels);
  const order = new Int32Array(init.order);
  const ctrl = new Int32Array(init.ctrl);
  const loss = new Float64Array(init.loss);
  const worker = startWorker(import.meta.url, 'gradient-worker');
  await new Promise<void>((resolve, reject) => {
    worker.once('message', (m: unknown) => (m === 'ready' ? resolve() : reject(new Error(`gradient worker: ${String(m)}`))));
    worker.once('error', reject);
    worker.postMessage(init);
  });
  let lastError: unknown = null;
  worker.on('message', (m: unknown) => {
    lastError = m;
  });
  let gen = 0;
  const weights = cnnFromParams(shape, wViews);
  const s = new Scratch(weights);
  /** Waits for the worker and adds its gradients into `grads`. */
  const finish = (grads: Float32Array[]): { loss: number; correct: number } => {
    let done: number;
    while ((done = Atomics.load(ctrl, CTRL.DONE)) !== gen) Atomics.wait(ctrl, CTRL.DONE, done, 1000);
    if (Atomics.load(ctrl, CTRL.ERROR)) throw new Error(`gradient worker failed: ${String(lastError ?? 'unknown error')}`);
    for (let k = 0; k < grads.length; k++) {
      const g = grads[k]!;
      const h = gViews[k]!;
      for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) + (h[i] as number);
    }
    return { loss: loss[0]!, correct: ctrl[CTRL.CORRECT]! };
  };
  return {
    weights,
    setOrder: (o) => order.set(o),
    batch(begin, end, epochSeed, grads, sums) {
      // The worker takes the second half of the batch while this thread does the first.
      const mid = end - begin > 1 ? begin + ((end - begin) >> 1) : end;
      if (mid < end) {
        ctrl[CTRL.FROM] = mid;
        ctrl[CTRL.TO] = end;
        ctrl[CTRL.SEED] = epochSeed | 0;
        gen = Atomics.add(ctrl, CTRL.GEN, 1) + 1;
        Atomics.notify(ctrl, CTRL.GEN);
      }
      const mine = accumulateGradients(weights, imgs, labels, order, begin, mid, data.augment, epochSeed, s, grads);
      sums.loss += mine.loss;
      sums.correct += mine.correct;
      if (mid < end) {
        const theirs = finish(grads);
        sums.loss += theirs.loss;
        sums.correct += theirs.correct;
      }
    },
    // The weights live in shared memory, which goes with the worker.
    result: () => cloneCnn(weights),
    async close() {
      Atomics.store(ctrl, CTRL.QUIT, 1);
      Atomics.add(ctrl, CTRL.GEN, 1);
      Atomics.notify(ctrl, CTRL.GEN);
      await worker.terminate();
    },
  };
};
