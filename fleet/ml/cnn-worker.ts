/** Worker side of two-thread CNN training (see cnn-pool.ts): waits for a batch half, computes its gradients. */
import { parentPort } from 'node:worker_threads';
import { accumulateGradients, Scratch } from './cnn.js';
import { CTRL, viewsOver, weightsFromViews, type WorkerInit } from './cnn-pool.js';

parentPort?.once('message', (init: WorkerInit) => {
  const w = weightsFromViews(init.shape, viewsOver(init.weights, init.sizes));
  const grads = viewsOver(init.grads, init.sizes);
  const pixels = 28 * 28;
  const count = init.images.byteLength / (pixels * 4);
  const images = Array.from({ length: count }, (_, i) => new Float32Array(init.images, i * pixels * 4, pixels));
  const labels = new Int32Array(init.labels);
  const order = new Int32Array(init.order);
  const ctrl = new Int32Array(init.ctrl);
  const loss = new Float64Array(init.loss);
  const s = new Scratch(init.shape);
  // Read the generation before saying ready: the main thread may start the first batch the
  // moment 'ready' arrives, and reading it after could see that batch's generation and wait for
  // the next one forever (both threads waiting: the train hung).
  let seen = Atomics.load(ctrl, CTRL.GEN);
  parentPort!.postMessage('ready');
  for (;;) {
    Atomics.wait(ctrl, CTRL.GEN, seen);
    const gen = Atomics.load(ctrl, CTRL.GEN);
    if (Atomics.load(ctrl, CTRL.QUIT)) return;
    seen = gen;
    try {
      for (const g of grads) g.fill(0);
      const r = accumulateGradients(w, images, labels, order, ctrl[CTRL.FROM]!, ctrl[CTRL.TO]!, init.augment, ctrl[CTRL.SEED]! >>> 0, s, grads);
      loss[0] = r.loss;
      ctrl[CTRL.CORRECT] = r.correct;
    } catch (err) {
      parentPort!.postMessage((err as Error).stack ?? String(err));
      Atomics.store(ctrl, CTRL.ERROR, 1);
    }
    Atomics.store(ctrl, CTRL.DONE, gen);
    Atomics.notify(ctrl, CTRL.DONE);
  }
});
