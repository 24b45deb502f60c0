/**
 * The learning-loop tests' own small, real parts: a nearest-prototype digit trainer that
 * writes a genuine ONNX package (shared/onnx/builder.ts + fleet/adapters/fs/pack.ts), a base-set
 * source over the `mnist` package's digits, and field samples as agents send them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { FleetError } from '../../../fleet/errors.js';
import type { FleetContext } from '../../../fleet/app/context.js';
import type { BaseRef } from '../../../fleet/core/labels/dataset-schema.js';
import { packModel } from '../../../fleet/adapters/fs/pack.js';
import type { BaseSetSource } from '../../../fleet/app/training/base-source.js';
import { LearningLoop, type LearningLoopDeps } from '../../../fleet/app/training/loop.js';
import { DIGIT_SIZE } from '../../../fleet/ml/digit-size.js';
import { loadDigits } from '../../../fleet/ml/mnist-data.js';
import type { Trainer, TrainRequest, TrainResult, TrainingExample } from '../../../fleet/app/training/trainer.js';
import { sha256Hex } from '../../../shared/ids.js';
import { imageToTensor } from '../../../shared/inference/preprocess.js';
import { GraphBuilder } from '../../../shared/onnx/builder.js';
import { imagePreprocessing, sampleMessage } from '../../../shared/schemas/index.js';
import type { TestFleet } from '../http/context.js';

export const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];
export const IMAGE = { width: 28, height: 28, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert: true, fit: 'fill' } as const;
const PRE = imagePreprocessing.parse({ kind: 'image', ...IMAGE });
const PIXELS = DIGIT_SIZE * DIGIT_SIZE;

/** An MNIST digit as a camera would see it: dark ink on light paper, optionally rotated and dimmed. */
export async function digitPng(pixels: Float32Array, drift: { rotate?: number; dim?: number } = {}): Promise<Buffer> {
  const raw = Buffer.alloc(PIXELS);
  for (let i = 0; i < PIXELS; i++) raw[i] = Math.round(255 * (1 - Math.min(1, Math.max(0, pixels[i] ?? 0))));
  let img = sharp(raw, { raw: { width: DIGIT_SIZE, height: DIGIT_SIZE, channels: 1 } });
  if (drift.rotate) {
    const r = await img.rotate(drift.rotate, { background: { r: 255, g: 255, b: 255 } }).png().toBuffer({ resolveWithObject: true });
    img = sharp(r.data).resize(DIGIT_SIZE, DIGIT_SIZE, { fit: 'cover' });
  }
  if (drift.dim) img = img.linear(1 - drift.dim, 0);
  return img.grayscale().png().toBuffer();
}

const rendered = new Map<string, Promise<TrainingExample[]>>();

/** `{ source: 'mnist', offset, count }` -> rendered digits with ids `mnist-<index>` (cached per process). */
export const mnistSource: BaseSetSource = {
  examples(ref: BaseRef): Promise<TrainingExample[]> {
    const { offset, count } = ref;
    if (ref.source !== 'mnist' || offset === undefined || count === undefined) return Promise.reject(new FleetError('BASE_SET_INVALID', `unknown base set ${ref.source}`));
    const key = `${offset}:${count}`;
    let p = rendered.get(key);
    if (!p) {
      const d = loadDigits({ offset, count });
      p = Promise.all(d.images.map(async (im, i) => ({ id: `mnist-${offset + i}`, label: String(d.labels[i]), bytes: await digitPng(im) })));
      rendered.set(key, p);
    }
    return p;
  },
};

