import { createServer } from 'node:http';
import { join } from 'node:path';
import mqtt from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetService, type FleetService } from '../../fleet/boot/service.js';
import { SimulatedDevices } from '../helpers/device-sim.js';
import { imagePackage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;

const until = (cond: () => boolean, ms = 30_000): Promise<void> => waitUntil(cond, ms);

beforeAll(async () => {
  tmp = tempDir();
  svc = await startFleetService({ dataDir: join(tmp.dir, 'fleet'), log: pino({ level: 'warn' }), tickMs: 50, http: () => createServer((_req, res) => res.writeHead(404).end()) });
});
afterAll(async () => {
  await svc.stop();
  tmp.cleanup();
});

describe('fleet service (embedded broker; simulated devices need no downloads)', () => {
  it('registers devices, refuses strangers, and rolls a pushed model out to simulated devices', async () => {
    expect(svc.adminToken).toMatch(/^elt_/);
    const creds = await Promise.all(Array.from({ length: 12 }, (_, i) => svc.ctx.devices.register(`gw-${i}`, { tags: { site: i < 6 ? 'pit-3' : 'ridge-1' } })));
    await expect(mqtt.connectAsync(svc.urls.mqtt, { clientId: 'gw-0', username: 'gw-0', password: 'nope', reconnectPeriod: 0 })).rejects.toThrow(/Not authorized/i);

    await imagePackage(join(tmp.dir, 'v1'), { version: '1.0.0', seed: 1 });
    await imagePackage(join(tmp.dir, 'v2'), { version: '2.0.0', seed: 2 });
    await svc.ctx.registry.push(join(tmp.dir, 'v1'), { actor: 'test' });
    await svc.ctx.registry.push(join(tmp.dir, 'v2'), { actor: 'test' });

    const V1 = { name: 'pets', version: '1.0.0' };
    const sims = new SimulatedDevices({ url: svc.urls.mqtt, devices: creds.map((c) => ({ id: c.device.id, secret: c.secret, active: V1 })), telemetryIntervalMs: 100 });
    await sims.start();
    try {
      // Created as soon as the devices are online, before any telemetry: the canary has no
      // baseline of its own and is judged against its peers on the previous version.
      await until(() => svc.ctx.devices.list({ state: 'online' }).length === 12);
      const r = svc.ctx.rollouts.create({
        model: { name: 'pets', version: '2.0.0' },
        selector: { site: 'pit-3' },
        plan: { canary: { devices: { count: 1 }, bake_s: 0.2 }, waves: [{ devices: { percent: 100 }, bake_s: 0.2 }] },
        actor: 'test',
      });
      await until(() => svc.ctx.rollouts.get(r.state.id).state.status === 'completed');
      const pit = svc.ctx.devices.list({ tags: { site: 'pit-3' } });
      await until(() => svc.ctx.devices.list({ tags: { site: 'pit-3' } }).every((d) => d.models.active?.version === '2.0.0'));
      expect(pit).toHaveLength(6);
      // The other site was never touched.
      expect(svc.ctx.devices.list({ tags: { site: 'ridge-1' } }).map((d) => d.models.active?.version)).toEqual(Array(6).fill('1.0.0'));
      expect(svc.ctx.rolloutDecisions(r.state.id).length).toBeGreaterThan(2);
    } finally {
      await sims.stop();
    }
  });
});
