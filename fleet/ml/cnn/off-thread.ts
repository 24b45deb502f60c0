/**
 * trainCnn off the main thread: the whole run happens on a worker thread (train-worker.ts),
 * so a service that trains in-process keeps answering HTTP and MQTT while it trains (an epoch
 * is seconds of uninterrupted arithmetic), and an abort (Ctrl-C, a cancelled run) stops it at
 * once by terminating the worker instead of waiting for the next batch boundary.
 *
 * Images go over in one SharedArrayBuffer; epochs come back as messages. Same options and the
 * same bit-for-bit result as calling trainCnn here (the worker runs the same function).
 */
import { startWorker } from '../../../shared/ts-entry.js';
import { DIGIT_PIXELS } from '../digit-size.js';
import type { ParallelTrainOptions } from './parallel.js';
import type { TrainCnnResult } from './train.js';

/** What the training worker receives: trainCnn's options minus the callbacks, images packed. */
export interface TrainThreadInit {
  images: SharedArrayBuffer;
  count: number;
  options: Omit<ParallelTrainOptions, 'images' | 'onEpoch' | 'signal'>;
}

export type TrainThreadMessage =
  | { type: 'epoch'; epoch: number; loss: number; accuracy: number }
  | { type: 'done'; result: TrainCnnResult }
  | { type: 'error'; message: string };

/** Runs trainCnn on a worker thread; `onEpoch` gets no live weights (they are on the other thread). */
export async function trainCnnOffThread(o: Omit<ParallelTrainOptions, 'onEpoch'> & { onEpoch?(epoch: number, loss: number, accuracy: number): void }): Promise<TrainCnnResult> {
  const { images, onEpoch, signal, ...options } = o;
  const abortError = (): Error => (signal?.reason instanceof Error ? signal.reason : new Error('training aborted'));
  if (signal?.aborted) throw abortError();
  const buf = new SharedArrayBuffer(images.length * DIGIT_PIXELS * 4);
  images.forEach((im, i) => {
    if (im.length !== DIGIT_PIXELS) throw new RangeError(`image ${i} has ${im.length} values, expected ${DIGIT_PIXELS}`);
    new Float32Array(buf, i * DIGIT_PIXELS * 4, DIGIT_PIXELS).set(im);
  });
  const init: TrainThreadInit = { images: buf, count: images.length, options };
  const worker = startWorker(import.meta.url, 'train-worker');
  return new Promise<TrainCnnResult>((resolve, reject) => {
    let settled = false;
    const settle = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const onAbort = (): void => settle(() => void worker.terminate().finally(() => reject(abortError())));
    signal?.addEventListener('abort', onAbort, { once: true });
    worker.on('message', (m: TrainThreadMessage) => {
      if (m.type === 'epoch') onEpoch?.(m.epoch, m.loss, m.accuracy);
      else if (m.type === 'done') settle(() => resolve(m.result));
      else settle(() => reject(new Error(m.message)));
    });
    worker.once('error', (err) => settle(() => reject(err)));
    worker.once('exit', (code) => settle(() => reject(new Error(`the training thread exited (code ${code}) before it finished`))));
    worker.postMessage(init);
  }).finally(() => void worker.terminate());
}