/** Farthest-point init then Lloyd iterations: deterministic k-means. */
function kmeans(xs: Float32Array[], k: number, iterations = 6): Float32Array[] {
  const dist = (a: Float32Array, b: Float32Array): number => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += ((a[i] as number) - (b[i] as number)) ** 2;
    return s;
  };
  const centres: Float32Array[] = [Float32Array.from(xs[0] as Float32Array)];
  while (centres.length < Math.min(k, xs.length)) {
    let best = 0;
    let bestD = -1;
    xs.forEach((x, i) => {
      const d = Math.min(...centres.map((c) => dist(x, c)));
      if (d > bestD) [best, bestD] = [i, d];
    });
    centres.push(Float32Array.from(xs[best] as Float32Array));
  }
  for (let it = 0; it < iterations; it++) {
    const sums = centres.map(() => new Float64Array(PIXELS));
    const counts = centres.map(() => 0);
    for (const x of xs) {
      let j = 0;
      let dj = Infinity;
      centres.forEach((c, i) => {
        const d = dist(x, c);
        if (d < dj) [j, dj] = [i, d];
      });
      counts[j]!++;
      for (let p = 0; p < PIXELS; p++) sums[j]![p]! += x[p] as number;
    }
    centres.forEach((c, i) => {
      if (counts[i]) for (let p = 0; p < PIXELS; p++) c[p] = sums[i]![p]! / counts[i]!;
    });
  }
  while (centres.length < k) centres.push(Float32Array.from(centres[0] as Float32Array));
  return centres;
}

/**
 * A real trainer: per class, k-means centres of the preprocessed training images;
 * the ONNX model scores each class by its nearest centre (x.c - |c|^2/2, max over the class's
 * centres) and applies softmax. `dropClasses` makes a deliberately bad model (those classes are
 * never predicted), for the gate to reject.
 */
export class PrototypeTrainer implements Trainer {
  readonly name: string;
  calls: TrainRequest[] = [];
  constructor(private readonly o: { name?: string; prototypesPerGroup?: number; dropClasses?: string[] } = {}) {
    this.name = o.name ?? 'prototype';
  }

