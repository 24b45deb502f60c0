import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetService } from '../../../fleet/boot/service.js';
import { tempDir } from '../../helpers/packages.js';
import { TAGS, V1, V2, adminTokenOf, downloadPackage, postRollout, pushImageModel, registerDevices, sameRef, startAgent, startFleet, stopAgent, until, type FleetAgent } from './harness.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let dev: FleetAgent;

beforeAll(async () => {
  tmp = tempDir('edgeloop-fleet-status-');
  svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
  const token = await adminTokenOf(join(tmp.dir, 'fleet'));
  await pushImageModel(svc, tmp.dir, V1.version, 1);
  await pushImageModel(svc, tmp.dir, V2.version, 2);
  const v1Dir = await downloadPackage(svc, token, V1, join(tmp.dir, 'download-v1'));
  dev = (await registerDevices(svc, 1, { root: join(tmp.dir, 'devices') }))[0]!;
  // Every status this agent builds falls in the same millisecond, as the switch and the
  // deployment's `active` report often do on a fast device.
  const frozen = Date.now();
  await startAgent(svc, dev, { initial: v1Dir, clock: { now: () => frozen } });
  await until('the device is online', () => sameRef(svc.ctx.devices.get(dev.id).models.active, V1));
  const created = await postRollout(svc, token, { id: 'ro-status', model: V2, selector: TAGS, plan: { canary: { devices: { count: 1 }, bake_s: 60 }, waves: [{ devices: { percent: 100 } }] } });
  expect(created.status).toBe(201);
});
afterAll(async () => {
  await stopAgent(dev);
  await svc.stop();
  tmp.cleanup();
});

describe('device status order', () => {
  it('the fleet sees the final deployment phase even when an agent reports twice in one millisecond', async () => {
    await until('the agent runs v2', () => sameRef(dev.agent?.service.activeRef, V2));
    // Before the fix the fleet kept the first status of that millisecond (a status not newer
    // than the stored one is a retained replay) and showed the device stuck mid-deployment.
    await until('the fleet sees v2 active', () => svc.ctx.devices.get(dev.id).deployment?.phase === 'active', 10_000);
    expect(svc.ctx.devices.get(dev.id)).toMatchObject({ models: { active: V2, previous: V1 }, deployment: { rollout_id: 'ro-status', target: V2, phase: 'active' } });
  });
});
