import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseLimitsConfig } from '../../../fleet/boot/limits-config.js';
import type { FleetService } from '../../../fleet/boot/service.js';
import { patternImage, tempDir } from '../../helpers/packages.js';
import { V1, adminTokenOf, downloadPackage, pushImageModel, registerDevices, startAgent, startFleet, stopAgent, until, type FleetAgent } from './harness.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let fast: FleetAgent;
let calm: FleetAgent;

beforeAll(async () => {
  tmp = tempDir('edgeloop-rate-limit-');
  // 3 sample messages/s with a burst of 6 per device: far below the agents' 100/s.
  svc = await startFleet({ dataDir: join(tmp.dir, 'fleet'), limits: parseLimitsConfig({ ingest: { messages_per_s: 3, burst: 6 } }) });
  await pushImageModel(svc, tmp.dir, V1.version, 1);
  const v1Dir = await downloadPackage(svc, await adminTokenOf(join(tmp.dir, 'fleet')), V1, join(tmp.dir, 'download-v1'));
  [fast, calm] = (await registerDevices(svc, 2, { root: join(tmp.dir, 'devices') })) as [FleetAgent, FleetAgent];
  // Every inference is captured (the random slice at 1).
  const config = { outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 1, rate_limits: { random: { per_minute: 6000, burst: 100 } } } };
  await startAgent(svc, fast, { initial: v1Dir, config });
  await startAgent(svc, calm, { initial: v1Dir, config });
}, 120_000);
afterAll(async () => {
  await stopAgent(fast);
  await stopAgent(calm);
  await svc.stop();
  tmp.cleanup();
});

/** `n` distinct images (the agent does not capture the same input twice). */
async function capture(dev: FleetAgent, n: number, seed0: number): Promise<void> {
  const bodies = await Promise.all(Array.from({ length: n }, (_, i) => patternImage(seed0 + i, { channels: 1 })));
  const statuses = await Promise.all(bodies.map(async (body) => (await fetch(`${dev.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body })).status));
  expect(statuses.every((s) => s === 200)).toBe(true);
}

const storedFrom = (device: string): number => svc.ctx.ingest.query({ device, limit: 500 }).items.length;

describe('per-device rate limit', () => {
  it('nacks a device over its rate; it pauses and keeps its samples, all arrive once; another device is not held up', async () => {
    await capture(fast, 40, 0);
    await until('the fast device to be told to pause', () => fast.lines.some((l) => l.msg === 'fleet refused samples for now; they stay queued' && l.code === 'SAMPLE_RATE_LIMITED'));
    // While the fast device is limited, the calm one sends its few samples at once.
    await capture(calm, 3, 100);
    await until('the calm device’s samples stored', () => storedFrom(calm.id) === 3, 20_000);
    await until('every capture of the fast device stored', () => storedFrom(fast.id) === 40, 60_000);
    expect(svc.ctx.ingest.stats().rate_limited).toBeGreaterThan(0);
    // Exactly once: the page lists distinct sample ids, and the queue is empty once acked.
    const ids = svc.ctx.ingest.query({ device: fast.id, limit: 500 }).items.map((s) => s.sample_id);
    expect(new Set(ids).size).toBe(40);
    // The same accounting over the API, per device.
    const res = await fetch(`${svc.urls.http}/v1/samples/stats`, { headers: { authorization: `Bearer ${await adminTokenOf(join(tmp.dir, 'fleet'))}` } });
    expect(res.status).toBe(200);
    const stats = (await res.json()) as { devices: Array<{ device_id: string; stored: number; rate_limited: number }>; totals: { stored: number } };
    const byId = new Map(stats.devices.map((d) => [d.device_id, d]));
    expect(byId.get(fast.id)).toMatchObject({ stored: 40 });
    expect(byId.get(fast.id)?.rate_limited).toBeGreaterThan(0);
    expect(byId.get(calm.id)).toMatchObject({ stored: 3, rate_limited: 0 });
    expect(stats.totals.stored).toBe(43);
  }, 120_000);
});
