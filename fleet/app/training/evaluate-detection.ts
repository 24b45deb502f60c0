/**
 * Evaluation of detection packages on box-labeled holdouts, the way a device answers: the
 * manifest's letterbox preprocessing through the agent's `imageToTensor`, a real ONNX Runtime
 * session, then the agent's own decoder, NMS and mapping back to the original pixels
 * (shared/inference/detect.ts, with the package's thresholds), scored COCO-style with
 * fleet/ml/detection-map.ts: mAP@0.5, mAP@0.5:0.95 and AP per class. Several models are run
 * example by example in turn, timed twice in mirrored order with the faster run counting, as
 * evaluate.ts does for classifiers (so host load lands on both models alike).
 */
import '../../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import * as ort from 'onnxruntime-node';
import { detect, type OutputTensor, type RawDetection } from '../../../shared/inference/detect.js';
import { feedDimsOf, imageToTensor, type ImageTensor } from '../../../shared/inference/preprocess.js';
import type { TaskManifest } from '../../../shared/package/index.js';
import type { ImagePreprocessing, ModelRef } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';
import type { DetectionSetMetrics } from '../../core/training/gate.js';
import { detectionMetrics, type DetectionExample } from '../../ml/detection-map.js';
import { quantile, readVerifiedPackage, timedRun, type EvaluateOptions } from './evaluate.js';
import type { BoxLabel } from './trainer.js';

/** One box-labeled holdout image. `boxes` empty: nothing there (every detection is a false positive). */
export interface DetectionEvalExample {
  id: string;
  bytes: Uint8Array;
  boxes: readonly BoxLabel[];
}

/** A detector's evaluation: what the gate reads (mAP per holdout) plus latency. */
export interface DetectionModelReport {
  task: 'detection';
  model: ModelRef;
  labels: string[];
  clean: DetectionSetMetrics;
  field: DetectionSetMetrics;
  /** `session.run` alone, as for classifiers (decode and NMS are not the model's cost). */
  latency: { p50_ms: number; p95_ms: number; runs: number };
}


interface Loaded {
  ref: ModelRef;
  manifest: TaskManifest<'detection'>;
  session: ort.InferenceSession;
}

async function load(m: { ref: ModelRef; dir: string }, threads: number): Promise<Loaded> {
  const { manifest, modelBytes } = await readVerifiedPackage(m.dir);
  if (manifest.task !== 'detection') throw new FleetError('EVALUATION_FAILED', `${m.ref.name}@${m.ref.version} is a ${manifest.task} model; mAP scores detectors`);
  if (manifest.preprocessing.kind !== 'image') throw new FleetError('EVALUATION_FAILED', `${m.ref.name}@${m.ref.version} does not take images`);
  try {
    const session = await ort.InferenceSession.create(modelBytes, { intraOpNumThreads: threads, interOpNumThreads: 1, executionMode: 'sequential', extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } } });
    return { ref: m.ref, manifest: manifest as TaskManifest<'detection'>, session };
  } catch (err) {
    throw new FleetError('EVALUATION_FAILED', `ONNX Runtime cannot load ${m.ref.name}@${m.ref.version}: ${(err as Error).message}`, { cause: err });
  }
}

