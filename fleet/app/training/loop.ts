/**
 * The learning loop's orchestrator: trigger policy -> dataset version -> Trainer -> registry
 * (with lineage) -> evaluation against the production model on both holdouts -> gate ->
 * rejected (kept, with reasons) or accepted -> optional automatic rollout with the model's
 * default plan. Every run and every trigger firing is recorded (fleet/app/training/runs.ts), and
 * every candidate's evaluation report is stored as an artifact.
 *
 * I/O sits behind what the constructor receives: trainers (the `Trainer` port), the base-set
 * source, the registry, datasets, the rollout manager, the device registry; time comes from
 * the clock and ids from the random source.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { EdgeloopError } from '../../../shared/errors.js';
import { newId, sha256Hex } from '../../../shared/ids.js';
import type { Clock, Random } from '../../../shared/ids.js';
import { modelName } from '../../../shared/schemas/index.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import { canonicalJson } from '../../../shared/signing.js';
import type { ArtifactStore } from '../artifacts.js';
import type { DeviceRecord } from '../../core/devices/state.js';
import { FleetError } from '../../errors.js';
import { baseRef } from '../../core/labels/dataset-schema.js';
import type { BaseRef, DatasetManifest } from '../../core/labels/dataset-schema.js';
import type { Datasets } from '../labels/datasets.js';
import type { Labels } from '../labels/labels.js';
import { DEFAULT_HOLDOUT_RULE, holdoutRule } from '../../core/labels/split.js';
import type { ModelRegistry, ModelVersion } from '../models/registry.js';
import { MANIFEST_FILE } from '../models/registry.js';
import { bumpMinor, compareSemver } from '../../../shared/semver.js';
import type { RolloutManager } from '../rollouts/manager.js';
import { rolloutPlan } from '../../core/rollouts/plan-schema.js';
import { evaluateModels, readPackageManifest } from './evaluate.js';
import type { EvalExample, ModelReport } from './evaluate.js';
import { gateConfig, judge } from '../../core/training/gate.js';
import type { GateVerdict } from '../../core/training/gate.js';
import type { TrainingRun, TrainingRuns } from './runs.js';
import type { Trainer, TrainingExample } from './trainer.js';
import { decideTrigger, triggerPolicy } from '../../core/training/triggers.js';
import type { DriftPoint, TriggerDecision, TriggerKind } from '../../core/training/triggers.js';

/** Where base-set references (`{ source: 'mnist', offset, count }`) resolve to examples. */
export interface BaseSetSource {
  /** The examples a reference names, in a fixed order with stable ids. Throws `FLEET_BASE_SET_INVALID`. */
  examples(ref: BaseRef): Promise<TrainingExample[]>;
}

/** The training configuration of one model. */
export const loopModelConfig = z.strictObject({
  name: modelName.describe('The model name in the registry.'),
  labels: z.array(z.string().min(1)).min(2).optional().describe("Class labels when the model has no registered version yet (else the production model's)."),
  trainer: z.string().min(1).default('local').describe('Trainer of its runs: `local`, `command` or `sagemaker`, one the mode provides.'),
  params: z.record(z.string(), z.unknown()).default({}).describe("Trainer parameters, passed as they are (the local trainer's recipe: `epochs`, `batchSize`, `lr`, `augment`...; a key it does not know is `INPUT_INVALID`)."),
  seed: z.number().int().nonnegative().default(1).describe('Seed of every run: with the local trainer the same examples, params and seed give a bit-identical `model.onnx`.'),
  base: z.array(baseRef).default([]).describe('The base set by reference: `train` slices and the `clean_holdout` slice(s).'),
  holdout: holdoutRule
    .default(DEFAULT_HOLDOUT_RULE)
    .describe("How field samples are split into `train` and `field_holdout`: a rule fixed before training and recorded in the dataset manifest. A sample keeps the split the model's previous dataset version gave it; the holdouts never reach a trainer."),
  triggers: triggerPolicy.default(triggerPolicy.parse({})).describe('When a run starts by itself (a person can always start one); a condition set to null is off.'),
  gate: gateConfig
    .default(gateConfig.parse({}))
    .describe('The evaluation gate a candidate must pass against the production model, on the clean and field holdouts. Boundaries count as passing; with no production model only the field-holdout check applies.'),
  auto_promote: z
    .strictObject({ selector: z.record(z.string(), z.string()).describe('Device tags the rollout targets.'), plan: rolloutPlan.describe('The rollout plan (shadow, canary, waves, gates), as the rollouts API takes it.') })
    .nullable()
    .default(null)
    .describe('Opt-in: a candidate that passes the gate starts a rollout to `selector` with `plan` (null: off). A rollout that cannot start leaves the run accepted with the error recorded.'),
  evaluation: z
    .strictObject({
      warmup: z.number().int().nonnegative().default(5).describe('Runs per model before latency is measured.'),
      intra_op_threads: z.number().int().positive().default(1).describe('ONNX Runtime intra-op threads of the evaluation sessions.'),
    })
    .default({ warmup: 5, intra_op_threads: 1 })
    .describe('How candidate and production models are evaluated: both run on the same examples in turn with ONNX Runtime on the fleet host.'),
});
export type LoopModelConfig = z.output<typeof loopModelConfig>;
export type LoopModelConfigInput = z.input<typeof loopModelConfig>;

