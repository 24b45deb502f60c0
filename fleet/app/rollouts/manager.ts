import type { Logger } from 'pino';
import { newId, type Clock } from '../../../shared/ids.js';
import type { DeviceStatus, ModelRef, Telemetry } from '../../../shared/schemas/index.js';
import { FleetError, FleetErrors } from '../../errors.js';
import type { Audit } from '../audit.js';
import type { RolloutBackend } from './backend.js';
import { commandAllowed } from '../../core/rollouts/commands.js';
import type { DeviceMetricsEvent, DeviceReportEvent, RolloutCommand, RolloutEvent, TargetDevice } from '../../core/rollouts/event-schema.js';
import { desiredStates, initialState, step } from '../../core/rollouts/machine.js';
import type { RolloutPlanInput } from '../../core/rollouts/plan-schema.js';
import { isManaged } from '../../core/rollouts/selection.js';
import type { Decision, RolloutState } from '../../core/rollouts/state-schema.js';
import { metricsEventsFromTelemetry, reportEventFromStatus } from '../../core/rollouts/telemetry.js';

/** A rollout as stored: the machine's state plus what the machine does not need to know. */
export interface RolloutRecord {
  state: RolloutState;
  selector: Record<string, string>;
  created_by: string;
  created_at: number;
}

/** Persistence of rollouts (SQLite in the service; memory in unit tests). */
export interface RolloutRepo {
  all(): RolloutRecord[];
  /**
   * Store the new state and append the step's decisions, atomically. The state may be several
   * steps past the previous save (quiet steps are coalesced): store all of it.
   */
  save(record: RolloutRecord, decisions: readonly Decision[]): void;
}

export interface RolloutManagerDeps {
  repo: RolloutRepo;
  backend: RolloutBackend;
  /**
   * Devices matching a tag selector, with the active version of model `modelName` (the slot a
   * rollout of it moves; on a device with one model, that model) and a baseline window of it.
   */
  resolveTargets(selector: Record<string, string>, modelName: string): TargetDevice[];
  clock: Clock;
  log: Logger;
  /** Where creations and commands are recorded with their actor. */
  audit?: Audit;
  /**
   * Longest a quiet step may stay unsaved, ms; 0 (the default) saves every step. A quiet step
   * neither delivers a desired state nor decides anything: a telemetry window folded into the
   * gate sums, a report that changes no verdict, a tick while a stage bakes. That is nearly
   * every message of a fleet, and saving each one costs a commit (an fsync with the fleet's
   * `synchronous = FULL`). Quiet steps are saved by the next step that acts (its save writes
   * every change since the last one, before acting), by `tick()` once this long has passed,
   * and by `flush()` on stop. What a crash can lose is therefore only quiet steps of the last
   * `quietFlushMs` + one tick interval: some telemetry windows in the gate sums and "first
   * seen running" times, both re-established by the devices' next reports. Nothing delivered
   * or decided is ever lost: those steps are persisted before they act.
   */
  quietFlushMs?: number;
  /** A failed delivery is retried after this long, doubling up to `maxMs`, until it goes through. Default 1 s to 60 s. */
  deliveryRetry?: { initialMs: number; maxMs: number };
}

interface PendingRetry {
  devices: Set<string>;
  attempt: number;
  timer: ReturnType<typeof setTimeout>;
}

/** Telemetry windows folded in one step at most (a bound on the buffer between ticks). */
const METRICS_BATCH = 500;

const TERMINAL = new Set(['completed', 'aborted', 'rolled_back']);

/**
 * Runs rollouts: feeds the pure machine with device reports, telemetry, ticks and commands,
 * persists every step that delivers or decides before acting on it (quiet steps may be
 * coalesced, see `quietFlushMs`), and hands the resulting desired states to the backend. After a restart `resume()` loads every rollout and re-delivers what it holds, so
 * each rollout continues where it stood.
 */
