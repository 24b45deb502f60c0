import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { deviceRank } from '../../../fleet/core/rollouts/selection.js';
import { CALM_GATES, TAGS, V1, V2, decisions, explain, postRollout, rolloutState, sameRef, setUpScenario, startAgent, stopAgent, tearDown, until, type Scenario } from './harness.js';

const ID = 'ro-offline';
let s: Scenario | undefined;
beforeAll(async () => {
  s = await setUpScenario({ n: 10 });
});
afterAll(() => tearDown(s));

describe('an offline device', () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('does not hold the rollout back, and converges on the candidate when it comes back', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, ID)));
    const { svc, devs } = s!;
    // The device the rollout picks first (a canary): the hardest place to be missing.
    const away = [...devs].sort((a, b) => (deviceRank(ID, a.id) < deviceRank(ID, b.id) ? -1 : 1))[0]!;
    await stopAgent(away);
    // The agent says it is going offline only while its uplink is connected; when that last
    // status is not sent, the fleet marks it offline after 60 s without a message (the registry's
    // offlineAfterMs), so wait past that.
    await until(`${away.id} is offline`, () => svc.ctx.devices.get(away.id).state === 'offline', 75_000);

    // A device that never reports only ever makes a gate wait: with min_reporting_ratio 0.5 a
    // canary of 2 needs one reporting device, so the missing one cannot stall the rollout.
    const created = await postRollout(svc, s!.token, {
      id: ID,
      model: V2,
      selector: TAGS,
      plan: { canary: { devices: { count: 2 }, bake_s: 0.5 }, waves: [{ devices: { percent: 50 }, bake_s: 0.5 }, { devices: { percent: 100 }, bake_s: 0.5 }], gates: { ...CALM_GATES, min_reporting_ratio: 0.5 } },
    });
    expect(created.status).toBe(201);
    expect(rolloutState(svc, ID).devices[away.id]).toMatchObject({ assigned_stage: 0, desired: { active: V2 } });

    await until('the rollout completes without the offline device', () => rolloutState(svc, ID).status === 'completed', 60_000);
    const online = devs.filter((d) => d !== away);
    await until('every online agent runs v2', () => online.every((d) => sameRef(d.agent?.service.activeRef, V2)));
    expect(rolloutState(svc, ID).devices[away.id]).toMatchObject({ installed_at: null, reported: null, failure: null });
    expect(svc.ctx.devices.get(away.id).models.active).toEqual(V1);
    expect(decisions(svc, ID).at(-1)?.signals).toContainEqual({ name: 'devices_on_candidate', value: 10 });

    // Back with the same data dir: v1 loads from its store, then the retained desired state moves it.
    await startAgent(svc, away);
    await until(`${away.id} runs v2`, () => sameRef(away.agent?.service.activeRef, V2));
    await until(`the fleet sees ${away.id} on v2`, () => {
      const d = svc.ctx.devices.get(away.id);
      return d.state === 'online' && sameRef(d.models.active, V2) && d.deployment?.phase === 'active';
    });
    expect(svc.ctx.devices.get(away.id).deployment).toMatchObject({ rollout_id: ID, target: V2, phase: 'active' });
    expect(svc.ctx.devices.get(away.id).models.previous).toEqual(V1);
    expect(away.lines.some((l) => l.msg === 'model activated')).toBe(true);
  });
});
