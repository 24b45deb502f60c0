import type { Logger } from 'pino';
import { newId, sha256Hex, type Clock, type Random } from '../shared/ids.js';
import { EdgeloopError } from '../shared/errors.js';
import { modelRefString, type InferResult, type ModelRef, type DetectionOutlierPolicy, type OutlierPolicy, type OutlierReason, type SampleMeta, type Telemetry } from '../shared/schemas/index.js';
import type { AlertPipeline } from './alerts/pipeline.js';
import { AgentError } from './errors.js';
import type { PoolSettings } from './inference/pool.js';
import { CONTENT_TYPES } from '../shared/inference/preprocess.js';
import { LatencyWindow, type Registry } from './metrics.js';
import type { ModelPackage } from './model/package.js';
import { ModelRuntime, type ModelInput, type Prediction } from './model/runtime.js';
import { DriftMonitor } from './outlier/drift.js';
import { CountHistory, boxStats, matchDetectionReasons } from './outlier/detection.js';
import { OutlierCapturePolicy, mergePolicy } from './outlier/policy.js';
import type { SampleQueue } from './queue/types.js';
import { TelemetryWindow } from './telemetry.js';

export type InputSource = SampleMeta['source'];

export interface InferContext {
  source: InputSource;
  origin?: string | undefined;
  requestId?: string | undefined;
  /** The camera's name (`inputs.cameras[].name`), for every frame from a camera. */
  camera?: string | undefined;
  /**
   * The image to store when this input is captured, instead of the model's input: a camera's
   * privacy-masked frame when the model is allowed to see the full one.
   */
  captureImage?: Uint8Array | undefined;
  /** The model slot asked for (`?model=NAME`, a message's `model`, a camera's `model`); absent: the default one. */
  model?: string | undefined;
}

interface Active {
  runtime: ModelRuntime;
  policy: OutlierCapturePolicy;
  drift: DriftMonitor;
  /** A detector's recent box counts, with its outlier policy (count changes, nothing found). */
  boxes: { history: CountHistory; policy: DetectionOutlierPolicy } | null;
}

export interface ServiceDeps {
  deviceId: string;
  clock: Clock;
  random: Random;
  log: Logger;
  metrics: Registry;
  /** Where captured samples go; null = capture disabled (one-shot CLI). */
  queue: SampleQueue | null;
  outlierOverrides?: Partial<OutlierPolicy>;
  /** Per model name, overrides on top of `outlierOverrides` (config `outlier_by_model`). */
  outlierByModel?: Readonly<Record<string, Partial<OutlierPolicy>>>;
  pool: PoolSettings;
  warmupRuns: number;
  /** Alert rules, run on every result after the caller has it (agent/alerts/). */
  alerts?: AlertPipeline | null;
  /**
   * Counters shared by every model slot of an agent (see {@link inferenceMetrics}); the slots'
   * owner registers the per-model gauges. Absent: this service registers its own.
   */
  sharedMetrics?: InferenceMetrics;
}

/** The inference counters of an agent, registered once however many model slots it serves. */
export function inferenceMetrics(r: Registry) {
  return {
    requests: r.counter('edgeloop_inference_requests_total', 'Inference requests by source and outcome'),
    latency: r.histogram('edgeloop_inference_latency_ms', 'End-to-end inference latency (preprocess + queue + run + postprocess)', [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]),
    captured: r.counter('edgeloop_samples_captured_total', 'Samples captured into the queue by reason'),
    captureFailed: r.counter('edgeloop_samples_capture_failed_total', 'Captures that could not be stored, by error code'),
    suppressed: r.counter('edgeloop_samples_suppressed_total', 'Outliers not kept because of rate limits, by reason'),
    switches: r.counter('edgeloop_model_switches_total', 'Model activations by outcome'),
  };
}
export type InferenceMetrics = ReturnType<typeof inferenceMetrics>;

