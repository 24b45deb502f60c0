import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { CALM_GATES, TAGS, V2, decisions, explain, postRollout, rolloutState, sameRef, setUpScenario, sleep, startFleet, tearDown, until, type Scenario } from './harness.js';
import { captureLogger } from '../../helpers/agent.js';

const ID = 'ro-restart';
// The canary installs take about 3 s here, over 10 s on a box busy with other work: the
// stop must land inside the bake.
const BAKE_S = 15;
let s: Scenario | undefined;
beforeAll(async () => {
  s = await setUpScenario({ n: 10 });
});
afterAll(() => tearDown(s));

describe('a fleet restart mid-rollout', () => {
  // 10 real agents: ~35 s alone, much longer beside the rest of the suite on 2 shared cores.
  it('resumes the rollout where it stood (canary bake) on the same data dir and ports, and completes it', { timeout: 180_000 }, async () => {
    onTestFailed(() => console.log(explain(s!.svc, ID)));
    const before = s!.svc;
    const created = await postRollout(before, s!.token, {
      id: ID,
      model: V2,
      selector: TAGS,
      plan: { canary: { devices: { count: 2 }, bake_s: BAKE_S }, waves: [{ devices: { percent: 50 }, bake_s: 0.5 }, { devices: { percent: 100 }, bake_s: 0.5 }], gates: CALM_GATES },
    });
    expect(created.status).toBe(201);
    const canary = () => Object.entries(rolloutState(s!.svc, ID).devices).filter(([, r]) => r.assigned_stage === 0);
    await until('both canary devices run v2', () => canary().length === 2 && canary().every(([, r]) => r.installed_at !== null));
    const mid = rolloutState(before, ID);
    expect(mid).toMatchObject({ status: 'running', stage: 0 });
    const canaryStartedAt = mid.stage_started_at as number;

    // Stop the service in the canary's bake; the agents keep serving and retry the broker.
    const httpPort = Number(new URL(before.urls.http).port);
    const mqttPort = Number(new URL(before.urls.mqtt).port);
    await before.stop();
    const stoppedAt = Date.now();
    // A guard, not the subject: the canary must still be baking, or this tests nothing.
    expect(stoppedAt - canaryStartedAt, 'the canary installs took longer than its bake').toBeLessThan(BAKE_S * 1000);
    const okBefore = s!.traffic.ok;
    await sleep(1000);
    expect(s!.traffic.ok).toBeGreaterThan(okBefore);

    s!.svc = await startFleet({ dataDir: s!.dataDir, httpPort, mqttPort, log: captureLogger('info').log });
    const after = s!.svc;
    expect(after.urls).toEqual(before.urls);
    // Loaded from SQLite as it stood: same rollout, same canary, same bake clock.
    expect(rolloutState(after, ID)).toMatchObject({ started_at: mid.started_at, devices: Object.fromEntries(canary().map(([id]) => [id, { assigned_stage: 0 }])) });

    await until('the rollout completes', () => rolloutState(after, ID).status === 'completed', 60_000);
    await until('every agent runs v2', () => s!.devs.every((d) => sameRef(d.agent?.service.activeRef, V2)));
    await until('the restarted fleet sees every device online on v2', () =>
      s!.devs.every((d) => {
        const r = after.ctx.devices.get(d.id);
        return r.state === 'online' && sameRef(r.models.active, V2) && r.deployment?.phase === 'active';
      }),
    );
    const log = decisions(after, ID);
    expect(log.filter((d) => d.kind === 'started')).toHaveLength(1);
    // The canary kept its bake clock across the restart and was judged by the new process.
    expect(log.find((d) => d.kind === 'stage_started' && d.stage_name === 'canary')?.at).toBe(canaryStartedAt);
    expect(log.find((d) => d.kind === 'gate_passed' && d.stage_name === 'canary')?.at).toBeGreaterThan(stoppedAt);
    expect(log.filter((d) => d.kind === 'stage_started').map((d) => d.stage_name)).toEqual(['canary', 'wave 1', 'wave 2']);
    expect(log.filter((d) => ['gate_failed', 'paused', 'device_failed', 'aborted'].includes(d.kind))).toEqual([]);
  });
});
