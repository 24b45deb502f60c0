/** Worker side of detector training (train.ts): per batch message, one share's gradients into its slot of shared memory. */
import { parentPort } from 'node:worker_threads';
import { accumulateDetectorGradients, type Draw } from './gradients.js';
import { DetectorScratch, detectorFromParams, type DetectorShape, type TrainBox } from './model.js';

/** What a gradient worker receives once. */
export interface DetectorWorkerInit {
  shape: DetectorShape;
  sizes: number[];
  /** The live weights (written by the training thread between batches). */
  params: SharedArrayBuffer;
  /** This worker's gradient slot. */
  grads: SharedArrayBuffer;
  images: SharedArrayBuffer;
  count: number;
  boxes: TrainBox[][];
  maxShift: number;
}

export type DetectorWorkerReply = { type: 'ready' } | { type: 'done'; loss: number } | { type: 'error'; message: string };

function views(buf: SharedArrayBuffer, sizes: readonly number[]): Float32Array[] {
  let offset = 0;
  return sizes.map((n) => {
    const v = new Float32Array(buf, offset * 4, n);
    offset += n;
    return v;
  });
}

parentPort?.once('message', (init: DetectorWorkerInit) => {
  const w = detectorFromParams(init.shape, views(init.params, init.sizes));
  const grads = views(init.grads, init.sizes);
  const px = init.shape.size * init.shape.size;
  const images = Array.from({ length: init.count }, (_, i) => new Float32Array(init.images, i * px * 4, px));
  const s = new DetectorScratch(init.shape);
  parentPort!.on('message', (draws: Draw[]) => {
    try {
      for (const g of grads) g.fill(0);
      const loss = accumulateDetectorGradients(w, images, init.boxes, draws, init.maxShift, s, grads);
      parentPort!.postMessage({ type: 'done', loss } satisfies DetectorWorkerReply);
    } catch (err) {
      parentPort!.postMessage({ type: 'error', message: (err as Error).stack ?? String(err) } satisfies DetectorWorkerReply);
    }
  });
  parentPort!.postMessage({ type: 'ready' } satisfies DetectorWorkerReply);
});
