import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { parseRuleSet } from '../../../agent/alerts/load.js';
import { AlertPipeline } from '../../../agent/alerts/pipeline.js';
import { AlertUplink } from '../../../agent/alerts/uplink.js';
import { Registry } from '../../../agent/metrics.js';
import { openSqliteQueue } from '../../../agent/queue/sqlite-queue.js';
import { systemClock } from '../../../shared/ids.js';
import { sampleMeta, type InferResult } from '../../../shared/schemas/index.js';
import { captureLogger } from '../../helpers/agent.js';
import { tempDir } from '../../helpers/packages.js';

/** A detection model's result as the vision-models work declares it: boxes in original-image pixels. */
function detectionResult(boxes: Array<[number, number, number, number]>): InferResult {
  return {
    type: 'infer_result',
    v: 1,
    label: 'person',
    index: 0,
    score: 0.9,
    topk: [],
    model_name: 'det',
    model_version: '1.0.0',
    latency_ms: 5,
    outlier: { captured: false, reasons: [], suppressed: [] },
    detections: boxes.map((box) => ({ label: 'person', score: 0.9, box })),
    counts: { person: boxes.length },
  };
}

describe('the alert pipeline on detection results', () => {
  it('reads the frame size from the image when the result has none, fires the zone rule, and queues the frame with the box drawn', async () => {
    const tmp = tempDir();
    const { log, lines } = captureLogger('info');
    const queue = openSqliteQueue({ path: join(tmp.dir, 'q.db'), quotaBytes: 10_000_000, clock: systemClock, logger: log });
    try {
      const set = parseRuleSet({ rules: [{ id: 'left-zone', model: 'det', labels: ['person'], zone: { polygon: [[0, 0], [0.5, 0], [0.5, 1], [0, 1]], anchor: 'center' }, severity: 'critical' }] });
      const uplink = new AlertUplink(queue, log);
      const p = new AlertPipeline(set, { deviceId: 'gw-1', clock: systemClock, random: Math.random, log, metrics: new Registry() }, [uplink]);
      const frame = await sharp({ create: { width: 400, height: 200, channels: 3, background: { r: 120, g: 120, b: 120 } } }).jpeg().toBuffer();
      // Centre x 300 of 400: outside the left half; nothing fires.
      p.onResult(detectionResult([[250, 50, 350, 150]]), { kind: 'image', bytes: frame }, { source: 'http', camera: 'gate' }, 1000);
      await p.idle();
      expect(queue.stats().depth).toBe(0);
      // Centre x 100: inside.
      p.onResult(detectionResult([[50, 50, 150, 150]]), { kind: 'image', bytes: frame }, { source: 'http', camera: 'gate' }, 1100);
      await p.idle();
      await uplink.idle();
      const [item] = queue.lease(10, 60_000);
      const meta = sampleMeta.parse(item!.meta);
      expect(meta).toMatchObject({ reasons: ['alert'], priority: 9, source: 'http', alert: { rule: 'left-zone', camera: 'gate', frame: { width: 400, height: 200 }, detections: [{ box: [50, 50, 150, 150], label: 'person' }] }, input: { width: 400, height: 200 } });
      const { data, info } = await sharp(Buffer.from(item!.blob!)).raw().toBuffer({ resolveWithObject: true });
      const at = (x: number, y: number): number[] => Array.from(data.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3));
      const [r, g] = at(50, 100) as [number, number];
      expect(r - g).toBeGreaterThan(80);
      expect(at(100, 100).every((c) => Math.abs(c - 120) < 12)).toBe(true);
      expect(lines.find((l) => l['msg'] === 'alert raised')).toMatchObject({ rule: 'left-zone', camera: 'gate', count: 1 });
    } finally {
      queue.close();
      tmp.cleanup();
    }
  });

  it('a sensor (tensor) result: a classification rule fires and the uplink copy carries the input row', async () => {
    const tmp = tempDir();
    const { log } = captureLogger('silent');
    const queue = openSqliteQueue({ path: join(tmp.dir, 'q.db'), quotaBytes: 10_000_000, clock: systemClock, logger: log });
    try {
      const set = parseRuleSet({ rules: [{ id: 'fault', model: 'sensor', labels: ['fault'], min_score: 0.7, severity: 'warning' }] });
      const uplink = new AlertUplink(queue, log);
      const p = new AlertPipeline(set, { deviceId: 'gw-1', clock: systemClock, random: Math.random, log, metrics: new Registry() }, [uplink]);
      const result: InferResult = { ...detectionResult([]), model_name: 'sensor', label: 'fault', index: 2, score: 0.9, topk: [{ label: 'fault', index: 2, score: 0.9 }] };
      delete result.detections;
      delete result.counts;
      p.onResult(result, { kind: 'tensor', tensor: Float64Array.from([0.5, 1.5, 2.5]) }, { source: 'mqtt' }, 5000);
      await p.idle();
      await uplink.idle();
      const [item] = queue.lease(10, 60_000);
      expect(sampleMeta.parse(item!.meta)).toMatchObject({ reasons: ['alert'], source: 'mqtt', prediction: { label: 'fault', index: 2 }, input: { kind: 'tensor', shape: [1, 3] }, alert: { rule: 'fault', detections: [{ label: 'fault', score: 0.9 }] } });
      expect(JSON.parse(Buffer.from(item!.blob!).toString())).toEqual([0.5, 1.5, 2.5]);
    } finally {
      queue.close();
      tmp.cleanup();
    }
  });
});