export class RolloutManager {
  private readonly records = new Map<string, RolloutRecord>();
  private delivering: Promise<void> = Promise.resolve();
  /**
   * Telemetry windows not folded yet: folded together as one `device_metrics_batch` step at the
   * next tick, before any other event (so every event still sees the windows that came before
   * it), or when this many are waiting.
   */
  private metrics: DeviceMetricsEvent[] = [];
  /** Rollouts with quiet steps not saved yet, and since when (clock ms). */
  private readonly unsaved = new Map<string, number>();
  /** Deliveries that failed, per rollout: the devices whose current desired state is sent again. */
  private readonly retries = new Map<string, PendingRetry>();
  private closed = false;

  constructor(private readonly deps: RolloutManagerDeps) {}

  /** Stop retrying failed deliveries (they are re-delivered by `resume()` at the next start). */
  close(): void {
    this.closed = true;
    for (const r of this.retries.values()) clearTimeout(r.timer);
    this.retries.clear();
  }

  /** Devices whose desired state is waiting for a delivery retry, per rollout. */
  get pendingRetries(): number {
    let n = 0;
    for (const r of this.retries.values()) n += r.devices.size;
    return n;
  }

  /** Load stored rollouts and re-deliver the desired states of the ones that manage devices. */
  async resume(): Promise<number> {
    for (const r of this.deps.repo.all()) this.records.set(r.state.id, r);
    for (const r of this.records.values()) {
      const changes = desiredStates(r.state);
      if (changes.length) this.deliver(r.state.id, changes);
    }
    await this.delivering;
    return this.records.size;
  }

  list(): RolloutRecord[] {
    return [...this.records.values()].sort((a, b) => b.created_at - a.created_at);
  }

  /** The rollout, or null when there is none with this id. */
  find(id: string): RolloutRecord | null {
    return this.records.get(id) ?? null;
  }

  /** The rollout; throws `FLEET_NOT_FOUND` when there is none (for callers that answer with it). */
  get(id: string): RolloutRecord {
    const r = this.find(id);
    if (!r) throw new FleetError('NOT_FOUND', `rollout ${id} does not exist`);
    return r;
  }

  create(o: { model: ModelRef; selector: Record<string, string>; plan: RolloutPlanInput; actor: string; id?: string }): RolloutRecord {
    this.foldMetrics();
    const now = this.deps.clock.now();
    const id = o.id ?? newId('ro', this.deps.clock);
    for (const r of this.records.values()) {
      if (TERMINAL.has(r.state.status)) continue;
      if (r.state.candidate.name === o.model.name && JSON.stringify(r.selector) === JSON.stringify(o.selector)) {
        throw new FleetError('CONFLICT', `rollout ${r.state.id} of ${r.state.candidate.name} to the same target is still ${r.state.status}; finish, abort or roll it back first`);
      }
    }
    const devices = this.deps.resolveTargets(o.selector, o.model.name);
    if (o.plan.shadow && devices.length > 0 && !devices.some((d) => d.active !== null)) {
      // A shadow stage runs the candidate beside each device's current model and compares the two;
      // with no current model it would bake for its whole time and judge nothing (issue 16).
      throw new FleetError('ROLLOUT_SHADOW_EMPTY', `none of the ${devices.length} devices matching ${Object.entries(o.selector).map(([k, v]) => `${k}=${v}`).join(',') || 'the target'} runs a model yet, so a shadow stage has nothing to run ${o.model.name}@${o.model.version} beside: create the rollout without --shadow (the canary and waves still check installs and smoke tests), and use --shadow for the next version`, { details: { devices: devices.length } });
    }
    const record: RolloutRecord = { state: initialState(id, o.model, o.plan), selector: o.selector, created_by: o.actor, created_at: now };
    this.records.set(id, record);
    this.apply(record, { type: 'start', at: now, devices });
    this.deps.log.info({ rollout: id, model: `${o.model.name}@${o.model.version}`, devices: devices.length, actor: o.actor }, 'rollout created');
    this.deps.audit?.record({ actor: o.actor, action: 'rollout.create', target: id, details: { model: `${o.model.name}@${o.model.version}`, selector: o.selector, devices: devices.length } });
    return record;
  }

