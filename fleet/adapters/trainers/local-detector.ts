/**
 * The local trainer's detector: trains the small centre-point detector (fleet/ml/detector/) on
 * a dataset in the YOLO txt layout (yolo-dataset.ts) and writes a complete, signed detection
 * package whose output is the `yolo` v8 layout, so the agent runs it with its own decoder, NMS
 * and letterbox and nothing on the device changes.
 *
 * - Images are decoded with the agent's own `imageToTensor` and the package's preprocessing
 *   (grey, letterboxed to size×size; by default dark ink on light paper, inverted to ink = 1 and
 *   padded with paper), and each box is mapped through the same letterbox geometry.
 * - From scratch, or fine-tuned from the parent package's weights (its ONNX initializers).
 * - Deterministic: the same dataset, params, seed and thread count give the same model bytes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { histogramOf } from '../../../shared/inference/drift-stats.js';
import { imageToTensor } from '../../../shared/inference/preprocess.js';
import { readOnnxInitializers } from '../../../shared/onnx/reader.js';
import { readPackageDir } from '../../../shared/package/index.js';
import { detectionOutlierPolicy, imagePreprocessing, modelRefString, type DetectionOutlierPolicyInput, type ImagePreprocessing } from '../../../shared/schemas/index.js';
import { errorLine } from '../../../shared/errors.js';
import { FleetError } from '../../errors.js';
import { detectionMetrics } from '../../ml/detection-map.js';
import { detectorFromInitializers, exportDetectorOnnx, predictDetector, type DetectorWeights, type TrainBox } from '../../ml/detector/model.js';
import { trainDetector } from '../../ml/detector/train.js';
import { packModel } from '../fs/pack.js';
import type { TrainRequest, TrainResult } from '../../app/training/trainer.js';
import { readYoloDataset, writeYoloTrainSplit, type YoloExample } from './yolo-dataset.js';

/** Parameters of a detector run; every key is optional in a request's params. */
export interface DetectorTrainParams {
  /** Input side in pixels (a multiple of 8): images are letterboxed to it. */
  size: number;
  widths: [number, number, number, number];
  hidden: number;
  epochs: number;
  batchSize: number;
  lr: number;
  /** Random shift of each draw, in input pixels. */
  maxShift: number;
  /** Dark objects on a light background (digits on paper): inverted so the object is bright. */
  invert: boolean;
  /** Draws per epoch of each image whose id starts with `base-` (the base set) and of every other (field labels). */
  baseWeight: number;
  fieldWeight: number;
  /** `parent` fine-tunes from the parent's weights when there is a parent; `scratch` ignores it. */
  init: 'parent' | 'scratch';
  /** NMS score threshold written into the package (what the agent reports at least). */
  scoreThreshold: number;
  /** Gradient worker threads. */
  threads: number;
  /** The outlier policy the package ships (what a camera running it captures); checked by the manifest schema when packed. */
  outlier: DetectionOutlierPolicyInput;
}

/**
 * What a camera running the local trainer's detector captures: a box scoring 0.3-0.5 and a count
 * jump of 3 or more, each at most 6 frames a minute per device; every frame while the input
 * drift PSI is above 0.5 (30 a minute, as the digit classifier ships); the random 2%. With the
 * schema's defaults (band 0.25-0.5, 120 and 60 a minute, no input drift) the demo's clean cameras
 * sent 45-70% of their frames at 2 fps (most frames of a few digits have a weak box somewhere),
 * while a drifted camera went quiet once it had found nothing for a few seconds (`nothing_found`
 * judges against the camera's recent habit, which the drift itself changes).
 */
export const DETECTOR_OUTLIER: DetectionOutlierPolicyInput = {
  uncertain_band: [0.3, 0.5],
  random_sample_rate: 0.02,
  drift_psi: 0.5,
  rate_limits: { uncertain_box: { per_minute: 6, burst: 3 }, count_change: { per_minute: 6, burst: 3 } },
};