/** The per-model gauges (active version, drift PSI) over every serving slot. */
export function registerModelGauges(r: Registry, services: () => readonly InferenceService[]): void {
  r.gauge('edgeloop_model_active_info', 'Active model version', () => services().flatMap((s) => (s.activeRef ? [{ labels: { model: s.activeRef.name, version: s.activeRef.version }, value: 1 }] : [])));
  r.gauge('edgeloop_drift_psi', 'Drift PSI against the manifest baseline, per model', () =>
    services().flatMap((s) => {
      const d = s.driftReport();
      const model = s.activeRef?.name ?? '';
      return d
        ? [
            { labels: { model, signal: 'class' }, value: d.class_psi },
            { labels: { model, signal: 'brightness' }, value: d.brightness_psi },
            { labels: { model, signal: 'contrast' }, value: d.contrast_psi },
            ...(['box_count', 'box_score', 'box_size'] as const).filter((k) => d[`${k}_psi`] !== undefined).map((k) => ({ labels: { model, signal: k }, value: d[`${k}_psi`] ?? null })),
          ]
        : [];
    }),
  );
}

function imageContentType(bytes: Uint8Array): string {
  if (bytes[0] === 0xff && bytes[1] === 0xd8) return CONTENT_TYPES.jpeg!;
  if (bytes[0] === 0x89 && bytes[1] === 0x50) return CONTENT_TYPES.png!;
  if (bytes[8] === 0x57 && bytes[9] === 0x45) return CONTENT_TYPES.webp!;
  return 'application/octet-stream';
}

/**
 * The inference path: active model -> prediction -> outlier decision -> durable capture ->
 * result. Model switches are atomic: a request uses the runtime that was active when it
 * arrived, and the old runtime is released only after its last request finished.
 */
/** Shadow-mode counts of one telemetry window. */
class ShadowWindow {
  private count = 0;
  private agreed = 0;
  private confidence = 0;
  private readonly latency = new LatencyWindow();
  errors = 0;

  record(agree: boolean, score: number, ms: number): void {
    this.count++;
    if (agree) this.agreed++;
    this.confidence += score;
    this.latency.add(ms);
  }

  recordError(): void {
    this.errors++;
  }

  take(): { count: number; agreement: number | null; confidence_mean: number | null; latency_p95_ms: number | null } {
    const lat = this.latency.take();
    const out = { count: this.count, agreement: this.count ? this.agreed / this.count : null, confidence_mean: this.count ? this.confidence / this.count : null, latency_p95_ms: lat.count ? lat.p95 : null };
    this.count = 0;
    this.agreed = 0;
    this.confidence = 0;
    return out;
  }
}

export class InferenceService {
  private active: Active | null = null;
  /** Set by close(): a model loaded after it is released at once (the agent is stopping). */
  private closed = false;
  private shadow: { runtime: ModelRuntime; sampleRate: number; window: ShadowWindow } | null = null;
  private readonly log: Logger;
  readonly window: TelemetryWindow;
  private readonly m: InferenceMetrics;

  constructor(private readonly deps: ServiceDeps) {
    this.log = deps.log.child({ component: 'inference' });
    this.window = new TelemetryWindow(() => deps.clock.now());
    if (deps.sharedMetrics) this.m = deps.sharedMetrics;
    else {
      this.m = inferenceMetrics(deps.metrics);
      registerModelGauges(deps.metrics, () => [this]);
    }
  }

  get activeRef(): ModelRef | null {
    return this.active?.runtime.ref ?? null;
  }

  get activeRuntime(): ModelRuntime | null {
    return this.active?.runtime ?? null;
  }

  driftReport(): ReturnType<DriftMonitor['report']> | null {
    return this.active?.drift.report() ?? null;
  }

  /** Load a runtime for a package, warm it up and run its smoke test, without serving it yet. */
  async prepare(pkg: ModelPackage): Promise<ModelRuntime> {
    this.refuseClosed(pkg.ref);
    const runtime = await ModelRuntime.load(pkg, this.deps.pool);
    try {
      // Closed while it loaded (the agent is stopping): released here, or its worker would outlive the agent.
      this.refuseClosed(pkg.ref);
      if (runtime.fallbackReason) this.log.warn({ model: modelRefString(pkg.ref), reason: runtime.fallbackReason }, 'execution provider unavailable; running on CPU');
      await runtime.warmup(this.deps.warmupRuns);
      const smoke = await runtime.smokeTest();
      // A package without golden inputs was loaded and warmed up, never checked: saying it
      // passed would hide a wrong preprocessing until the answers are wrong (issue 16).
      if (smoke.checked === 0) this.log.warn({ model: modelRefString(pkg.ref), golden: 0, provider: runtime.executionProvider }, 'model has no golden inputs: nothing to smoke-test (it loads and runs, its answers are unchecked); pack it with --golden FILE=LABEL');
      else this.log.info({ model: modelRefString(pkg.ref), golden: smoke.checked, provider: runtime.executionProvider }, 'model passed its smoke test');
      return runtime;
    } catch (err) {
      await runtime.close();
      throw err;
    }
  }