export type LoopPhase = 'queued' | 'dataset' | 'train' | 'push' | 'evaluate' | 'gate' | 'rollout' | 'done' | 'failed';

/** One progress line of a run, for the CLI and the console. */
export interface LoopProgress {
  seq: number;
  run: string;
  model: string;
  phase: LoopPhase;
  at: string;
  message: string;
  fraction?: number;
  metrics?: Record<string, number>;
}

export interface LearningLoopDeps {
  /** How many new labels a model's samples got (the label-count trigger). */
  labels: Pick<Labels, 'labeledSince'>;
  artifacts: ArtifactStore;
  registry: ModelRegistry;
  datasets: Datasets;
  /** Automatic promotion starts rollouts here. */
  rollouts: Pick<RolloutManager, 'create'>;
  /** Devices: drift histories for the trigger policy and which version is in production. */
  devices?: { list(filter?: Record<string, never>): DeviceRecord[] };
  /** Trainers by name (`local`, `command`, `sagemaker`). */
  trainers: Readonly<Record<string, Trainer>>;
  base: BaseSetSource;
  models: readonly LoopModelConfigInput[];
  /** Scratch space for packages during a run (removed after each run). */
  workDir: string;
  clock: Clock;
  log: Logger;
  random?: Random;
  /** Passed to trainers that sign; the registry re-signs on push anyway. */
  signKeyPem?: string;
  /** The training-run records (the context's). */
  runs: TrainingRuns;
}

export interface TrainOptions {
  /** Default: the only configured model (an error when there are several). */
  model?: string;
  /** Override the configured trainer for this run. */
  trainer?: string;
  actor: string;
  /** Why (recorded with the manual firing). */
  note?: string;
  onProgress?(p: LoopProgress): void;
}

/** What a policy tick decided for one model. */
export interface TickResult {
  model: string;
  decision: TriggerDecision | null;
  /** Set when the tick started a run. */
  run?: string;
  skipped?: string;
}

const PROGRESS_KEEP = 500;
const DRIFT_KEEP = 2000;

/** What the service (or a demo) adds to the fleet's context to run the loop. */
export interface LoopSetup {
  trainers: Readonly<Record<string, Trainer>>;
  base: BaseSetSource;
  models: readonly LoopModelConfigInput[];
  workDir: string;
  signKeyPem?: string;
  random?: Random;
}

/** Write a registered version's package (signed manifest + files) into `dir`. */
export async function exportRegisteredPackage(registry: ModelRegistry, artifacts: ArtifactStore, v: ModelVersion, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MANIFEST_FILE), await registry.manifestBytes(v.name, v.version));
  for (const f of v.files) {
    const target = join(dir, f.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await artifacts.get(f.sha256));
  }
  return dir;
}

/** The next minor version after every version of the model (registered or rejected). */
export function nextVersion(versions: readonly string[]): string {
  if (versions.length === 0) return '1.0.0';
  return bumpMinor(versions.reduce((a, b) => (compareSemver(a, b) >= 0 ? a : b)));
}

