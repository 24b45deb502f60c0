import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { readQueueStats } from '../../agent/queue/sqlite-stats.js';
import { inferResult, sampleMeta } from '../../shared/schemas/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { CLASS_LABELS, SENSOR_FEATURES, imagePackage, patternImage, tempDir, tensorPackage } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
let agent: Agent;
let url: string;
let lines: Array<Record<string, unknown>>;

beforeAll(async () => {
  tmp = tempDir();
  await imagePackage(join(tmp.dir, 'pets'));
  // Capture every prediction (min_confidence 1.01): the tests below check what is kept.
  ({ agent, url, lines } = await startTestAgent(join(tmp.dir, 'data'), {
    models: { initial: join(tmp.dir, 'pets') },
    outlier: { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 6000, burst: 1000 } } },
    http: { max_body_bytes: 200_000 },
  }));
});
afterAll(async () => {
  await agent.stop();
  tmp.cleanup();
});

const post = (body: string | Buffer, type: string) => fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': type }, body });

describe('HTTP API', () => {
  it('infers PNG, JPEG and WebP bytes and base64 JSON', async () => {
    for (const format of ['png', 'jpeg', 'webp'] as const) {
      const res = await post(await patternImage(1, { format, width: 64, height: 48 }), `image/${format}`);
      expect(res.status).toBe(200);
      const body = inferResult.parse(await res.json());
      expect(CLASS_LABELS).toContain(body.label);
      expect(body.topk.length).toBe(4);
      expect(body.model_version).toBe('1.0.0');
    }
    const b64 = (await patternImage(2)).toString('base64');
    const res = await post(JSON.stringify({ image_b64: b64, request_id: 'req-1' }), 'application/json');
    expect(await res.json()).toMatchObject({ request_id: 'req-1', type: 'infer_result' });
  });

  it('answers bad input with a clear code and keeps serving', async () => {
    const cases: Array<[string | Buffer, string, number, string]> = [
      [Buffer.from('definitely not an image'), 'image/png', 422, 'IMAGE_DECODE_FAILED'],
      [(await patternImage(1)).subarray(0, 60), 'image/png', 422, 'IMAGE_DECODE_FAILED'],
      ['{"tensor": [1, 2, 3]}', 'application/json', 422, 'TENSOR_SHAPE_MISMATCH'],
      ['{"image_b64": 5}', 'application/json', 400, 'INPUT_INVALID'],
      ['{oops', 'application/json', 400, 'INPUT_INVALID'],
      ['hello', 'text/plain', 415, 'UNSUPPORTED_MEDIA_TYPE'],
      [Buffer.alloc(300_000), 'image/png', 413, 'PAYLOAD_TOO_LARGE'],
    ];
    for (const [body, type, status, code] of cases) {
      const res = await post(body, type);
      expect(res.status, code).toBe(status);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe(code);
    }
    const gif = Buffer.from('R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==', 'base64');
    expect(((await (await post(gif, 'image/png')).json()) as { error: { code: string } }).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    expect((await fetch(`${url}/nope`)).status).toBe(404);
    expect((await post(await patternImage(3), 'image/png')).status).toBe(200);
    expect(lines.some((l) => l.msg === 'request rejected' && l.code === 'IMAGE_DECODE_FAILED')).toBe(true);
  });

  it('reports health and Prometheus metrics', async () => {
    const h = (await (await fetch(`${url}/healthz`)).json()) as { ok: boolean; model: { version: string } };
    expect(h).toMatchObject({ ok: true, model: { name: 'pets', version: '1.0.0' } });
    const text = await (await fetch(`${url}/metrics`)).text();
    expect(text).toMatch(/^# TYPE edgeloop_inference_requests_total counter$/m);
    expect(text).toMatch(/^edgeloop_inference_requests_total\{source="http",outcome="ok"\} \d+$/m);
    expect(text).toMatch(/^edgeloop_inference_latency_ms_bucket\{le="\+Inf"\} \d+$/m);
    expect(text).toMatch(/^edgeloop_queue_depth \d+$/m);
    expect(text).toMatch(/^edgeloop_model_active_info\{model="pets",version="1.0.0"\} 1$/m);
  });
});

describe('capture', () => {
  it('stores each outlier durably before answering, with valid sample metadata', async () => {
    const before = agent.queue.stats().depth;
    const res = inferResult.parse(await (await post(await patternImage(9), 'image/png')).json());
    expect(res.outlier.captured).toBe(true);
    expect(res.outlier.reasons).toContain('low_confidence');
    // Read the file from another connection: the sample is on disk when the answer arrives.
    const onDisk = readQueueStats(join(tmp.dir, 'data', 'queue.db'));
    expect(onDisk.depth).toBe(before + 1);
    const [item] = agent.queue.lease(1000, 1).filter((i) => i.id === res.outlier.sample_id);
    expect(item).toBeDefined();
    agent.queue.release([item!.id]);
    const meta = sampleMeta.parse(item!.meta);
    expect(meta).toMatchObject({ device_id: 'test-device', source: 'http', model: { name: 'pets', version: '1.0.0' }, input: { kind: 'image', content_type: 'image/png' } });
    expect(meta.input_stats?.brightness).toBeGreaterThan(0);
    expect(item!.blob?.length).toBe(meta.input.bytes);
  });
});

describe('tensor models', () => {
  it('serves JSON tensors, single and batched, and rejects the wrong shape', async () => {
    const t = tempDir();
    try {
      await tensorPackage(join(t.dir, 'sensor'));
      const s = await startTestAgent(join(t.dir, 'data'), { models: { initial: join(t.dir, 'sensor') } });
      try {
        const row = Array.from({ length: SENSOR_FEATURES }, (_, i) => i * 0.1);
        const one = await (await fetch(`${s.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: row }) })).json();
        expect(inferResult.parse(one).topk.reduce((a, e) => a + e.score, 0)).toBeCloseTo(1, 4); // softmax applied to logits
        const many = (await (await fetch(`${s.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: [row, row.map((x) => -x)] }) })).json()) as { results: unknown[] };
        expect(many.results).toHaveLength(2);
        const bad = await fetch(`${s.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: [1, 2] }) });
        expect(bad.status).toBe(422);
        expect(await bad.json()).toMatchObject({ error: { code: 'TENSOR_SHAPE_MISMATCH' } });
        const img = await fetch(`${s.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(1) });
        expect(await img.json()).toMatchObject({ error: { code: 'INPUT_INVALID' } });
      } finally {
        await s.agent.stop();
      }
    } finally {
      t.cleanup();
    }
  });
});
