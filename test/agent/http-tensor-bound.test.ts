/**
 * JSON tensor bodies on an agent serving two tensor models of different input sizes: `small`
 * (8 values an example, the default) and `wide` (1024). Regression: a body naming `wide` in its
 * `model` field (no `?model=`) was bounded while it was read by the default model's size and
 * refused as PAYLOAD_TOO_LARGE. The bound while reading is now the largest served model's; the
 * named model's own bound and shape are checked once the body is parsed.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { postUnfinished, startTestAgent } from '../helpers/agent.js';
import { tempDir, tensorPackage } from '../helpers/packages.js';

const SMALL = 8;
const WIDE = 1024;
/** A batch may hold 64 examples (agent/model/runtime.ts). */
const MAX_BATCH = 64;

let tmp: ReturnType<typeof tempDir>;
let agent: Agent;
let url: string;

beforeAll(async () => {
  tmp = tempDir('edgeloop-tensor-bound-');
  await tensorPackage(join(tmp.dir, 'small'), { name: 'small', features: SMALL });
  await tensorPackage(join(tmp.dir, 'wide'), { name: 'wide', features: WIDE, seed: 5 });
  ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: [join(tmp.dir, 'small'), join(tmp.dir, 'wide')] }, http: { max_body_bytes: 64 * 1024 * 1024 } }));
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  tmp.cleanup();
});

const row = (n: number): number[] => Array.from({ length: n }, (_, i) => (i % 10) / 10);
const rows = (count: number, n: number): number[][] => Array.from({ length: count }, () => row(n));

async function post(body: Record<string, unknown>, query = ''): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/v1/infer${query}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('a JSON tensor body on an agent serving models of different input sizes', () => {
  it('a body naming the wide model in its `model` field is read up to that model, not the default', async () => {
    expect(agent.slots.serving().map((r) => r.name)).toEqual(['small', 'wide']);
    const one = await post({ model: 'wide', tensor: row(WIDE) });
    expect(one.status, JSON.stringify(one.json)).toBe(200);
    expect(one.json).toMatchObject({ model_name: 'wide' });
    // A batch of 40: about 160 KB of JSON, parsed off the event loop.
    const batch = await post({ model: 'wide', tensor: rows(40, WIDE) });
    expect(batch.status, JSON.stringify(batch.json)).toBe(200);
    expect((batch.json['results'] as Array<{ model_name: string }>).map((r) => r.model_name)).toEqual(Array(40).fill('wide'));
    // The query form was never affected.
    expect((await post({ tensor: row(WIDE) }, '?model=wide')).json).toMatchObject({ model_name: 'wide' });
  });

  it('the model the body names (or the default) is held to its own size and shape once parsed', async () => {
    expect((await post({ model: 'small', tensor: rows(MAX_BATCH, SMALL) })).status).toBe(200);
    const overBatch = await post({ model: 'small', tensor: rows(MAX_BATCH + 1, SMALL) });
    expect(overBatch.status).toBe(413);
    expect(overBatch.json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining(`the ${MAX_BATCH * SMALL} values a tensor for model small can`) } });
    // A wide tensor fits the reading bound but not the small model.
    expect((await post({ model: 'small', tensor: row(WIDE) })).json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect((await post({ tensor: row(WIDE) })).json).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('the default model') } });
    const shape = await post({ model: 'small', tensor: row(SMALL + 4) });
    expect(shape.status).toBe(422);
    expect(shape.json).toMatchObject({ error: { code: 'TENSOR_SHAPE_MISMATCH' } });
    expect((await post({ model: 'small', tensor: row(SMALL) })).json).toMatchObject({ model_name: 'small' });
  });

  it("a body past the largest served model's size is refused while it is read: the rest of a 16 MB body is never needed", async () => {
    // 100,000 values: more than the wide model's 64 x 1024 (65,536) a body naming no query model may hold.
    const chunk = Buffer.from(`${row(50_000).join(',')},`);
    const r = await postUnfinished(`${url}/v1/infer`, 'application/json', 16 * 1024 * 1024, ['{"model":"wide","tensor":[', chunk, chunk]);
    expect(r.status).toBe(413);
    expect(JSON.parse(r.body)).toMatchObject({ error: { code: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('any model served here') } });
  });
});
