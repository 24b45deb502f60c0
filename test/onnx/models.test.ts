import { describe, expect, it } from 'vitest';
import { mulberry32 } from '../../fleet/ml/init.js';
import { brokenModelBytes, mlpModel, mobilenetLikeModel, smallCnnModel } from '../helpers/models.js';
import type { MlpModelWeights } from '../helpers/models.js';
import { loadSession, runOnce } from './ort-helpers.js';

/** Reference forward pass in float64: relu(x·w1 + b1)·w2 + b2, optionally softmaxed. */
function referenceMlp(w: MlpModelWeights, x: Float32Array, batch: number, f: number, h: number, c: number, softmax: boolean): Float64Array {
  const out = new Float64Array(batch * c);
  for (let b = 0; b < batch; b++) {
    const hidden = new Float64Array(h);
    for (let j = 0; j < h; j++) {
      let s = w.b1[j] as number;
      for (let i = 0; i < f; i++) s += (x[b * f + i] as number) * (w.w1[i * h + j] as number);
      hidden[j] = Math.max(0, s);
    }
    const logits = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      let s = w.b2[k] as number;
      for (let j = 0; j < h; j++) s += (hidden[j] as number) * (w.w2[j * c + k] as number);
      logits[k] = s;
    }
    if (softmax) {
      const max = Math.max(...logits);
      const exps = logits.map((v) => Math.exp(v - max));
      const sum = exps.reduce((a, v) => a + v, 0);
      for (let k = 0; k < c; k++) logits[k] = (exps[k] as number) / sum;
    }
    out.set(logits, b * c);
  }
  return out;
}

function randomInput(n: number, seed: number, scale = 1): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (rand() * 2 - 1) * scale);
}

function expectFinite(values: ArrayLike<number>): void {
  for (let i = 0; i < values.length; i++) expect(Number.isFinite(values[i])).toBe(true);
}

function expectRowsSumToOne(values: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let k = 0; k < cols; k++) s += values[r * cols + k] as number;
    expect(s).toBeCloseTo(1, 4);
  }
}

describe('mlpModel', () => {
  for (const softmax of [false, true]) {
    it(`matches a hand-computed forward pass (softmax=${softmax})`, async () => {
      const [features, hidden, classes, batch] = [16, 32, 10, 5];
      const m = mlpModel({ features, hidden, classes, seed: 11, softmax });
      expect(m.outputName).toBe(softmax ? 'probabilities' : 'logits');
      expect(m.inputShape).toEqual(['batch', features]);
      const session = await loadSession(m.bytes);
      expect(session.inputNames).toEqual([m.inputName]);
      expect(session.outputNames).toEqual([m.outputName]);
      const x = randomInput(batch * features, 5, 2);
      const out = await runOnce(session, { name: m.inputName, type: 'float32', data: x, dims: [batch, features] }, m.outputName);
      expect(out.dims).toEqual([batch, classes]);
      const ref = referenceMlp(m.weights, x, batch, features, hidden, classes, softmax);
      for (let i = 0; i < ref.length; i++) expect(Math.abs((out.data[i] as number) - (ref[i] as number))).toBeLessThan(1e-4);
    });
  }

  it('is deterministic per seed', () => {
    const a = mlpModel({ features: 8, hidden: 4, classes: 3, seed: 1, softmax: true }).bytes;
    const b = mlpModel({ features: 8, hidden: 4, classes: 3, seed: 1, softmax: true }).bytes;
    const c = mlpModel({ features: 8, hidden: 4, classes: 3, seed: 2, softmax: true }).bytes;
    expect(Buffer.from(a).equals(Buffer.from(b))).toBe(true);
    expect(Buffer.from(a).equals(Buffer.from(c))).toBe(false);
  });
});

