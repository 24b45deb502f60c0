import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { postUnfinished, startTestAgent } from '../helpers/agent.js';
import { SENSOR_FEATURES, patternImage, tempDir, tensorPackage, imagePackage } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
let sensor: { agent: Agent; url: string };
let guarded: { agent: Agent; url: string };
const TOKEN = 'local-api-token-0123456789';

beforeAll(async () => {
  tmp = tempDir();
  await tensorPackage(join(tmp.dir, 'sensor'));
  await imagePackage(join(tmp.dir, 'pets'));
  sensor = await startTestAgent(join(tmp.dir, 'sensor-data'), { models: { initial: join(tmp.dir, 'sensor') }, http: { max_body_bytes: 64 * 1024 * 1024 } });
  guarded = await startTestAgent(join(tmp.dir, 'pets-data'), { models: { initial: join(tmp.dir, 'pets') }, http: { token: TOKEN, allowed_hosts: ['camera-7.local'] } });
}, 60_000);
afterAll(async () => {
  await sensor.agent.stop();
  await guarded.agent.stop();
  tmp.cleanup();
});

/** Raw request with any Host header (fetch does not let a caller set Host). */
function rawGet(url: string, path: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${path}`, { headers }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('agent local API against hostile clients', () => {
  it('refuses a JSON tensor bigger than the model takes while reading it: the rest of a 16 MB body is never needed', async () => {
    const chunk = Buffer.from(`${Array.from({ length: 50_000 }, () => '0.5').join(',')},`);
    // 200 KB of a body that claims 16 MB: the answer must come without the rest.
    const r = await postUnfinished(`${sensor.url}/v1/infer`, 'application/json', 16 * 1024 * 1024, ['{"tensor":[', chunk]);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    // A tensor the model takes still works.
    const row = Array.from({ length: SENSOR_FEATURES }, (_, i) => i * 0.1);
    const ok = await fetch(`${sensor.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: row }) });
    expect(ok.status).toBe(200);
  });

  it('needs the bearer token on inference and metrics when one is set; health stays open', async () => {
    const body = await patternImage(1);
    const without = await fetch(`${guarded.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body });
    expect(without.status).toBe(401);
    expect(await without.json()).toMatchObject({ error: { code: 'AGENT_UNAUTHORIZED' } });
    const wrong = await fetch(`${guarded.url}/metrics`, { headers: { authorization: 'Bearer local-api-token-0123456780' } });
    expect(wrong.status).toBe(401);
    const withToken = await fetch(`${guarded.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png', authorization: `Bearer ${TOKEN}` }, body });
    expect(withToken.status).toBe(200);
    expect((await fetch(`${guarded.url}/healthz`)).status).toBe(200);
  });

  it('answers only to localhost, IP addresses and configured names (DNS rebinding)', async () => {
    const port = new URL(guarded.url).port;
    expect((await rawGet(guarded.url, '/healthz', { host: `evil.example:${port}` })).status).toBe(421);
    expect(JSON.parse((await rawGet(guarded.url, '/healthz', { host: 'evil.example' })).body)).toMatchObject({ error: { code: 'AGENT_HOST_NOT_ALLOWED' } });
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, 'camera-7.local', `CAMERA-7.local:${port}`]) {
      expect((await rawGet(guarded.url, '/healthz', { host })).status, host).toBe(200);
    }
  });
});
