import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { CALM_GATES, TAGS, V1, V2, decisions, explain, postRollout, pushUnsureModel, rolloutState, sameRef, setUpScenario, tearDown, until, type Scenario } from './harness.js';

const ID = 'ro-unsure';
let s: Scenario | undefined;
beforeAll(async () => {
  // v2 is a model that answers every input with about 0.25 confidence (v1: about 0.4).
  s = await setUpScenario({ n: 10, v2Seed: null });
  await pushUnsureModel(s.svc, s.tmp.dir, V2.version);
});
afterAll(() => tearDown(s));

describe('a gate tripped by a confidence drop', () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('aborts per the gate override and reverts every touched device to v1', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, ID)));
    const { svc, devs } = s!;
    const created = await postRollout(svc, s!.token, {
      id: ID,
      model: V2,
      selector: TAGS,
      plan: {
        canary: { devices: { count: 3 }, bake_s: 30 },
        waves: [{ devices: { percent: 100 }, bake_s: 0.5 }],
        // Failures pause by default; this one gate aborts.
        on_gate_failure: 'pause',
        gates: { ...CALM_GATES, max_confidence_drop: 0.05, on_failure: { confidence_drop: 'abort' } },
      },
    });
    expect(created.status).toBe(201);

    await until('the rollout aborts', () => rolloutState(svc, ID).status === 'aborted');
    const log = decisions(svc, ID);
    const tripped = log.find((d) => d.kind === 'gate_failed');
    expect(tripped?.stage_name).toBe('canary');
    expect(tripped?.reason).toMatch(/confidence_drop .* > 0\.050; aborting per plan/);
    const drop = tripped?.signals?.find((x) => x.name === 'confidence_drop');
    expect(drop).toMatchObject({ ok: false, threshold: 0.05 });
    // Measured from real telemetry: about 0.42 - 0.25.
    expect(drop?.value as number).toBeGreaterThan(0.1);
    expect(log.some((d) => d.kind === 'paused')).toBe(false);
    const aborted = log.find((d) => d.kind === 'aborted');
    expect(aborted?.signals).toContainEqual({ name: 'devices_reverted', value: 3 });

    const st = rolloutState(svc, ID);
    const touched = devs.filter((d) => st.devices[d.id]?.assigned_stage !== null);
    expect(touched).toHaveLength(3);
    for (const d of touched) expect(st.devices[d.id]?.desired).toEqual({ active: V1, shadow: null });
    // Every touched agent went back to v1 (kept on disk: no download), and the fleet sees it.
    await until('every touched agent runs v1 again', () => touched.every((d) => sameRef(d.agent?.service.activeRef, V1)));
    await until('the fleet sees every touched device rolled back', () => touched.every((d) => svc.ctx.devices.get(d.id).deployment?.phase === 'rolled_back'));
    expect(devs.map((d) => svc.ctx.devices.get(d.id).models.active)).toEqual(devs.map(() => V1));
    for (const d of touched) {
      expect(svc.ctx.devices.get(d.id).models.previous).toEqual(V2);
      expect(svc.ctx.devices.get(d.id).deployment).toMatchObject({ rollout_id: ID, target: V1, phase: 'rolled_back' });
    }
    // The others were never touched.
    for (const d of devs.filter((x) => !touched.includes(x))) {
      expect(st.devices[d.id]?.desired).toBeNull();
      expect(d.agent?.service.activeRef).toEqual(V1);
    }
  });
});