  /**
   * Switch to a prepared runtime. New requests go to it at once; the previous runtime finishes
   * what it has and is then released. No request fails because of the switch.
   */
  swap(runtime: ModelRuntime): ModelRef | null {
    this.releaseIfClosed(runtime);
    const m = runtime.manifest;
    const old = this.active;
    const overrides = { ...this.deps.outlierOverrides, ...this.deps.outlierByModel?.[m.name] };
    this.active = {
      runtime,
      policy: new OutlierCapturePolicy(mergePolicy(m.outlier, overrides), this.deps.clock, this.deps.random),
      drift: new DriftMonitor(m.drift_baseline, m.labels.length),
      boxes: null,
    };
    if (m.task === 'detection') {
      const policy = mergePolicy(m.outlier, overrides);
      this.active.boxes = { history: new CountHistory(policy.history), policy };
    }
    this.m.switches.inc({ outcome: 'activated' });
    this.log.info({ model: modelRefString(runtime.ref), previous: old ? modelRefString(old.runtime.ref) : null }, 'model activated');
    if (old) void old.runtime.close().catch((err: unknown) => this.log.error({ err }, 'releasing the previous model failed'));
    return old?.runtime.ref ?? null;
  }

  /** prepare + swap; a failure leaves the current model serving. */
  async activate(pkg: ModelPackage): Promise<ModelRef | null> {
    try {
      return this.swap(await this.prepare(pkg));
    } catch (err) {
      this.m.switches.inc({ outcome: 'rejected' });
      throw err;
    }
  }

  /** Infer one input (an image, or tensor rows); returns one result per example. */
  async infer(input: ModelInput, ctx: InferContext): Promise<InferResult[]> {
    const arrivedAt = this.deps.clock.now();
    const a = this.active;
    if (!a) {
      this.m.requests.inc({ source: ctx.source, outcome: 'no_model' });
      throw new AgentError('MODEL_NOT_LOADED', 'no model is active yet: roll one out to this device from the fleet (edgeloop rollouts create NAME@VERSION --target ...), or set models.initial in the agent config to a package directory');
    }
    let preds: Prediction[];
    try {
      preds = await a.runtime.predict(input);
    } catch (err) {
      this.window.recordError();
      this.m.requests.inc({ source: ctx.source, outcome: err instanceof AgentError ? err.code : 'error' });
      throw err;
    }
    const rows = input.kind === 'tensor' ? splitRows(input, preds.length) : null;
    const results = await Promise.all(preds.map((p, i) => this.finish(a, p, input, rows?.[i], ctx)));
    const alerts = this.deps.alerts;
    // The alert's frame is the one captures store: a camera's privacy-masked frame when the model saw the full one.
    const alertInput: ModelInput = input.kind === 'image' && ctx.captureImage ? { kind: 'image', bytes: ctx.captureImage } : input;
    if (alerts) results.forEach((r, i) => alerts.onResult(r, rows?.[i] ? { kind: 'tensor', tensor: rows[i] } : alertInput, ctx, arrivedAt));
    return results;
  }

