import { beforeAll, describe, expect, it } from 'vitest';
import { DIGIT_CLASSES, DIGIT_PIXELS } from '../../fleet/ml/digit-size.js';
import { digitCount, loadDigits } from '../../fleet/ml/mnist-data.js';
import type { DigitSet } from '../../fleet/ml/mnist-data.js';
import { MLP_ONNX_INPUT, MLP_ONNX_OUTPUT, evaluateMlp, exportMlpOnnx, predictMlp, trainMlp } from '../helpers/mlp-trainer.js';
import type { TrainMlpOptions } from '../helpers/mlp-trainer.js';
import { argmaxAt, loadSession, runOnce } from './ort-helpers.js';

const TRAIN = 2000;
const HOLDOUT = 500;

describe('loadDigits', () => {
  it('returns a fixed, class-interleaved, disjoint order', () => {
    const a = loadDigits({ count: 30 });
    const b = loadDigits({ count: 30 });
    expect(a.labels).toEqual(b.labels);
    expect(a.images.map((x) => [...x])).toEqual(b.images.map((x) => [...x]));
    // Every class in every slice, in proportion to its share of the package (within 2 per 1,000).
    const all = loadDigits({ count: digitCount() }).labels;
    const share = Array.from({ length: DIGIT_CLASSES }, (_, d) => all.filter((l) => l === d).length / all.length);
    for (let off = 0; off + 1000 <= all.length; off += 1000) {
      const slice = all.slice(off, off + 1000);
      for (let d = 0; d < DIGIT_CLASSES; d++) expect(Math.abs(slice.filter((l) => l === d).length - share[d]! * 1000)).toBeLessThanOrEqual(2);
    }
    expect(new Set(a.labels.slice(0, 20)).size).toBe(10);
    for (const img of a.images) {
      expect(img.length).toBe(DIGIT_PIXELS);
      expect(Math.min(...img)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...img)).toBeLessThanOrEqual(1);
    }
    // An offset slice continues the same sequence.
    const tail = loadDigits({ count: 10, offset: 20 });
    expect(tail.labels).toEqual(a.labels.slice(20));
    expect([...(tail.images[0] as Float32Array)]).toEqual([...(a.images[20] as Float32Array)]);
  });

  it('rejects ranges outside the data set', () => {
    expect(() => loadDigits({ count: 1, offset: digitCount() })).toThrow(RangeError);
    expect(() => loadDigits({ count: -1 })).toThrow(RangeError);
  });
});

describe('trainMlp', () => {
  let train: DigitSet;
  let holdout: DigitSet;
  beforeAll(() => {
    train = loadDigits({ count: TRAIN });
    holdout = loadDigits({ count: HOLDOUT, offset: TRAIN });
  });
  const options = (seed: number): TrainMlpOptions => ({ ...train, hidden: 32, epochs: 2, lr: 0.05, batchSize: 16, seed, weightDecay: 5e-4 });

  it('learns digits, and the exported ONNX model agrees with the JS forward pass', async () => {
    const progress: Array<[number, number, number]> = [];
    const { weights, trainAccuracy, finalLoss } = trainMlp({ ...options(1), onProgress: (e, l, a) => progress.push([e, l, a]) });
    expect(progress.map(([e]) => e)).toEqual([1, 2]);
    expect(progress[1]?.[1]).toBeLessThan(progress[0]?.[1] as number); // loss goes down
    expect(finalLoss).toBe(progress[1]?.[1]);
    expect(trainAccuracy).toBeGreaterThan(0.8);
    const accuracy = evaluateMlp(weights, holdout.images, holdout.labels);
    expect(accuracy).toBeGreaterThan(0.8);

    const session = await loadSession(exportMlpOnnx(weights));
    expect(session.inputNames).toEqual([MLP_ONNX_INPUT]);
    expect(session.outputNames).toEqual([MLP_ONNX_OUTPUT]);
    const batch = holdout.images.length;
    const data = new Float32Array(batch * DIGIT_PIXELS);
    holdout.images.forEach((img, i) => data.set(img, i * DIGIT_PIXELS));
    const out = await runOnce(session, { name: MLP_ONNX_INPUT, type: 'float32', data, dims: [batch, 1, 28, 28] }, MLP_ONNX_OUTPUT);
    expect(out.dims).toEqual([batch, DIGIT_CLASSES]);

    let ortCorrect = 0;
    for (let i = 0; i < batch; i++) {
      const js = predictMlp(weights, holdout.images[i] as Float32Array);
      for (let k = 0; k < DIGIT_CLASSES; k++) expect(Math.abs((out.data[i * DIGIT_CLASSES + k] as number) - (js[k] as number))).toBeLessThan(1e-4);
      const ortClass = argmaxAt(out.data, i * DIGIT_CLASSES, DIGIT_CLASSES);
      expect(ortClass).toBe(argmaxAt(js, 0, DIGIT_CLASSES));
      if (ortClass === holdout.labels[i]) ortCorrect++;
    }
    expect(ortCorrect / batch).toBe(accuracy);
  });

  it('is deterministic for a seed and differs across seeds', () => {
    const a = trainMlp(options(7)).weights;
    const b = trainMlp(options(7)).weights;
    const c = trainMlp({ ...options(8), epochs: 1 }).weights;
    for (const key of ['w1', 'b1', 'w2', 'b2'] as const) expect(Buffer.from(a[key].buffer).equals(Buffer.from(b[key].buffer))).toBe(true);
    expect(Buffer.from(a.w1.buffer).equals(Buffer.from(c.w1.buffer))).toBe(false);
  });

  it('validates its inputs', () => {
    expect(() => trainMlp({ ...options(1), labels: train.labels.slice(1) })).toThrow(RangeError);
    expect(() => trainMlp({ ...options(1), hidden: 0 })).toThrow(RangeError);
    expect(() => trainMlp({ ...options(1), images: [], labels: [] })).toThrow(RangeError);
    expect(() => exportMlpOnnx({ inputSize: 10, hidden: 1, classes: 2, w1: new Float32Array(10), b1: new Float32Array(1), w2: new Float32Array(2), b2: new Float32Array(2) })).toThrow(RangeError);
  });
});
