/**
 * Random rollout scenarios for the property tests: a plan, a target (some devices offline for
 * good), and abstract operations that are turned into concrete events against the current
 * state, so reports and metrics mostly concern devices that actually have something to say.
 */
import fc from 'fast-check';
import { initialState, step } from '../../../fleet/core/rollouts/machine.js';
import type { DeviceRecord, MetricsWindow, RolloutCommand, RolloutEvent, RolloutPlanInput, RolloutState, StepResult, TargetDevice } from '../../../fleet/core/rollouts/types.js';
import type { ModelRef } from '../../../shared/schemas/common.js';
import { CAND, deepFreeze, MIN, PREV, T0, window } from './helpers.js';

const OTHER: ModelRef = { name: 'digits', version: '0.9.0' };
const PHASES = ['downloading', 'verifying', 'staged', 'shadow', 'active', 'failed', 'rolled_back'] as const;

export type Op =
  | { k: 'tick'; dt: number }
  | { k: 'report'; i: number; phase: (typeof PHASES)[number]; cand: boolean; skew: number }
  | { k: 'metrics'; i: number; cand: boolean; bad: boolean }
  /** `agent`: as the service and agent do it: windows folded in one batch, reverts reported as `rolled_back` to last-known-good. */
  | { k: 'converge'; bad: boolean; every: number; agent: boolean }
  | { k: 'fail'; i: number }
  | { k: 'command'; command: RolloutCommand; force: boolean }
  | { k: 'change'; add: number; remove: number[] };

export interface DeviceSpec {
  active: 'prev' | 'none' | 'cand' | 'other';
  offline: boolean;
  baseline: boolean;
}

export interface Scenario {
  plan: RolloutPlanInput;
  devices: DeviceSpec[];
  ops: Op[];
}

const bake = fc.constantFrom(0, 60, 600);
const allowanceArb = fc.oneof(fc.record({ count: fc.integer({ min: 1, max: 40 }) }), fc.record({ percent: fc.integer({ min: 1, max: 60 }) }));

export const planArb: fc.Arbitrary<RolloutPlanInput> = fc.record({
  shadow: fc.option(fc.record({ devices: fc.option(allowanceArb, { nil: undefined }), bake_s: bake, sample_rate: fc.constantFrom(0.1, 1) }), { nil: undefined }),
  canary: fc.record({ devices: allowanceArb, bake_s: bake }),
  waves: fc
    .array(fc.record({ devices: fc.oneof(fc.record({ percent: fc.integer({ min: 1, max: 99 }) }), fc.record({ count: fc.integer({ min: 1, max: 200 }) })), bake_s: bake }), { maxLength: 3 })
    .chain((ws) => bake.map((b) => [...ws, { devices: { percent: 100 }, bake_s: b }])),
  gates: fc.record({
    min_devices_reporting: fc.integer({ min: 0, max: 3 }),
    min_reporting_ratio: fc.constantFrom(0, 0.5, 1),
    min_samples_per_device: fc.constantFrom(1, 50),
    max_failures: fc.constantFrom(null, 0, 1, 3),
    max_failure_ratio: fc.constantFrom(null, 0.2),
    max_confidence_drop: fc.constantFrom(null, 0.05),
    max_latency_p95_ratio: fc.constantFrom(null, 1.5),
    on_failure: fc.constantFrom({}, { confidence_drop: 'abort' as const }),
  }),
  on_gate_failure: fc.constantFrom('pause' as const, 'abort' as const),
});

const deviceArb: fc.Arbitrary<DeviceSpec> = fc.record({
  active: fc.constantFrom('prev', 'prev', 'prev', 'prev', 'prev', 'none', 'other', 'cand'),
  offline: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
  baseline: fc.integer({ min: 0, max: 5 }).map((x) => x !== 0),
});

export const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 40, arbitrary: fc.record({ k: fc.constant('tick' as const), dt: fc.constantFrom(1000, 60_000, 10 * MIN, 3 * 24 * 60 * MIN) }) },
  { weight: 16, arbitrary: fc.record({ k: fc.constant('report' as const), i: fc.nat(), phase: fc.constantFrom(...PHASES), cand: fc.boolean(), skew: fc.constantFrom(0, 0, -MIN) }) },
  { weight: 16, arbitrary: fc.record({ k: fc.constant('metrics' as const), i: fc.nat(), cand: fc.boolean(), bad: fc.integer({ min: 0, max: 3 }).map((x) => x === 0) }) },
  { weight: 30, arbitrary: fc.record({ k: fc.constant('converge' as const), bad: fc.integer({ min: 0, max: 7 }).map((x) => x === 0), every: fc.constantFrom(1, 2, 5), agent: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('fail' as const), i: fc.nat() }) },
  { weight: 20, arbitrary: fc.record({ k: fc.constant('command' as const), command: fc.constantFrom('pause', 'resume', 'resume', 'promote', 'promote', 'promote'), force: fc.boolean() }) },
  // Rare, or few rollouts would live long enough to complete.
  { weight: 1, arbitrary: fc.record({ k: fc.constant('command' as const), command: fc.constantFrom('abort', 'rollback'), force: fc.constant(false) }) },
  { weight: 6, arbitrary: fc.record({ k: fc.constant('change' as const), add: fc.integer({ min: 0, max: 5 }), remove: fc.array(fc.nat(), { maxLength: 3 }) }) },
);

