/** Fixtures of the alert tests: a model whose answer is known from a frame's colour, and such frames. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import { channelMeanModel, COLOUR_LABELS } from './models.js';
import { fleetKeys } from './packages.js';

/** A signed package `colours@1.0.0` around {@link channelMeanModel}: a red frame is `red` (score 0.58), and so on. */
export async function colourPackage(outDir: string, o: { size?: number } = {}): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'edgeloop-pack-'));
  try {
    writeFileSync(join(work, 'colours.onnx'), channelMeanModel(o.size ?? 16).bytes);
    await packModel({ onnxPath: join(work, 'colours.onnx'), outDir, labels: COLOUR_LABELS, name: 'colours', version: '1.0.0', softmax: true, signKeyPem: fleetKeys().privateKeyPem });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/** A solid-colour JPEG frame. */
export function solidFrame(rgb: readonly [number, number, number], width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).jpeg().toBuffer();
}

export const RED = [230, 10, 10] as const;
export const BLUE = [10, 10, 230] as const;
