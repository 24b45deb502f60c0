import type { TensorValues } from '../../shared/inference/preprocess.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest, ModelRef, TensorSpec } from '../../shared/schemas/index.js';
import { AgentError } from '../errors.js';
import { InferencePool, type PoolSettings } from '../inference/pool.js';
import { classify, type Classification } from '../../shared/inference/postprocess.js';
import type { Geometry } from '../../shared/inference/detect.js';
import type { DetectionSpec } from '../inference/protocol.js';
import { imageToTensor, itemDimsOf, jsonToTensor, type InputTensor } from '../../shared/inference/preprocess.js';
import type { ModelPackage } from './package.js';

/**
 * What a model is run on: encoded image bytes, or tensor values (JSON numbers: one flat example,
 * a flat array with a shape, or rows; or a Float64Array, as large JSON bodies arrive from the
 * parser thread, agent/inputs/json-body.ts).
 */
export type ModelInput = { kind: 'image'; bytes: Uint8Array } | { kind: 'tensor'; tensor: TensorValues; shape?: number[] | undefined };

/** A box as results carry it: label, score, corners in original-image pixels. */
export interface Detection {
  label: string;
  score: number;
  box: [number, number, number, number];
}

export interface Prediction {
  /**
   * A classifier's answer. For a detector, the best box as a class answer (label, index and
   * score of the highest-scoring box; '' and 0 when none; topk the best boxes), so every reader
   * of a result keeps working.
   */
  classification: Classification;
  /** A detector's boxes and the count per label. */
  detection?: { detections: Detection[]; counts: Record<string, number>; image: { width: number; height: number } };
  stats?: { brightness: number; contrast: number };
  timings: { preprocessMs: number; queueMs: number; runMs: number; totalMs: number; batchSize: number; decodeMs?: number };
}

/** A detector's boxes as a class answer (see {@link Prediction.classification}). */
function bestBox(detections: readonly Detection[], labels: readonly string[], topK: number): Classification {
  const best = detections[0];
  const topk = detections.slice(0, topK).map((d) => ({ label: d.label, index: Math.max(0, labels.indexOf(d.label)), score: d.score }));
  return { probs: new Float32Array(0), topk, label: best?.label ?? '', index: topk[0]?.index ?? 0, score: best?.score ?? 0, margin: 1, entropy: 0 };
}

/**
 * A loaded model version: preprocessing built from its manifest, sessions in worker threads,
 * postprocessing. Reference-counted so a switch lets in-flight requests finish on it.
 */
/** Largest batch a JSON tensor request may hold. */
const MAX_JSON_BATCH = 64;

export class ModelRuntime {
  private refs = 0;
  private closing: Promise<void> | null = null;
  private idleWaiters: Array<() => void> = [];

  private constructor(
    readonly pkg: ModelPackage,
    private readonly pool: InferencePool,
    private readonly input: TensorSpec,
  ) {}

  static async load(pkg: ModelPackage, settings: PoolSettings): Promise<ModelRuntime> {
    const m = pkg.manifest;
    const input = m.inputs[0]!;
    const itemDims = itemDimsOf(input);
    if (itemDims.some((d) => d < 0)) throw new AgentError('MODEL_PACKAGE_INVALID', `input ${input.name} needs fixed dims${input.batch_dim === false ? '' : ' after the batch dim'}, got [${input.shape.join(',')}]`);
    let detection: DetectionSpec | undefined;
    if (m.task === 'detection') {
      if (m.preprocessing.kind !== 'image') throw new AgentError('MODEL_PACKAGE_INVALID', `detector ${m.name} must take images`);
      detection = { post: m.postprocessing, outputNames: m.outputs.map((o) => o.name), classes: m.labels.length, inputWidth: m.preprocessing.width, inputHeight: m.preprocessing.height };
    }
    const pool = await InferencePool.open(
      {
        bytes: pkg.modelBytes,
        inputName: input.name,
        inputType: input.dtype,
        itemDims,
        batchable: input.batch_dim !== false && typeof input.shape[0] === 'string',
        batchDim: input.batch_dim !== false,
        output: m.task === 'classification' ? (m.postprocessing.output ?? m.outputs[0]!.name) : m.outputs[0]!.name,
        detection,
      },
      settings,
    );
    return new ModelRuntime(pkg, pool, input);
  }

  get ref(): ModelRef {
    return this.pkg.ref;
  }

  /** Most numbers a JSON tensor request for this model may carry: a batch of up to 64 items, within a million values (one item always fits). */
  get maxTensorValues(): number {
    const item = itemDimsOf(this.input).reduce((a, d) => a * Math.max(1, d), 1);
    return Math.max(item, Math.min(item * MAX_JSON_BATCH, 1_000_000));
  }

  get manifest(): ModelManifest {
    return this.pkg.manifest;
  }

  get executionProvider(): string {
    return this.pool.executionProvider;
  }

  get fallbackReason(): string | undefined {
    return this.pool.fallbackReason;
  }

  /** Requests currently using this runtime (preprocessing or inference). */
  get busy(): number {
    return this.refs;
  }

