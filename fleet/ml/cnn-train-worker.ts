/** Worker side of trainCnnOffThread (cnn-thread.ts): one whole training run, epochs reported as messages. */
import { parentPort } from 'node:worker_threads';
import { trainCnn } from './cnn.js';
import type { TrainThreadInit, TrainThreadMessage } from './cnn-thread.js';

const PIXELS = 28 * 28;
const post = (m: TrainThreadMessage): void => parentPort!.postMessage(m);

parentPort?.once('message', (init: TrainThreadInit) => {
  const images = Array.from({ length: init.count }, (_, i) => new Float32Array(init.images, i * PIXELS * 4, PIXELS));
  trainCnn({ ...init.options, images, onEpoch: (epoch, loss, accuracy) => post({ type: 'epoch', epoch, loss, accuracy }) }).then(
    (result) => post({ type: 'done', result }),
    (err: unknown) => post({ type: 'error', message: (err as Error).message ?? String(err) }),
  );
});
