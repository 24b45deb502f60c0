/**
 * Inference worker: owns one ONNX Runtime session. `session.run` blocks the thread it runs
 * on for the whole inference (FACTS: onnxruntime #19611), so it runs here, never on the main
 * thread where MQTT keepalives, SQLite writes and HTTP must stay responsive.
 */
import '../../shared/no-telemetry.js';
import { parentPort } from 'node:worker_threads';
import * as ort from 'onnxruntime-node';
import { detect, type Geometry, type OutputTensor, type RawDetection } from '../../shared/inference/detect.js';
import { fromWire, toWire, type DetectionSpec, type LoadInfo, type SessionSettings, type WireTensor, type WorkerRequest, type WorkerResponse } from './protocol.js';

let session: ort.InferenceSession | null = null;
let detection: DetectionSpec | null = null;

function sessionOptions(s: SessionSettings, providers: string[]): ort.InferenceSession.SessionOptions {
  const spin = s.allowSpinning ? '1' : '0';
  return {
    executionProviders: providers,
    intraOpNumThreads: s.intraOpThreads,
    interOpNumThreads: s.interOpThreads,
    graphOptimizationLevel: s.graphOptimization,
    executionMode: 'sequential',
    // Spinning threads burn CPU for a while after each run; off by default on small devices.
    extra: { session: { intra_op: { allow_spinning: spin }, inter_op: { allow_spinning: spin } } },
  };
}

async function load(model: ArrayBuffer, s: SessionSettings): Promise<LoadInfo> {
  const bytes = new Uint8Array(model);
  let provider = s.executionProviders[0] ?? 'cpu';
  let fallbackReason: string | undefined;
  try {
    session = await ort.InferenceSession.create(bytes, sessionOptions(s, s.executionProviders));
  } catch (err) {
    // An accelerator that is missing on this device must not take the model down: retry on CPU.
    if (s.executionProviders.length === 1 && s.executionProviders[0] === 'cpu') throw err;
    fallbackReason = (err as Error).message;
    provider = 'cpu';
    session = await ort.InferenceSession.create(bytes, sessionOptions(s, ['cpu']));
  }
  return { inputNames: [...session.inputNames], outputNames: [...session.outputNames], executionProvider: provider, ...(fallbackReason ? { fallbackReason } : {}) };
}

type RunResult = { outputs: Record<string, WireTensor>; runMs: number; detections?: RawDetection[]; decodeMs?: number };

async function run(feeds: Record<string, WireTensor>, outputs: string[], geometry: Geometry | undefined): Promise<RunResult> {
  if (!session) throw new Error('no session loaded');
  const ortFeeds: Record<string, ort.Tensor> = {};
  for (const [name, t] of Object.entries(feeds)) ortFeeds[name] = new ort.Tensor(t.type, fromWire(t) as Float32Array, t.dims);
  const t0 = performance.now();
  const res = outputs.length ? await session.run(ortFeeds, outputs) : await session.run(ortFeeds);
  const runMs = performance.now() - t0;
  if (detection && geometry) {
    // Decode and NMS here, beside the run: only the boxes cross back to the main thread.
    const t1 = performance.now();
    const tensors: Record<string, OutputTensor> = {};
    for (const [name, tensor] of Object.entries(res)) tensors[name] = { data: tensor.data as OutputTensor['data'], dims: [...tensor.dims] };
    const detections = detect(detection.post, tensors, detection.outputNames, { classes: detection.classes, inputWidth: detection.inputWidth, inputHeight: detection.inputHeight }, geometry);
    return { outputs: {}, runMs, detections, decodeMs: performance.now() - t1 };
  }
  const out: Record<string, WireTensor> = {};
  for (const [name, tensor] of Object.entries(res)) {
    const data = tensor.data;
    if (data instanceof Float32Array) out[name] = toWire('float32', data, [...tensor.dims]);
    else if (data instanceof Uint8Array) out[name] = toWire('uint8', data, [...tensor.dims]);
    else if (data instanceof BigInt64Array) out[name] = toWire('int64', data, [...tensor.dims]);
    else out[name] = toWire('float32', Float32Array.from(data as ArrayLike<number>), [...tensor.dims]);
  }
  return { outputs: out, runMs };
}

const port = parentPort;
if (!port) throw new Error('inference worker must run in a worker thread');

port.on('message', (msg: WorkerRequest) => {
  const received = performance.now();
  const reply = (r: WorkerResponse, transfer: ArrayBuffer[] = []): void => port.postMessage(r, transfer);
  const fail = (err: unknown): void => reply({ id: msg.id, ok: false, error: { message: err instanceof Error ? err.message : String(err) } });
  if (msg.op === 'load') {
    detection = msg.detection ?? null;
    load(msg.model, msg.settings).then((info) => reply({ id: msg.id, ok: true, load: info }), fail);
  } else if (msg.op === 'run') {
    run(msg.feeds, msg.outputs, msg.geometry).then((r) => {
      const outputs = new Set(Object.values(r.outputs).map((t) => t.data));
      // The inputs go back for reuse: a fresh multi-megabyte buffer per frame costs its page faults again.
      const returned = [...new Set(Object.values(msg.feeds).map((t) => t.data))].filter((b) => !outputs.has(b));
      reply(
        { id: msg.id, ok: true, outputs: r.outputs, runMs: r.runMs, busyMs: performance.now() - received, returned, ...(r.detections ? { detections: r.detections, decodeMs: r.decodeMs ?? 0 } : {}) },
        [...outputs, ...returned],
      );
    }, fail);
  } else if (msg.op === 'release') {
    const s = session;
    session = null;
    (s ? s.release() : Promise.resolve()).then(() => reply({ id: msg.id, ok: true }), fail);
  }
});
