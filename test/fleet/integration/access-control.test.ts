import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetService } from '../../../fleet/boot/service.js';
import { tempDir } from '../../helpers/packages.js';
import { TAGS, V2, postRollout, pushImageModel, registerDevices, sleep, startAgent, startFleet, stopAgent, type FleetAgent } from './harness.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let devs: FleetAgent[];

beforeAll(async () => {
  tmp = tempDir('edgeloop-fleet-acl-');
  svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
  await pushImageModel(svc, tmp.dir, V2.version, 2);
  devs = await registerDevices(svc, 2, { root: join(tmp.dir, 'devices') });
});
afterAll(async () => {
  for (const d of devs) await stopAgent(d);
  await svc.stop();
  tmp.cleanup();
});

describe('access control at the fleet edge', () => {
  it('refuses to let a labeler create a rollout (403); an operator may', async () => {
    const labeler = svc.ctx.users.issue('lab', 'labeler').token;
    const body = { model: V2, selector: TAGS, plan: {} };
    const denied = await postRollout(svc, labeler, body);
    expect(denied.status).toBe(403);
    expect(denied.json).toMatchObject({ error: { code: 'FLEET_FORBIDDEN' } });
    expect((await postRollout(svc, 'elt_not-a-token', body)).status).toBe(401);
    expect(svc.ctx.rollouts.list()).toHaveLength(0);

    const operator = svc.ctx.users.issue('ops', 'operator').token;
    const ok = await postRollout(svc, operator, { ...body, selector: { site: 'nowhere' } });
    expect(ok.status).toBe(201);
    expect(svc.ctx.rollouts.list().map((r) => r.created_by)).toEqual(['ops']);
  });

  it('refuses a device with a wrong secret, on MQTT and on package downloads', async () => {
    const [dev] = devs;
    await expect(mqtt.connectAsync(svc.urls.mqtt, { clientId: dev!.id, username: dev!.id, password: 'wrong', reconnectPeriod: 0 })).rejects.toThrow(/not authori[sz]ed/i);

    const manifest = `${svc.urls.http}/v1/models/${V2.name}/${V2.version}/package/manifest.json`;
    expect((await fetch(manifest, { headers: { authorization: `Bearer ${dev!.id}.wrong` } })).status).toBe(401);
    // The right secret authenticates; the package is still not the device's to take: no desired state names it.
    const notMine = await fetch(manifest, { headers: { authorization: `Bearer ${dev!.id}.${dev!.secret}` } });
    expect([notMine.status, ((await notMine.json()) as { error: { code: string } }).error.code]).toEqual([403, 'FLEET_PACKAGE_NOT_ASSIGNED']);

    // A real agent configured with the wrong secret keeps retrying and is never let in.
    const impostor: FleetAgent = { ...dev!, secret: 'wrong-secret', dataDir: join(tmp.dir, 'impostor') };
    await startAgent(svc, impostor);
    await sleep(1500);
    expect(impostor.agent?.health().uplink).toMatchObject({ connected: false });
    expect(svc.ctx.devices.get(dev!.id).last_seen).toBeNull();
    await stopAgent(impostor);

    // The same device with its real secret is let in at once.
    await startAgent(svc, dev!);
    const end = Date.now() + 10_000;
    while (svc.ctx.devices.get(dev!.id).state !== 'online' && Date.now() < end) await sleep(50);
    expect(svc.ctx.devices.get(dev!.id).state).toBe('online');
  });
});
