/**
 * Training runs and trigger firings in SQLite, and evaluation reports as artifacts: the
 * learning loop's record. A run row is written when the run starts and completed when it
 * ends; a row still `running` when the service starts again is a run a crash interrupted, and
 * is marked failed (`failInterrupted`).
 */
import type { Clock } from '../../../shared/ids.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import { canonicalJson } from '../../../shared/signing.js';
import type { ArtifactStore } from '../artifacts.js';
import { FleetError } from '../../errors.js';
import type { GateVerdict } from '../../core/training/gate.js';
import type { TriggerKind } from '../../core/training/triggers.js';

export type RunStatus = 'running' | 'accepted' | 'rejected' | 'failed';

/** A training run as the API, the CLI and the console show it. */
export interface TrainingRun {
  id: string;
  model: string;
  status: RunStatus;
  trainer: string;
  params: Record<string, unknown>;
  seed: number;
  code_version: string | null;
  trigger: { kind: TriggerKind; reason: string };
  actor: string;
  dataset_version: string | null;
  parent: ModelRef | null;
  result: ModelRef | null;
  started_at: string;
  finished_at: string | null;
  duration_ms: number | null;
  metrics: Record<string, number>;
  gate: GateVerdict | null;
  report_sha256: string | null;
  rollout_id: string | null;
  error: { code: string; message: string } | null;
}

export interface TriggerFiring {
  seq: number;
  model: string;
  at: string;
  kind: TriggerKind;
  reason: string;
  details: Record<string, unknown>;
  run_id: string | null;
}

/** A run as stored (`training_runs`); JSON columns as text. */
export interface RunRow {
  id: string;
  model_name: string;
  status: RunStatus;
  trainer: string;
  params: string;
  seed: number;
  code_version: string | null;
  trigger_kind: TriggerKind;
  trigger_reason: string;
  actor: string;
  dataset_version: string | null;
  parent_name: string | null;
  parent_version: string | null;
  result_name: string | null;
  result_version: string | null;
  started_at: number;
  finished_at: number | null;
  duration_ms: number | null;
  metrics: string;
  gate: string | null;
  report_sha256: string | null;
  rollout_id: string | null;
  error: string | null;
}

/** A trigger firing as stored (`trigger_firings`). */
export interface FiringRow {
  seq: number;
  model_name: string;
  at: number;
  kind: TriggerKind;
  reason: string;
  details: string;
  run_id: string | null;
}

/**
 * Where runs and trigger firings live (`training_runs`, `trigger_firings`). A failure throws
 * `FLEET_STORAGE_FAILED`.
 */
export interface TrainingRunsRepo {
  /** A new run, `running`. */
  insert(r: Pick<RunRow, 'id' | 'model_name' | 'trainer' | 'params' | 'seed' | 'trigger_kind' | 'trigger_reason' | 'actor' | 'parent_name' | 'parent_version' | 'started_at'>): void;
  update(r: Pick<RunRow, 'id' | 'dataset_version' | 'result_name' | 'result_version' | 'code_version' | 'params' | 'rollout_id'>): void;
  finish(r: Pick<RunRow, 'id' | 'finished_at' | 'duration_ms' | 'metrics' | 'gate' | 'report_sha256' | 'error'> & { status: Exclude<RunStatus, 'running'> }): void;
  find(id: string): RunRow | null;
  /** Newest first; `model` null for every model. */
  list(q: { model: string | null; limit: number }): RunRow[];
  /** The latest run of a model that is not a failure before its dataset. */
  last(model: string): RunRow | null;
  /** The dataset version of the model's latest run other than `exceptRun` that has one. */
  previousDataset(model: string, exceptRun: string): string | null;
  /** The latest run whose result is name@version. */
  byResult(name: string, version: string): RunRow | null;
  /** Mark every `running` run failed at `now` with `error` (JSON); returns how many. */
  failRunning(now: number, error: string): number;
  /** Returns the firing's seq. */
  insertFiring(f: Omit<FiringRow, 'seq'>): number;
  /** Newest first; `model` null for every model. */
  firings(q: { model: string | null; limit: number }): FiringRow[];
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const refOf = (name: string | null, version: string | null): ModelRef | null => (name !== null && version !== null ? { name, version } : null);

function toRun(r: RunRow): TrainingRun {
  return {
    id: r.id,
    model: r.model_name,
    status: r.status,
    trainer: r.trainer,
    params: JSON.parse(r.params) as Record<string, unknown>,
    seed: r.seed,
    code_version: r.code_version,
    trigger: { kind: r.trigger_kind, reason: r.trigger_reason },
    actor: r.actor,
    dataset_version: r.dataset_version,
    parent: refOf(r.parent_name, r.parent_version),
    result: refOf(r.result_name, r.result_version),
    started_at: iso(r.started_at) as string,
    finished_at: iso(r.finished_at),
    duration_ms: r.duration_ms,
    metrics: JSON.parse(r.metrics) as Record<string, number>,
    gate: r.gate === null ? null : (JSON.parse(r.gate) as GateVerdict),
    report_sha256: r.report_sha256,
    rollout_id: r.rollout_id,
    error: r.error === null ? null : (JSON.parse(r.error) as { code: string; message: string }),
  };
}

export class TrainingRuns {
  private readonly repo: TrainingRunsRepo;
  private readonly clock: Clock;
  private readonly artifacts: ArtifactStore;

