import '../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import { parseAgentConfig, poolSettings } from '../agent/config.js';
import { InferencePool, type PoolSettings } from '../agent/inference/pool.js';
import { ModelRuntime } from '../agent/model/runtime.js';
import type { ModelPackage } from '../agent/model/package.js';
import { classify } from '../shared/inference/postprocess.js';
import { mlpModel, mobilenetLikeModel } from '../test/helpers/models.js';
import { modelManifest } from '../shared/schemas/index.js';
import { round, summary } from './stats.js';

const THREADS = 2;

/** The agent's defaults with the benchmark's thread count. */
export const settings: PoolSettings = poolSettings(parseAgentConfig({ inference: { intra_op_threads: THREADS, max_pending: 1024 } }).inference);

/** Raw ONNX Runtime on the main thread with the same settings as the agent's sessions. */
export function rawSession(bytes: Uint8Array): Promise<ort.InferenceSession> {
  return ort.InferenceSession.create(bytes, {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    executionMode: 'sequential',
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
}

/**
 * Alternate blocks of agent and raw runs so machine noise hits both alike; returns the
 * latencies of each side (ms).
 */
export async function interleaved(iterations: number, block: number, agent: () => Promise<unknown>, raw: () => Promise<unknown>): Promise<{ agent: number[]; raw: number[] }> {
  const a: number[] = [];
  const r: number[] = [];
  for (let i = 0; i < 5; i++) {
    await agent();
    await raw();
  }
  for (let done = 0; done < iterations; done += block) {
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await agent();
      a.push(performance.now() - t);
    }
    for (let i = 0; i < block; i++) {
      const t = performance.now();
      await raw();
      r.push(performance.now() - t);
    }
  }
  return { agent: a, raw: r };
}

async function compareModel(bytes: Uint8Array, input: string, output: string, dims: number[], iterations: number) {
  const size = dims.reduce((x, y) => x * y, 1);
  const pool = await InferencePool.open({ bytes, inputName: input, inputType: 'float32', itemDims: dims, batchable: true, output }, settings);
  const session = await rawSession(bytes);
  const labels = Array.from({ length: 1000 }, (_, i) => String(i));
  const x = Float32Array.from({ length: size }, (_, i) => Math.sin(i) * 0.5);
  const handoff: number[] = [];
  try {
    const res = await interleaved(
      iterations,
      10,
      // Both sides get a fresh input tensor per request, as a real pipeline produces one per
      // frame; the agent's stage adds the hand-off to the worker and postprocessing.
      async () => {
        const r = await pool.infer(x.slice());
        handoff.push(r.handoffMs * 1000);
        return classify(r.scores, { softmax: false, topK: 5, labels });
      },
      async () => (await session.run({ [input]: new ort.Tensor('float32', x.slice(), [1, ...dims]) }))[output],
    );
    // The warm-up requests are not in the latencies: leave their hand-offs out too.
    const h = summary(handoff.slice(-res.agent.length));
    return { agent: summary(res.agent), raw: summary(res.raw), handoff_us: { p50: Math.round(h.p50), p99: Math.round(h.p99) } };
  } finally {
    await pool.close();
    await session.release();
  }
}

/** `inference`: agent inference vs raw session.run, same model and threads. Value = p50 ratio on the image model. */
export async function benchInference(opts: { iterations?: number } = {}) {
  const it = opts.iterations ?? 100;
  const big = mobilenetLikeModel({ seed: 1 });
  const image = await compareModel(big.bytes, big.inputName, big.outputName, [3, 224, 224], it);
  const small = mlpModel({ features: 64, hidden: 128, classes: 10, seed: 2, softmax: true });
  const mlp = await compareModel(small.bytes, small.inputName, small.outputName, [64], it * 5);
  return {
    name: 'inference',
    value: round(image.agent.p50 / image.raw.p50),
    target: '<= 1.05',
    threads: THREADS,
    // Hand-off: per request, the round trip to the worker thread minus the worker's own time
    // (post, wake the worker, reply, wake the main thread; never the run).
    handoff_us: image.handoff_us,
    image_model: { mflops: big.mflops, agent_ms: image.agent, raw_ms: image.raw, p99_ratio: round(image.agent.p99 / image.raw.p99), handoff_us: image.handoff_us },
    mlp_model: { agent_ms: mlp.agent, raw_ms: mlp.raw, p50_ratio: round(mlp.agent.p50 / mlp.raw.p50), handoff_us: mlp.handoff_us },
  };
}

/** A photo-like 640x480 JPEG (smooth gradients and edges, not noise). */
export async function sampleJpeg(): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++)
      for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.round(128 + 100 * Math.sin(x / (20 + c * 7)) * Math.cos(y / 31) + ((x ^ y) & 16));
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

/** `end_to_end`: JPEG bytes to result vs sharp alone + raw run alone. Value = p50 ratio. */
export async function benchEndToEnd(opts: { iterations?: number } = {}) {
  const it = opts.iterations ?? 100;
  const big = mobilenetLikeModel({ seed: 1 });
  const manifest = modelManifest.parse({
    schema: 'edgeloop.model-manifest',
    v: 1,
    name: 'bench',
    version: '1.0.0',
    created_at: new Date().toISOString(),
    model_file: 'model.onnx',
    files: [{ path: 'model.onnx', sha256: '0'.repeat(64), bytes: big.bytes.length, role: 'model' }],
    inputs: [{ name: big.inputName, dtype: 'float32', shape: ['batch', 3, 224, 224] }],
    outputs: [{ name: big.outputName, dtype: 'float32', shape: ['batch', 1000] }],
    preprocessing: { kind: 'image', width: 224, height: 224, color: 'rgb', layout: 'NCHW', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
    labels: Array.from({ length: 1000 }, (_, i) => `c${i}`),
  });
  const pkg: ModelPackage = { dir: '.', manifest, ref: { name: 'bench', version: '1.0.0' }, manifestSha256: '0'.repeat(64), modelBytes: big.bytes, signed: false };
  const runtime = await ModelRuntime.load(pkg, settings);
  const session = await rawSession(big.bytes);
  const jpeg = await sampleJpeg();
  const x = new Float32Array(3 * 224 * 224);
  const sharpOnly = (): Promise<Buffer> => sharp(jpeg).resize(224, 224, { fit: 'fill' }).removeAlpha().toColourspace('srgb').raw().toBuffer();
  const rawRun = async (): Promise<unknown> => (await session.run({ [big.inputName]: new ort.Tensor('float32', x, [1, 3, 224, 224]) }))[big.outputName];
  try {
    const sharpTimes: number[] = [];
    const res = await interleaved(
      it,
      10,
      () => runtime.predict({ kind: 'image', bytes: jpeg }),
      async () => {
        const t = performance.now();
        await sharpOnly();
        sharpTimes.push(performance.now() - t);
        await rawRun();
      },
    );
    // The raw side timed sharp + run together; split out the run for the report.
    const e2e = summary(res.agent);
    const baseline = summary(res.raw);
    const s = summary(sharpTimes);
    return {
      name: 'end_to_end',
      value: round(e2e.p50 / baseline.p50),
      target: '<= 1.25',
      jpeg_bytes: jpeg.length,
      agent_ms: e2e,
      sharp_plus_raw_ms: baseline,
      sharp_ms: s,
    };
  } finally {
    await runtime.close();
    await session.release();
  }
}