describe('smallCnnModel', () => {
  const cases = [
    { channels: 1, height: 28, width: 28 },
    { channels: 3, height: 32, width: 32 },
  ] as const;

  for (const { channels, height, width } of cases) {
    it(`${channels}×${height}×${width}: NCHW/NHWC and float32/uint8 variants agree`, async () => {
      const batch = 3;
      const rand = mulberry32(channels * 1000 + height);
      // Pixels in NCHW order; NHWC variants get the same image transposed.
      const nchw = Uint8Array.from({ length: batch * channels * height * width }, () => Math.floor(rand() * 256));
      const nhwc = new Uint8Array(nchw.length);
      for (let b = 0; b < batch; b++)
        for (let c = 0; c < channels; c++)
          for (let y = 0; y < height; y++)
            for (let x = 0; x < width; x++)
              nhwc[((b * height + y) * width + x) * channels + c] = nchw[((b * channels + c) * height + y) * width + x] as number;

      const outputs: Float32Array[] = [];
      for (const layout of ['NCHW', 'NHWC'] as const) {
        for (const inputType of ['float32', 'uint8'] as const) {
          const m = smallCnnModel({ channels, height, width, classes: 10, seed: 3, layout, inputType });
          expect(m.inputType).toBe(inputType);
          const pixels = layout === 'NCHW' ? nchw : nhwc;
          const data = inputType === 'uint8' ? pixels : Float32Array.from(pixels, (v) => v / 255);
          const dims = m.inputShape.map((d) => (d === 'batch' ? batch : d)) as number[];
          const out = await runOnce(await loadSession(m.bytes), { name: m.inputName, type: inputType, data, dims }, m.outputName);
          expect(out.dims).toEqual([batch, 10]);
          expectFinite(out.data);
          expectRowsSumToOne(out.data, batch, 10);
          outputs.push(out.data);
        }
      }
      // Same seed ⇒ same weights, so every variant must compute the same function of the image.
      for (const o of outputs.slice(1)) for (let i = 0; i < o.length; i++) expect(o[i]).toBeCloseTo(outputs[0]?.[i] as number, 5);
    });
  }
});

describe('mobilenetLikeModel', () => {
  it('is MobileNetV2-sized, loads in ORT and produces finite probabilities', async () => {
    const started = performance.now();
    const m = mobilenetLikeModel({ seed: 7 });
    const genMs = performance.now() - started;
    expect(m.mflops).toBeGreaterThanOrEqual(250);
    expect(m.mflops).toBeLessThanOrEqual(350);
    expect(m.params).toBeGreaterThan(3e6);
    expect(m.params).toBeLessThan(4e6);
    // ~3.5M float32 weights ⇒ ~14 MB of raw_data plus small framing.
    expect(m.bytes.length).toBeGreaterThan(m.params * 4);
    expect(m.bytes.length).toBeLessThan(m.params * 4 + 1e6);

    const session = await loadSession(m.bytes);
    const x = randomInput(2 * 3 * 224 * 224, 9);
    const runStarted = performance.now();
    const out = await runOnce(session, { name: m.inputName, type: 'float32', data: x, dims: [2, 3, 224, 224] }, m.outputName);
    const runMs = performance.now() - runStarted;
    expect(out.dims).toEqual([2, 1000]);
    expectFinite(out.data);
    expectRowsSumToOne(out.data, 2, 1000);
    // Random but not degenerate: the two images should not get identical outputs.
    expect(out.data.subarray(0, 1000)).not.toEqual(out.data.subarray(1000, 2000));
    console.info(`mobilenetLike: ${m.mflops.toFixed(1)} M multiply-adds, ${m.params} params, generated in ${genMs.toFixed(0)} ms, batch-2 run ${runMs.toFixed(0)} ms`);
  });
});

describe('brokenModelBytes', () => {
  it('is rejected by InferenceSession.create', async () => {
    const bytes = brokenModelBytes();
    expect(bytes.length).toBeGreaterThan(0);
    await expect(loadSession(bytes)).rejects.toThrow();
  });
});
