import { describe, expect, it } from 'vitest';
import { addShadow, addWindow, emptyMetrics, emptyShadow } from '../../../fleet/core/rollouts/aggregate.js';
import { evaluateGates, type GateDevice } from '../../../fleet/core/rollouts/gates.js';
import { gates as gatesSchema, type GatesOverride, type MetricsWindow } from '../../../fleet/core/rollouts/types.js';
import { CAND, window } from './helpers.js';

function dev(id: string, cand: Partial<MetricsWindow> | null, over: Partial<GateDevice> = {}, base: Partial<MetricsWindow> | null = {}): GateDevice {
  return {
    id,
    has_previous: true,
    failure: 'none',
    installed: cand !== null,
    baseline: base ? addWindow(emptyMetrics(), window(base)) : emptyMetrics(),
    candidate: cand ? addWindow(emptyMetrics(), window(cand)) : emptyMetrics(),
    shadow: emptyShadow(),
    ...over,
  };
}

const judge = (devices: GateDevice[], g: GatesOverride = {}, mode: 'shadow' | 'active' = 'active') =>
  evaluateGates({ mode, gates: gatesSchema.parse({ min_reporting_ratio: 0, ...g }), on_gate_failure: 'pause', devices });

describe('gates', () => {
  it('wait until min_devices_reporting devices have min_samples each, then pass with every signal', () => {
    expect(judge([]).status).toBe('waiting');
    expect(judge([dev('a', { count: 19 })]).status).toBe('waiting');
    const r = judge([dev('a', {}), dev('b', null)], { min_devices_reporting: 1 });
    expect(r.status).toBe('pass');
    expect(r.signals.map((s) => s.name)).toEqual(['failures', 'devices_reporting', 'error_rate_increase', 'latency_p95_ratio', 'confidence_drop', 'outlier_rate_increase']);
    expect(r.reason).toMatch(/^gates passed with 1 devices reporting: failures 0 ≤ 0; error_rate_increase 0 ≤ 0.010/);
  });

  it('a first install (no device ran a model before) says it had no baseline instead of "gates passed"', () => {
    const first = judge([dev('a', {}, { has_previous: false }, null)], { min_devices_reporting: 1 });
    expect(first.status).toBe('pass');
    expect(first.reason).toMatch(/^no baseline to compare with: the 1 reporting devices ran no model before this one, so only installs, smoke tests and failures were judged \(failures 0 ≤ 0\)/);
    expect(first.reason).not.toMatch(/gates passed/);
    expect(first.signals.filter((s) => s.name === 'error_rate_increase' || s.name === 'confidence_drop').map((s) => s.ok)).toEqual([null, null]);
    // One device with a previous version is a baseline: the usual verdict.
    expect(judge([dev('a', {}, { has_previous: false }, null), dev('b', {})], { min_devices_reporting: 1 }).reason).toMatch(/^gates passed with 2 devices reporting/);
  });

  it('judges latency above a floor only: sub-millisecond noise is not a regression, a real slowdown is', () => {
    const lat = (cand: number, base: number, g: GatesOverride = {}) => judge([dev('a', { latency_p95_ms: cand, count: 100 }, {}, { latency_p95_ms: base, count: 100 })], g);
    // 0.3 ms against 0.1 ms: both count as the 2 ms floor.
    expect(lat(0.3, 0.1).signals.find((s) => s.name === 'latency_p95_ratio')?.value).toBe(1);
    expect(lat(0.3, 0.1).status).toBe('pass');
    // Without the floor the same numbers fail the 1.5 ratio.
    expect(lat(0.3, 0.1, { latency_floor_ms: 0 }).status).toBe('fail');
    // Above the floor the ratio is the plain one: 20 ms against 10 ms fails.
    expect(lat(20, 10).signals.find((s) => s.name === 'latency_p95_ratio')?.value).toBe(2);
    expect(lat(20, 10).status).toBe('fail');
    // Partly under: 3 ms against 1 ms is 3 / 2.
    expect(lat(3, 1).signals.find((s) => s.name === 'latency_p95_ratio')?.value).toBe(1.5);
  });

  it('the reporting ratio is over devices that did not fail', () => {
    const ds = [dev('a', {}), dev('b', null), dev('c', null, { failure: 'acknowledged' })];
    expect(judge(ds, { min_reporting_ratio: 0.5 }).status).toBe('pass');
    expect(judge(ds, { min_reporting_ratio: 0.6 }).status).toBe('waiting');
  });

  it('does not judge quality on too few devices, but judges failures at once', () => {
    const r = judge([dev('a', { confidence_mean: 0.5 }), dev('b', null)], { min_devices_reporting: 2 });
    expect(r.status).toBe('waiting');
    expect(r.signals.find((s) => s.name === 'confidence_drop')).toMatchObject({ ok: null, value: expect.closeTo(0.4, 9) });
    const f = judge([dev('a', null, { failure: 'counted' }), dev('b', null)], { min_devices_reporting: 2 });
    expect(f).toMatchObject({ status: 'fail', failed: ['failures'], action: 'pause' });
  });

  it('compares each device with its own previous version (weighted by candidate traffic)', () => {
    // A slow device and a fast one, both 10% slower on the candidate: pooled means across
    // devices would mix hardware; paired ratios say 1.1.
    const r = judge([dev('slow', { latency_p95_ms: 110, count: 100 }, {}, { latency_p95_ms: 100, count: 900 }), dev('fast', { latency_p95_ms: 11, count: 900 }, {}, { latency_p95_ms: 10, count: 100 })]);
    expect(r.signals.find((s) => s.name === 'latency_p95_ratio')?.value).toBeCloseTo(1.1, 9);
    expect(r.status).toBe('pass');
  });

  it('error rate counts failed inferences, so a candidate that only errors still reports and fails', () => {
    const r = judge([dev('a', { count: 0, errors: 50 })]);
    expect(r.status).toBe('fail');
    expect(r.failed).toContain('error_rate_increase');
  });

  it('a first install has nothing to regress from: relative gates are not evaluable and do not block', () => {
    const r = judge([dev('a', { confidence_mean: 0.1 }, { has_previous: false }, null)]);
    expect(r.status).toBe('pass');
    expect(r.signals.find((s) => s.name === 'confidence_drop')).toMatchObject({ value: null, ok: null, devices: 0 });
  });

  it('the failure ratio is judged once enough installs finished', () => {
    const g = { max_failures: null, max_failure_ratio: 0.3, min_devices_reporting: 3 };
    expect(judge([dev('a', null, { failure: 'counted' })], g).status).toBe('waiting');
    const r = judge([dev('a', null, { failure: 'counted' }), dev('b', {}), dev('c', {})], g);
    expect(r).toMatchObject({ status: 'fail', failed: ['failure_ratio'] });
    expect(r.signals.find((s) => s.name === 'failure_ratio')?.value).toBeCloseTo(1 / 3, 9);
  });

  it('a per-gate override turns a pause into an abort', () => {
    const r = judge([dev('a', { outlier_rate: 0.5 })], { on_failure: { outlier_rate_increase: 'abort' } });
    expect(r).toMatchObject({ status: 'fail', action: 'abort', failed: ['outlier_rate_increase'] });
    expect(judge([dev('a', { outlier_rate: 0.5 })], { on_failure: { confidence_drop: 'abort' } }).action).toBe('pause');
  });

  it('disabled gates (null) are not evaluated', () => {
    const r = judge([dev('a', { confidence_mean: 0.1 })], { max_confidence_drop: null, max_failures: null });
    expect(r.status).toBe('pass');
    expect(r.signals.map((s) => s.name)).not.toContain('confidence_drop');
  });

  it('shadow mode compares the shadow side against the active model and checks agreement', () => {
    const shadow = (agreement: number) => addShadow(emptyShadow(), { model: CAND, count: 40, agreement, confidence_mean: 0.88, latency_p95_ms: 25 });
    const ok = judge([dev('a', null, { shadow: shadow(0.95) })], {}, 'shadow');
    expect(ok.status).toBe('pass');
    expect(ok.signals.map((s) => s.name)).toEqual(['failures', 'devices_reporting', 'shadow_agreement', 'latency_p95_ratio', 'confidence_drop']);
    const bad = judge([dev('a', null, { shadow: shadow(0.8) })], {}, 'shadow');
    expect(bad).toMatchObject({ status: 'fail', failed: ['shadow_agreement'] });
    expect(bad.reason).toBe('gate failed: shadow_agreement 0.800 < 0.900');
  });
});