export const scenarioArb = (maxDevices = 300, maxOps = 60): fc.Arbitrary<Scenario> =>
  fc.record({
    plan: planArb,
    // Mostly small fleets (fast, shrink well), sometimes up to the full size.
    devices: fc.oneof(
      { weight: 3, arbitrary: fc.array(deviceArb, { maxLength: 30 }) },
      { weight: 1, arbitrary: fc.integer({ min: 0, max: maxDevices }).chain((n) => fc.array(deviceArb, { minLength: n, maxLength: n })) },
    ),
    ops: fc.array(opArb, { maxLength: maxOps, size: 'max' }),
  });

const modelOf = (a: DeviceSpec['active']): ModelRef | null => (a === 'prev' ? PREV : a === 'cand' ? CAND : a === 'other' ? OTHER : null);
const same = (a: ModelRef | null | undefined, b: ModelRef | null | undefined): boolean => (!a || !b ? !a && !b : a.name === b.name && a.version === b.version);
const badWindow = (): MetricsWindow => window({ errors: 30, confidence_mean: 0.6, latency_p95_ms: 80, outlier_rate: 0.3 });

/** Runs a scenario step by step on frozen states, calling `check` after every step. */
export function runScenario(s: Scenario, check: (before: RolloutState, r: StepResult, e: RolloutEvent) => void = () => undefined): { events: RolloutEvent[]; final: RolloutState } {
  let state = initialState('ro-prop', CAND, s.plan);
  let now = T0;
  const offline = new Set<string>();
  const ids: string[] = [];
  const target = (spec: DeviceSpec, id: string): TargetDevice => {
    ids.push(id);
    if (spec.offline) offline.add(id);
    return { id, active: modelOf(spec.active), ...(spec.baseline && spec.active !== 'none' ? { baseline: window() } : {}) };
  };
  const events: RolloutEvent[] = [];
  const send = (e: RolloutEvent): void => {
    events.push(e);
    const before = deepFreeze(state);
    const r = step(before, deepFreeze(e));
    check(before, r, e);
    state = r.state;
  };
  const rec = (id: string): DeviceRecord | undefined => state.devices[id];
  const online = (id: string): boolean => !offline.has(id);
  const lkgOr = (id: string): ModelRef => rec(id)?.last_known_good ?? PREV;

  send({ type: 'start', at: now, devices: s.devices.map((d, i) => target(d, `d${i}`)) });
  let added = 0;
  for (const op of s.ops) {
    const pick = (i: number): string | undefined => (ids.length ? ids[i % ids.length] : undefined);
    switch (op.k) {
      case 'tick':
        now += op.dt;
        send({ type: 'tick', at: now });
        break;
      case 'report': {
        const id = pick(op.i);
        if (id && online(id)) send({ type: 'device_report', at: Math.max(0, now + op.skew), device_id: id, phase: op.phase, model: op.cand ? CAND : lkgOr(id) });
        break;
      }
      case 'metrics': {
        const id = pick(op.i);
        if (id && online(id)) send({ type: 'device_metrics', at: now, device_id: id, model: op.cand ? CAND : lkgOr(id), window: op.bad ? badWindow() : window() });
        break;
      }
      case 'converge': {
        // Online devices do what their desired state says and report on it.
        const list = Object.keys(state.devices).filter((id, i) => online(id) && i % op.every === 0);
        const batch: Array<Extract<RolloutEvent, { type: 'device_metrics' }>> = [];
        const metrics = (e: Extract<RolloutEvent, { type: 'device_metrics' }>): void => (op.agent ? void batch.push(e) : send(e));
        for (const id of list) {
          const desired = rec(id)?.desired;
          if (same(desired?.active, CAND)) {
            send({ type: 'device_report', at: now, device_id: id, phase: 'active', model: CAND });
            metrics({ type: 'device_metrics', at: now, device_id: id, model: CAND, window: op.bad ? badWindow() : window() });
          } else if (desired?.shadow) {
            const shadow = { model: CAND, count: 60, agreement: op.bad ? 0.5 : 0.98, confidence_mean: op.bad ? 0.5 : 0.9, latency_p95_ms: 21 };
            metrics({ type: 'device_metrics', at: now, device_id: id, model: lkgOr(id), window: window(), shadow });
          } else if (desired && rec(id)?.revert_pending) {
            send({ type: 'device_report', at: now, device_id: id, phase: op.agent ? 'rolled_back' : 'active', model: lkgOr(id) });
          }
        }
        if (batch.length) send({ type: 'device_metrics_batch', at: now, items: batch });
        break;
      }
      case 'fail': {
        const moved = Object.keys(state.devices).filter((id) => online(id) && (same(rec(id)?.desired?.active, CAND) || rec(id)?.desired?.shadow));
        const id = moved[op.i % Math.max(1, moved.length)];
        if (id) send({ type: 'device_report', at: now, device_id: id, phase: 'failed', model: CAND, reason: 'smoke test mismatch' });
        break;
      }
      case 'command':
        send({ type: 'command', at: now, command: op.command, actor: 'prop', ...(op.command === 'promote' ? { force: op.force } : {}) });
        break;
      case 'change': {
        const add = Array.from({ length: op.add }, (_, j) => target({ active: j % 3 === 0 ? 'none' : 'prev', offline: j % 4 === 1, baseline: true }, `n${added++}`));
        const remove = op.remove.map(pick).filter((x): x is string => x !== undefined);
        send({ type: 'devices_changed', at: now, added: add, removed: remove });
        break;
      }
    }
  }
  return { events, final: state };
}