  command(id: string, command: RolloutCommand, actor: string, force = false, devices?: string[]): RolloutRecord {
    this.foldMetrics();
    const r = this.get(id);
    const why = commandAllowed(r.state.status, command);
    if (why) throw new FleetError('CONFLICT', `cannot ${command} rollout ${id}: ${why}`, { details: { status: r.state.status } });
    this.apply(r, { type: 'command', at: this.deps.clock.now(), command, actor, ...(force ? { force } : {}), ...(devices ? { devices } : {}) });
    this.deps.audit?.record({ actor, action: `rollout.${command}`, target: id, details: { status: r.state.status, ...(force ? { force } : {}), ...(devices ? { devices } : {}) } });
    return r;
  }

  /**
   * The model versions a device may download: for each model name, what the latest rollout of
   * it that set the device's desired state names (active, shadow) and what the device ran
   * before that rollout (the version a rollback returns it to). A device serving several models
   * gets each one's. Empty for a device no rollout has touched.
   */
  desiredModels(deviceId: string): ModelRef[] {
    const latest = new Map<string, RolloutRecord>();
    for (const r of this.records.values()) {
      if (!r.state.devices[deviceId]?.desired) continue;
      const name = r.state.candidate.name;
      const cur = latest.get(name);
      if (!cur || r.created_at >= cur.created_at) latest.set(name, r);
    }
    return [...latest.values()].flatMap((r) => {
      const rec = r.state.devices[deviceId]!;
      return [rec.desired!.active, rec.desired!.shadow?.model ?? null, rec.last_known_good].filter((m): m is ModelRef => m !== null);
    });
  }

  /** A telemetry window: folded at the next tick or before the next other event (see `metrics`). */
  onTelemetry(t: Telemetry): void {
    const evs = metricsEventsFromTelemetry(t);
    if (!evs.length) return;
    this.metrics.push(...evs);
    if (this.metrics.length >= METRICS_BATCH) this.foldMetrics();
  }

  onStatus(s: DeviceStatus): void {
    this.foldMetrics();
    for (const r of this.records.values()) {
      if (!this.follows(r, s.device_id)) continue;
      const ev = reportEventFromStatus(s, r.state.id, r.state.candidate.name);
      if (ev) this.apply(r, ev);
    }
  }

  /**
   * A deployment report about one device in one rollout that does not come from the device (the
   * AWS backend's reading of Greengrass and IoT Jobs statuses): the same path as `onStatus`,
   * without a made-up device status around it. Ignored when the rollout does not follow the device.
   */
  onReport(rolloutId: string, ev: DeviceReportEvent): void {
    this.foldMetrics();
    const r = this.records.get(rolloutId);
    if (r && this.follows(r, ev.device_id)) this.apply(r, ev);
  }

  /** Advance bake timers; call on an interval. */
  tick(): void {
    this.foldMetrics();
    const at = this.deps.clock.now();
    for (const r of this.records.values()) if (!TERMINAL.has(r.state.status)) this.apply(r, { type: 'tick', at });
    const limit = this.deps.quietFlushMs ?? 0;
    for (const [id, since] of this.unsaved) if (at - since >= limit) this.save(id);
  }

  /** Fold waiting telemetry and save every coalesced quiet step now (call on stop, before closing the database). */
  flush(): void {
    this.foldMetrics();
    for (const id of [...this.unsaved.keys()]) this.save(id);
  }

  /** Rollouts holding quiet steps that are not saved yet. */
  get unsavedCount(): number {
    return this.unsaved.size;
  }

  private save(id: string): void {
    const r = this.records.get(id);
    this.unsaved.delete(id);
    if (r) this.deps.repo.save(r, []);
  }

  /** Resolves when everything handed to the backend so far was delivered. */
  settled(): Promise<void> {
    return this.delivering;
  }

  private foldMetrics(): void {
    if (!this.metrics.length) return;
    const batch = this.metrics;
    this.metrics = [];
    for (const r of this.records.values()) {
      if (TERMINAL.has(r.state.status)) continue;
      const items = batch.filter((e) => {
        const d = r.state.devices[e.device_id];
        return d !== undefined && isManaged(d);
      });
      if (items.length) this.apply(r, { type: 'device_metrics_batch', at: Math.max(...items.map((e) => e.at)), items });
    }
  }