/** Fingerprint of resolved base examples: ids, labels and byte hashes, in order. */
export function baseContentSha(examples: readonly TrainingExample[]): string {
  return sha256Hex(canonicalJson(examples.map((e) => [e.id, e.label, sha256Hex(e.bytes)])));
}

interface Active {
  run: string;
  abort: AbortController;
  done: Promise<TrainingRun>;
}

/**
 * The learning loop. One run per model at a time; runs of different models may overlap.
 * `trainNow` is the manual trigger; `tick` applies each model's trigger policy (call it on an
 * interval, or use `startTicking`).
 */
export class LearningLoop {
  readonly runs: TrainingRuns;
  private readonly configs = new Map<string, LoopModelConfig>();
  private readonly active = new Map<string, Active>();
  private readonly progressLog = new Map<string, LoopProgress[]>();
  private readonly drift = new Map<string, Map<string, DriftPoint[]>>();
  private readonly startedAt: number;
  private seq = 0;
  private ticker: NodeJS.Timeout | null = null;
  private readonly listeners = new Set<(p: LoopProgress) => void>();
  private readonly log: Logger;

  constructor(private readonly deps: LearningLoopDeps) {
    for (const m of deps.models) {
      const c = loopModelConfig.parse(m);
      this.configs.set(c.name, c);
    }
    this.runs = deps.runs;
    this.startedAt = deps.clock.now();
    this.log = deps.log.child({ component: 'learning-loop' });
    const interrupted = this.runs.failInterrupted();
    if (interrupted) this.log.warn({ runs: interrupted }, 'training runs interrupted by a restart were marked failed');
  }

  /** Names of the configured models. */
  models(): string[] {
    return [...this.configs.keys()];
  }

  /** A model's training configuration. Throws `FLEET_TRAINING_NOT_CONFIGURED`. */
  config(name: string): LoopModelConfig {
    const c = this.configs.get(name);
    if (!c) throw new FleetError('TRAINING_NOT_CONFIGURED', `no training is configured for model ${name} (configured: ${this.models().join(', ') || 'none'})`, { details: { model: name } });
    return c;
  }

  /** Models with a run in progress, with its id. */
  running(): Array<{ model: string; run: string }> {
    return [...this.active.entries()].map(([model, a]) => ({ model, run: a.run }));
  }

  /** Progress lines of a run (kept in memory, the last 500), after `afterSeq`. */
  progress(runId: string, afterSeq = 0): LoopProgress[] {
    return (this.progressLog.get(runId) ?? []).filter((p) => p.seq > afterSeq);
  }

