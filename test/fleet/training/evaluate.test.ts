import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packModel } from '../../../fleet/adapters/fs/pack.js';
import { evaluateModels, quantile } from '../../../fleet/app/training/evaluate.js';
import type { EvalExample } from '../../../fleet/app/training/evaluate.js';
import { GraphBuilder } from '../../../shared/onnx/builder.js';
import { tempDir } from '../../helpers/packages.js';

/** A model that says `light` when the mean pixel (0..1) is above `cut`, else `dark`. */
async function brightnessModel(dir: string, cut: number, version: string): Promise<string> {
  const g = new GraphBuilder('brightness');
  const x = g.input('input', 'float32', ['batch', 1, 8, 8]);
  const w = new Float32Array(64 * 2);
  for (let p = 0; p < 64; p++) w[p * 2 + 1] = 1 / 64;
  const y = g.node('Gemm', [g.node('Flatten', [x], { axis: 1 }), g.initializer('w', w, [64, 2]), g.initializer('b', Float32Array.of(cut, 0), [2])]);
  g.output(y, 'float32', ['batch', 2], 'scores');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'm.onnx'), g.toBytes());
  await packModel({ onnxPath: join(dir, 'm.onnx'), outDir: join(dir, 'pkg'), labels: ['dark', 'light'], name: 'bright', version, image: { width: 8, height: 8, color: 'grayscale', layout: 'NCHW', scale: 1 / 255 } });
  return join(dir, 'pkg');
}

const grey = (v: number): Promise<Buffer> => sharp({ create: { width: 16, height: 16, channels: 3, background: { r: v, g: v, b: v } } }).png().toBuffer();

let t: ReturnType<typeof tempDir>;
let a: string;
let b: string;
let clean: EvalExample[];
let field: EvalExample[];

beforeAll(async () => {
  t = tempDir('edgeloop-eval-');
  a = await brightnessModel(join(t.dir, 'a'), 0.5, '1.0.0');
  b = await brightnessModel(join(t.dir, 'b'), 0.3, '1.1.0');
  // Grey levels 40 (0.16), 100 (0.39), 200 (0.78): model a calls 100 dark, model b calls it light.
  clean = [
    { id: 'c1', label: 'dark', bytes: await grey(40) },
    { id: 'c2', label: 'dark', bytes: await grey(100) },
    { id: 'c3', label: 'light', bytes: await grey(200) },
    { id: 'c4', label: 'light', bytes: await grey(100) },
  ];
  field = [
    { id: 'f1', label: 'light', bytes: await grey(100) },
    { id: 'f2', label: 'zebra', bytes: await grey(200) },
  ];
});
afterAll(() => t.cleanup());

describe('evaluation with ONNX Runtime and the agent preprocessing', () => {
  it('gives accuracy, per-class accuracy and confusion matrices that match the models by hand', async () => {
    const [ra, rb] = await evaluateModels([{ ref: { name: 'bright', version: '1.0.0' }, dir: a }, { ref: { name: 'bright', version: '1.1.0' }, dir: b }], { clean, field }, { warmup: 1 });
    // a: c1 dark ok, c2 dark ok, c3 light ok, c4 (100) dark -> wrong.
    expect(ra?.clean).toMatchObject({ count: 4, correct: 3, accuracy: 0.75, confusion: [[2, 0], [1, 1]], per_class: { dark: { count: 2, correct: 2, accuracy: 1 }, light: { count: 2, correct: 1, accuracy: 0.5 } } });
    // b: c2 (100) -> light, wrong; c4 light ok.
    expect(rb?.clean).toMatchObject({ correct: 3, confusion: [[1, 1], [0, 2]] });
    // A label the model does not know counts as wrong and is reported.
    expect(ra?.field).toMatchObject({ count: 2, correct: 0, unknown_labels: 1 });
    expect(rb?.field).toMatchObject({ count: 2, correct: 1, accuracy: 0.5, unknown_labels: 1 });
    expect(ra?.latency.runs).toBe(6);
    expect(ra?.latency.p95_ms).toBeGreaterThanOrEqual(ra?.latency.p50_ms ?? Infinity);
  });

  it('refuses what it cannot evaluate with FLEET_EVALUATION_FAILED', async () => {
    await expect(evaluateModels([{ ref: { name: 'x', version: '1.0.0' }, dir: join(t.dir, 'nowhere') }], { clean, field })).rejects.toMatchObject({ code: 'FLEET_EVALUATION_FAILED' });
    await expect(evaluateModels([{ ref: { name: 'bright', version: '1.0.0' }, dir: a }], { clean: [{ id: 'bad', label: 'dark', bytes: Buffer.from('not an image') }], field: [] })).rejects.toMatchObject({ code: 'FLEET_EVALUATION_FAILED' });
  });

  it('quantiles by nearest rank', () => {
    expect(quantile([], 0.95)).toBe(0);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)).toBe(5);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toBe(10);
    expect(quantile([3], 0.95)).toBe(3);
  });
});
