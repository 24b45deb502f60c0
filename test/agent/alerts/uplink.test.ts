import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { annotateFrame, ALERT_PRIORITY } from '../../../agent/alerts/uplink.js';
import { OutlierCapturePolicy } from '../../../agent/outlier/policy.js';
import { openSqliteQueue } from '../../../agent/queue/sqlite-queue.js';
import { systemClock } from '../../../shared/ids.js';
import { outlierPolicy, sampleMeta } from '../../../shared/schemas/index.js';
import { captureLogger, startTestAgent } from '../../helpers/agent.js';
import { colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { tempDir } from '../../helpers/packages.js';
import { SampleSink } from '../../helpers/sample-sink.js';
import { waitUntil } from '../../helpers/wait.js';

async function pixel(jpeg: Buffer, x: number, y: number): Promise<[number, number, number]> {
  const { data, info } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  const i = (y * info.width + x) * info.channels;
  return [data[i]!, data[i + 1]!, data[i + 2]!];
}

describe('the alert frame', () => {
  it('has the matching boxes drawn in the severity colour; the rest of the picture is untouched', async () => {
    const grey = await sharp({ create: { width: 200, height: 100, channels: 3, background: { r: 128, g: 128, b: 128 } } }).png().toBuffer();
    const { jpeg, width, height } = await annotateFrame(grey, { severity: 'critical', detections: [{ label: 'person', score: 0.9, box: [40, 20, 120, 90] }] });
    expect([width, height]).toEqual([200, 100]);
    expect((await sharp(jpeg).metadata()).format).toBe('jpeg');
    const [r, g, b] = await pixel(jpeg, 40, 60); // on the left edge
    expect(r).toBeGreaterThan(170);
    expect(g).toBeLessThan(100);
    expect(b).toBeLessThan(100);
    const inside = await pixel(jpeg, 80, 60);
    for (const c of inside) expect(Math.abs(c - 128)).toBeLessThan(12);
  });

  it('a JPEG without boxes (a classification alert) is kept byte for byte', async () => {
    const frame = await solidFrame(RED);
    expect((await annotateFrame(frame, { severity: 'info', detections: [{ label: 'red', score: 0.6 }] })).jpeg.equals(frame)).toBe(true);
  });
});

describe('alert priority against outliers', () => {
  it('outliers are capped below alerts whatever the manifest says', () => {
    const p = new OutlierCapturePolicy(outlierPolicy.parse({ priorities: { low_confidence: 9, shadow_disagreement: 9 } }), systemClock, Math.random);
    expect(p.priorityOf('low_confidence')).toBe(ALERT_PRIORITY - 1);
    expect(p.priorityOf('shadow_disagreement')).toBe(ALERT_PRIORITY - 1);
  });

  it('a full queue gives up outliers for an alert, and never an alert for an outlier', () => {
    const tmp = tempDir();
    const q = openSqliteQueue({ path: join(tmp.dir, 'q.db'), quotaBytes: 4100, clock: systemClock, logger: captureLogger('silent').log });
    try {
      const item = (id: string, priority: number) => ({ id, kind: 'sample', priority, meta: {}, blob: Buffer.alloc(1000) });
      for (let i = 0; i < 4; i++) expect(q.enqueue(item(`out-${i}`, 8)).accepted).toBe(true);
      const a = q.enqueue(item('alert-0', ALERT_PRIORITY));
      expect(a.accepted).toBe(true);
      expect(a.evicted.map((e) => e.id)).toEqual([expect.stringMatching(/^out-/)]);
      for (let i = 1; i < 4; i++) q.enqueue(item(`alert-${i}`, ALERT_PRIORITY));
      const o = q.enqueue(item('out-late', 8));
      expect(o.accepted).toBe(false);
      expect(q.lease(10, 60_000).map((i) => i.id)).toEqual(['alert-0', 'alert-1', 'alert-2', 'alert-3']);
    } finally {
      q.close();
      tmp.cleanup();
    }
  });
});

describe('an alert with the link down', () => {
  let tmp: ReturnType<typeof tempDir>;
  let broker: AedesHandle;
  let agent: Agent;
  let url: string;

  beforeAll(async () => {
    tmp = tempDir();
    broker = await startAedes();
    await colourPackage(join(tmp.dir, 'colours'));
    await broker.stop();
    ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), {
      models: { initial: join(tmp.dir, 'colours') },
      uplink: { kind: 'mqtt', url: broker.url, backoff_initial_ms: 100, backoff_max_ms: 300 },
      outlier: { min_confidence: 0.9 }, // every frame of this model is also a low_confidence outlier
      alerts: { rules: [{ id: 'red-seen', model: 'colours', labels: ['red'], cooldown_s: 0, severity: 'critical' }] },
    }));
  });
  afterAll(async () => {
    await agent?.stop();
    await broker.close();
    tmp.cleanup();
  });

  it('waits in the queue at the top priority with its frame and record, and reaches the fleet when the link returns', { timeout: 120_000 }, async () => {
    const frame = await solidFrame(RED);
    for (let i = 0; i < 3; i++) expect((await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: frame })).status).toBe(200);
    // Three outliers and at least one alert (de-duplicated: the red label stays, so one).
    await waitUntil(() => agent.queue.stats().depth === 4, 20_000, 'three outliers and one alert in the queue');
    const sink = new SampleSink({ url: broker.url, dir: join(tmp.dir, 'sink'), clock: systemClock, log: captureLogger('silent').log });
    await broker.restart();
    await sink.start();
    try {
      await waitUntil(() => sink.samples.size === 4, 45_000, 'every sample to reach the sink');
      const metas = [...sink.samples.values()].map((m) => sampleMeta.parse(m));
      const alert = metas.find((m) => m.reasons.includes('alert'));
      expect(alert).toMatchObject({ reasons: ['alert'], priority: ALERT_PRIORITY, alert: { rule: 'red-seen', severity: 'critical', label: 'red', device_id: 'test-device' }, input: { kind: 'image', content_type: 'image/jpeg', bytes: frame.length } });
      expect(metas.filter((m) => m !== alert).every((m) => m.reasons.includes('low_confidence') && m.priority < ALERT_PRIORITY)).toBe(true);
      expect(readFileSync(join(tmp.dir, 'sink', 'blobs', alert!.input.sha256)).equals(frame)).toBe(true);
      await waitUntil(() => agent.queue.stats().depth === 0, 30_000, 'the queue to drain');
    } finally {
      await sink.stop();
    }
  });
});