  /** The rollout is live and manages the device. */
  private follows(r: RolloutRecord, deviceId: string): boolean {
    const d = r.state.devices[deviceId];
    return d !== undefined && isManaged(d) && !TERMINAL.has(r.state.status);
  }

  private apply(r: RolloutRecord, event: RolloutEvent): void {
    const res = step(r.state, event);
    r.state = res.state;
    if (res.desired.length === 0 && res.decisions.length === 0 && (this.deps.quietFlushMs ?? 0) > 0) {
      // Quiet: nothing to act on, so nothing a crash could make the fleet do twice or forget.
      if (!this.unsaved.has(r.state.id)) this.unsaved.set(r.state.id, this.deps.clock.now());
      return;
    }
    // Persist before acting: a crash after this line re-delivers on resume, never loses a step.
    // The save includes every quiet step since the last one (the repo writes what changed).
    this.unsaved.delete(r.state.id);
    this.deps.repo.save(r, res.decisions);
    for (const d of res.decisions) {
      if (d.kind === 'gate_failed' || d.kind === 'aborted' || d.kind === 'paused' || d.kind === 'device_failed') this.deps.log.warn({ rollout: r.state.id, decision: d.kind, stage: d.stage, reason: d.reason }, 'rollout decision');
      else if (d.kind !== 'event_ignored') this.deps.log.info({ rollout: r.state.id, decision: d.kind, stage: d.stage, reason: d.reason }, 'rollout decision');
    }
    if (res.desired.length) this.deliver(r.state.id, res.desired);
  }

  private deliver(id: string, changes: Parameters<RolloutBackend['deliver']>[1], attempt = 0): void {
    // Each change is for the rollout's model slot on the device; the device's other models are not touched.
    const model = this.records.get(id)?.state.candidate.name;
    const named = model ? changes.map((c) => ({ ...c, model_name: model })) : changes;
    this.delivering = this.delivering
      .then(() => this.deps.backend.deliver(id, named))
      .then(
        () => {
          if (attempt > 0) this.deps.log.info({ rollout: id, devices: changes.length, attempt }, 'desired states delivered after retrying');
        },
        (err: unknown) => this.retryLater(id, changes, attempt, err),
      );
  }

  /**
   * A delivery failed (broker down, AWS throttling): send the devices' desired states again
   * after a backoff, as they stand then (the rollout may have moved on meanwhile), until it
   * goes through, so no stage waits forever on a device that was never told.
   */
  private retryLater(id: string, changes: Parameters<RolloutBackend['deliver']>[1], attempt: number, err: unknown): void {
    if (this.closed) return;
    const pending = this.retries.get(id);
    if (pending) {
      for (const c of changes) pending.devices.add(c.device_id);
      return;
    }
    const { initialMs, maxMs } = this.deps.deliveryRetry ?? { initialMs: 1000, maxMs: 60_000 };
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 20));
    const devices = new Set(changes.map((c) => c.device_id));
    this.deps.log.error({ rollout: id, err, devices: devices.size, attempt: attempt + 1, retry_in_ms: delayMs, code: FleetErrors.DELIVERY_FAILED.code }, 'delivering desired states failed; retrying');
    const timer = setTimeout(() => {
      this.retries.delete(id);
      const r = this.records.get(id);
      if (!r || this.closed) return;
      const current = desiredStates(r.state).filter((c) => devices.has(c.device_id));
      if (current.length) this.deliver(id, current, attempt + 1);
    }, delayMs);
    timer.unref();
    this.retries.set(id, { devices, attempt, timer });
  }
}

/** A RolloutRepo in memory (tests, dry runs). */
export function memoryRolloutRepo(): RolloutRepo & { decisions: Decision[] } {
  const store = new Map<string, RolloutRecord>();
  const decisions: Decision[] = [];
  return {
    decisions,
    all: () => [...store.values()].map((r) => structuredClone(r)),
    save: (r, d) => {
      store.set(r.state.id, structuredClone(r));
      decisions.push(...d);
    },
  };
}
