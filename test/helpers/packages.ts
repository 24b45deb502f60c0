import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { packModel, type PackOptions } from '../../fleet/adapters/fs/pack.js';
import { mlpModel, smallCnnModel } from './models.js';
import { generateSigningKeyPair, type SigningKeyPair } from '../../shared/signing.js';

/** A temp directory removed by the returned cleanup. */
export function tempDir(prefix = 'edgeloop-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

let keys: SigningKeyPair | null = null;
/** One fleet key pair per test process. */
export function fleetKeys(): SigningKeyPair {
  keys ??= generateSigningKeyPair();
  return keys;
}

/** A PNG of a smooth random pattern (grey or RGB), deterministic per seed. */
export async function patternImage(seed: number, opts: { width?: number; height?: number; format?: 'png' | 'jpeg' | 'webp'; channels?: 1 | 3 } = {}): Promise<Buffer> {
  const w = opts.width ?? 40;
  const h = opts.height ?? 40;
  const ch = opts.channels ?? 3;
  const data = Buffer.alloc(w * h * ch);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < ch; c++) data[(y * w + x) * ch + c] = Math.round(127 + 120 * Math.sin((x + 1) * 0.2 * (seed + c + 1) + y * 0.13 * (seed + 2)));
  const img = sharp(data, { raw: { width: w, height: h, channels: ch } });
  const fmt = opts.format ?? 'png';
  return fmt === 'jpeg' ? img.jpeg().toBuffer() : fmt === 'webp' ? img.webp().toBuffer() : img.png().toBuffer();
}

export const CLASS_LABELS = ['cat', 'dog', 'bird', 'fish'];

/**
 * A signed image-classification package around a small random-weight CNN (28x28 grey by
 * default), with golden images whose expectations are recorded by running the model.
 */
export async function imagePackage(
  outDir: string,
  o: { version?: string; seed?: number; sign?: boolean; channels?: 1 | 3; layout?: 'NCHW' | 'NHWC'; inputType?: 'float32' | 'uint8'; size?: number; extra?: Partial<PackOptions> } = {},
): Promise<Awaited<ReturnType<typeof packModel>>> {
  const size = o.size ?? 28;
  const model = smallCnnModel({ channels: o.channels ?? 1, height: size, width: size, classes: CLASS_LABELS.length, seed: o.seed ?? 1, layout: o.layout ?? 'NCHW', inputType: o.inputType ?? 'float32' });
  const work = mkdtempSync(join(tmpdir(), 'edgeloop-pack-'));
  try {
    writeFileSync(join(work, 'model.onnx'), model.bytes);
    const golden: Array<{ file: string }> = [];
    for (let i = 0; i < 2; i++) {
      const file = join(work, `golden-${i}.png`);
      writeFileSync(file, await patternImage(100 + i));
      golden.push({ file });
    }
    return await packModel({
      onnxPath: join(work, 'model.onnx'),
      outDir,
      labels: CLASS_LABELS,
      name: 'pets',
      version: o.version ?? '1.0.0',
      golden,
      ...(o.sign === false ? {} : { signKeyPem: fleetKeys().privateKeyPem }),
      ...o.extra,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

export const SENSOR_FEATURES = 8;
export const SENSOR_LABELS = ['normal', 'warning', 'fault'];

/** A signed tabular/sensor package (model `sensor` unless `name`) around a random-weight MLP emitting logits. */
export async function tensorPackage(outDir: string, o: { name?: string; version?: string; seed?: number; features?: number } = {}): Promise<Awaited<ReturnType<typeof packModel>>> {
  const features = o.features ?? SENSOR_FEATURES;
  const model = mlpModel({ features, hidden: 16, classes: SENSOR_LABELS.length, seed: o.seed ?? 3, softmax: false });
  const work = mkdtempSync(join(tmpdir(), 'edgeloop-pack-'));
  try {
    writeFileSync(join(work, 'sensor.onnx'), model.bytes);
    return await packModel({
      onnxPath: join(work, 'sensor.onnx'),
      outDir,
      labels: SENSOR_LABELS,
      name: o.name ?? 'sensor',
      version: o.version ?? '1.0.0',
      tensorInput: true,
      softmax: true,
      goldenTensors: [{ tensor: Array.from({ length: features }, (_, i) => i / 10) }],
      signKeyPem: fleetKeys().privateKeyPem,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
