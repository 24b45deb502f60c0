import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { deviceRank } from '../../../fleet/core/rollouts/selection.js';
import { CALM_GATES, MODEL, TAGS, V1, V2, decisions, explain, postRollout, rolloutState, sameRef, setUpScenario, sleep, tearDown, until, type Scenario } from './harness.js';

const ID = 'ro-install-fails';
let s: Scenario | undefined;
beforeAll(async () => {
  s = await setUpScenario({ n: 10 });
});
afterAll(() => tearDown(s));

describe('one device whose install fails', () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('is reverted alone, reports failed, and the rollout pauses (max_failures 0) until an operator resumes', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, ID)));
    const { svc, devs } = s!;
    // Selection is a hash of rollout id + device id: the first two are the canary.
    const [broken, healthy] = [...devs].sort((a, b) => (deviceRank(ID, a.id) < deviceRank(ID, b.id) ? -1 : 1));
    // A regular file where the version directory must go: staging works, the final rename
    // fails, and the model store answers STORAGE_FAILED.
    await writeFile(join(broken!.dataDir, 'models', MODEL, V2.version), 'not a directory\n');

    const created = await postRollout(svc, s!.token, {
      id: ID,
      model: V2,
      selector: TAGS,
      plan: { canary: { devices: { count: 2 }, bake_s: 1 }, waves: [{ devices: { percent: 50 }, bake_s: 0.5 }, { devices: { percent: 100 }, bake_s: 0.5 }], gates: CALM_GATES },
    });
    expect(created.status).toBe(201);

    await until('the rollout pauses', () => rolloutState(svc, ID).status === 'paused');
    await until(`${broken!.id} confirms it is back on v1`, () => decisions(svc, ID).some((d) => d.kind === 'device_rolled_back' && d.device_id === broken!.id));
    const st = rolloutState(svc, ID);
    expect(st.stage).toBe(0);
    expect(st.pause).toMatchObject({ by: 'gate' });
    expect(st.pause?.reason).toMatch(/failures 1 > 0/);

    // The device said why (phase failed, with the store's error code) and was reverted alone.
    const failed = decisions(svc, ID).find((d) => d.kind === 'device_failed');
    expect(failed).toMatchObject({ device_id: broken!.id, stage_name: 'canary' });
    expect(failed?.reason).toMatch(/STORAGE_FAILED/);
    expect(failed?.signals).toContainEqual({ name: 'phase', value: 'failed' });
    expect(st.devices[broken!.id]).toMatchObject({ desired: { active: V1, shadow: null }, failure: { acknowledged: false } });
    expect(broken!.lines.some((l) => l.msg === 'deployment failed; the current model keeps serving' && /STORAGE_FAILED|not a directory/i.test(String(l.reason)))).toBe(true);
    expect(broken!.agent?.service.activeRef).toEqual(V1);
    expect(svc.ctx.devices.get(broken!.id).models.active).toEqual(V1);

    // The other canary device keeps v2 (pause holds assignments, it does not revert), and the
    // pause holds: nobody else is moved while bake time passes.
    await until(`${healthy!.id} runs v2`, () => sameRef(healthy!.agent?.service.activeRef, V2));
    await sleep(1500);
    const held = rolloutState(svc, ID);
    expect(held.status).toBe('paused');
    const others = devs.filter((d) => d !== broken && d !== healthy);
    for (const d of others) {
      expect(held.devices[d.id]?.desired).toBeNull();
      expect(d.agent?.service.activeRef).toEqual(V1);
    }

    // An operator looks, resumes (acknowledging the failure), and the rest of the fleet moves;
    // the broken device keeps its slot and stays on v1.
    const resumed = await fetch(`${svc.urls.http}/v1/rollouts/${ID}/resume`, { method: 'POST', headers: { authorization: `Bearer ${s!.token}`, 'content-type': 'application/json' }, body: '{}' });
    expect(resumed.status).toBe(200);
    await until('the rollout completes', () => rolloutState(svc, ID).status === 'completed', 60_000);
    await until('every other agent runs v2', () => devs.filter((d) => d !== broken).every((d) => sameRef(d.agent?.service.activeRef, V2)));
    expect(broken!.agent?.service.activeRef).toEqual(V1);
    const done = decisions(svc, ID);
    expect(done.filter((d) => d.kind === 'device_failed')).toHaveLength(1);
    expect(done.at(-1)?.signals).toEqual(expect.arrayContaining([{ name: 'devices_on_candidate', value: 9 }, { name: 'devices_failed', value: 1 }]));
  });
});
