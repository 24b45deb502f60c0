import { statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { systemClock } from '../../shared/ids.js';
import { inferResult } from '../../shared/schemas/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { SampleSink } from '../helpers/sample-sink.js';
import { waitUntil } from '../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
let broker: EmbeddedBroker;
beforeAll(async () => {
  tmp = tempDir();
  broker = await startEmbeddedBroker();
});
afterAll(async () => {
  await broker.close();
  tmp.cleanup();
});

const onDisk = (file: string): number => statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);
const QUOTA = 4 * 1024 * 1024;

describe('agent queue after a long offline spell', () => {
  it('fills to its quota offline, drains when the link returns, and gives the disk back', async () => {
    const data = join(tmp.dir, 'agent');
    const pkg = join(tmp.dir, 'pets');
    await imagePackage(pkg);
    const capture = { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 600_000, burst: 100_000 } } };
    // Large frames (~120 KB PNGs of noise-like patterns), so the quota fills in a few dozen captures.
    const frame = (i: number) => patternImage(i, { width: 200, height: 200 });
    const offline = await startTestAgent(data, { models: { initial: pkg }, outlier: capture, queue: { quota_bytes: QUOTA }, uplink: { kind: 'mqtt', url: 'mqtt://127.0.0.1:9', backoff_initial_ms: 60_000 } });
    try {
      for (let i = 0; ; i++) {
        const r = inferResult.parse(await (await fetch(`${offline.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await frame(i) })).json());
        expect(r.outlier.captured).toBe(true);
        const h = (await (await fetch(`${offline.url}/healthz`)).json()) as { queue: { evicted_total: number } };
        if (h.queue.evicted_total > 0) break;
      }
    } finally {
      await offline.agent.stop();
    }
    const file = join(data, 'queue.db');
    const full = onDisk(file);
    expect(full).toBeGreaterThan(QUOTA * 0.8);

    const sink = new SampleSink({ url: broker.url, dir: join(tmp.dir, 'fleet'), clock: systemClock, log: pino({ level: 'silent' }) });
    await sink.start();
    const online = await startTestAgent(data, { models: { initial: pkg }, queue: { quota_bytes: QUOTA, reclaim_interval_s: 0.2 }, uplink: { kind: 'mqtt', url: broker.url, backoff_initial_ms: 200 } });
    try {
      await waitUntil(async () => ((await (await fetch(`${online.url}/healthz`)).json()) as { queue: { depth: number } }).queue.depth === 0, 60_000, 'the backlog to drain');
      await waitUntil(() => online.lines.some((l) => l.msg === 'queue disk space given back'), 30_000, 'the disk to be given back');
      await waitUntil(() => onDisk(file) < full / 2, 30_000, `the queue file (${full} bytes full) to shrink`);
    } finally {
      await online.agent.stop();
      await sink.stop();
    }
  }, 180_000);
});
