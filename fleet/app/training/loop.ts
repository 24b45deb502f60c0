/**
 * The learning loop: trigger policy -> a training run (pipeline.ts: dataset version -> Trainer ->
 * registry with lineage -> evaluation against the production model on both holdouts -> gate ->
 * rejected, kept with reasons, or accepted -> optional automatic rollout). This class decides
 * when a run starts and keeps one run per model at a time; the run itself is the pipeline's.
 * Every run and every trigger firing is recorded (fleet/app/training/runs.ts), and every
 * candidate's evaluation report is stored as an artifact.
 *
 * I/O sits behind what the constructor receives: trainers (the `Trainer` port), the base-set
 * source, the registry, datasets, the rollout manager, the device registry; time comes from
 * the clock and ids from the random source.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { newId } from '../../../shared/ids.js';
import type { Clock, Random } from '../../../shared/ids.js';
import type { ArtifactStore } from '../artifacts.js';
import type { DeviceRecord } from '../../core/devices/state.js';
import { FleetError } from '../../errors.js';
import type { Datasets } from '../labels/datasets.js';
import type { Labels } from '../labels/labels.js';
import type { ModelRegistry, ModelVersion } from '../models/registry.js';
import { compareSemver } from '../../../shared/semver.js';
import type { RolloutManager } from '../rollouts/manager.js';
import type { BaseSetSource } from './base-source.js';
import { loopModelConfig, type LoopModelConfig, type LoopModelConfigInput } from './config.js';
import { DriftHistory } from './drift-history.js';
import { runPipeline } from './pipeline.js';
import { ProgressLog, type LoopProgress } from './progress.js';
import type { TrainingRun, TrainingRuns } from './runs.js';
import type { Trainer } from './trainer.js';
import { decideTrigger } from '../../core/training/triggers.js';
import type { TriggerDecision, TriggerKind } from '../../core/training/triggers.js';

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

/** What the service (or a demo) adds to the fleet's context to run the loop. */
export interface LoopSetup {
  trainers: Readonly<Record<string, Trainer>>;
  base: BaseSetSource;
  models: readonly LoopModelConfigInput[];
  workDir: string;
  signKeyPem?: string;
  random?: Random;
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
  private readonly progressLog: ProgressLog;
  private readonly drift = new DriftHistory();
  private readonly startedAt: number;
  private ticker: NodeJS.Timeout | null = null;
  private readonly log: Logger;

  constructor(private readonly deps: LearningLoopDeps) {
    for (const m of deps.models) {
      const c = loopModelConfig.parse(m);
      this.configs.set(c.name, c);
    }
    this.runs = deps.runs;
    this.startedAt = deps.clock.now();
    this.log = deps.log.child({ component: 'learning-loop' });
    this.progressLog = new ProgressLog({ clock: deps.clock, log: this.log });
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
    if (!c) throw new FleetError('TRAINING_NOT_CONFIGURED', `no training is configured for model ${name} (configured: ${this.models().join(', ') || 'none'}): add it to the file given to \`edgeloop serve --training FILE\``, { details: { model: name } });
    return c;
  }

  /** Models with a run in progress, with its id. */
  running(): Array<{ model: string; run: string }> {
    return [...this.active.entries()].map(([model, a]) => ({ model, run: a.run }));
  }

  /** Progress lines of a run (kept in memory, the last 500), after `afterSeq`. */
  progress(runId: string, afterSeq = 0): LoopProgress[] {
    return this.progressLog.since(runId, afterSeq);
  }

  /**
   * Progress of every run (manual and policy-triggered alike), for the console and the demo's
   * terminal; returns the unsubscribe function. A listener that throws is logged and ignored.
   */
  subscribe(listener: (p: LoopProgress) => void): () => void {
    return this.progressLog.subscribe(listener);
  }

  /** A drift observation of a device running `model` (the tick also samples the device registry). */
  observeDrift(o: { device: string; model: string; at: number; psi: number }): void {
    this.drift.observe(o);
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
      const drift = this.drift.of(c.name);
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
    if (this.deps.devices) this.drift.sample(this.deps.devices.list({}), new Set(this.configs.keys()));
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
    const emit = this.progressLog.forRun(id, name, o.onProgress);
    emit('queued', `run ${id} of ${name}: ${trigger.reason}`);
    const { registry, artifacts, datasets, base, rollouts, clock, signKeyPem } = this.deps;
    const steps = { registry, artifacts, datasets, base, rollouts, clock, runs: this.runs, log: this.log, ...(signKeyPem ? { signKeyPem } : {}), emit };
    const done = runPipeline(steps, { run, config: c, trainer, parent, workDir: join(this.deps.workDir, id), signal: abort.signal }).finally(() => this.active.delete(name));
    this.active.set(name, { run: id, abort, done });
    return { run, done };
  }
}