  /**
   * Progress of every run (manual and policy-triggered alike), for the console and the demo's
   * terminal; returns the unsubscribe function. A listener that throws is logged and ignored.
   */
  subscribe(listener: (p: LoopProgress) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** A drift observation of a device running `model` (the tick also samples the device registry). */
  observeDrift(o: { device: string; model: string; at: number; psi: number }): void {
    const byDevice = this.drift.get(o.model) ?? new Map<string, DriftPoint[]>();
    this.drift.set(o.model, byDevice);
    const pts = byDevice.get(o.device) ?? [];
    const last = pts.at(-1);
    if (last && last.at >= o.at) return;
    pts.push({ at: o.at, psi: o.psi });
    if (pts.length > DRIFT_KEEP) pts.splice(0, pts.length - DRIFT_KEEP);
    byDevice.set(o.device, pts);
  }

  /** Manual trigger: records the firing, runs, resolves with the finished run (accepted, rejected or failed). */
  async trainNow(o: TrainOptions): Promise<TrainingRun> {
    return (await this.begin(o)).done;
  }

  /**
   * Manual trigger that returns once the run is recorded (`running`), with a promise of its end:
   * what the HTTP API answers with. Throws `FLEET_TRAINING_NOT_CONFIGURED`, `FLEET_TRAINER_UNKNOWN`,
   * `FLEET_TRAINING_IN_PROGRESS` before anything is recorded.
   */
  async begin(o: TrainOptions): Promise<{ run: TrainingRun; done: Promise<TrainingRun> }> {
    const name = o.model ?? this.onlyModel();
    const decision = decideTrigger({ now: this.deps.clock.now(), lastRunAt: null, startedAt: this.startedAt, newLabels: 0, drift: [], manual: { actor: o.actor, ...(o.note ? { note: o.note } : {}) } }, this.config(name).triggers);
    return this.launch(name, { kind: 'manual', reason: decision.reason, details: decision.details }, o);
  }

  /**
   * Apply every model's trigger policy once: sample drift from the device registry, build the
   * snapshot, decide, and start a run for each model whose policy fires (not awaited; see
   * `settled`). Every firing is recorded with its reason.
   */
  async tick(): Promise<TickResult[]> {
    this.sampleDevices();
    const out: TickResult[] = [];
    for (const c of this.configs.values()) {
      if (this.active.has(c.name)) {
        out.push({ model: c.name, decision: null, skipped: 'a run is in progress' });
        continue;
      }
      const last = this.runs.lastOf(c.name);
      const lastRunAt = last ? Date.parse(last.started_at) : null;
      const newLabels = this.deps.labels.labeledSince(c.name, lastRunAt ?? -1);
      const drift = [...(this.drift.get(c.name)?.entries() ?? [])].map(([device, points]) => ({ device, points }));
      const decision = decideTrigger({ now: this.deps.clock.now(), lastRunAt, startedAt: this.startedAt, newLabels, drift }, c.triggers);
      if (!decision.fire || !decision.kind) {
        out.push({ model: c.name, decision });
        continue;
      }
      const { run } = await this.launch(c.name, { kind: decision.kind, reason: decision.reason, details: decision.details }, { actor: 'learning-loop' });
      out.push({ model: c.name, decision, run: run.id });
    }
    return out;
  }

  /** Tick every `intervalMs` (unref'd timer). */
  startTicking(intervalMs: number): void {
    this.stopTicking();
    this.ticker = setInterval(() => {
      this.tick().catch((err: unknown) => this.log.error({ err }, 'learning-loop tick failed'));
    }, intervalMs);
    this.ticker.unref();
  }

  stopTicking(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = null;
  }

  /** Resolves when no run is in progress. */
  async settled(): Promise<void> {
    while (this.active.size) await Promise.allSettled([...this.active.values()].map((a) => a.done));
  }

  /** Stop ticking, abort running trainers, wait for the runs to be recorded. */
  async stop(): Promise<void> {
    this.stopTicking();
    for (const a of this.active.values()) a.abort.abort();
    await this.settled();
  }

  // ------------------------------------------------------------------------------------------

  private onlyModel(): string {
    const names = this.models();
    if (names.length === 1) return names[0] as string;
    throw new FleetError('INPUT_INVALID', names.length === 0 ? 'no model is configured for training' : `several models are configured for training (${names.join(', ')}): name one`);
  }

  private sampleDevices(): void {
    if (!this.deps.devices) return;
    for (const d of this.deps.devices.list({})) {
      const model = d.models.active?.name;
      if (!model || !this.configs.has(model) || !d.health || !d.last_seen) continue;
      const p = d.health.drift_psi;
      const values = [p.class, p.brightness, p.contrast].filter((x): x is number => x !== null);
      if (values.length) this.observeDrift({ device: d.id, model, at: Date.parse(d.last_seen), psi: Math.max(...values) });
    }
  }

  /** The version in production: the one most devices run, else the highest registered one. */
  private production(name: string): ModelVersion | null {
    const votes = new Map<string, number>();
    for (const d of this.deps.devices?.list({}) ?? []) {
      const a = d.models.active;
      if (a && a.name === name) votes.set(a.version, (votes.get(a.version) ?? 0) + 1);
    }
    const ranked = [...votes.entries()].sort((a, b) => b[1] - a[1] || compareSemver(b[0], a[0]));
    for (const [version] of ranked) {
      // null: a device runs a version this registry does not hold; ask the next.
      const v = this.deps.registry.find(name, version);
      if (v) return v;
    }
    return this.deps.registry.latest(name);
  }

  private async launch(name: string, trigger: { kind: TriggerKind; reason: string; details: Record<string, unknown> }, o: TrainOptions): Promise<{ run: TrainingRun; done: Promise<TrainingRun> }> {
    const c = this.config(name);
    const trainerName = o.trainer ?? c.trainer;
    const trainer = this.deps.trainers[trainerName];
    if (!trainer) throw new FleetError('TRAINER_UNKNOWN', `no trainer ${trainerName} (available: ${Object.keys(this.deps.trainers).join(', ') || 'none'})`, { details: { trainer: trainerName } });
    const busy = this.active.get(name);
    if (busy) throw new FleetError('TRAINING_IN_PROGRESS', `training run ${busy.run} of ${name} is still running`, { details: { run: busy.run } });
    const parent = this.production(name);
    const id = newId('run', this.deps.clock, this.deps.random);
    const run = this.runs.start({ id, model: name, trainer: trainerName, params: c.params, seed: c.seed, trigger: { kind: trigger.kind, reason: trigger.reason }, actor: o.actor, parent: parent ? { name: parent.name, version: parent.version } : null });
    this.runs.recordFiring({ model: name, kind: trigger.kind, reason: trigger.reason, details: trigger.details, run_id: id });
    this.log.info({ run: id, model: name, trigger: trigger.kind, reason: trigger.reason, trainer: trainerName }, 'training run started');
    const abort = new AbortController();
    const emit = (phase: LoopPhase, message: string, extra: { fraction?: number; metrics?: Record<string, number> } = {}): void => {
      const p: LoopProgress = { seq: ++this.seq, run: id, model: name, phase, at: new Date(this.deps.clock.now()).toISOString(), message, ...extra };
      const list = this.progressLog.get(id) ?? [];
      list.push(p);
      if (list.length > PROGRESS_KEEP) list.splice(0, list.length - PROGRESS_KEEP);
      this.progressLog.set(id, list);
      for (const l of [...(o.onProgress ? [o.onProgress] : []), ...this.listeners]) {
        try {
          l(p);
        } catch (err) {
          this.log.warn({ run: id, err }, 'a progress listener threw');
        }
      }
    };
    emit('queued', `run ${id} of ${name}: ${trigger.reason}`);
    const done = this.execute(run, c, trainer, parent, abort.signal, emit).finally(() => this.active.delete(name));
    this.active.set(name, { run: id, abort, done });
    return { run, done };
  }

  private async execute(run: TrainingRun, c: LoopModelConfig, trainer: Trainer, parent: ModelVersion | null, signal: AbortSignal, emit: (phase: LoopPhase, message: string, extra?: { fraction?: number; metrics?: Record<string, number> }) => void): Promise<TrainingRun> {
    const work = join(this.deps.workDir, run.id);
    try {
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      const parentDir = parent ? await exportRegisteredPackage(this.deps.registry, this.deps.artifacts, parent, join(work, 'parent')) : null;
      const labels = parent ? (await readPackageManifest(parentDir as string)).labels : c.labels;
      if (!labels) throw new FleetError('TRAINING_NOT_CONFIGURED', `${c.name} has no registered version and its training configuration lists no labels`);

      // 1. The dataset version: field samples split by the fixed rule, the base set by reference.
      emit('dataset', 'building the dataset version');
      const resolved: Array<{ ref: BaseRef; examples: TrainingExample[] }> = [];
      for (const ref of c.base) {
        const examples = await this.deps.base.examples(ref);
        const sha = baseContentSha(examples);
        if (ref.content_sha256 && ref.content_sha256 !== sha) {
          throw new FleetError('BASE_SET_INVALID', `base set ${ref.source} [${ref.offset ?? 0}, +${ref.count ?? examples.length}) no longer matches its recorded content hash`, { details: { ref, sha } });
        }
        resolved.push({ ref: { ...ref, content_sha256: sha }, examples });
      }
      const previousDataset = this.runs.previousDataset(c.name, run.id);
      const { dataset, excluded } = await this.deps.datasets.createTrainingVersion({ model: c.name, labels, base: resolved.map((r) => r.ref), rule: c.holdout, actor: `training:${run.id}`, previous: previousDataset });
      this.runs.update(run.id, { dataset_version: dataset.id });
      const split = await this.splitExamples(dataset, resolved);
      emit('dataset', `dataset ${dataset.id.slice(0, 12)}: ${split.train.length} train, ${split.clean.length} clean holdout, ${split.field.length} field holdout${excluded ? ` (${excluded} labels outside the classes left out)` : ''}`, {
        metrics: { train: split.train.length, clean_holdout: split.clean.length, field_holdout: split.field.length },
      });
      if (split.train.length === 0) throw new FleetError('INPUT_INVALID', `dataset ${dataset.id} has no training examples`);

      // 2. Train.
      const version = nextVersion(this.deps.registry.list({ name: c.name }).map((v) => v.version));
      const ref: ModelRef = { name: c.name, version };
      const outDir = join(work, 'candidate');
      await mkdir(outDir, { recursive: true });
      emit('train', `training ${c.name}@${version} with the ${trainer.name} trainer${parent ? ` from ${parent.ref}` : ' from scratch'}`);
      let result;
      try {
        result = await trainer.train({
          model: ref,
          datasetVersion: dataset.id,
          runId: run.id,
          train: split.train,
          labels,
          parent: parent && parentDir ? { ref: { name: parent.name, version: parent.version }, dir: parentDir } : null,
          params: c.params,
          seed: c.seed,
          outputDir: outDir,
          ...(this.deps.signKeyPem ? { signKeyPem: this.deps.signKeyPem } : {}),
          onProgress: (p) => emit('train', p.message, { ...(p.fraction !== undefined ? { fraction: p.fraction } : {}), ...(p.metrics ? { metrics: p.metrics } : {}) }),
          signal,
        });
      } catch (err) {
        if (err instanceof EdgeloopError) throw err;
        throw new FleetError('TRAINING_FAILED', `the ${trainer.name} trainer failed: ${(err as Error).message}`, { cause: err });
      }
      this.runs.update(run.id, { code_version: result.run.code_version, params: result.run.params });

      // 3. Into the registry with lineage (whatever the trainer wrote, the loop's record wins).
      emit('push', `registering ${c.name}@${version}`);
      await this.stampLineage(result.packageDir, ref, { dataset: dataset.id, run: run.id, parent, trainer: result.run.trainer, code: result.run.code_version });
      const pushed = await this.deps.registry.push(result.packageDir, { actor: `training:${run.id}` });
      this.runs.update(run.id, { result: ref });

      // 4. Evaluate candidate and production on the same holdouts, on this host.
      emit('evaluate', `evaluating ${pushed.version.ref}${parent ? ` against ${parent.ref}` : ''} on ${split.clean.length} clean and ${split.field.length} field holdout examples`);
      const models = [...(parent && parentDir ? [{ ref: { name: parent.name, version: parent.version }, dir: parentDir }] : []), { ref, dir: result.packageDir }];
      const reports = await evaluateModels(models, { clean: split.clean, field: split.field }, {
        warmup: c.evaluation.warmup,
        intraOpThreads: c.evaluation.intra_op_threads,
        onProgress: (fraction, message) => emit('evaluate', message, { fraction }),
      });
      const candidate = reports.at(-1) as ModelReport;
      const production = parent ? (reports[0] as ModelReport) : null;

      // 5. The gate.
      const verdict: GateVerdict = judge(candidate, production, c.gate);
      const report = {
        schema: 'edgeloop.evaluation-report',
        v: 1,
        run: run.id,
        dataset_version: dataset.id,
        candidate,
        production,
        gate: verdict,
        gate_config: c.gate,
        host: { cpus: cpus().length, platform: process.platform, arch: process.arch },
        at: new Date(this.deps.clock.now()).toISOString(),
      };
      const reportSha = await this.runs.putReport(report);
      const metrics: Record<string, number> = {
        ...result.metrics,
        train_duration_ms: result.durationMs,
        clean_accuracy: candidate.clean.accuracy,
        field_accuracy: candidate.field.accuracy,
        latency_p95_ms: candidate.latency.p95_ms,
        ...(production ? { production_clean_accuracy: production.clean.accuracy, production_field_accuracy: production.field.accuracy, production_latency_p95_ms: production.latency.p95_ms } : {}),
      };
      emit('gate', verdict.passed ? `gate passed${production ? ` against ${parent?.ref}` : ' (no production model to compare with)'}` : `gate failed: ${verdict.reasons.join('; ')}`, { metrics });
      if (!verdict.passed) {
        this.deps.registry.setStatus(c.name, version, { status: 'rejected', reasons: verdict.reasons, actor: 'evaluation-gate' });
        this.log.warn({ run: run.id, model: `${c.name}@${version}`, reasons: verdict.reasons }, 'candidate rejected by the evaluation gate');
        const done = this.runs.finish(run.id, { status: 'rejected', metrics, gate: verdict, report_sha256: reportSha });
        emit('done', `${c.name}@${version} rejected (kept in the registry with the reasons)`);
        return done;
      }
      this.log.info({ run: run.id, model: `${c.name}@${version}` }, 'candidate accepted by the evaluation gate');

      // 6. Automatic promotion, when the model opted in.
      let rolloutError: { code: string; message: string } | null = null;
      if (c.auto_promote) {
        try {
          const ro = this.deps.rollouts.create({ model: ref, selector: c.auto_promote.selector, plan: c.auto_promote.plan, actor: `training:${run.id}` });
          this.runs.update(run.id, { rollout_id: ro.state.id });
          const plan = c.auto_promote.plan;
          const stages = [...(plan.shadow ? ['shadow'] : []), 'canary', ...plan.waves.map((_, i) => `wave ${i + 1}`)];
          emit('rollout', `rollout ${ro.state.id} of ${c.name}@${version} started (${stages.join(' -> ')})`);
        } catch (err) {
          rolloutError = { code: err instanceof EdgeloopError ? err.code : 'FLEET_TRAINING_FAILED', message: `accepted, but the automatic rollout did not start: ${(err as Error).message}` };
          this.log.warn({ run: run.id, reason: rolloutError.message }, 'automatic promotion failed');
          emit('rollout', rolloutError.message);
        }
      }
      const done = this.runs.finish(run.id, { status: 'accepted', metrics, gate: verdict, report_sha256: reportSha, error: rolloutError });
      emit('done', `${c.name}@${version} accepted`);
      return done;
    } catch (err) {
      const e = err instanceof EdgeloopError ? err : new FleetError('TRAINING_FAILED', (err as Error).message, { cause: err });
      this.log.error({ run: run.id, code: e.code, reason: e.message }, 'training run failed');
      emit('failed', `${e.code}: ${e.message}`);
      return this.runs.finish(run.id, { status: 'failed', error: { code: e.code, message: e.message } });
    } finally {
      await rm(work, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Train examples (base train slices + field train), clean holdout (base), field holdout (field). */
  private async splitExamples(dataset: DatasetManifest, base: Array<{ ref: BaseRef; examples: TrainingExample[] }>): Promise<{ train: TrainingExample[]; clean: EvalExample[]; field: EvalExample[] }> {
    const train: TrainingExample[] = [];
    const clean: EvalExample[] = [];
    for (const b of base) (b.ref.split === 'train' ? train : clean).push(...b.examples);
    const field: EvalExample[] = [];
    for (const e of dataset.entries) {
      const ex = { id: e.sample_id, label: e.label, bytes: new Uint8Array(await this.deps.artifacts.get(e.blob_sha256)) };
      if (e.split === 'field_holdout') field.push(ex);
      else train.push(ex);
    }
    return { train, clean, field };
  }

  /** Set name, version and lineage in the candidate's manifest; drop its signature (the registry signs). */
  private async stampLineage(dir: string, ref: ModelRef, l: { dataset: string; run: string; parent: ModelVersion | null; trainer: string; code: string }): Promise<void> {
    const path = join(dir, MANIFEST_FILE);
    let raw: Record<string, unknown>;
    try {
      raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      throw new FleetError('TRAINING_FAILED', `the trainer wrote no readable ${MANIFEST_FILE}: ${(err as Error).message}`, { cause: err });
    }
    if (raw.name !== ref.name || raw.version !== ref.version) {
      throw new FleetError('TRAINING_FAILED', `the trainer wrote ${String(raw.name)}@${String(raw.version)}, not the requested ${ref.name}@${ref.version}`);
    }
    const { signature: _sig, ...rest } = raw;
    const lineage = {
      ...((rest.lineage as Record<string, unknown> | undefined) ?? {}),
      dataset_version: l.dataset,
      training_run: l.run,
      ...(l.parent ? { parent: { name: l.parent.name, version: l.parent.version } } : {}),
      trainer: l.trainer,
      code_version: l.code,
    };
    await writeFile(path, `${JSON.stringify({ ...rest, lineage }, null, 2)}\n`);
  }
}
