import { describe, expect, it } from 'vitest';
import { cnnFromInitializers, cnnLossAndGradients, cnnParams, evaluateCnn, exportCnnOnnx, initCnn, predictCnn } from '../../fleet/ml/cnn/model.js';
import { trainCnn } from '../../fleet/ml/cnn/parallel.js';
import { loadDigits } from '../../fleet/ml/mnist-data.js';
import { readOnnxInitializers } from '../../shared/onnx/reader.js';
import { loadSession, runOnce } from '../onnx/ort-helpers.js';

const SHAPE = { c1: 4, c2: 6, hidden: 12, classes: 10 };

describe('digit CNN', () => {
  it('back-propagates the exact gradient (finite differences on every layer)', () => {
    const w = initCnn(SHAPE, 3);
    // Non-zero biases: with zero biases the blank background sits exactly on the ReLU kink,
    // where the loss has no derivative for finite differences to find.
    for (const b of [w.b1, w.b2, w.b3, w.b4]) b.forEach((_, i) => (b[i] = 0.04 * (i % 2 ? 1 : -1) * (1 + (i % 3))));
    // The package's first 5 (the digit this check always used; at offset 9 in the proportional
    // order): a digit whose max-pool choice sits within h of a tie makes finite differences lie.
    const x = loadDigits({ count: 1, offset: 9 }).images[0]!;
    const { grads } = cnnLossAndGradients(w, x, 3);
    const ps = cnnParams(w);
    // Small enough that no ReLU or max-pool choice flips, large enough for float32 losses.
    const h = 1e-3;
    let checked = 0;
    ps.forEach((p, k) => {
      // A few entries with the largest analytic gradient per tensor: well above float32 noise.
      const idx = [...grads[k]!.keys()].sort((a, b) => Math.abs(grads[k]![b]!) - Math.abs(grads[k]![a]!)).slice(0, 3);
      for (const i of idx) {
        const keep = p[i]!;
        p[i] = keep + h;
        const up = cnnLossAndGradients(w, x, 3).loss;
        p[i] = keep - h;
        const down = cnnLossAndGradients(w, x, 3).loss;
        p[i] = keep;
        const numeric = (up - down) / (2 * h);
        expect(Math.abs(numeric - grads[k]![i]!)).toBeLessThan(1e-3 + 0.01 * Math.abs(numeric));
        checked++;
      }
    });
    expect(checked).toBe(24);
  });

  it('learns digits, deterministically for a seed, and ONNX Runtime computes what it computes', async () => {
    const train = loadDigits({ count: 600 });
    const test = loadDigits({ count: 200, offset: 600 });
    const opts = { images: train.images, labels: train.labels, shape: SHAPE, epochs: 3, batchSize: 16, lr: 0.005, seed: 5, augment: { rotateDeg: 5, scale: 0.05, shiftPx: 1 } };
    const epochs: number[] = [];
    const a = await trainCnn({ ...opts, onEpoch: (e) => epochs.push(e) });
    const b = await trainCnn(opts);
    const c = await trainCnn({ ...opts, seed: 6 });
    expect(epochs).toEqual([1, 2, 3]);
    expect(Buffer.from(exportCnnOnnx(a.weights)).equals(Buffer.from(exportCnnOnnx(b.weights)))).toBe(true);
    expect(Buffer.from(exportCnnOnnx(a.weights)).equals(Buffer.from(exportCnnOnnx(c.weights)))).toBe(false);
    expect(evaluateCnn(a.weights, test.images, test.labels)).toBeGreaterThan(0.6);

    const bytes = exportCnnOnnx(a.weights);
    const session = await loadSession(bytes);
    const batch = test.images.slice(0, 8);
    const data = new Float32Array(8 * 784);
    batch.forEach((im, i) => data.set(im, i * 784));
    const out = await runOnce(session, { name: 'input', type: 'float32', data, dims: [8, 1, 28, 28] }, 'probabilities');
    const ref = predictCnn(a.weights, batch);
    for (let i = 0; i < 8; i++) for (let k = 0; k < 10; k++) expect(out.data[i * 10 + k]).toBeCloseTo(ref[i]![k]!, 5);
    await session.release();

    // The weights read back from the ONNX file are the trained ones, bit for bit.
    const back = cnnFromInitializers(readOnnxInitializers(bytes))!;
    expect(back).not.toBeNull();
    expect(Buffer.from(exportCnnOnnx(back)).equals(Buffer.from(bytes))).toBe(true);
  }, 180_000);

  it('does not take foreign weights for its own', () => {
    expect(cnnFromInitializers(new Map())).toBeNull();
    const w = initCnn(SHAPE, 1);
    const init = readOnnxInitializers(exportCnnOnnx(w));
    init.set('b4', { name: 'b4', dims: [3], data: new Float32Array(3) });
    expect(cnnFromInitializers(init)).toBeNull();
  });

  it('trains on two threads reproducibly, and as well as on one', async () => {
    const train = loadDigits({ count: 400 });
    const test = loadDigits({ count: 200, offset: 600 });
    const opts = { images: train.images, labels: train.labels, shape: SHAPE, epochs: 3, batchSize: 16, lr: 0.005, seed: 5, augment: { rotateDeg: 5, scale: 0.05, shiftPx: 1 } };
    const one = await trainCnn(opts);
    const twoA = await trainCnn({ ...opts, threads: 2 });
    const twoB = await trainCnn({ ...opts, threads: 2 });
    expect(Buffer.from(exportCnnOnnx(twoA.weights)).equals(Buffer.from(exportCnnOnnx(twoB.weights)))).toBe(true);
    // Same draws and augmentations; only the order of float additions differs.
    expect(Math.abs(evaluateCnn(twoA.weights, test.images, test.labels) - evaluateCnn(one.weights, test.images, test.labels))).toBeLessThan(0.05);
    expect(twoA.finalLoss).toBeCloseTo(one.finalLoss, 1);
  }, 180_000);

  it('rejects bad training input with a RangeError', async () => {
    const im = [new Float32Array(784)];
    await expect(trainCnn({ images: im, labels: [10], epochs: 1, batchSize: 1, lr: 0.1, seed: 1 })).rejects.toThrow(RangeError);
    await expect(trainCnn({ images: [new Float32Array(5)], labels: [1], epochs: 1, batchSize: 1, lr: 0.1, seed: 1 })).rejects.toThrow(RangeError);
    await expect(trainCnn({ images: im, labels: [1], epochs: 0, batchSize: 1, lr: 0.1, seed: 1 })).rejects.toThrow(RangeError);
  });
});
