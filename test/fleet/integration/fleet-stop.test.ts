import { request, Agent as HttpAgent } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../../helpers/packages.js';
import { startFleet } from './harness.js';

describe('fleet stop', () => {
  it('does not wait for the keep-alive timeout of a client whose request was in flight', async () => {
    // Same shape as the agent's regression test: a keep-alive client (a browser on the console,
    // an agent fetching a package) is half-way through a request when the fleet is told to stop.
    const tmp = tempDir('edgeloop-fleet-stop-');
    const svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
    try {
      const body = Buffer.from(JSON.stringify({ name: 'cam-1', tags: { site: 'pit-3' } }));
      const keepAlive = new HttpAgent({ keepAlive: true });
      const answered = new Promise<number>((resolve, reject) => {
        const req = request(`${svc.urls.http}/v1/devices`, { method: 'POST', agent: keepAlive, headers: { 'content-type': 'application/json', 'content-length': body.length } }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        });
        req.on('error', reject);
        req.write(body.subarray(0, 5));
        setTimeout(() => req.end(body.subarray(5)), 200);
      });
      await new Promise((r) => setTimeout(r, 100));
      const started = Date.now();
      await svc.stop();
      const took = Date.now() - started;
      // Answered (401: no token), not cut off, and the stop did not sit out the 5 s keep-alive.
      expect(await answered).toBe(401);
      keepAlive.destroy();
      expect(took).toBeLessThan(2000);
    } finally {
      tmp.cleanup();
    }
  });
});