/**
 * From scratch: 96×96 input, 8/16/32/32 channels and 64 hidden, Adam 0.003 cosine-decayed,
 * batches of 16, ±4 px shifts. Measurements: docs/decisions/0007-detector-recipe.md.
 */
const DETECTOR_RECIPE: DetectorTrainParams = {
  size: 96,
  widths: [8, 16, 32, 32],
  hidden: 64,
  epochs: 3,
  batchSize: 16,
  lr: 0.003,
  maxShift: 4,
  invert: true,
  baseWeight: 1,
  fieldWeight: 1,
  init: 'parent',
  scoreThreshold: 0.1,
  threads: availableParallelism() >= 2 ? 2 : 1,
  outlier: DETECTOR_OUTLIER,
};

/** Fine-tuning from the parent on a few field images beside the base set: gentler step, field images drawn more often. */
const DETECTOR_FINE_TUNE: Partial<DetectorTrainParams> = { epochs: 2, lr: 0.001, baseWeight: 0.5, fieldWeight: 4 };

function resolveParams(raw: Readonly<Record<string, unknown>>, fineTune: boolean): DetectorTrainParams {
  const base: DetectorTrainParams = { ...DETECTOR_RECIPE, ...(fineTune ? DETECTOR_FINE_TUNE : {}) };
  const out: Record<string, unknown> = { ...base };
  const problems: string[] = [];
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'task') continue;
    if (!(k in base)) problems.push(`unknown parameter ${k}`);
    else out[k] = v;
  }
  const p = out as unknown as DetectorTrainParams;
  for (const k of ['size', 'hidden', 'epochs', 'batchSize', 'threads'] as const) if (!Number.isInteger(p[k]) || p[k] <= 0) problems.push(`${k} must be a positive integer`);
  if (Number.isInteger(p.size) && (p.size % 8 !== 0 || p.size < 16 || p.size > 640)) problems.push('size must be a multiple of 8 in 16..640');
  if (!Array.isArray(p.widths) || p.widths.length !== 4 || !p.widths.every((v) => Number.isInteger(v) && v > 0 && v <= 256)) problems.push('widths must be four positive integers');
  for (const k of ['lr', 'baseWeight', 'fieldWeight', 'maxShift'] as const) if (typeof p[k] !== 'number' || !Number.isFinite(p[k]) || p[k] < 0) problems.push(`${k} must be a non-negative number`);
  if (!(p.lr > 0)) problems.push('lr must be positive');
  if (typeof p.scoreThreshold !== 'number' || !(p.scoreThreshold > 0 && p.scoreThreshold < 1)) problems.push('scoreThreshold must be in (0, 1)');
  if (typeof p.invert !== 'boolean') problems.push('invert must be true or false');
  if (p.init !== 'parent' && p.init !== 'scratch') problems.push("init must be 'parent' or 'scratch'");
  const outlier = detectionOutlierPolicy.safeParse(p.outlier);
  if (!outlier.success) problems.push(`outlier is not a detector's outlier policy: ${errorLine(outlier.error)}`);
  if (problems.length) throw new FleetError('INPUT_INVALID', `local detector parameters: ${problems.join('; ')}`, { details: { problems } });
  return p;
}

/** The package's preprocessing for a detector of side `size`. */
export function detectorPreprocessing(size: number, invert: boolean): ImagePreprocessing {
  return imagePreprocessing.parse({ kind: 'image', width: size, height: size, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert, fit: 'contain' });
}

/** Letterbox padding in the background's colour, so padding looks like empty paper, not like an object. */
const padValueFor = (invert: boolean): number => (invert ? 255 : 0);

interface Decoded {
  x: Float32Array;
  boxes: TrainBox[];
  brightness: number;
  contrast: number;
}

