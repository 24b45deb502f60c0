import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import sharp from 'sharp';
import { packModel } from '../fleet/adapters/fs/pack.js';
import { GraphBuilder } from '../shared/onnx/builder.js';
import { seededRandom } from '../shared/ids.js';

export const MODEL_NAME = 'chaos';
const LABELS = ['a', 'b', 'c', 'd'];

/**
 * A tiny model package around {@link unsureOnnx}: every answer is about 0.25 confident, so
 * the capture policy (min_confidence 1) keeps every frame; `version` changes the bias so each version is a different package.
 * Inference costs microseconds: the campaign's CPU goes to the faults, not to the model.
 */
export async function chaosPackage(workDir: string, version: string, k: number): Promise<string> {
  const work = join(workDir, `src-${version}`);
  await mkdir(work, { recursive: true });
  await writeFile(join(work, 'model.onnx'), unsureOnnx(0.02 + 0.001 * k));
  const golden: Array<{ file: string }> = [];
  for (let i = 0; i < 2; i++) {
    const file = join(work, `golden-${i}.png`);
    await writeFile(file, await noiseFrame(1_000_000 + i, 28));
    golden.push({ file });
  }
  const dir = join(workDir, `pkg-${version}`);
  // Unsigned: the fleet signs what it registers, and agents trust only the fleet's key.
  await packModel({ onnxPath: join(work, 'model.onnx'), outDir: dir, labels: LABELS, name: MODEL_NAME, version, golden });
  return dir;
}

/**
 * A model that cannot make up its mind: 28x28 grey in (batch, 1, 28, 28), a global mean, a Gemm
 * with near-zero weights and a slight `bias` towards the first of four classes, then Softmax.
 * Every answer is about 0.25 confident, with a stable top-1.
 */
export function unsureOnnx(bias: number): Uint8Array {
  const g = new GraphBuilder('unsure');
  const x = g.input('input', 'float32', ['batch', 1, 28, 28]);
  const pooled = g.node('Flatten', [g.node('GlobalAveragePool', [x])], { axis: 1 });
  const w = g.initializer('fc_w', Float32Array.from([0.001, 0, 0, 0]), [LABELS.length, 1]);
  const b = g.initializer('fc_b', Float32Array.from([bias, 0, 0, 0]), [LABELS.length]);
  const probs = g.node('Softmax', [g.node('Gemm', [pooled, w, b], { transB: 1 })], { axis: 1 });
  g.output(probs, 'float32', ['batch', LABELS.length], 'probabilities');
  return g.toBytes();
}

/**
 * A grey PNG of seeded noise, `size` pixels square: distinct per seed (agents do not capture
 * the same input twice) and incompressible, so its bytes are what the queue quota counts.
 */
export async function noiseFrame(seed: number, size: number): Promise<Buffer> {
  const random = seededRandom(seed);
  const data = Buffer.alloc(size * size);
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256);
  // The seed itself in the first pixels: two seeds never give the same image.
  data.writeUInt32BE(seed >>> 0, 0);
  return sharp(data, { raw: { width: size, height: size, channels: 1 } }).png().toBuffer();
}
