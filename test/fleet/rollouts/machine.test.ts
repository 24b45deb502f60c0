import { describe, expect, it } from 'vitest';
import { desiredStates, initialState, replay } from '../../../fleet/core/rollouts/machine.js';
import type { RolloutPlanInput } from '../../../fleet/core/rollouts/types.js';
import { CAND, DAY, devices, EASY_GATES, Harness, MIN, PREV, T0 } from './helpers.js';

const BAKE_S = 600;
const bake = BAKE_S * 1000;

const fullPlan: RolloutPlanInput = {
  shadow: { bake_s: BAKE_S, sample_rate: 0.2 },
  canary: { devices: { count: 2 }, bake_s: BAKE_S },
  waves: [
    { devices: { percent: 50 }, bake_s: BAKE_S },
    { devices: { percent: 100 }, bake_s: BAKE_S },
  ],
  gates: EASY_GATES,
};

describe('rollout machine: examples', () => {
  it('takes an unconfirmed device out on an operator\'s word: the stage stops waiting for it and confirmed ones are not touched', () => {
    const h = new Harness({ canary: { devices: { count: 2 }, bake_s: BAKE_S }, waves: [{ devices: { percent: 100 }, bake_s: BAKE_S }], gates: { ...EASY_GATES, min_reporting_ratio: 1 } });
    h.start(devices(4));
    const [up, down] = h.onCandidate() as [string, string];
    h.report(up, 'active');
    h.metrics(up, CAND);
    h.tick(bake);
    // One canary device never reports: the stage waits for it.
    expect(h.state.stage).toBe(0);
    h.exclude([up]);
    expect(h.decisions.at(-1)).toMatchObject({ kind: 'command_rejected', reason: expect.stringContaining(`none of ${up} is an unconfirmed device`) });
    h.exclude([down, 'not-in-rollout']);
    expect(h.decisions.find((d) => d.kind === 'devices_excluded')).toMatchObject({ kind: 'devices_excluded', actor: 'ana@ml', reason: expect.stringMatching(new RegExp(`1 devices excluded by ana@ml: ${down}; not changed .*: not-in-rollout`)) });
    expect(h.state.devices[down]?.excluded_reason).toBe('excluded by ana@ml');
    expect(h.state.devices[up]?.excluded_reason).toBeNull();
    // The gates are judged again at once: nothing else held the canary.
    expect(h.state.stage).toBe(1);
    // Its later reports no longer move it.
    h.report(down, 'failed', CAND, 'boom');
    expect(h.state.devices[down]?.failure).toBeNull();
  });

  it('runs shadow → canary → waves to completion, shadowing exactly the future canary', () => {
    const h = new Harness(fullPlan);
    h.start(devices(20));
    expect(h.state.status).toBe('running');
    expect(h.kinds()).toEqual(['started', 'stage_started']);
    const shadow = h.shadowing();
    expect(shadow).toHaveLength(2);
    expect(h.onCandidate()).toEqual([]);
    // Nothing callers see changes: shadow devices keep their active version.
    for (const id of shadow) expect(h.published.get(id)).toEqual({ device_id: id, active: PREV, shadow: { model: CAND, sample_rate: 0.2 } });

    for (const id of shadow) {
      h.report(id, 'shadow');
      h.metrics(id, PREV, {}, { agreement: 0.97 });
    }
    h.tick(bake - 1);
    expect(h.state.stage).toBe(0); // bake not over
    h.tick(1);
    expect(h.state.stage).toBe(1);
    expect(h.onCandidate()).toEqual(shadow);
    expect(h.shadowing()).toEqual([]);
    const passed = h.decisions.find((d) => d.kind === 'gate_passed');
    expect(passed?.signals?.find((s) => s.name === 'shadow_agreement')).toMatchObject({ value: 0.97, threshold: 0.9, ok: true });

    h.healthyReports();
    h.tick(bake);
    expect(h.state.stage).toBe(2);
    expect(h.onCandidate()).toHaveLength(10);
    expect(h.onCandidate()).toEqual(expect.arrayContaining(shadow));

    h.healthyReports();
    h.tick(bake);
    expect(h.onCandidate()).toHaveLength(20);
    h.healthyReports();
    h.tick(bake);
    expect(h.state.status).toBe('completed');
    expect(h.kinds().filter((k) => k === 'stage_started')).toHaveLength(4);
    expect(h.decisions.at(-1)).toMatchObject({ kind: 'completed', signals: expect.arrayContaining([{ name: 'devices_on_candidate', value: 20 }]) });
    expect(desiredStates(h.state)).toHaveLength(20);
    for (const d of h.decisions) expect(d.reason.length).toBeGreaterThan(10);
  });

  it('a confidence drop trips the gate, aborts, and reverts every touched device', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { count: 3 }, bake_s: BAKE_S }, on_gate_failure: 'abort' });
    h.start(devices(12));
    const canary = h.onCandidate();
    expect(canary).toHaveLength(3);
    h.report(canary[0] as string, 'active');
    h.metrics(canary[0] as string, CAND, { confidence_mean: 0.7 });
    expect(h.state.status).toBe('aborted');
    const failed = h.decisions.find((d) => d.kind === 'gate_failed');
    expect(failed?.reason).toMatch(/confidence_drop 0\.200 > 0\.050/);
    expect(failed?.signals?.find((s) => s.name === 'confidence_drop')).toMatchObject({ value: expect.closeTo(0.2, 9), threshold: 0.05, ok: false, devices: 1 });
    for (const id of canary) expect(h.published.get(id)).toEqual({ device_id: id, active: PREV, shadow: null });
    expect(h.onCandidate()).toEqual([]);
    expect(h.decisions.at(-1)).toMatchObject({ kind: 'aborted', signals: expect.arrayContaining([{ name: 'devices_reverted', value: 3 }]) });
  });

  it('a per-gate override aborts while other gates pause', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, gates: { ...EASY_GATES, on_failure: { latency_p95_ratio: 'abort' } } });
    h.start(devices(10));
    const [a] = h.onCandidate() as [string];
    h.metrics(a, CAND, { latency_p95_ms: 45 });
    expect(h.state.status).toBe('aborted');
  });

  describe('one device fails its smoke test', () => {
    const plan = (maxFailures: number): RolloutPlanInput => ({ ...fullPlan, shadow: undefined, canary: { devices: { count: 3 }, bake_s: BAKE_S }, gates: { ...EASY_GATES, max_failures: maxFailures } });

    it('is rolled back alone and pauses the rollout when no failure is allowed', () => {
      const h = new Harness(plan(0));
      h.start(devices(10));
      const [bad, ...rest] = h.onCandidate() as [string, ...string[]];
      const r = h.report(bad, 'failed', CAND, 'MODEL_SMOKE_TEST_FAILED: golden input 3 mismatched');
      expect(r.desired).toEqual([{ device_id: bad, active: PREV, shadow: null }]);
      expect(r.decisions.map((d) => d.kind)).toEqual(['device_failed', 'gate_failed', 'paused']);
      expect(r.decisions[0]?.reason).toContain('golden input 3');
      expect(h.state.status).toBe('paused');
      expect(h.onCandidate()).toEqual(rest.sort());
      // Paused: bake and good metrics do not advance it.
      h.healthyReports();
      h.tick(bake * 3);
      expect(h.state.stage).toBe(0);
      // Resume acknowledges the failure: the failed device is not retried, nor replaced.
      const resumed = h.command('resume');
      expect(resumed.decisions[0]).toMatchObject({ kind: 'resumed', signals: expect.arrayContaining([{ name: 'failures_acknowledged', value: 1 }]) });
      expect(h.state.stage).toBe(1); // gates pass and the bake is long over
      expect(h.published.get(bad)?.active).toEqual(h.state.devices[bad]?.last_known_good);
      // The device later confirms it runs the previous version again.
      h.report(bad, 'active', PREV);
      expect(h.decisions.at(-1)).toMatchObject({ kind: 'device_rolled_back', device_id: bad });
    });

    it('is rolled back alone and the rollout continues when one failure is allowed', () => {
      const h = new Harness(plan(1));
      h.start(devices(10));
      const [bad, ...rest] = h.onCandidate() as [string, ...string[]];
      const r = h.report(bad, 'failed', CAND, 'smoke test');
      expect(r.desired).toEqual([{ device_id: bad, active: PREV, shadow: null }]);
      expect(r.decisions.map((d) => d.kind)).toEqual(['device_failed']);
      expect(h.state.status).toBe('running');
      h.healthyReports();
      h.tick(bake);
      expect(h.state.stage).toBe(1);
      expect(h.onCandidate()).toEqual(expect.arrayContaining(rest));
      expect(h.onCandidate()).not.toContain(bad);
      // A second failure crosses the threshold.
      const [other] = h.onCandidate().filter((id) => !rest.includes(id)) as [string];
      h.report(other, 'rolled_back', CAND, 'health check failed after activation');
      expect(h.state.status).toBe('paused');
    });

    it('in shadow, only the shadow is removed', () => {
      const h = new Harness({ ...fullPlan, gates: { ...EASY_GATES, max_failures: 1 } });
      h.start(devices(10));
      const [bad] = h.shadowing() as [string];
      const r = h.report(bad, 'failed', CAND, 'cannot load');
      expect(r.desired).toEqual([{ device_id: bad, active: PREV, shadow: null }]);
      expect(h.state.status).toBe('running');
    });
  });

  it('promote skips the bake; without passing gates it needs force', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, gates: { ...EASY_GATES, min_reporting_ratio: 1 } });
    h.start(devices(10));
    const waiting = h.command('promote');
    expect(waiting.decisions[0]).toMatchObject({ kind: 'command_rejected', actor: 'ana@ml' });
    expect(waiting.decisions[0]?.reason).toMatch(/waiting for devices: 0 of 2 required reporting/);
    expect(h.state.stage).toBe(0);

    h.healthyReports();
    h.tick(1000);
    expect(h.state.stage).toBe(0); // gates pass, bake not over
    const promoted = h.command('promote');
    expect(promoted.decisions.map((d) => d.kind)).toEqual(['gate_passed', 'stage_started']);
    expect(promoted.decisions[0]?.reason).toMatch(/promoted by ana@ml, skipping the rest of its bake/);
    expect(h.state.stage).toBe(1);
    expect(h.onCandidate()).toHaveLength(5);

    // The wave's new devices have not reported (gates count every device moved so far, and
    // want all of them here); force moves on anyway, and says so.
    const forced = h.command('promote', true);
    expect(forced.decisions.map((d) => d.kind)).toEqual(['gate_overridden', 'stage_started']);
    expect(h.onCandidate()).toHaveLength(10);
  });

  it('rollback after completion reverts every device the rollout moved', () => {
    const h = new Harness({ canary: { devices: { count: 1 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES });
    const devs = devices(6);
    devs.push({ id: 'dev-new', active: null });
    devs.push({ id: 'dev-done', active: CAND });
    h.start(devs);
    h.healthyReports();
    h.tick(1);
    h.healthyReports();
    h.tick(1);
    expect(h.state.status).toBe('completed');
    expect(h.onCandidate()).toHaveLength(7);
    expect(h.published.has('dev-done')).toBe(false); // already ran it: never touched
    expect(h.command('abort').decisions[0]?.kind).toBe('command_rejected');
    const r = h.command('rollback');
    expect(h.state.status).toBe('rolled_back');
    // dev-new had no version before the candidate: nothing to revert to, and the message says so
    // (it used to count it among 7 "reverted" while the device kept running the candidate).
    expect(r.decisions[0]?.reason).toBe('manual rollback by ana@ml; 6 devices reverted to their last-known-good version; 1 had no previous version to revert to and keeps running digits@2.0.0 until given another: dev-new');
    expect(r.decisions[0]?.signals).toEqual(expect.arrayContaining([{ name: 'devices_reverted', value: 6 }, { name: 'devices_without_previous', value: 1 }]));
    expect(h.onCandidate()).toEqual([]);
    expect(h.published.get('dev-new')).toEqual({ device_id: 'dev-new', active: null, shadow: null });
  });

  it('a device offline during its stage converges when it reports days later', () => {
    const h = new Harness({ canary: { devices: { count: 1 }, bake_s: BAKE_S }, waves: [{ devices: { percent: 100 }, bake_s: BAKE_S }], gates: { ...EASY_GATES, min_reporting_ratio: 0.5 } });
    h.start(devices(4));
    const canary = h.onCandidate();
    h.healthyReports();
    h.tick(bake);
    const late = h.onCandidate().find((id) => !canary.includes(id)) as string;
    for (const id of h.onCandidate().filter((x) => x !== late)) {
      h.report(id, 'active');
      h.metrics(id, CAND);
    }
    h.tick(bake);
    expect(h.state.status).toBe('completed');
    expect(h.state.devices[late]?.installed_at).toBeNull();

    h.now += 3 * DAY;
    const r1 = h.report(late, 'active');
    const r2 = h.metrics(late, CAND);
    expect([...r1.desired, ...r2.desired]).toEqual([]); // its desired state was set days ago
    expect(h.state.devices[late]?.installed_at).toBe(h.now);

    // The same late device failing is handled like any other failure: reverted alone.
    h.now += DAY;
    const r3 = h.report(late, 'failed', CAND, 'disk full');
    expect(r3.desired).toEqual([{ device_id: late, active: PREV, shadow: null }]);
    expect(h.state.status).toBe('completed');
  });

  it('after an abort, a device that was offline converges on its previous version', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { count: 2 }, bake_s: BAKE_S } });
    h.start(devices(6));
    const [online, offline] = h.onCandidate() as [string, string];
    h.report(online, 'active');
    h.command('abort');
    expect(h.state.status).toBe('aborted');
    h.now += 2 * DAY;
    h.report(offline, 'active'); // comes back still on the candidate: desired says PREV already
    expect(h.last?.desired).toEqual([]);
    h.report(offline, 'active', PREV);
    expect(h.decisions.at(-1)).toMatchObject({ kind: 'device_rolled_back', device_id: offline });
  });

  it("takes the agent's rolled_back report naming the last-known-good version as the revert's confirmation", () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { count: 3 }, bake_s: BAKE_S } });
    h.start(devices(6));
    const [a, b] = h.onCandidate() as [string, string, string];
    for (const id of h.onCandidate()) h.report(id, 'active');
    // Not reverting yet: a rolled_back report is news of a failure, not a confirmation.
    expect(h.state.devices[a]?.revert_pending).toBe(false);
    h.command('abort');
    expect(h.state.devices[a]?.revert_pending).toBe(true);
    // What agent/deploy/controller.ts sends when it activates its previous version again.
    const r = h.report(a, 'rolled_back', PREV);
    expect(r.decisions).toMatchObject([{ kind: 'device_rolled_back', device_id: a, signals: [{ name: 'phase', value: 'rolled_back' }] }]);
    expect(h.state.devices[a]?.revert_pending).toBe(false);
    // Going "back" to a version that is not its last-known-good confirms nothing.
    const r2 = h.report(b, 'rolled_back', { name: 'digits', version: '0.9.0' });
    expect(r2.decisions).toEqual([]);
    expect(h.state.devices[b]?.revert_pending).toBe(true);
  });

  it('gates wait, and do not pass, until enough devices report', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { count: 3 }, bake_s: BAKE_S }, gates: { ...EASY_GATES, min_devices_reporting: 3 } });
    h.start(devices(10));
    const [a, b, c] = h.onCandidate() as [string, string, string];
    h.metrics(a, CAND);
    h.metrics(b, CAND);
    h.metrics(c, CAND, { count: 5 }); // below min_samples_per_device
    h.tick(bake * 10);
    expect(h.state.stage).toBe(0);
    expect(h.kinds()).not.toContain('gate_passed');
    h.metrics(c, CAND, { count: 5 });
    expect(h.state.stage).toBe(1);
  });

  it('an empty stage does not pass by default, and passes when the plan opts in', () => {
    const plan: RolloutPlanInput = { canary: { devices: { percent: 10 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }] };
    const h = new Harness(plan);
    h.start([]);
    h.tick(DAY);
    expect(h.state).toMatchObject({ status: 'running', stage: 0 });
    const opt = new Harness({ ...plan, gates: { min_devices_reporting: 0 } });
    opt.start([]);
    expect(opt.state.status).toBe('completed');
  });

  it('previous-version windows need the baseline: a device without one waits', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { count: 1 }, bake_s: 0 } });
    h.start(devices(4, PREV, null));
    const [a] = h.onCandidate() as [string];
    h.metrics(a, CAND);
    expect(h.state.stage).toBe(0);
    h.metrics(a, PREV); // a late window of the previous version still lands in the baseline
    expect(h.state.stage).toBe(1);
  });

  it('paused rollouts assign nothing until resumed; newcomers wait too', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined, canary: { devices: { percent: 50 }, bake_s: BAKE_S } });
    h.start(devices(4));
    h.command('pause');
    const r = h.send({ type: 'devices_changed', at: h.now, added: devices(8).slice(4), removed: [] });
    expect(r.desired).toEqual([]);
    expect(h.command('resume').desired.map((c) => c.active)).toEqual([CAND, CAND]);
  });

  it('devices leaving mid-rollout are reverted; devices joining after completion get the candidate', () => {
    const h = new Harness({ canary: { devices: { count: 2 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES });
    h.start(devices(4));
    const [gone] = h.onCandidate() as [string];
    const r = h.send({ type: 'devices_changed', at: h.now, added: [], removed: [gone] });
    expect(r.desired[0]).toEqual({ device_id: gone, active: PREV, shadow: null });
    expect(h.onCandidate()).toHaveLength(2); // topped up to the allowance from the remaining devices
    h.healthyReports();
    h.tick(1);
    h.healthyReports();
    h.tick(1);
    expect(h.state.status).toBe('completed');
    const joined = h.send({ type: 'devices_changed', at: h.now, added: [{ id: 'late-1', active: PREV }], removed: [] });
    expect(joined.desired).toEqual([{ device_id: 'late-1', active: CAND, shadow: null }]);
  });

  it('rejects commands that do not apply, with the reason', () => {
    const h = new Harness(fullPlan);
    expect(h.command('rollback').decisions[0]?.reason).toMatch(/nothing to roll back before start/);
    h.start(devices(3));
    expect(h.command('resume').decisions[0]).toMatchObject({ kind: 'command_rejected', reason: 'resume rejected: the rollout is running' });
    expect(h.send({ type: 'start', at: h.now, devices: [] }).decisions[0]?.kind).toBe('event_ignored');
  });

  it('ignores stale reports and uses a monotonic clock', () => {
    const h = new Harness({ ...fullPlan, shadow: undefined });
    h.start(devices(10));
    const [a] = h.onCandidate() as [string];
    h.now += MIN;
    h.report(a, 'active');
    h.now -= 30_000;
    h.report(a, 'failed');
    expect(h.state.devices[a]?.failure).toBeNull();
    expect(h.state.updated_at).toBe(T0 + MIN);
  });

  it('replay folds the same log to the same state', () => {
    const h = new Harness(fullPlan);
    h.start(devices(20));
    for (const id of h.shadowing()) h.metrics(id, PREV, {}, {});
    h.tick(bake);
    h.healthyReports();
    h.command('pause');
    h.command('resume');
    const r = replay(initialState('ro-test', CAND, fullPlan), h.events);
    expect(r.state).toEqual(h.state);
    expect(r.decisions).toEqual(h.decisions);
  });

  it('validates the plan at creation, naming the bad keys', () => {
    expect(() => initialState('ro-1', CAND, { waves: [{ devices: { percent: 50 } }] })).toThrow(/waves\.0\.devices: the last wave must be \{ percent: 100 \}/);
    expect(() => initialState('ro/1', CAND, {})).toThrow(/rollout id is invalid/);
  });
});

