import { initialState, step } from '../../../fleet/core/rollouts/machine.js';
import type { DesiredChange, MetricsWindow, RolloutEvent, RolloutPlanInput, RolloutState, StepResult, TargetDevice } from '../../../fleet/core/rollouts/types.js';
import type { ModelRef } from '../../../shared/schemas/common.js';

export const PREV: ModelRef = { name: 'digits', version: '1.0.0' };
export const CAND: ModelRef = { name: 'digits', version: '2.0.0' };
export const T0 = Date.UTC(2025, 0, 6, 8, 0, 0);
export const MIN = 60_000;
export const DAY = 24 * 60 * MIN;

/** Freezes an object graph; objects already frozen (shared with an earlier state) are skipped. */
export function deepFreeze<T>(o: T): T {
  if (o !== null && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** `step` on a frozen state and event: any mutation of the input throws (ESM is strict mode). */
export function frozenStep(state: RolloutState, event: RolloutEvent): StepResult {
  return step(deepFreeze(state), deepFreeze(event));
}

export const devices = (n: number, active: ModelRef | null = PREV, baseline: MetricsWindow | null = window()): TargetDevice[] =>
  Array.from({ length: n }, (_, i) => ({ id: `dev-${String(i).padStart(3, '0')}`, active, ...(baseline ? { baseline } : {}) }));

/** A healthy telemetry window; override what a test is about. */
export function window(over: Partial<MetricsWindow> = {}): MetricsWindow {
  return { count: 200, errors: 0, latency_p95_ms: 20, confidence_mean: 0.9, outlier_rate: 0.02, ...over };
}

/** Quick gates for examples: one device with 10 samples is enough, nothing else blocks. */
export const EASY_GATES = { min_devices_reporting: 1, min_reporting_ratio: 0, min_samples_per_device: 10 } as const;

/**
 * Drives a rollout through events, keeping what a desired-state backend would have published
 * (the last change per device) and every decision.
 */
export class Harness {
  state: RolloutState;
  now = T0;
  readonly published = new Map<string, DesiredChange>();
  readonly decisions: StepResult['decisions'] = [];
  readonly events: RolloutEvent[] = [];
  last: StepResult | null = null;

  constructor(plan: RolloutPlanInput, id = 'ro-test') {
    this.state = initialState(id, CAND, plan);
  }

  send(e: RolloutEvent): StepResult {
    this.events.push(e);
    const r = frozenStep(this.state, e);
    for (const c of r.desired) this.published.set(c.device_id, c);
    this.decisions.push(...r.decisions);
    this.state = r.state;
    this.last = r;
    return r;
  }

  start(devs: TargetDevice[]): StepResult {
    return this.send({ type: 'start', at: this.now, devices: devs });
  }

  tick(ms: number): StepResult {
    this.now += ms;
    return this.send({ type: 'tick', at: this.now });
  }

  command(command: 'pause' | 'resume' | 'abort' | 'rollback' | 'promote', force?: boolean): StepResult {
    return this.send({ type: 'command', at: this.now, command, actor: 'ana@ml', ...(force === undefined ? {} : { force }) });
  }

  exclude(devices: string[]): StepResult {
    return this.send({ type: 'command', at: this.now, command: 'exclude', actor: 'ana@ml', devices });
  }

  report(id: string, phase: 'downloading' | 'verifying' | 'staged' | 'shadow' | 'active' | 'failed' | 'rolled_back', model: ModelRef = CAND, reason?: string): StepResult {
    return this.send({ type: 'device_report', at: this.now, device_id: id, phase, model, ...(reason ? { reason } : {}) });
  }

  metrics(id: string, model: ModelRef, w: Partial<MetricsWindow> = {}, shadow?: { agreement?: number; confidence_mean?: number; latency_p95_ms?: number }): StepResult {
    return this.send({
      type: 'device_metrics',
      at: this.now,
      device_id: id,
      model,
      window: window(w),
      ...(shadow ? { shadow: { model: CAND, count: 50, agreement: shadow.agreement ?? 0.97, confidence_mean: shadow.confidence_mean ?? 0.9, latency_p95_ms: shadow.latency_p95_ms ?? 22 } } : {}),
    });
  }

  /** Ids whose published desired state runs the candidate as active. */
  onCandidate(): string[] {
    return [...this.published.values()].filter((c) => c.active?.version === CAND.version).map((c) => c.device_id).sort();
  }

  /** Ids whose published desired state shadows the candidate. */
  shadowing(): string[] {
    return [...this.published.values()].filter((c) => c.shadow?.model.version === CAND.version).map((c) => c.device_id).sort();
  }

  /** Every device currently moved to the candidate reports it active with the given window. */
  healthyReports(w: Partial<MetricsWindow> = {}): void {
    for (const id of this.onCandidate()) {
      this.report(id, 'active');
      this.metrics(id, CAND, w);
    }
  }

  kinds(): string[] {
    return this.decisions.map((d) => d.kind);
  }
}
