/**
 * Evaluation of model packages on the holdouts with real ONNX Runtime sessions and the agent's
 * own preprocessing and postprocessing (shared/inference), so what the gate judges is what a
 * device would answer. Several models are evaluated together, example by example in turn, so
 * a burst of load on a shared host slows all of them alike and the latency ratio stays fair.
 * Each example is timed twice per model, in mirrored order (A B, then B A), and the faster
 * run counts: a stall of a few milliseconds (another process taking the core) lands on one run
 * of one model and would otherwise decide a p95, while a model that is really slower is slower
 * in both runs. Without it a gate on a loaded 2-core host rejected a candidate whose p95 went
 * from 2.7 to 6.6 ms on the same weights' shape.
 *
 * Sessions run on this thread (ORT's Node binding blocks it for each run); the loop yields to
 * the event loop between examples, so a fleet service evaluating a small model stays
 * responsive. Latency is `session.run` alone, measured with `process.hrtime`.
 */
import '../../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import * as ort from 'onnxruntime-node';
import { classify } from '../../../shared/inference/postprocess.js';
import { feedDimsOf, imageToTensor, jsonToTensor } from '../../../shared/inference/preprocess.js';
import type { InputTensor } from '../../../shared/inference/preprocess.js';
import { readPackageDir, type TaskManifest, type VerifiedPackage } from '../../../shared/package/index.js';
import type { ModelManifest, ModelRef } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';
import type { GateInput, SetMetrics } from '../../core/training/gate.js';
import type { BoxLabel } from './trainer.js';

/** One holdout example: input bytes as a device captured them, and its true label (its true boxes for a detector). */
export interface EvalExample {
  id: string;
  label: string;
  bytes: Uint8Array;
  boxes?: readonly BoxLabel[];
}

export interface HoldoutSets {
  clean: readonly EvalExample[];
  field: readonly EvalExample[];
}

/** Accuracy of one holdout with its confusion matrix (rows: true label, columns: predicted, in `labels` order). */
export interface SetReport extends SetMetrics {
  confusion: number[][];
  /** Examples whose true label is not one of the model's classes (counted as wrong). */
  unknown_labels: number;
}

/** The evaluation of one model: what the gate reads, plus the confusion matrices. */
export interface ModelReport extends GateInput {
  model: ModelRef;
  labels: string[];
  clean: SetReport;
  field: SetReport;
  latency: { p50_ms: number; p95_ms: number; runs: number };
}

export interface EvaluateOptions {
  /** Untimed runs per model before measuring. Default 5. */
  warmup?: number;
  /** ORT intra-op threads per session. Default 1: the host's cores are shared with the service. */
  intraOpThreads?: number;
  /** Timed runs per example and model, the fastest counting (see the module comment). Default 2. */
  timedRuns?: number;
  /** Called every `every` examples with the fraction done. */
  onProgress?(fraction: number, message: string): void;
}

interface Loaded {
  ref: ModelRef;
  manifest: TaskManifest<'classification'>;
  session: ort.InferenceSession;
  inputName: string;
  outputName: string;
  dims: (batchOf: number[]) => number[];
}

/**
 * Read and verify a package (shared/package: the rules and file hashes a device applies), so
 * what is measured is what a device would run. Throws `FLEET_EVALUATION_FAILED` with the
 * package refusal as `cause`.
 */
export async function readVerifiedPackage(dir: string): Promise<VerifiedPackage> {
  try {
    return await readPackageDir(dir);
  } catch (err) {
    throw new FleetError('EVALUATION_FAILED', `cannot read the model package in ${dir}: ${(err as Error).message}`, { cause: err });
  }
}

/** The manifest of a verified package (see {@link readVerifiedPackage}). Throws `FLEET_EVALUATION_FAILED`. */
export async function readPackageManifest(dir: string): Promise<ModelManifest> {
  return (await readVerifiedPackage(dir)).manifest;
}

async function load(m: { ref: ModelRef; dir: string }, threads: number): Promise<Loaded> {
  const { manifest, modelBytes } = await readVerifiedPackage(m.dir);
  // Detectors are scored by mAP in evaluate-detection.ts.
  if (manifest.task !== 'classification') throw new FleetError('EVALUATION_FAILED', `${m.ref.name}@${m.ref.version} is a ${manifest.task} model; accuracy scores classifiers (evaluateDetectionModels scores detectors)`);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelBytes, {
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    });
  } catch (err) {
    throw new FleetError('EVALUATION_FAILED', `ONNX Runtime cannot load ${m.ref.name}@${m.ref.version}: ${(err as Error).message}`, { cause: err });
  }
  const input = manifest.inputs[0]!;
  const outputName = manifest.postprocessing.output ?? manifest.outputs[0]!.name;
  return { ref: m.ref, manifest, session, inputName: input.name, outputName, dims: (item) => feedDimsOf(input, item) };
}

async function tensorOf(l: Loaded, bytes: Uint8Array): Promise<{ data: InputTensor; dims: number[] }> {
  const p = l.manifest.preprocessing;
  try {
    if (p.kind === 'image') {
      const t = await imageToTensor(bytes, p);
      return { data: t.data, dims: l.dims(t.itemDims) };
    }
    const json = JSON.parse(Buffer.from(bytes).toString('utf8')) as number[] | number[][];
    const t = jsonToTensor(json, l.manifest.inputs[0]!);
    return { data: t.data, dims: [t.batch, ...t.itemDims] };
  } catch (err) {
    throw new FleetError('EVALUATION_FAILED', `an example does not preprocess for ${l.ref.name}@${l.ref.version}: ${(err as Error).message}`, { cause: err });
  }
}