function setMetrics(examples: readonly DetectionExample[], labels: readonly string[]): DetectionSetMetrics {
  const m = detectionMetrics(examples);
  const per_class: DetectionSetMetrics['per_class'] = {};
  for (const l of labels) {
    const c = m.per_class[l];
    per_class[l] = { count: c?.truths ?? 0, ap50: c?.ap50 ?? null, ap50_95: c?.ap50_95 ?? null };
  }
  // Boxes of a class the model does not know still count against it (their AP is 0).
  for (const [l, c] of Object.entries(m.per_class)) if (!(l in per_class)) per_class[l] = { count: c.truths, ap50: c.ap50, ap50_95: c.ap50_95 };
  return { task: 'detection', count: examples.length, boxes: examples.reduce((n, e) => n + e.truth.length, 0), map50: m.map50, map50_95: m.map50_95, per_class };
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Every detector on both holdouts: mAP@0.5, mAP@0.5:0.95, AP per class and `session.run`
 * latency; reports in the order of `models`. Throws `FLEET_EVALUATION_FAILED` when a model does
 * not load or run, or an image does not decode.
 */
export async function evaluateDetectionModels(
  models: ReadonlyArray<{ ref: ModelRef; dir: string }>,
  sets: { clean: readonly DetectionEvalExample[]; field: readonly DetectionEvalExample[] },
  o: EvaluateOptions = {},
): Promise<DetectionModelReport[]> {
  const loaded: Loaded[] = [];
  try {
    for (const m of models) loaded.push(await load(m, o.intraOpThreads ?? 1));
    const all = [...sets.clean.map((ex) => ({ set: 'clean' as const, ex })), ...sets.field.map((ex) => ({ set: 'field' as const, ex }))];
    const results = loaded.map(() => ({ clean: [] as DetectionExample[], field: [] as DetectionExample[], times: [] as number[] }));
    const tensorOf = async (l: Loaded, ex: DetectionEvalExample): Promise<ImageTensor> => {
      try {
        return await imageToTensor(ex.bytes, l.manifest.preprocessing as ImagePreprocessing, { withGeometry: true, padValue: l.manifest.postprocessing.letterbox?.pad_value ?? 0 });
      } catch (err) {
        throw new FleetError('EVALUATION_FAILED', `holdout image ${ex.id} does not preprocess for ${l.ref.name}@${l.ref.version}: ${(err as Error).message}`, { cause: err });
      }
    };
    const run = async (l: Loaded, t: ImageTensor): Promise<{ dets: RawDetection[]; ms: number }> => {
      const input = l.manifest.inputs[0]!;
      const feeds = { [input.name]: new ort.Tensor(t.data instanceof Uint8Array ? 'uint8' : 'float32', t.data, feedDimsOf(input, t.itemDims)) };
      const { out, ms } = await timedRun(l.session, feeds, l.ref);
      const tensors: Record<string, OutputTensor> = {};
      for (const [name, tensor] of Object.entries(out)) tensors[name] = { data: tensor.data as OutputTensor['data'], dims: [...tensor.dims] };
      const pre = l.manifest.preprocessing as ImagePreprocessing;
      try {
        return { dets: detect(l.manifest.postprocessing, tensors, l.session.outputNames, { classes: l.manifest.labels.length, inputWidth: pre.width, inputHeight: pre.height }, t.geometry!), ms };
      } catch (err) {
        throw new FleetError('EVALUATION_FAILED', `${l.ref.name}@${l.ref.version}: its outputs do not decode: ${(err as Error).message}`, { cause: err });
      }
    };
    if (all.length) {
      for (const l of loaded) {
        const t = await tensorOf(l, all[0]!.ex);
        for (let i = 0; i < (o.warmup ?? 5); i++) await run(l, t);
      }
    }
    const timedRuns = Math.max(1, o.timedRuns ?? 2);
    const every = Math.max(1, Math.floor(all.length / 10));
    for (const [i, { set, ex }] of all.entries()) {
      const tensors = new Map<string, Promise<ImageTensor>>();
      const best: Array<{ dets: RawDetection[]; ms: number }> = [];
      const order = [...loaded.keys()];
      for (let pass = 0; pass < timedRuns; pass++) {
        for (const k of pass % 2 === 0 ? order : [...order].reverse()) {
          const l = loaded[k]!;
          const key = JSON.stringify([l.manifest.preprocessing, l.manifest.postprocessing.letterbox ?? null]);
          let t = tensors.get(key);
          if (!t) tensors.set(key, (t = tensorOf(l, ex)));
          const r = await run(l, await t);
          const prev = best[k];
          best[k] = prev && prev.ms <= r.ms ? prev : r;
        }
      }
      for (const [k, l] of loaded.entries()) {
        const r = best[k]!;
        results[k]!.times.push(r.ms);
        results[k]![set].push({ truth: ex.boxes, predicted: r.dets.map((d) => ({ label: l.manifest.labels[d.cls] ?? String(d.cls), score: d.score, box: d.box })) });
      }
      if ((i + 1) % every === 0) {
        o.onProgress?.((i + 1) / all.length, `evaluated ${i + 1}/${all.length} holdout images`);
        await yieldLoop();
      }
    }
    return loaded.map((l, k) => {
      const r = results[k]!;
      const sorted = [...r.times].sort((a, b) => a - b);
      return {
        task: 'detection' as const,
        model: l.ref,
        labels: [...l.manifest.labels],
        clean: setMetrics(r.clean, l.manifest.labels),
        field: setMetrics(r.field, l.manifest.labels),
        latency: { p50_ms: quantile(sorted, 0.5), p95_ms: quantile(sorted, 0.95), runs: sorted.length },
      };
    });
  } finally {
    for (const l of loaded) await l.session.release().catch(() => undefined);
  }
}
