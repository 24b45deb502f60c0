import '../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseAgentConfig, poolSettings } from '../agent/config.js';
import { InferencePool } from '../agent/inference/pool.js';
import { mobilenetLikeModel } from '../test/helpers/models.js';
import { round } from './stats.js';

/**
 * `event_loop`: event-loop delay p99 (ms) on the main thread while the inference workers are
 * saturated (requests always queued), with a raw main-thread session.run measured beside it
 * to show what the worker design avoids.
 */
export async function benchEventLoop(opts: { durationMs?: number } = {}) {
  const durationMs = opts.durationMs ?? 5000;
  const big = mobilenetLikeModel({ seed: 1 });
  const pool = await InferencePool.open(
    { bytes: big.bytes, inputName: big.inputName, inputType: 'float32', itemDims: [3, 224, 224], batchable: true, output: big.outputName },
    poolSettings(parseAgentConfig({ inference: { intra_op_threads: 2, max_pending: 64 } }).inference),
  );
  const size = 3 * 224 * 224;
  let runs = 0;
  let stop = false;
  const h = monitorEventLoopDelay({ resolution: 1 });
  try {
    const client = async (): Promise<void> => {
      while (!stop) {
        await pool.infer(new Float32Array(size));
        runs++;
      }
    };
    await pool.infer(new Float32Array(size));
    h.enable();
    const t0 = performance.now();
    const clients = Array.from({ length: 4 }, client);
    await new Promise((r) => setTimeout(r, durationMs));
    stop = true;
    await Promise.all(clients);
    h.disable();
    const elapsed = (performance.now() - t0) / 1000;
    const ms = (ns: number): number => round(ns / 1e6, 2);

    // For contrast: the same model run on the main thread (what onnxruntime-node does by default).
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(big.bytes, { intraOpNumThreads: 2, extra: { session: { intra_op: { allow_spinning: '0' } } } });
    const h2 = monitorEventLoopDelay({ resolution: 1 });
    h2.enable();
    const end = performance.now() + Math.min(2000, durationMs);
    while (performance.now() < end) await session.run({ [big.inputName]: new ort.Tensor('float32', new Float32Array(size), [1, 3, 224, 224]) });
    h2.disable();
    await session.release();
    return {
      name: 'event_loop',
      value: ms(h.percentile(99)),
      target: '<= 5',
      p50_ms: ms(h.percentile(50)),
      max_ms: ms(h.max),
      inferences_per_s: round(runs / elapsed, 1),
      main_thread_run_p99_ms: ms(h2.percentile(99)),
    };
  } finally {
    await pool.close();
  }
}
