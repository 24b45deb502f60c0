/**
 * Scenario 1 (and 6, on mosquitto): a full shadow → canary → waves rollout over real agents.
 * Shared so both brokers run exactly the same checks.
 */
import { expect } from 'vitest';
import type { Decision, RolloutState } from '../../../fleet/core/rollouts/state-schema.js';
import { CALM_GATES, TAGS, V1, V2, decisions, postRollout, rolloutState, sameRef, until, type Scenario } from './harness.js';

export async function fullRollout(s: Scenario, id: string): Promise<void> {
  const { svc, devs } = s;
  const created = await postRollout(svc, s.token, {
    id,
    model: V2,
    selector: TAGS,
    plan: {
      // The candidate sees every input in shadow, so agreement shows within one telemetry window.
      shadow: { devices: { count: 2 }, sample_rate: 1, bake_s: 1 },
      canary: { devices: { count: 2 }, bake_s: 1 },
      waves: [
        { devices: { percent: 50 }, bake_s: 0.5 },
        { devices: { percent: 100 }, bake_s: 0.5 },
      ],
      // Both random CNNs answer `cat` on the pattern images, so the default agreement gate (0.9)
      // is a real check; v2 is more confident than v1, so the confidence gate stays on too.
      gates: { ...CALM_GATES, min_shadow_agreement: 0.9, max_confidence_drop: 0.05 },
    },
  });
  expect(created.status).toBe(201);

  // The shadow stage: two devices run v2 beside v1 (answers still come from v1) and report agreement.
  let shadowSeen: RolloutState | null = null;
  await until('the shadow stage reports agreement', () => {
    const st = rolloutState(svc, id);
    if (st.stage === 0 && Object.values(st.devices).some((d) => d.shadow.agreement_weight > 0)) shadowSeen = structuredClone(st);
    return shadowSeen !== null || st.stage > 0;
  });
  if (shadowSeen) {
    const shadowing = Object.entries((shadowSeen as RolloutState).devices).filter(([, d]) => d.shadow_stage === 0);
    expect(shadowing).toHaveLength(2);
    for (const [devId] of shadowing) expect(devs.find((d) => d.id === devId)?.agent?.service.activeRef).toEqual(V1);
  }

  await until('the rollout completes', () => rolloutState(svc, id).status === 'completed', 60_000);
  await until('every agent runs v2', () => devs.every((d) => sameRef(d.agent?.service.activeRef, V2)));
  // The switch and the deployment's `active` report are two statuses, often in one millisecond.
  await until('the fleet sees every device on v2, deployment active', () =>
    devs.every((d) => {
      const r = svc.ctx.devices.get(d.id);
      return sameRef(r.models.active, V2) && r.deployment?.phase === 'active';
    }),
  );
  for (const d of devs) {
    expect(d.agent?.service.shadowRef ?? null).toBeNull();
    expect(svc.ctx.devices.get(d.id).deployment).toMatchObject({ rollout_id: id, target: V2, phase: 'active' });
  }

  // The decision log, as the API serves it (newest first).
  const res = await fetch(`${svc.urls.http}/v1/rollouts/${id}`, { headers: { authorization: `Bearer ${s.token}` } });
  expect(res.status).toBe(200);
  const detail = (await res.json()) as { decisions: Decision[]; rollout: { status: string; devices: { installed: number; failed: number } } };
  expect(detail.rollout.status).toBe('completed');
  expect(detail.rollout.devices.failed).toBe(0);
  const log = decisions(svc, id);
  expect(detail.decisions.map((d) => d.kind)).toEqual(log.map((d) => d.kind).reverse().slice(0, detail.decisions.length));
  const flow = log.filter((d) => ['started', 'stage_started', 'gate_passed', 'completed'].includes(d.kind)).map((d) => `${d.kind}${d.stage_name ? `:${d.stage_name}` : ''}`);
  expect(flow).toEqual([
    'started',
    'stage_started:shadow',
    'gate_passed:shadow',
    'stage_started:canary',
    'gate_passed:canary',
    'stage_started:wave 1',
    'gate_passed:wave 1',
    'stage_started:wave 2',
    'gate_passed:wave 2',
    'completed:wave 2',
  ]);
  expect(log.filter((d) => ['gate_failed', 'paused', 'device_failed', 'aborted'].includes(d.kind))).toEqual([]);
  // The shadow gate judged real agreement from the agents' telemetry.
  const shadowPass = log.find((d) => d.kind === 'gate_passed' && d.stage_name === 'shadow');
  const agreement = shadowPass?.signals?.find((x) => x.name === 'shadow_agreement');
  expect(agreement).toMatchObject({ ok: true, threshold: 0.9 });
  expect(agreement?.value as number).toBeGreaterThanOrEqual(0.9);
  expect(shadowPass?.signals?.find((x) => x.name === 'devices_reporting')?.value as number).toBeGreaterThanOrEqual(1);
  // Waves were judged on candidate telemetry from every moved device, not on an empty stage.
  const last = log.find((d) => d.kind === 'gate_passed' && d.stage_name === 'wave 2');
  expect(last?.signals?.find((x) => x.name === 'devices_reporting')?.value as number).toBeGreaterThanOrEqual(5);
  expect(log.at(-1)?.signals).toEqual(expect.arrayContaining([{ name: 'devices_on_candidate', value: devs.length }, { name: 'devices_failed', value: 0 }]));
  // Inference never stopped: every switch was atomic.
  expect(s.traffic.failed).toBe(0);
  expect(s.traffic.ok).toBeGreaterThan(devs.length * 20);
}