describe('rollout machine: telemetry batches', () => {
  it('a device_metrics_batch folds its windows as the same windows one by one would', () => {
    const plan: RolloutPlanInput = { canary: { devices: { count: 3 }, bake_s: 600 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES };
    const one = new Harness(plan);
    const many = new Harness(plan);
    one.start(devices(8));
    many.start(devices(8));
    const windows = one.onCandidate().flatMap((id, i) => [
      { type: 'device_metrics' as const, at: T0 + i, device_id: id, model: CAND, window: { count: 40 + i, errors: 0, latency_p95_ms: 20 + i, confidence_mean: 0.9, outlier_rate: 0.02 } },
      { type: 'device_metrics' as const, at: T0 + i, device_id: `dev-00${7 - i}`, model: PREV, window: { count: 10, errors: 0, latency_p95_ms: 19, confidence_mean: 0.91, outlier_rate: 0.01 } },
    ]);
    const before = one.decisions.length;
    for (const w of windows) one.send(w);
    const r = many.send({ type: 'device_metrics_batch', at: T0 + 10, items: windows });
    expect(one.decisions.length).toBe(before);
    expect(r.decisions).toEqual([]);
    expect(many.state.devices).toEqual(one.state.devices);
    // And the gates see them: the canary passes on the batch's windows once baked.
    many.tick(600_000);
    expect(many.state.stage).toBe(1);
  });
});

describe('rollout machine: regressions', () => {
  it('a shadow stage where no target device runs a model passes instead of waiting forever (the README walk-through: a fresh device)', () => {
    const h = new Harness({ shadow: { devices: { percent: 10 }, bake_s: 1, sample_rate: 0.1 }, canary: { devices: { percent: 10 }, bake_s: 1 }, waves: [{ devices: { percent: 100 }, bake_s: 1 }] });
    h.start(devices(1, null, null));
    expect(h.shadowing()).toEqual([]);
    h.tick(1000);
    expect(h.kinds()).toContain('gate_passed');
    expect(h.decisions.find((d) => d.kind === 'gate_passed')?.reason).toMatch(/nothing to judge: no target device runs a model/);
    // The canary then moves the fresh device to the candidate and judges it as usual.
    expect(h.state.stage).toBe(1);
    expect(h.onCandidate()).toEqual(['dev-000']);
    h.tick(5000);
    expect(h.state.stage).toBe(1);
    h.report('dev-000', 'active');
    h.metrics('dev-000', CAND, { count: 50 });
    h.tick(1000);
    expect(h.state.stage).toBe(2);
  });

  it('a shadow stage still waits for the shadowing devices it has', () => {
    const h = new Harness({ shadow: { devices: { count: 1 }, bake_s: 1, sample_rate: 0.1 }, canary: { devices: { percent: 10 }, bake_s: 1 }, waves: [{ devices: { percent: 100 }, bake_s: 1 }] });
    h.start([...devices(1, null, null), { id: 'dev-old', active: PREV }]);
    expect(h.shadowing()).toEqual(['dev-old']);
    h.tick(60_000);
    expect(h.state.stage).toBe(0);
  });
});
