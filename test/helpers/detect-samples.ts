/**
 * A registered detection model and detection samples for the fleet's box-label tests: a real
 * yolo package (test/helpers/detect-models.ts, classes `red` and `blue`) pushed to the registry,
 * and samples as an agent sends them, each a real PNG with the predicted boxes in its meta.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import type { FleetContext } from '../../fleet/app/context.js';
import type { StepDeps } from '../../fleet/app/training/run-record.js';
import { sha256Hex } from '../../shared/ids.js';
import { sampleMessage } from '../../shared/schemas/index.js';
import type { Detection, SampleMessage } from '../../shared/schemas/index.js';
import { yoloV8Model } from './detect-models.js';
import { fleetKeys } from './packages.js';

export const DETECTOR = { name: 'haul-cam', version: '1.0.0' };
export const DETECT_CLASSES = ['red', 'blue'];

/** Pack the grid detector as DETECTOR into `dir` and register it. */
export async function registerDetector(ctx: FleetContext, dir: string): Promise<void> {
  const onnx = join(dir, 'grid.onnx');
  writeFileSync(onnx, yoloV8Model());
  const pkg = join(dir, 'detector');
  await packModel({ onnxPath: onnx, outDir: pkg, name: DETECTOR.name, version: DETECTOR.version, labels: DETECT_CLASSES, task: 'detection', detection: { decoder: 'yolo', padValue: 0 }, signKeyPem: fleetKeys().privateKeyPem });
  await ctx.registry.push(pkg, { actor: 'ada' });
}

export interface DetectSample {
  id: string;
  device: string;
  width: number;
  height: number;
  detections: Detection[];
  format?: 'png' | 'jpeg';
  capturedAt?: number;
  /** Default DETECTOR. */
  model?: { name: string; version: string };
  /** JPEG only: this many bytes of application segments before the size frame (camera metadata), so the size is not in the first 64 KiB. */
  headerPadding?: number;
}

/** A JPEG with `bytes` of APP15 segments after its SOI: every decoder skips them, as it skips a camera's maker notes. */
function padJpeg(jpeg: Buffer, bytes: number): Buffer {
  const segments: Buffer[] = [];
  for (let left = bytes; left > 0; left -= 60_000) {
    const n = Math.min(60_000, left);
    const seg = Buffer.alloc(4 + n, 0x20);
    seg.set([0xff, 0xef], 0);
    seg.writeUInt16BE(n + 2, 2);
    segments.push(seg);
  }
  return Buffer.concat([jpeg.subarray(0, 2), ...segments, jpeg.subarray(2)]);
}

/** A frame of `width` x `height`: dark grey with a bright square under each predicted box, so a person sees what the boxes frame. */
async function frameImage(s: DetectSample): Promise<Buffer> {
  const { width, height } = s;
  const data = Buffer.alloc(width * height * 3, 40);
  for (const d of s.detections) {
    const [x1, y1, x2, y2] = d.box.map((v) => Math.round(v));
    const rgb = d.label === 'blue' ? [40, 60, 230] : [230, 50, 40];
    for (let y = Math.max(0, y1!); y < Math.min(height, y2!); y++) for (let x = Math.max(0, x1!); x < Math.min(width, x2!); x++) data.set(rgb, (y * width + x) * 3);
  }
  const img = sharp(data, { raw: { width, height, channels: 3 } });
  if (s.format !== 'jpeg') return img.png().toBuffer();
  const jpeg = await img.jpeg({ quality: 90 }).toBuffer();
  return s.headerPadding ? padJpeg(jpeg, s.headerPadding) : jpeg;
}

/** The sample message an agent running DETECTOR sends for this frame. */
export async function detectSampleMessage(s: DetectSample): Promise<SampleMessage> {
  const bytes = await frameImage(s);
  const best = s.detections[0];
  return sampleMessage.parse({
    type: 'sample',
    v: 1,
    meta: {
      sample_id: s.id,
      device_id: s.device,
      captured_at: new Date(s.capturedAt ?? Date.parse('2025-03-01T10:00:00Z')).toISOString(),
      model: s.model ?? DETECTOR,
      reasons: s.detections.length ? ['uncertain_box'] : ['nothing_found'],
      priority: 5,
      prediction: { label: best?.label ?? '', index: best ? DETECT_CLASSES.indexOf(best.label) : 0, score: best?.score ?? 0, topk: [] },
      input: { kind: 'image', content_type: s.format === 'jpeg' ? 'image/jpeg' : 'image/png', sha256: sha256Hex(bytes), bytes: bytes.byteLength },
      source: 'camera',
      detections: s.detections,
    },
    blob_b64: bytes.toString('base64'),
  });
}

/** Ingest detection samples through the real ingest path, in order. */
export async function seedDetectSamples(ctx: FleetContext, specs: DetectSample[]): Promise<void> {
  for (const s of specs) {
    const r = await ctx.ingest.accept(s.device, await detectSampleMessage(s));
    if (r.status !== 'stored') throw new Error(`sample ${s.id} not stored: ${r.status}`);
  }
}

/**
 * What a learning-loop run's steps need, from a test fleet's context (no base set): the real
 * registry, artifacts, datasets and runs, the fleet's signing key. `emit` sees each step's lines.
 */
export function runStepDeps(ctx: FleetContext, emit: (step: string, message: string, extra?: { metrics?: Record<string, number> }) => void = () => undefined): StepDeps {
  return {
    registry: ctx.registry,
    artifacts: ctx.artifacts,
    datasets: ctx.datasets,
    base: { examples: () => Promise.resolve([]) },
    runs: ctx.trainingRuns,
    signKeyPem: fleetKeys().privateKeyPem,
    emit,
  } as unknown as StepDeps;
}
