import { request, Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FleetService } from '../../../fleet/boot/service.js';
import { patternImage, tempDir } from '../../helpers/packages.js';
import { V1, adminTokenOf, downloadPackage, pushImageModel, registerDevices, startAgent, startFleet, stopAgent, type FleetAgent } from './harness.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let dev: FleetAgent;

beforeAll(async () => {
  tmp = tempDir('edgeloop-fleet-stop-');
  svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
  await pushImageModel(svc, tmp.dir, V1.version, 1);
  const v1Dir = await downloadPackage(svc, await adminTokenOf(join(tmp.dir, 'fleet')), V1, join(tmp.dir, 'download-v1'));
  dev = (await registerDevices(svc, 1, { root: join(tmp.dir, 'devices') }))[0]!;
  await startAgent(svc, dev, { initial: v1Dir });
});
afterAll(async () => {
  await stopAgent(dev);
  await svc.stop();
  tmp.cleanup();
});

describe('agent stop', () => {
  it('does not wait for the keep-alive timeout of a client whose request was in flight', async () => {
    // A keep-alive client (fetch and most HTTP clients are) is half-way through sending an
    // image when the agent is told to stop: the request is answered, and then its idle
    // socket must not hold the stop for the server's keep-alive timeout (5 s).
    const body = await patternImage(1);
    const keepAlive = new HttpAgent({ keepAlive: true });
    const answered = new Promise<number>((resolve, reject) => {
      const req = request(`${dev.url}/v1/infer`, { method: 'POST', agent: keepAlive, headers: { 'content-type': 'image/png', 'content-length': body.length } }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.write(body.subarray(0, 10));
      setTimeout(() => req.end(body.subarray(10)), 200);
    });
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await stopAgent(dev);
    const took = Date.now() - started;
    expect(await answered).toBe(200);
    keepAlive.destroy();
    expect(took).toBeLessThan(2000);
  });
});
