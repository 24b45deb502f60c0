import { describe, expect, it } from 'vitest';
import { parseAgentConfig, poolSettings } from '../../agent/config.js';
import { InferencePool, type PoolSettings } from '../../agent/inference/pool.js';
import { WorkerSession } from '../../agent/inference/worker-session.js';
import { brokenModelBytes, mlpModel, mobilenetLikeModel } from '../helpers/models.js';

const settings = (o: Partial<PoolSettings> = {}): PoolSettings => ({ ...poolSettings(parseAgentConfig({ inference: { intra_op_threads: 1, max_pending: 1000 } }).inference), ...o });

const mlp = mlpModel({ features: 16, hidden: 32, classes: 4, seed: 9, softmax: true });
const mlpPool = (o: Partial<PoolSettings> = {}) =>
  InferencePool.open({ bytes: mlp.bytes, inputName: mlp.inputName, inputType: 'float32', itemDims: [16], batchable: true, output: mlp.outputName }, settings(o));

/** The MLP's forward pass in plain JS, to check what comes back from the worker. */
function forward(x: Float32Array): number[] {
  const { w1, b1, w2, b2 } = mlp.weights;
  const h = Array.from({ length: 32 }, (_, j) => Math.max(0, (b1[j] as number) + Array.from(x).reduce((s, v, i) => s + v * (w1[i * 32 + j] as number), 0)));
  const z = Array.from({ length: 4 }, (_, k) => (b2[k] as number) + h.reduce((s, v, j) => s + v * (w2[j * 4 + k] as number), 0));
  const m = Math.max(...z);
  const e = z.map((v) => Math.exp(v - m));
  const sum = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / sum);
}

describe('inference pool (worker threads)', () => {
  it('returns the same scores as the model computed by hand', async () => {
    const pool = await mlpPool();
    try {
      const x = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
      const expected = forward(x);
      const r = await pool.infer(x.slice());
      expect(Array.from(r.scores)).toEqual(expected.map((v) => expect.closeTo(v, 4)));
    } finally {
      await pool.close();
    }
  });

  it('reports the worker hand-off apart from the run: round trip minus the time the worker held the request', async () => {
    const pool = await mlpPool();
    try {
      const t0 = performance.now();
      const r = await pool.infer(new Float32Array(16));
      const total = performance.now() - t0;
      expect(r.handoffMs).toBeGreaterThan(0);
      expect(r.handoffMs + r.runMs).toBeLessThanOrEqual(total);
    } finally {
      await pool.close();
    }
  });

  it('hands back input buffers for the next request to fill, and a refilled buffer gives the fresh answer', async () => {
    const pool = await mlpPool({ maxBatch: 1 });
    try {
      const a = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i));
      const b = Float32Array.from({ length: 16 }, (_, i) => Math.cos(3 * i));
      const first = pool.allocate();
      first.set(a);
      const ra = await pool.infer(first);
      // The worker gave the buffer back: the next allocation is the same memory, still holding a.
      const second = pool.allocate();
      expect(Array.from(second)).toEqual(Array.from(a));
      second.set(b);
      const rb = await pool.infer(second);
      expect(Array.from(ra.scores)).toEqual(forward(a).map((v) => expect.closeTo(v, 5)));
      expect(Array.from(rb.scores)).toEqual(forward(b).map((v) => expect.closeTo(v, 5)));
      expect(pool.allocate()).toHaveLength(16);
    } finally {
      await pool.close();
    }
  });

  it('micro-batches queued requests and splits the outputs back per caller', async () => {
    const pool = await mlpPool({ maxBatch: 8 });
    try {
      const inputs = Array.from({ length: 40 }, (_, n) => Float32Array.from({ length: 16 }, (_, i) => Math.cos(i * n)));
      const results = await Promise.all(inputs.map((x) => pool.infer(x.slice())));
      expect(Math.max(...results.map((r) => r.batchSize))).toBeGreaterThan(1);
      results.forEach((r, n) => expect(Array.from(r.scores)).toEqual(forward(inputs[n]!).map((v) => expect.closeTo(v, 4))));
    } finally {
      await pool.close();
    }
  });

  it('rejects a wrong input size and a full queue with their codes', async () => {
    const pool = await mlpPool({ maxPending: 2 });
    try {
      await expect(pool.infer(new Float32Array(3))).rejects.toMatchObject({ code: 'TENSOR_SHAPE_MISMATCH' });
      const flood = Array.from({ length: 10 }, () => pool.infer(new Float32Array(16)).then(() => 'ok', (e: { code: string }) => e.code));
      const outcomes = await Promise.all(flood);
      expect(outcomes).toContain('AGENT_ENGINE_OVERLOADED');
      expect(outcomes).toContain('ok');
    } finally {
      await pool.close();
    }
  });

  it('refuses a corrupt model with MODEL_LOAD_FAILED and falls back to CPU for a missing provider', async () => {
    await expect(WorkerSession.open(brokenModelBytes(), settings())).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' });
    const s = await WorkerSession.open(mlp.bytes, settings({ executionProviders: ['cuda', 'cpu'] }));
    try {
      expect(s.info.executionProvider).toBe('cpu');
      expect(s.info.fallbackReason).toBeTruthy();
    } finally {
      await s.close();
    }
  });

  it('keeps the event loop free while inference is saturated', async () => {
    const big = mobilenetLikeModel({ seed: 1 });
    const pool = await InferencePool.open({ bytes: big.bytes, inputName: big.inputName, inputType: 'float32', itemDims: [3, 224, 224], batchable: true, output: big.outputName }, settings({ intraOpThreads: 2 }));
    try {
      // Count 5 ms timer ticks while the worker is busy with all the runs. A loop blocked for
      // the whole window would tick at most once, after it; a free one about every 5 ms. (Counting
      // only until the first result was flaky: on a fast host it can land before the first tick.)
      let ticks = 0;
      const t0 = performance.now();
      const timer = setInterval(() => ticks++, 5);
      const runs = Array.from({ length: 12 }, () => pool.infer(new Float32Array(3 * 224 * 224)));
      const results = await Promise.all(runs);
      const busyMs = performance.now() - t0;
      clearInterval(timer);
      expect(results[0]!.runMs).toBeGreaterThan(5);
      expect(busyMs).toBeGreaterThan(20);
      expect(ticks).toBeGreaterThanOrEqual(2);
    } finally {
      await pool.close();
    }
  });
});
