/**
 * The main-thread side of two-thread CNN training: one worker thread (cnn-worker.ts) computes
 * the second half of every batch's gradients while the main thread computes the first half.
 * Weights, images, labels and the worker's gradients live in SharedArrayBuffers, so a batch
 * costs two atomic operations and no copies; the main thread adds the worker's half-sum to its
 * own in a fixed order, which keeps runs bit-reproducible.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AugmentOptions } from './augment.js';
import type { CnnWeights } from './cnn.js';

/** Shared control words (Int32Array indices). */
export const CTRL = { GEN: 0, FROM: 1, TO: 2, SEED: 3, DONE: 4, CORRECT: 5, QUIT: 6, ERROR: 7 } as const;
export const PARAM_ORDER = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'w4', 'b4'] as const;
const PIXELS = 28 * 28;

/** What the worker receives once. */
export interface WorkerInit {
  shape: { c1: number; c2: number; hidden: number; classes: number };
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

export function weightsFromViews(shape: WorkerInit['shape'], views: Float32Array[]): CnnWeights {
  const [w1, b1, w2, b2, w3, b3, w4, b4] = views as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  return { ...shape, w1, b1, w2, b2, w3, b3, w4, b4 };
}

export interface GradientWorker {
  /** The live weights (views over shared memory): update them in place only. */
  weights: CnnWeights;
  /** The images as views over shared memory (same values as the caller's). */
  images: Float32Array[];
  setOrder(order: Int32Array): void;
  /** Starts the worker on draws [from, to). */
  start(from: number, to: number, epochSeed: number): void;
  /** Waits for the worker and adds its gradients into `grads`. */
  finish(grads: Float32Array[]): { loss: number; correct: number };
  close(): Promise<void>;
}

/**
 * Starts the worker from a module next to this one: compiled JS in dist/, or the TypeScript
 * source with tsx's loader registered first (parent loader hooks do not reach workers).
 */
export function startWorker(baseName: string): Worker {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return new Worker(new URL(`./${baseName}.js`, here));
  const entry = new URL(`./${baseName}.ts`, here).href;
  const api = pathToFileURL(join(dirname(createRequire(here).resolve('tsx/esm/api')), 'index.mjs')).href;
  return new Worker(`import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`, { eval: true });
}

export async function startGradientWorker(initial: CnnWeights, images: readonly Float32Array[], labels: readonly number[], maxOrder: number, augment: AugmentOptions | null): Promise<GradientWorker> {
  const shape = { c1: initial.c1, c2: initial.c2, hidden: initial.hidden, classes: initial.classes };
  const sizes = PARAM_ORDER.map((k) => initial[k].length);
  const total = sizes.reduce((a, b) => a + b, 0);
  const init: WorkerInit = {
    shape,
    sizes,
    weights: new SharedArrayBuffer(total * 4),
    grads: new SharedArrayBuffer(total * 4),
    images: new SharedArrayBuffer(images.length * PIXELS * 4),
    labels: new SharedArrayBuffer(labels.length * 4),
    order: new SharedArrayBuffer(Math.max(1, maxOrder) * 4),
    ctrl: new SharedArrayBuffer(8 * 4),
    loss: new SharedArrayBuffer(8),
    augment,
  };
  const wViews = viewsOver(init.weights, sizes);
  PARAM_ORDER.forEach((k, i) => wViews[i]!.set(initial[k]));
  const gViews = viewsOver(init.grads, sizes);
  const imgs = images.map((im, i) => {
    const v = new Float32Array(init.images, i * PIXELS * 4, PIXELS);
    v.set(im);
    return v;
  });
  new Int32Array(init.labels).set(labels);
  const order = new Int32Array(init.order);
  const ctrl = new Int32Array(init.ctrl);
  const loss = new Float64Array(init.loss);
  const worker = startWorker('cnn-worker');
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
  return {
    weights: weightsFromViews(shape, wViews),
    images: imgs,
    setOrder: (o) => order.set(o),
    start(from, to, epochSeed) {
      ctrl[CTRL.FROM] = from;
      ctrl[CTRL.TO] = to;
      ctrl[CTRL.SEED] = epochSeed | 0;
      gen = Atomics.add(ctrl, CTRL.GEN, 1) + 1;
      Atomics.notify(ctrl, CTRL.GEN);
    },
    finish(grads) {
      let done: number;
      while ((done = Atomics.load(ctrl, CTRL.DONE)) !== gen) Atomics.wait(ctrl, CTRL.DONE, done, 1000);
      if (Atomics.load(ctrl, CTRL.ERROR)) throw new Error(`gradient worker failed: ${String(lastError ?? 'unknown error')}`);
      for (let k = 0; k < grads.length; k++) {
        const g = grads[k]!;
        const h = gViews[k]!;
        for (let i = 0; i < g.length; i++) g[i] = (g[i] as number) + (h[i] as number);
      }
      return { loss: loss[0]!, correct: ctrl[CTRL.CORRECT]! };
    },
    async close() {
      Atomics.store(ctrl, CTRL.QUIT, 1);
      Atomics.add(ctrl, CTRL.GEN, 1);
      Atomics.notify(ctrl, CTRL.GEN);
      await worker.terminate();
    },
  };
}