  /** Turn input into tensors for this model; a batch of JSON rows gives several tensors. */
  async prepare(input: ModelInput): Promise<Array<{ data: InputTensor; stats?: { brightness: number; contrast: number }; geometry?: Geometry }>> {
    const m = this.pkg.manifest;
    if (input.kind === 'image') {
      if (m.preprocessing.kind !== 'image') throw new AgentError('INPUT_INVALID', `model ${m.name} takes tensors, not images`);
      if (m.task === 'detection') {
        const t = await imageToTensor(input.bytes, m.preprocessing, { withGeometry: true, padValue: m.postprocessing.letterbox?.pad_value ?? 0, out: this.pool.allocate() });
        return [{ data: t.data, stats: t.stats, ...(t.geometry ? { geometry: t.geometry } : {}) }];
      }
      const t = await imageToTensor(input.bytes, m.preprocessing, { out: this.pool.allocate() });
      return [{ data: t.data, stats: t.stats }];
    }
    if (m.task === 'detection') throw new AgentError('INPUT_INVALID', `model ${m.name} is a detector: it takes images`);
    const t = jsonToTensor(input.tensor, this.input, input.shape);
    const per = t.data.length / t.batch;
    return Array.from({ length: t.batch }, (_, i) => ({ data: t.data.slice(i * per, (i + 1) * per) }));
  }

  /** Predict every example in `input` (one for an image). */
  async predict(input: ModelInput): Promise<Prediction[]> {
    if (this.closing) throw new AgentError('ENGINE_CLOSED', 'model is being unloaded');
    this.refs++;
    try {
      const t0 = performance.now();
      const prepared = await this.prepare(input);
      const preprocessMs = performance.now() - t0;
      const m = this.pkg.manifest;
      return await Promise.all(
        prepared.map(async (p) => {
          const r = await this.pool.infer(p.data, p.geometry);
          let classification: Classification;
          let detection: Prediction['detection'];
          if (m.task === 'detection') {
            const detections = (r.detections ?? []).map((d) => ({ label: m.labels[d.cls] ?? String(d.cls), score: d.score, box: d.box }));
            const counts: Record<string, number> = {};
            for (const d of detections) counts[d.label] = (counts[d.label] ?? 0) + 1;
            detection = { detections, counts, image: { width: p.geometry?.width ?? 0, height: p.geometry?.height ?? 0 } };
            classification = bestBox(detections, m.labels, m.postprocessing.top_k);
          } else {
            classification = classify(r.scores, { softmax: m.postprocessing.softmax, topK: m.postprocessing.top_k, labels: m.labels });
          }
          return {
            classification,
            ...(detection ? { detection } : {}),
            ...(p.stats ? { stats: p.stats } : {}),
            timings: { preprocessMs, queueMs: r.queueMs, runMs: r.runMs, totalMs: performance.now() - t0, batchSize: r.batchSize, ...(r.decodeMs !== undefined ? { decodeMs: r.decodeMs } : {}) },
          };
        }),
      );
    } finally {
      this.refs--;
      if (this.refs === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** Run a few inferences so the first real request does not pay for lazy allocations. */
  async warmup(runs: number): Promise<void> {
    const size = itemDimsOf(this.input).reduce((a, b) => a * b, 1);
    for (let i = 0; i < runs; i++) await this.pool.infer(this.input.dtype === 'uint8' ? new Uint8Array(size) : new Float32Array(size));
  }

  /** The manifest's golden inputs must give their expected labels before this version may serve. */
  async smokeTest(): Promise<{ checked: number }> {
    const m = this.pkg.manifest;
    const failures: string[] = [];
    for (const [i, g] of m.golden.entries()) {
      let input: ModelInput;
      if (g.file) input = { kind: 'image', bytes: await readFile(join(this.pkg.dir, g.file)) };
      else if (g.tensor) input = { kind: 'tensor', tensor: g.tensor };
      else {
        failures.push(`golden[${i}] has neither file nor tensor`);
        continue;
      }
      try {
        const [p] = await this.predict(input);
        const c = p!.classification;
        if (p!.detection) {
          // A detector's golden frame: it runs, and when a label is expected, a box of it scores enough.
          const hit = g.expected_label === '' || p!.detection.detections.some((d) => d.label === g.expected_label && d.score >= g.min_score);
          if (!hit) failures.push(`golden[${i}]${g.file ? ` ${g.file}` : ''}: expected a ${g.expected_label} box (score >= ${g.min_score}), got ${JSON.stringify(p!.detection.counts)}`);
          continue;
        }
        if (c.label !== g.expected_label || c.score < g.min_score) failures.push(`golden[${i}]${g.file ? ` ${g.file}` : ''}: expected ${g.expected_label} (score >= ${g.min_score}), got ${c.label} (${c.score.toFixed(3)})`);
      } catch (err) {
        failures.push(`golden[${i}]: ${(err as Error).message}`);
      }
    }
    if (failures.length) throw new AgentError('MODEL_SMOKE_TEST_FAILED', `${m.name}@${m.version} failed its smoke test: ${failures.join('; ')}`, { details: { failures } });
    return { checked: m.golden.length };
  }

  /** Wait for in-flight requests, then release the sessions. */
  close(): Promise<void> {
    if (!this.closing) {
      this.closing = (async () => {
        if (this.refs > 0) await new Promise<void>((r) => this.idleWaiters.push(r));
        await this.pool.close();
      })();
    }
    return this.closing;
  }
}
