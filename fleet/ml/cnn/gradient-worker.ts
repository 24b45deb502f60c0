/** Worker side of two-thread CNN training (see parallel.ts): waits for a batch half, computes its gradients. */
import { parentPort } from 'node:worker_threads';
import { DIGIT_PIXELS } from '../digit-size.js';
import { cnnFromParams, Scratch } from './model.js';
import { CTRL, viewsOver, type WorkerInit } from './parallel.js';
import { accumulateGradients } from './train.js';

parentPort?.once('message', (init: WorkerInit) => {
  const w = cnnFromParams(init.shape, viewsOver(init.weights, init.sizes));
  const grads = viewsOver(init.grads, init.sizes);
  const count = init.images.byteLength / (DIGIT_PIXELS * 4);
  const images = Array.from({ length: count }, (_, i) => new Float32Array(init.images, i * DIGIT_PIXELS * 4, DIGIT_PIXELS));
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