  private async finish(a: Active, p: Prediction, input: ModelInput, row: TensorRow | undefined, ctx: InferContext): Promise<InferResult> {
    const c = p.classification;
    // A frame with no box has no predicted class: an index past the labels is not counted.
    a.drift.observe(p.detection && p.detection.detections.length === 0 ? a.runtime.manifest.labels.length : c.index, p.stats);
    const extra: OutlierReason[] = a.policy.drifting(() => a.drift.report()) ? ['drift'] : [];
    let decision: ReturnType<OutlierCapturePolicy['decide']>;
    if (p.detection && a.boxes) {
      const stats = boxStats(p.detection.detections, p.detection.image);
      a.drift.observeBoxes(stats);
      const { history, policy } = a.boxes;
      // Judged against the frames before this one, then this one joins the history.
      const habit = history.habit;
      decision = a.policy.decideDetection((random) => matchDetectionReasons(stats, policy, habit, random, extra));
      history.observe(stats.count);
    } else decision = a.policy.decide(c, extra);
    for (const r of decision.suppressed) this.m.suppressed.inc({ reason: r });
    const suppressed = [...decision.suppressed];
    let sampleId: string | undefined;
    if (decision.capture && this.deps.queue) {
      sampleId = await this.capture(a.runtime.ref, p, input, row, ctx, decision.reasons, decision.priority);
      if (!sampleId) suppressed.push(...decision.reasons);
    }
    const captured = sampleId !== undefined;
    this.maybeShadow(a, p, input, row, ctx);
    this.window.recordInference(p.timings.totalMs, c.score);
    this.m.latency.observe(p.timings.totalMs);
    this.m.requests.inc({ source: ctx.source, outcome: 'ok' });
    return {
      type: 'infer_result',
      v: 1,
      ...(ctx.requestId ? { request_id: ctx.requestId } : {}),
      label: c.label,
      index: c.index,
      score: c.score,
      topk: c.topk,
      model_name: a.runtime.ref.name,
      model_version: a.runtime.ref.version,
      latency_ms: p.timings.totalMs,
      outlier: { captured, reasons: decision.reasons, suppressed, ...(sampleId ? { sample_id: sampleId } : {}) },
      ...(p.detection ? { detections: p.detection.detections, counts: p.detection.counts, frame: p.detection.image } : {}),
    };
  }

  /**
   * Store a sample durably; resolves with its id once committed, or undefined when it could
   * not be kept (queue full of higher-priority items, storage failure). Never throws:
   * inference must not fail because storage did.
   */
  private async capture(model: ModelRef, p: Prediction, input: ModelInput, row: TensorRow | undefined, ctx: InferContext, reasons: OutlierReason[], priority: number, shadow?: SampleMeta['shadow']): Promise<string | undefined> {
    const queue = this.deps.queue;
    if (!queue) return undefined;
    const c = p.classification;
    const sampleId = newId('smp', this.deps.clock, this.deps.random);
    const blob = input.kind === 'image' ? (ctx.captureImage ?? input.bytes) : Buffer.from(JSON.stringify(Array.from(row ?? [])));
    const meta: SampleMeta = {
      sample_id: sampleId,
      device_id: this.deps.deviceId,
      captured_at: new Date(this.deps.clock.now()).toISOString(),
      model,
      reasons,
      priority,
      prediction: { label: c.label, index: c.index, score: c.score, topk: c.topk },
      input:
        input.kind === 'image'
          ? { kind: 'image', content_type: imageContentType(blob), sha256: sha256Hex(blob), bytes: blob.length }
          : { kind: 'tensor', sha256: sha256Hex(blob), bytes: blob.length, shape: [1, row?.length ?? 0] },
      ...(p.stats ? { input_stats: p.stats } : {}),
      source: ctx.source,
      ...(ctx.origin ? { origin: ctx.origin.slice(0, 512) } : {}),
      ...(shadow ? { shadow } : {}),
      ...(p.detection ? { detections: p.detection.detections.slice(0, 1000) } : {}),
    };
    try {
      // Durable before acknowledged: the result names the sample only once it is on disk.
      const res = await queue.enqueueAsync({ id: sampleId, kind: 'sample', priority, meta, blob });
      if (res.evicted.length) this.log.info({ evicted: res.evicted.length, for: sampleId }, 'queue quota reached; evicted lowest-priority oldest samples');
      if (!(res.accepted || res.duplicate)) {
        this.m.captureFailed.inc({ code: 'AGENT_QUEUE_FULL' });
        this.log.warn({ sample: sampleId, priority }, 'queue full of higher-priority samples; this one was not kept');
        return undefined;
      }
      for (const r of reasons) this.m.captured.inc({ reason: r });
      this.window.recordCapture(reasons);
      return sampleId;
    } catch (err) {
      const code = err instanceof EdgeloopError ? err.code : 'ERROR';
      this.m.captureFailed.inc({ code });
      this.log.error({ err, sample: sampleId, code }, 'capture failed; the result is still returned');
      return undefined;
    }
  }

