import { describe, expect, it } from 'vitest';
import { exportCnnOnnx } from '../../fleet/ml/cnn/model.js';
import { trainCnnOffThread } from '../../fleet/ml/cnn/off-thread.js';
import { trainCnn } from '../../fleet/ml/cnn/parallel.js';
import { loadDigits } from '../../fleet/ml/mnist-data.js';

const SHAPE = { c1: 4, c2: 6, hidden: 12, classes: 10 };

describe('trainCnnOffThread', () => {
  const train = loadDigits({ count: 300 });
  const opts = { images: train.images, labels: train.labels, shape: SHAPE, epochs: 2, batchSize: 16, lr: 0.005, seed: 5, augment: { rotateDeg: 5, scale: 0.05, shiftPx: 1 } };

  it('gives the same bytes as training here, reports each epoch, and leaves the event loop free', async () => {
    const here = await trainCnn(opts);
    const epochs: number[] = [];
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const there = await trainCnnOffThread({ ...opts, onEpoch: (e, loss, acc) => (epochs.push(e), expect(loss).toBeGreaterThan(0), expect(acc).toBeGreaterThan(0)) });
    clearInterval(timer);
    expect(epochs).toEqual([1, 2]);
    expect(Buffer.from(exportCnnOnnx(there.weights)).equals(Buffer.from(exportCnnOnnx(here.weights)))).toBe(true);
    expect(there.finalLoss).toBe(here.finalLoss);
    // A run on this thread would have starved the timer for its whole length.
    expect(ticks).toBeGreaterThan(5);
  }, 120_000);

  it('two gradient threads inside the training thread give the same bytes as two here', async () => {
    const here = await trainCnn({ ...opts, threads: 2 });
    const there = await trainCnnOffThread({ ...opts, threads: 2 });
    expect(Buffer.from(exportCnnOnnx(there.weights)).equals(Buffer.from(exportCnnOnnx(here.weights)))).toBe(true);
  }, 120_000);

  it('stops at once on abort, mid-epoch, with the abort reason', async () => {
    const ac = new AbortController();
    const t0 = Date.now();
    const run = trainCnnOffThread({ ...opts, images: loadDigits({ count: 3000 }).images, labels: loadDigits({ count: 3000 }).labels, epochs: 50, signal: ac.signal });
    setTimeout(() => ac.abort(new Error('operator stopped it')), 300);
    await expect(run).rejects.toThrow('operator stopped it');
    expect(Date.now() - t0).toBeLessThan(10_000);
    await expect(trainCnnOffThread({ ...opts, signal: AbortSignal.abort(new Error('already')) })).rejects.toThrow('already');
  }, 60_000);

  it('passes trainCnn errors back as errors', async () => {
    await expect(trainCnnOffThread({ ...opts, labels: opts.labels.map(() => 12) })).rejects.toThrow(/label 0 is 12/);
    await expect(trainCnnOffThread({ ...opts, images: [new Float32Array(5)], labels: [1] })).rejects.toThrow(RangeError);
  }, 60_000);
});