async function decode(examples: readonly YoloExample[], pre: ImagePreprocessing, pad: number, signal?: AbortSignal): Promise<Decoded[]> {
  const out: Decoded[] = [];
  for (const ex of examples) {
    if (signal?.aborted) throw new FleetError('TRAINING_ABORTED', 'the local training run was aborted', { cause: signal.reason });
    let t;
    try {
      t = await imageToTensor(ex.bytes, pre, { withGeometry: true, padValue: pad });
    } catch (err) {
      throw new FleetError('TRAINING_FAILED', `training image ${ex.file} cannot be decoded: ${(err as Error).message}`, { cause: err, details: { file: ex.file } });
    }
    const g = t.geometry!;
    const boxes = ex.boxes.map((b) => ({
      cls: b.cls,
      x1: (b.cx - b.w / 2) * g.width * g.scaleX + g.padX,
      y1: (b.cy - b.h / 2) * g.height * g.scaleY + g.padY,
      x2: (b.cx + b.w / 2) * g.width * g.scaleX + g.padX,
      y2: (b.cy + b.h / 2) * g.height * g.scaleY + g.padY,
    }));
    out.push({ x: t.data as Float32Array, boxes, ...t.stats });
  }
  return out;
}

async function parentDetector(dir: string, ref: string): Promise<DetectorWeights> {
  let w: DetectorWeights | null;
  try {
    w = detectorFromInitializers(readOnnxInitializers((await readPackageDir(dir)).modelBytes));
  } catch (err) {
    throw new FleetError('TRAINING_FAILED', `parent ${ref} in ${dir} cannot be read: ${(err as Error).message}`, { cause: err });
  }
  if (!w) throw new FleetError('TRAINING_FAILED', `parent ${ref} is not a local-trainer detector, so its weights cannot be fine-tuned; pass params.init = 'scratch'`);
  return w;
}

/** mAP of the weights on decoded images (pure-TS forward, the same decoding as the ONNX graph). */
function mapOf(w: DetectorWeights, images: readonly Decoded[], names: readonly string[]): { map50: number; map50_95: number } {
  const preds = predictDetector(w, images.map((d) => d.x), 0.01);
  const m = detectionMetrics(
    images.map((d, i) => ({
      truth: d.boxes.map((b) => ({ label: names[b.cls]!, box: [b.x1, b.y1, b.x2, b.y2] as const })),
      predicted: preds[i]!.map((p) => ({ label: names[p.cls]!, score: p.score, box: p.box })),
    })),
  );
  return { map50: m.map50, map50_95: m.map50_95 };
}

/** The trainer port's request, with the examples already written as a YOLO txt dataset. */
export type DetectorTrainRequest = Pick<TrainRequest, 'model' | 'parent' | 'params' | 'seed' | 'outputDir' | 'signKeyPem' | 'onProgress' | 'signal'> &
  Partial<Pick<TrainRequest, 'datasetVersion' | 'runId'>> & {
    /** A directory in the YOLO txt layout. */
    datasetDir: string;
    now?: () => Date;
  };

const LOCAL_DETECTOR_CODE_VERSION = 'edgeloop-local-detector/1';

