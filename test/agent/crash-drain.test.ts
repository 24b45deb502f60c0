import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readQueueStats } from '../../agent/queue/sqlite-stats.js';
import { startAgentProcess } from '../../fleet/demo/agent-process.js';
import { SampleSink } from '../helpers/sample-sink.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { systemClock } from '../../shared/ids.js';
import { inferResult } from '../../shared/schemas/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

const SAMPLES = 300;

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

describe('agent process killed while draining its backlog', () => {
  it('loses no sample: every captured id reaches the fleet, resends are harmless', async () => {
    const data = join(tmp.dir, 'agent');
    const pkg = join(tmp.dir, 'pets');
    await imagePackage(pkg);
    const capture = { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 60_000, burst: 10_000 } } };

    // 1. Offline for a while: the uplink points at a port nobody listens on; captures pile up.
    const offline = await startTestAgent(data, { models: { initial: pkg }, outlier: capture, uplink: { kind: 'mqtt', url: 'mqtt://127.0.0.1:9', backoff_initial_ms: 60_000 } });
    const captured = new Set<string>();
    try {
      for (let i = 0; i < SAMPLES; i++) {
        const res = inferResult.parse(await (await fetch(`${offline.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(i % 50) })).json());
        expect(res.outlier.captured).toBe(true);
        captured.add(res.outlier.sample_id!);
      }
    } finally {
      await offline.agent.stop();
    }
    expect(captured.size).toBe(SAMPLES);
    expect(readQueueStats(join(data, 'queue.db')).depth).toBe(SAMPLES);

    // 2. The link returns; the fleet's sink stores and acks. The agent drains slowly (rate cap)
    //    and is SIGKILLed part-way.
    const sink = new SampleSink({ url: broker.url, dir: join(tmp.dir, 'fleet'), clock: systemClock, log: pino({ level: 'silent' }) });
    await sink.start();
    const keyFile = join(tmp.dir, 'fleet.pub');
    writeFileSync(keyFile, fleetKeys().publicKeyPem);
    const config = join(tmp.dir, 'agent.json');
    writeFileSync(
      config,
      JSON.stringify({ device_id: 'test-device', data_dir: data, fleet_public_key: keyFile, http: { port: 0 }, inference: { intra_op_threads: 1, warmup_runs: 0 }, uplink: { kind: 'mqtt', url: broker.url, max_publishes_per_s: 60, ack_timeout_ms: 3000, backoff_initial_ms: 200 } }),
    );
    try {
      const first = startAgentProcess(config);
      await first.ready;
      await waitUntil(() => sink.stats.received >= 60, 30_000, 'the drain to start');
      await first.stop('SIGKILL');
      expect(sink.stats.received).toBeLessThan(SAMPLES);
      const afterKill = readQueueStats(join(data, 'queue.db')).depth;
      expect(afterKill).toBeGreaterThan(0);

      // 3. Restart: the rest drains; leases of the killed process are void.
      const second = startAgentProcess(config);
      const { http } = await second.ready;
      await waitUntil(() => sink.stats.received >= SAMPLES, 60_000, 'every sample to arrive');
      await waitUntil(async () => ((await (await fetch(`${http}/healthz`)).json()) as { queue: { depth: number } }).queue.depth === 0, 30_000, 'the queue to empty', 50);
      await second.stop();

      const got = new Set(sink.samples.keys());
      expect([...captured].filter((id) => !got.has(id))).toEqual([]);
      expect([...got].filter((id) => !captured.has(id))).toEqual([]);
      expect(sink.stats.received).toBe(SAMPLES);
      // Samples sent by the killed process but not acked in time were sent again: counted, not stored twice.
      expect(sink.stats.duplicates).toBeGreaterThanOrEqual(0);
      expect(readQueueStats(join(data, 'queue.db'))).toMatchObject({ depth: 0, ackedTotal: SAMPLES });
    } finally {
      await sink.stop();
    }
  }, 180_000); // two agent processes from sources, 300 captures and a rate-capped drain: ~25 s alone, over 60 s on a loaded 2-core host
});