  async train(req: TrainRequest): Promise<TrainResult> {
    this.calls.push(req);
    const t0 = Date.now();
    const K = req.labels.length;
    const byClass = new Map<string, Float32Array[]>(req.labels.map((l) => [l, []]));
    for (const ex of req.train) byClass.get(ex.label)?.push((await imageToTensor(ex.bytes, PRE)).data as Float32Array);
    // Each class's examples are grouped by overall brightness first (a dimmed camera is its own
    // group when the gap is wide), then clustered per group: new field data adds centres of its
    // own instead of moving the clean ones.
    const per = this.o.prototypesPerGroup ?? 3;
    const centresOf = new Map<string, Float32Array[]>();
    for (const label of req.labels) {
      const xs = byClass.get(label) ?? [];
      const mean = (x: Float32Array): number => x.reduce((a, v) => a + v, 0) / x.length;
      const sorted = [...xs].sort((a, b) => mean(a) - mean(b));
      let cut = -1;
      let gap = 0.15;
      for (let i = 1; i < sorted.length; i++) {
        const g = mean(sorted[i] as Float32Array) - mean(sorted[i - 1] as Float32Array);
        if (g > gap) [cut, gap] = [i, g];
      }
      const groups = cut < 0 ? [xs] : [xs.filter((x) => mean(x) < mean(sorted[cut] as Float32Array)), xs.filter((x) => mean(x) >= mean(sorted[cut] as Float32Array))];
      centresOf.set(label, groups.flatMap((gr) => (gr.length ? kmeans(gr, per) : [])));
    }
    const P = Math.max(1, ...[...centresOf.values()].map((c) => c.length));
    const w = new Float32Array(PIXELS * K * P);
    const b = new Float32Array(K * P);
    req.labels.forEach((label, k) => {
      const found = centresOf.get(label) ?? [];
      const centres = found.length ? [...found] : [new Float32Array(PIXELS)];
      while (centres.length < P) centres.push(centres[0] as Float32Array);
      centres.forEach((c, j) => {
        const col = k * P + j;
        let norm = 0;
        for (let p = 0; p < PIXELS; p++) {
          w[p * K * P + col] = c[p] as number;
          norm += (c[p] as number) ** 2;
        }
        b[col] = this.o.dropClasses?.includes(label) || found.length === 0 ? -1e4 : -norm / 2;
      });
    });
    const g = new GraphBuilder('prototypes');
    const x = g.input('input', 'float32', ['batch', 1, DIGIT_SIZE, DIGIT_SIZE]);
    const flat = g.node('Flatten', [x], { axis: 1 });
    const scores = g.node('Gemm', [flat, g.initializer('w', w, [PIXELS, K * P]), g.initializer('b', b, [K * P])]);
    const grouped = g.node('Reshape', [scores, g.initializer('shape', BigInt64Array.from([0n, BigInt(K), BigInt(P)]), [3])]);
    const best = g.node('ReduceMax', [grouped], { axes: [2], keepdims: 0 });
    const probs = g.node('Softmax', [g.node('Mul', [best, g.scalar('temperature', 0.5)])], { axis: 1 });
    g.output(probs, 'float32', ['batch', K], 'probabilities');
    const work = mkdtempSync(join(tmpdir(), 'edgeloop-proto-'));
    try {
      writeFileSync(join(work, 'model.onnx'), g.toBytes());
      await packModel({
        onnxPath: join(work, 'model.onnx'),
        outDir: req.outputDir,
        labels: [...req.labels],
        name: req.model.name,
        version: req.model.version,
        image: IMAGE,
        lineage: { dataset_version: req.datasetVersion, trainer: this.name, code_version: 'test-prototype-1' },
        ...(req.signKeyPem ? { signKeyPem: req.signKeyPem } : {}),
      });
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
    req.onProgress?.({ fraction: 1, message: `${K * P} prototypes from ${req.train.length} examples` });
    return { packageDir: req.outputDir, metrics: { examples: req.train.length }, durationMs: Date.now() - t0, run: { trainer: this.name, params: { prototypes_per_class: P, ...req.params }, seed: req.seed, code_version: 'test-prototype-1' } };
  }
}

/** Ingest drifted digits as field samples from `devices` (round robin) and label them with their ground truth. */
export async function fieldSamples(ctx: FleetContext, o: { offset: number; count: number; devices: string[]; drift: { rotate?: number; dim?: number }; labeler: string; at: number }): Promise<string[]> {
  const d = loadDigits({ offset: o.offset, count: o.count });
  const ids: string[] = [];
  for (const [i, im] of d.images.entries()) {
    const png = await digitPng(im, o.drift);
    const id = `field-${o.offset + i}`;
    const device = o.devices[i % o.devices.length] as string;
    const msg = sampleMessage.parse({
      type: 'sample',
      v: 1,
      meta: {
        sample_id: id,
        device_id: device,
        captured_at: new Date(o.at + i * 1000).toISOString(),
        model: { name: 'digits', version: '1.0.0' },
        reasons: ['low_confidence'],
        priority: 5,
        prediction: { label: '0', index: 0, score: 0.3, topk: [{ label: '0', index: 0, score: 0.3 }] },
        input: { kind: 'image', content_type: 'image/png', sha256: sha256Hex(png), bytes: png.byteLength, width: 28, height: 28 },
        input_stats: { brightness: 0.5, contrast: 0.2 },
        source: 'dir',
        origin: `${id}.png`,
      },
      blob_b64: png.toString('base64'),
    });
    const r = await ctx.ingest.accept(device, msg);
    if (r.status !== 'stored') throw new Error(`sample ${id} not stored: ${r.status}`);
    ids.push(id);
  }
  await ctx.ingest.flush();
  ids.forEach((id, i) => ctx.labels.assign(id, String(d.labels[i]), { actor: o.labeler, at: o.at + 3_600_000 + i }));
  return ids;
}

/**
 * A learning loop over a test fleet's real parts (SQLite, registry, datasets, rollouts), the
 * mnist base-set source and the fleet's clock and log, working under `<fleet dir>/<dir>`.
 */
export function loopOn(f: TestFleet, o: { dir: string } & Pick<LearningLoopDeps, 'trainers' | 'models'> & Partial<Pick<LearningLoopDeps, 'devices' | 'signKeyPem'>>): LearningLoop {
  const { dir, ...rest } = o;
  return new LearningLoop({
    labels: f.ctx.labels,
    runs: f.ctx.trainingRuns,
    artifacts: f.ctx.artifacts,
    registry: f.ctx.registry,
    datasets: f.ctx.datasets,
    rollouts: f.ctx.rollouts,
    base: mnistSource,
    workDir: join(f.dir, dir),
    clock: f.ctx.clock,
    log: f.ctx.log,
    ...rest,
  });
}