/** Trains a detector on the YOLO dataset in `datasetDir` and writes its package to `outputDir`. */
export async function trainDetectorPackage(req: DetectorTrainRequest): Promise<TrainResult> {
  const t0 = performance.now();
  const say = (message: string, fraction?: number, metrics?: Record<string, number>): void => req.onProgress?.({ message, ...(fraction !== undefined ? { fraction } : {}), ...(metrics ? { metrics } : {}) });
  const fineTune = req.parent !== null && (req.params.init ?? 'parent') === 'parent';
  const initial = fineTune && req.parent ? await parentDetector(req.parent.dir, modelRefString(req.parent.ref)) : undefined;
  const p = resolveParams(req.params, fineTune);
  if (initial) Object.assign(p, { size: initial.size, widths: [...initial.widths], hidden: initial.hidden });
  const data = await readYoloDataset(req.datasetDir);
  if (initial && initial.classes !== data.names.length) throw new FleetError('TRAINING_FAILED', `parent has ${initial.classes} classes, the dataset ${data.names.length}`);
  const pre = detectorPreprocessing(p.size, p.invert);
  const pad = padValueFor(p.invert);
  say(`decoding ${data.train.length} training and ${data.val.length} validation images`, 0);
  const train = await decode(data.train, pre, pad, req.signal);
  const val = await decode(data.val, pre, pad, req.signal);
  const isBase = data.train.map((e) => e.id.startsWith('base-'));
  const fieldCount = isBase.filter((b) => !b).length;
  const boxCount = train.reduce((n, d) => n + d.boxes.length, 0);
  say(`${fineTune ? 'fine-tuning' : 'training'} ${req.model.name}@${req.model.version}: ${train.length} images (${fieldCount} field), ${boxCount} boxes, ${data.names.length} classes, ${p.epochs} epochs`, 0.05);
  let res;
  try {
    res = await trainDetector({
      images: train.map((d) => d.x),
      boxes: train.map((d) => d.boxes),
      weights: isBase.map((b) => (b ? p.baseWeight : p.fieldWeight)),
      ...(initial ? { initial } : { shape: { size: p.size, widths: p.widths, hidden: p.hidden, classes: data.names.length } }),
      epochs: p.epochs,
      batchSize: p.batchSize,
      lr: p.lr,
      seed: req.seed,
      maxShift: p.maxShift,
      threads: p.threads,
      ...(req.signal ? { signal: req.signal } : {}),
      onEpoch: (epoch, loss) => say(`epoch ${epoch}/${p.epochs}: loss ${loss.toFixed(4)}`, 0.05 + (0.8 * epoch) / p.epochs, { epoch, loss }),
    });
  } catch (err) {
    if (req.signal?.aborted) throw new FleetError('TRAINING_ABORTED', 'the local training run was aborted', { cause: req.signal.reason });
    throw new FleetError('TRAINING_FAILED', `local detector training failed: ${(err as Error).message}`, { cause: err });
  }
  const metrics: Record<string, number> = { train_loss: res.finalLoss, train_count: train.length, field_count: fieldCount, train_boxes: boxCount, epochs: p.epochs };
  if (val.length) {
    const m = mapOf(res.weights, val, data.names);
    metrics.val_map50 = m.map50;
    metrics.val_map50_95 = m.map50_95;
    say(`validation (${val.length} images): mAP@0.5 ${m.map50.toFixed(3)}, mAP@0.5:0.95 ${m.map50_95.toFixed(3)}`, 0.88, metrics);
  }
  say('packing the model', 0.92);
  const work = await mkdtemp(join(tmpdir(), 'edgeloop-local-detector-'));
  try {
    await writeFile(join(work, 'model.onnx'), exportDetectorOnnx(res.weights));
    // Golden inputs: training images where the model's surest box is of a class really in the
    // image, surest first; the on-device smoke test checks the runtime, not the hard cases.
    // The first 200 images are plenty to find two (a forward pass each, on this thread).
    const preds = predictDetector(res.weights, train.slice(0, 200).map((d) => d.x), p.scoreThreshold);
    const ranked = preds
      .map((ps, i) => ({ i, top: ps[0] }))
      .filter((r) => r.top && r.top.score >= 0.5 && train[r.i]!.boxes.some((b) => b.cls === r.top!.cls))
      .sort((a, b) => b.top!.score - a.top!.score || a.i - b.i)
      .slice(0, 2);
    const golden: Array<{ file: string; label: string }> = [];
    for (const r of ranked) {
      const file = join(work, `golden-${r.i}.png`);
      await writeFile(file, data.train[r.i]!.bytes);
      golden.push({ file, label: data.names[r.top!.cls]! });
    }
    const reference = train.filter((_, i) => isBase[i]).length ? train.filter((_, i) => isBase[i]) : train;
    const edges = (lo: number, hi: number, n: number): number[] => Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
    await packModel({
      onnxPath: join(work, 'model.onnx'),
      outDir: req.outputDir,
      labels: [...data.names],
      name: req.model.name,
      version: req.model.version,
      description: `Object detector (centre-point, ${p.size}x${p.size}, ${res.weights.widths.join('/')}/${res.weights.hidden}) by the local trainer${fineTune ? `, fine-tuned from ${modelRefString(req.parent!.ref)}` : ''}`,
      image: { width: p.size, height: p.size, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert: p.invert, fit: 'contain' },
      task: 'detection',
      detection: { decoder: 'yolo', yoloLayout: 'v8', padValue: pad, scoreThreshold: p.scoreThreshold, iou: 0.45, maxDetections: 100 },
      outlier: p.outlier,
      golden,
      driftBaseline: {
        brightness: histogramOf(reference.map((d) => d.brightness), edges(0, 1, 10)),
        contrast: histogramOf(reference.map((d) => d.contrast), edges(0, 0.5, 10)),
        box_count: histogramOf(reference.map((d) => d.boxes.length), edges(0, 10, 10)),
        box_size: histogramOf(reference.flatMap((d) => d.boxes.map((b) => Math.sqrt(((b.x2 - b.x1) * (b.y2 - b.y1)) / (p.size * p.size)))), edges(0, 1, 10)),
        window: 200,
      },
      evaluation: metrics,
      lineage: {
        ...(req.datasetVersion ? { dataset_version: req.datasetVersion } : {}),
        ...(req.runId ? { training_run: req.runId } : {}),
        ...(req.parent ? { parent: req.parent.ref } : {}),
        trainer: 'local',
        code_version: LOCAL_DETECTOR_CODE_VERSION,
      },
      ...(req.signKeyPem ? { signKeyPem: req.signKeyPem } : {}),
      createdAt: (req.now ?? (() => new Date()))(),
    });
  } catch (err) {
    if (err instanceof FleetError) throw err;
    throw new FleetError('TRAINING_FAILED', `packing the trained detector failed: ${(err as Error).message}`, { cause: err });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  const durationMs = performance.now() - t0;
  say(`packed ${req.model.name}@${req.model.version} in ${(durationMs / 1000).toFixed(1)} s`, 1, metrics);
  return { packageDir: req.outputDir, metrics, durationMs, run: { trainer: 'local', params: { ...p, task: 'detection', fineTuned: fineTune } as unknown as Record<string, unknown>, seed: req.seed, code_version: LOCAL_DETECTOR_CODE_VERSION } };
}

/**
 * A training request for a detector (params.task `detection`, a detector parent, or examples
 * with boxes): its training split written as the YOLO txt layout, then
 * {@link trainDetectorPackage} on it, so a request and a dataset directory train alike.
 */
export async function trainDetectorFromRequest(req: TrainRequest, now?: () => Date): Promise<TrainResult> {
  if (req.signal?.aborted) throw new FleetError('TRAINING_ABORTED', 'the local training run was aborted', { cause: req.signal.reason });
  if (req.train.length === 0) throw new FleetError('INPUT_INVALID', 'the training split is empty');
  const work = await mkdtemp(join(tmpdir(), 'edgeloop-local-detector-data-'));
  try {
    const datasetDir = await writeYoloTrainSplit(join(work, 'dataset'), req.labels, req.train);
    return await trainDetectorPackage({
      datasetDir,
      model: req.model,
      datasetVersion: req.datasetVersion,
      ...(req.runId ? { runId: req.runId } : {}),
      parent: req.parent,
      params: req.params,
      seed: req.seed,
      outputDir: req.outputDir,
      ...(req.signKeyPem ? { signKeyPem: req.signKeyPem } : {}),
      ...(req.onProgress ? { onProgress: req.onProgress } : {}),
      ...(req.signal ? { signal: req.signal } : {}),
      ...(now ? { now } : {}),
    });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** Whether the local trainer should train a detector for this request. */
export async function isDetectionRequest(req: TrainRequest): Promise<boolean> {
  if (req.params.task === 'detection') return true;
  if (req.params.task !== undefined && req.params.task !== 'classification') throw new FleetError('INPUT_INVALID', `local trainer parameters: task must be classification or detection, got ${JSON.stringify(req.params.task)}`);
  if (req.train.some((e) => e.boxes !== undefined)) return true;
  if (!req.parent) return false;
  try {
    return (await readPackageDir(req.parent.dir)).manifest.task === 'detection';
  } catch {
    // An unreadable parent is reported by the path that reads its weights.
    return false;
  }
}