  /** Run the shadow model (candidate of a rollout) on `sampleRate` of the inputs; see setShadow. */
  private maybeShadow(a: Active, p: Prediction, input: ModelInput, row: TensorRow | undefined, ctx: InferContext): void {
    const sh = this.shadow;
    if (!sh || this.deps.random() >= sh.sampleRate) return;
    const shadowInput: ModelInput = input.kind === 'tensor' && row ? { kind: 'tensor', tensor: row } : input;
    // Not awaited: the caller's answer (and latency) does not depend on the shadow model.
    void sh.runtime
      .predict(shadowInput)
      .then(async ([sp]) => {
        if (!sp || this.shadow !== sh) return;
        const agree = sp.classification.index === p.classification.index;
        sh.window.record(agree, sp.classification.score, sp.timings.totalMs);
        if (agree) return;
        const d = a.policy.decide({ score: 1, margin: 1, entropy: 0 }, ['shadow_disagreement']);
        if (!d.reasons.includes('shadow_disagreement')) return;
        await this.capture(a.runtime.ref, p, input, row, ctx, ['shadow_disagreement'], a.policy.priorityOf('shadow_disagreement'), {
          model: sh.runtime.ref,
          label: sp.classification.label,
          score: sp.classification.score,
        });
      })
      .catch((err: unknown) => {
        sh.window.recordError();
        this.log.warn({ reason: err instanceof Error ? err.message : String(err), shadow: modelRefString(sh.runtime.ref) }, 'shadow inference failed');
      });
  }

  /**
   * Run `runtime` in shadow beside the active model on a fraction of inputs: callers keep
   * getting the active model's answers; agreement, confidence and latency go to telemetry.
   * `null` stops shadowing (and releases the shadow runtime).
   */
  setShadow(runtime: ModelRuntime | null, sampleRate = 1): void {
    if (runtime) this.releaseIfClosed(runtime);
    const old = this.shadow;
    this.shadow = runtime ? { runtime, sampleRate, window: new ShadowWindow() } : null;
    if (old && old.runtime !== runtime) void old.runtime.close();
    if (runtime) this.log.info({ shadow: modelRefString(runtime.ref), sample_rate: sampleRate }, 'shadow mode on');
  }

  get shadowRef(): ModelRef | null {
    return this.shadow?.runtime.ref ?? null;
  }

  /** Shadow statistics of the current telemetry window (and start a new one). */
  takeShadowTelemetry(): Telemetry['shadow'] {
    const sh = this.shadow;
    return sh ? { model: sh.runtime.ref, ...sh.window.take() } : undefined;
  }

  /** Throws ENGINE_CLOSED once the service closed: nothing may be loaded into it any more. */
  private refuseClosed(ref: ModelRef): void {
    if (this.closed) throw new AgentError('ENGINE_CLOSED', `the inference service is closed (the agent is stopping): ${modelRefString(ref)} is not loaded`);
  }

  /** A runtime handed to a closed service is released (its worker threads end) and refused. */
  private releaseIfClosed(runtime: ModelRuntime): void {
    if (!this.closed) return;
    void runtime.close().catch((err: unknown) => this.log.error({ err }, 'releasing a model loaded while the agent stopped failed'));
    this.refuseClosed(runtime.ref);
  }

  async close(): Promise<void> {
    this.closed = true;
    const a = this.active;
    const sh = this.shadow;
    this.active = null;
    this.shadow = null;
    await Promise.all([a?.runtime.close(), sh?.runtime.close()]);
  }
}

/** One example's values of a tensor input. */
type TensorRow = number[] | Float64Array;

/** The rows of a tensor input, one per prediction (a flat array with a batch shape is cut evenly; a Float64Array into views, not copies). */
function splitRows(input: Extract<ModelInput, { kind: 'tensor' }>, count: number): TensorRow[] {
  const t = input.tensor;
  if (!(t instanceof Float64Array) && Array.isArray(t[0])) return t as number[][];
  const flat = t as number[] | Float64Array;
  const per = flat.length / Math.max(1, count);
  return Array.from({ length: count }, (_, i) => (flat instanceof Float64Array ? flat.subarray(i * per, (i + 1) * per) : flat.slice(i * per, (i + 1) * per)));
}