function emptySet(labels: readonly string[]): SetReport {
  return {
    count: 0,
    correct: 0,
    accuracy: 0,
    per_class: Object.fromEntries(labels.map((l) => [l, { count: 0, correct: 0, accuracy: 0 }])),
    confusion: labels.map(() => labels.map(() => 0)),
    unknown_labels: 0,
  };
}

function finish(s: SetReport): void {
  s.accuracy = s.count ? s.correct / s.count : 0;
  for (const c of Object.values(s.per_class)) c.accuracy = c.count ? c.correct / c.count : 0;
}

/** The q-quantile (nearest rank) of sorted values. */
/** One `session.run`, timed (`session.run` alone, as the evaluation reports latency); a failure is EVALUATION_FAILED naming the model. */
export async function timedRun(session: ort.InferenceSession, feeds: ort.InferenceSession.FeedsType, ref: ModelRef): Promise<{ out: ort.InferenceSession.ReturnType; ms: number }> {
  const t0 = process.hrtime.bigint();
  try {
    const out = await session.run(feeds);
    return { out, ms: Number(process.hrtime.bigint() - t0) / 1e6 };
  } catch (err) {
    throw new FleetError('EVALUATION_FAILED', `${ref.name}@${ref.version} failed to run: ${(err as Error).message}`, { cause: err });
  }
}

export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] as number;
}

const yieldLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Evaluate every model on both holdouts: accuracy, per-class accuracy, confusion matrices,
 * latency p50/p95 of `session.run`. Reports come back in the order of `models`.
 * Throws `FLEET_EVALUATION_FAILED` when a model does not load or an example does not decode.
 */
export async function evaluateModels(models: ReadonlyArray<{ ref: ModelRef; dir: string }>, sets: HoldoutSets, o: EvaluateOptions = {}): Promise<ModelReport[]> {
  const loaded: Loaded[] = [];
  try {
    for (const m of models) loaded.push(await load(m, o.intraOpThreads ?? 1));
    const reports = loaded.map((l) => ({ clean: emptySet(l.manifest.labels), field: emptySet(l.manifest.labels), times: [] as number[] }));
    const all: Array<{ set: 'clean' | 'field'; ex: EvalExample }> = [...sets.clean.map((ex) => ({ set: 'clean' as const, ex })), ...sets.field.map((ex) => ({ set: 'field' as const, ex }))];
    const run = async (l: Loaded, t: { data: InputTensor; dims: number[] }): Promise<{ scores: Float32Array; ms: number }> => {
      const feeds = { [l.inputName]: new ort.Tensor(t.data instanceof Uint8Array ? 'uint8' : 'float32', t.data, t.dims) };
      const { out, ms } = await timedRun(l.session, feeds, l.ref);
      const tensor = out[l.outputName];
      if (!tensor) throw new FleetError('EVALUATION_FAILED', `${l.ref.name}@${l.ref.version} has no output ${l.outputName}`);
      return { scores: tensor.data as Float32Array, ms };
    };
    // Warm-up on the first example: first runs allocate and are not what a device sees.
    if (all.length) {
      for (const l of loaded) {
        const t = await tensorOf(l, all[0]!.ex.bytes);
        for (let i = 0; i < (o.warmup ?? 5); i++) await run(l, t);
      }
    }
    const every = Math.max(1, Math.floor(all.length / 10));
    const timedRuns = Math.max(1, o.timedRuns ?? 2);
    // Candidate and production usually share their preprocessing: decode each example once per distinct one.
    const prepKey = loaded.map((l) => JSON.stringify([l.manifest.preprocessing, l.manifest.inputs[0]]));
    for (const [i, { set, ex }] of all.entries()) {
      const tensors = new Map<string, Promise<{ data: InputTensor; dims: number[] }>>();
      const results: Array<{ scores: Float32Array; ms: number }> = [];
      const order = [...loaded.keys()];
      for (let pass = 0; pass < timedRuns; pass++) {
        for (const k of pass % 2 === 0 ? order : [...order].reverse()) {
          const l = loaded[k]!;
          const key = prepKey[k]!;
          let t = tensors.get(key);
          if (!t) tensors.set(key, (t = tensorOf(l, ex.bytes)));
          const r = await run(l, await t);
          const prev = results[k];
          results[k] = prev && prev.ms <= r.ms ? prev : r;
        }
      }
      for (const [k, l] of loaded.entries()) {
        const r = results[k]!;
        const rep = reports[k]!;
        rep.times.push(r.ms);
        const c = classify(r.scores, { softmax: l.manifest.postprocessing.softmax, topK: 1, labels: l.manifest.labels });
        const s = rep[set];
        s.count++;
        const truth = l.manifest.labels.indexOf(ex.label);
        if (truth < 0) {
          s.unknown_labels++;
          continue;
        }
        const cls = s.per_class[ex.label]!;
        cls.count++;
        (s.confusion[truth] as number[])[c.index] = ((s.confusion[truth] as number[])[c.index] ?? 0) + 1;
        if (c.index === truth) {
          s.correct++;
          cls.correct++;
        }
      }
      if ((i + 1) % every === 0) {
        o.onProgress?.((i + 1) / all.length, `evaluated ${i + 1}/${all.length} holdout examples`);
        await yieldLoop();
      }
    }
    return loaded.map((l, k) => {
      const rep = reports[k]!;
      finish(rep.clean);
      finish(rep.field);
      const sorted = [...rep.times].sort((a, b) => a - b);
      return { model: l.ref, labels: [...l.manifest.labels], clean: rep.clean, field: rep.field, latency: { p50_ms: quantile(sorted, 0.5), p95_ms: quantile(sorted, 0.95), runs: sorted.length } };
    });
  } finally {
    for (const l of loaded) await l.session.release().catch(() => undefined);
  }
}