  constructor(opts: { repo: TrainingRunsRepo; clock: Clock; artifacts: ArtifactStore }) {
    this.repo = opts.repo;
    this.clock = opts.clock;
    this.artifacts = opts.artifacts;
  }

  start(o: { id: string; model: string; trainer: string; params: Record<string, unknown>; seed: number; trigger: { kind: TriggerKind; reason: string }; actor: string; parent: ModelRef | null }): TrainingRun {
    this.repo.insert({
      id: o.id,
      model_name: o.model,
      trainer: o.trainer,
      params: JSON.stringify(o.params),
      seed: o.seed,
      trigger_kind: o.trigger.kind,
      trigger_reason: o.trigger.reason,
      actor: o.actor,
      parent_name: o.parent?.name ?? null,
      parent_version: o.parent?.version ?? null,
      started_at: this.clock.now(),
    });
    return this.get(o.id);
  }

  /** Record what became known during the run (dataset version, the candidate, the trainer's own record). */
  update(id: string, p: { dataset_version?: string; result?: ModelRef; code_version?: string; params?: Record<string, unknown>; rollout_id?: string }): void {
    const cur = this.get(id);
    this.repo.update({
      id,
      dataset_version: p.dataset_version ?? cur.dataset_version,
      result_name: p.result?.name ?? cur.result?.name ?? null,
      result_version: p.result?.version ?? cur.result?.version ?? null,
      code_version: p.code_version ?? cur.code_version,
      params: JSON.stringify(p.params ?? cur.params),
      rollout_id: p.rollout_id ?? cur.rollout_id,
    });
  }

  finish(id: string, o: { status: Exclude<RunStatus, 'running'>; metrics?: Record<string, number>; gate?: GateVerdict | null; report_sha256?: string | null; error?: { code: string; message: string } | null }): TrainingRun {
    const cur = this.get(id);
    const now = this.clock.now();
    this.repo.finish({
      id,
      status: o.status,
      finished_at: now,
      duration_ms: now - Date.parse(cur.started_at),
      metrics: JSON.stringify(o.metrics ?? cur.metrics),
      gate: o.gate ? JSON.stringify(o.gate) : null,
      report_sha256: o.report_sha256 ?? null,
      error: o.error ? JSON.stringify(o.error) : null,
    });
    return this.get(id);
  }

  /** Throws `FLEET_TRAINING_RUN_NOT_FOUND`. */
  get(id: string): TrainingRun {
    const run = this.find(id);
    if (!run) throw new FleetError('TRAINING_RUN_NOT_FOUND', `training run ${id} does not exist`, { details: { id } });
    return run;
  }

  /** The run, or null when there is none with this id. */
  find(id: string): TrainingRun | null {
    const r = this.repo.find(id);
    return r ? toRun(r) : null;
  }

  /** Newest first. */
  list(o: { model?: string; limit?: number } = {}): TrainingRun[] {
    return this.repo.list({ model: o.model ?? null, limit: o.limit ?? 100 }).map(toRun);
  }

  /** The latest run of a model that got as far as a dataset (failed runs before that do not count as training). */
  lastOf(model: string): TrainingRun | null {
    const r = this.repo.last(model);
    return r ? toRun(r) : null;
  }

  /** The dataset version of the model's latest other run that got one: the placements a new version keeps. */
  previousDataset(model: string, exceptRun: string): string | null {
    return this.repo.previousDataset(model, exceptRun);
  }

  /** The run that produced a model version. */
  byResult(ref: ModelRef): TrainingRun | null {
    const r = this.repo.byResult(ref.name, ref.version);
    return r ? toRun(r) : null;
  }

  /** Runs a crash left `running`: marked failed. Returns how many. */
  failInterrupted(): number {
    return this.repo.failRunning(this.clock.now(), JSON.stringify({ code: 'FLEET_TRAINING_FAILED', message: 'interrupted: the fleet service stopped during the run' }));
  }

  recordFiring(f: { model: string; kind: TriggerKind; reason: string; details: Record<string, unknown>; run_id: string | null }): TriggerFiring {
    const at = this.clock.now();
    const seq = this.repo.insertFiring({ model_name: f.model, at, kind: f.kind, reason: f.reason, details: JSON.stringify(f.details), run_id: f.run_id });
    return { seq, model: f.model, at: iso(at) as string, kind: f.kind, reason: f.reason, details: f.details, run_id: f.run_id };
  }

  /** Newest first. */
  firings(o: { model?: string; limit?: number } = {}): TriggerFiring[] {
    return this.repo.firings({ model: o.model ?? null, limit: o.limit ?? 100 }).map((r) => ({
      seq: r.seq,
      model: r.model_name,
      at: iso(r.at) as string,
      kind: r.kind,
      reason: r.reason,
      details: JSON.parse(r.details) as Record<string, unknown>,
      run_id: r.run_id,
    }));
  }

  /** Store an evaluation report (canonical JSON artifact); returns its sha256. */
  async putReport(report: unknown): Promise<string> {
    return (await this.artifacts.put(Buffer.from(canonicalJson(report), 'utf8'))).sha256;
  }

  /** The evaluation report of a run. Throws `FLEET_NOT_FOUND` when the run has none. */
  async report(id: string): Promise<Record<string, unknown>> {
    const run = this.get(id);
    if (!run.report_sha256) throw new FleetError('NOT_FOUND', `training run ${id} has no evaluation report (status ${run.status})`, { details: { id } });
    return JSON.parse((await this.artifacts.get(run.report_sha256)).toString('utf8')) as Record<string, unknown>;
  }
}
