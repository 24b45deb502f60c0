import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import type { FleetService } from '../../../fleet/boot/service.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import { captureLogger } from '../../helpers/agent.js';
import { imagePackage, patternImage, tempDir } from '../../helpers/packages.js';
import { CALM_GATES, TAGS, adminTokenOf, downloadPackage, explain, postRollout, registerDevices, rolloutState, sameRef, sleep, startAgent, startFleet, stopAgent, until, type FleetAgent } from './harness.js';

/**
 * Two model names on the same devices (issue 14): a rollout of one name moves that model's slot
 * only, two rollouts of two names run at once, and rolling one back leaves the other model on
 * its new version. Real fleet (SQLite, embedded broker, HTTP), real agents with two slots each.
 */
const PETS = 'pets';
const PPE = 'ppe-classifier';
const r = (name: string, version: string): ModelRef => ({ name, version });

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let token: string;
let devs: FleetAgent[] = [];
let running = false;
let loops: Array<Promise<void>> = [];

const slotVersion = (d: FleetAgent, name: string): string | null => d.agent?.slots.find(name)?.activeRef?.version ?? null;

/** One request at a time per device and model, `?model=` named, so each slot's telemetry has counts. */
async function traffic(dev: FleetAgent, model: string): Promise<void> {
  const images = await Promise.all([0, 1, 2].map((i) => patternImage(i, { channels: 1 })));
  let n = 0;
  while (running) {
    if (dev.url) {
      try {
        const res = await fetch(`${dev.url}/v1/infer?model=${model}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: images[n++ % images.length]!, signal: AbortSignal.timeout(5000) });
        await res.arrayBuffer();
      } catch {
        /* a request to a stopping agent: counted by nobody */
      }
    }
    await sleep(100);
  }
}

beforeAll(async () => {
  tmp = tempDir('edgeloop-fleet-mm-');
  const dataDir = join(tmp.dir, 'fleet');
  svc = await startFleet({ dataDir, log: captureLogger('warn').log });
  token = svc.adminToken ?? (await adminTokenOf(dataDir));
  for (const [name, version, seed] of [[PETS, '1.0.0', 1], [PETS, '2.0.0', 2], [PPE, '1.0.0', 3], [PPE, '2.0.0', 4]] as const) {
    const dir = join(tmp.dir, `pkg-${name}-${version}`);
    await imagePackage(dir, { version, seed, extra: { name } });
    await svc.ctx.registry.push(dir, { actor: 'test' });
  }
  const initial = [await downloadPackage(svc, token, r(PETS, '1.0.0'), join(tmp.dir, 'dl-pets')), await downloadPackage(svc, token, r(PPE, '1.0.0'), join(tmp.dir, 'dl-ppe'))];
  devs = await registerDevices(svc, 2, { root: join(tmp.dir, 'devices') });
  for (const d of devs) await startAgent(svc, d, { config: { models: { initial } } });
  running = true;
  loops = devs.flatMap((d) => [traffic(d, PETS), traffic(d, PPE)]);
  await until('every device reports inferences on both models', () =>
    devs.every((d) => {
      const t = svc.ctx.devices.get(d.id).telemetry;
      return [PETS, PPE].every((name) => (t?.models?.find((w) => w.model.name === name)?.inference.count ?? 0) > 0);
    }),
  );
}, 180_000);

afterAll(async () => {
  running = false;
  await Promise.all(loops);
  for (const d of devs) await stopAgent(d).catch(() => undefined);
  await svc?.stop().catch(() => undefined);
  tmp?.cleanup();
});

describe('rollouts of two model names on the same devices', () => {
  it('move each model slot alone, at the same time, and a rollback of one leaves the other on its new version', { timeout: 240_000 }, async () => {
    onTestFailed(() => console.log(`${explain(svc, 'ro-pets')}\n${explain(svc, 'ro-ppe')}`));
    // The fleet sees both models of each device.
    expect(svc.ctx.devices.get(devs[0]!.id).slots?.map((s) => `${s.name}@${s.active?.version}`)).toEqual([`${PETS}@1.0.0`, `${PPE}@1.0.0`]);

    const plan = { canary: { devices: { count: 1 }, bake_s: 0.5 }, waves: [{ devices: { percent: 100 }, bake_s: 0.5 }], gates: CALM_GATES };
    const a = await postRollout(svc, token, { id: 'ro-ppe', model: r(PPE, '2.0.0'), selector: TAGS, plan });
    const b = await postRollout(svc, token, { id: 'ro-pets', model: r(PETS, '2.0.0'), selector: TAGS, plan });
    expect([a.status, b.status]).toEqual([201, 201]);
    // Each rollout's last-known-good is the version of its own model on the device.
    for (const d of devs) {
      expect(rolloutState(svc, 'ro-ppe').devices[d.id]?.last_known_good).toEqual(r(PPE, '1.0.0'));
      expect(rolloutState(svc, 'ro-pets').devices[d.id]?.last_known_good).toEqual(r(PETS, '1.0.0'));
    }

    await until('both rollouts complete', () => rolloutState(svc, 'ro-ppe').status === 'completed' && rolloutState(svc, 'ro-pets').status === 'completed', 150_000);
    await until('every agent runs both new versions', () => devs.every((d) => slotVersion(d, PETS) === '2.0.0' && slotVersion(d, PPE) === '2.0.0'));
    await until('the fleet sees both slots on 2.0.0', () => devs.every((d) => svc.ctx.devices.get(d.id).slots?.every((s) => s.active?.version === '2.0.0') === true));

    // Roll the classifier back: only its slot moves.
    svc.ctx.rollouts.command('ro-ppe', 'rollback', 'test');
    await until('every agent is back on the previous classifier', () => devs.every((d) => slotVersion(d, PPE) === '1.0.0'));
    await until('the fleet sees the classifier back on 1.0.0', () => devs.every((d) => sameRef(svc.ctx.devices.get(d.id).slots?.find((s) => s.name === PPE)?.active, r(PPE, '1.0.0'))));
    for (const d of devs) {
      expect(slotVersion(d, PETS)).toBe('2.0.0');
      expect(svc.ctx.devices.get(d.id).slots?.find((s) => s.name === PETS)?.active).toEqual(r(PETS, '2.0.0'));
    }
    expect(rolloutState(svc, 'ro-pets').status).toBe('completed');
    expect(rolloutState(svc, 'ro-ppe').status).toBe('rolled_back');
    // A device may download every model it was told to run, not only the latest rollout's.
    for (const m of [r(PETS, '2.0.0'), r(PPE, '1.0.0')]) expect(svc.ctx.rollouts.desiredModels(devs[0]!.id)).toContainEqual(m);
  });
});
