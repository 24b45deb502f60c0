/** Worker side of trainCnnOffThread (off-thread.ts): one whole training run, epochs reported as messages. */
import { parentPort } from 'node:worker_threads';
import { DIGIT_PIXELS } from '../digit-size.js';
import type { TrainThreadInit, TrainThreadMessage } from './off-thread.js';
import { trainCnn } from './parallel.js';

const post = (m: TrainThreadMessage): void => parentPort!.postMessage(m);

parentPort?.once('message', (init: TrainThreadInit) => {
  const images = Array.from({ length: init.count }, (_, i) => new Float32Array(init.images, i * DIGIT_PIXELS * 4, DIGIT_PIXELS));
  trainCnn({ ...init.options, images, onEpoch: (epoch, loss, accuracy) => post({ type: 'epoch', epoch, loss, accuracy }) }).then(
    (result) => post({ type: 'done', result }),
    (err: unknown) => post({ type: 'error', message: (err as Error).message ?? String(err) }),
  );
});
