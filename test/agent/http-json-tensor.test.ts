import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { INLINE_BYTES, JsonBodyParser } from '../../agent/inputs/json-body.js';
import { jsonToTensor, type TensorValues } from '../../shared/inference/preprocess.js';
import { inferRequest } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import { startTestAgent } from '../helpers/agent.js';
import { tempDir, tensorPackage } from '../helpers/packages.js';

/** The tensor the runtime builds for a model taking 1 value per example, or the code it refuses with. */
function asTensor(t: TensorValues, shape?: number[]): unknown {
  try {
    const r = jsonToTensor(t, { name: 'x', dtype: 'float32', shape: ['batch', 1] }, shape);
    return { data: [...r.data], batch: r.batch };
  } catch (err) {
    return { refused: (err as { code: string }).code, details: (err as { details?: unknown }).details };
  }
}

/** Features of the wide sensor model: one item's JSON is ~100-200 KB, past INLINE_BYTES, so it goes through the worker. */
const FEATURES = 20_000;

describe('large JSON bodies are parsed off the event loop, with the same result as in place', () => {
  const parser = new JsonBodyParser();
  afterAll(() => parser.close());

  it('flat and nested tensors, images and bad bodies: the worker path answers exactly what the in-place parse does', async () => {
    const padded = (o: unknown): Buffer => Buffer.from(`${JSON.stringify(o)}${' '.repeat(INLINE_BYTES)}`);
    const finite = fc.double({ noNaN: true, noDefaultInfinity: true });
    const body = fc.oneof(
      fc.record({ tensor: fc.array(finite, { maxLength: 50 }), request_id: fc.constantFrom('r-1', undefined), shape: fc.constantFrom([1, 2], undefined) }, { requiredKeys: ['tensor'] }),
      fc.integer({ min: 1, max: 5 }).chain((n) => fc.record({ tensor: fc.array(fc.array(finite, { minLength: n, maxLength: n }), { minLength: 1, maxLength: 4 }) })),
      fc.record({ tensor: fc.constant([[1, 2], [3]]) }),
      fc.record({ image_b64: fc.base64String({ minLength: 4, maxLength: 40 }).filter((s) => s.length > 0) }),
      fc.record({ tensor: fc.constant(['x']) }),
      fc.constant({ nothing: true }),
    );
    await fc.assert(
      fc.asyncProperty(body, async (o) => {
        const bytes = padded(o);
        // What the in-place parse gives, then the model input: the tensor the runtime builds from each must be the same.
        let expected: unknown;
        try {
          const r = parseJsonWith(inferRequest, bytes, 'INPUT_INVALID', 'inference request');
          expected = r.image_b64 !== undefined ? { image: [...Buffer.from(r.image_b64, 'base64')], id: r.request_id } : { tensor: asTensor(r.tensor!, r.shape), id: r.request_id };
        } catch (err) {
          expected = { code: (err as { code: string }).code };
        }
        const got = await parser.parse(bytes).then(
          ({ input, requestId }) => (input.kind === 'image' ? { image: [...input.bytes], id: requestId } : { tensor: asTensor(input.tensor, input.shape), id: requestId }),
          (err: unknown) => ({ code: (err as { code: string }).code }),
        );
        expect(got).toEqual(expected);
      }),
      { numRuns: 150 },
    );
    expect(parser.offThread).toBe(150);
  });
});

describe('an agent with a wide tensor model over HTTP', () => {
  let tmp: ReturnType<typeof tempDir>;
  let agent: Agent;
  let url: string;

  beforeAll(async () => {
    tmp = tempDir();
    await tensorPackage(join(tmp.dir, 'wide'), { features: FEATURES });
    ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: join(tmp.dir, 'wide') } }));
  });
  afterAll(async () => {
    await agent.stop();
    tmp.cleanup();
  });

  it('answers a large flat tensor and the same values as a batch of rows alike', async () => {
    const values = Array.from({ length: FEATURES }, (_, i) => Math.sin(i) * 0.5);
    const post = async (body: unknown): Promise<Record<string, unknown>> => {
      const text = JSON.stringify(body);
      expect(text.length).toBeGreaterThan(INLINE_BYTES);
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: text });
      expect(res.status, text.slice(0, 80)).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const flat = await post({ tensor: values, request_id: 'wide-1' });
    expect(flat).toMatchObject({ type: 'infer_result', request_id: 'wide-1' });
    const rows = (await post({ tensor: [values, values.map((v) => -v)] })) as { results: Array<{ label: string; score: number }> };
    expect(rows.results).toHaveLength(2);
    expect(rows.results[0]).toMatchObject({ label: flat.label, score: flat.score });
    // A body with the wrong number of values is refused with the shape code, through the worker too.
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ tensor: values.slice(1) }) });
    expect(res.status).toBe(422);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('TENSOR_SHAPE_MISMATCH');
  });
});
