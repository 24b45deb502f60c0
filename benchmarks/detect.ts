import '../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import sharp from 'sharp';
import type { ModelPackage } from '../agent/model/package.js';
import { ModelRuntime } from '../agent/model/runtime.js';
import { detect, type OutputTensor } from '../shared/inference/detect.js';
import { imageToTensor, placeImage } from '../shared/inference/preprocess.js';
import { modelManifest, type ImagePreprocessing } from '../shared/schemas/index.js';
import { yoloV8nSizedModel } from '../test/helpers/detect-models.js';
import { interleaved, rawSession, sampleJpeg, settings } from './inference.js';
import { round, summary } from './stats.js';

/**
 * `detect`: a detector with a YOLOv8n-sized head (`[1, 84, 8400]`, 80 classes) from JPEG bytes
 * to boxes through the agent (letterbox, worker-thread session, decode and class-aware NMS in
 * the worker), against the same steps done raw in the same run: sharp's letterbox, the bytes
 * to CHW floats in a plain loop into one reused array, a raw `session.run` on the main thread,
 * and the same decode + NMS (`shared/inference/detect.ts`) on its output. Value = p50 ratio
 * (target <= 1.15).
 */
export async function benchDetect(opts: { iterations?: number } = {}) {
  const it = opts.iterations ?? 100;
  const bytes = yoloV8nSizedModel();
  const labels = Array.from({ length: 80 }, (_, i) => `c${i}`);
  const manifest = modelManifest.parse({
    schema: 'edgeloop.model-manifest',
    v: 1,
    name: 'bench-detect',
    version: '1.0.0',
    task: 'detection',
    created_at: new Date().toISOString(),
    model_file: 'model.onnx',
    files: [{ path: 'model.onnx', sha256: '0'.repeat(64), bytes: bytes.length, role: 'model' }],
    inputs: [{ name: 'images', dtype: 'float32', shape: [1, 3, 640, 640] }],
    outputs: [{ name: 'output0', dtype: 'float32', shape: [1, 84, 8400] }],
    preprocessing: { kind: 'image', width: 640, height: 640, fit: 'contain', color: 'rgb', layout: 'NCHW' },
    postprocessing: { kind: 'detection', decoder: { name: 'yolo', layout: 'v8' }, letterbox: { pad_value: 114 } },
    labels,
  });
  if (manifest.task !== 'detection' || manifest.preprocessing.kind !== 'image') throw new Error('bench manifest is not an image detector');
  const post = manifest.postprocessing;
  const pre = manifest.preprocessing as ImagePreprocessing;
  const pkg: ModelPackage = { dir: '.', manifest, ref: { name: 'bench-detect', version: '1.0.0' }, manifestSha256: '0'.repeat(64), modelBytes: bytes, signed: false };
  const runtime = await ModelRuntime.load(pkg, settings);
  const session = await rawSession(bytes);
  const jpeg = await sampleJpeg();
  const { width = 0, height = 0 } = await sharp(jpeg).metadata();
  const placed = placeImage(width, height, pre);
  // The reference's input array, reused every iteration (filled from sharp's pixels each time).
  const x = (await imageToTensor(jpeg, pre, { withGeometry: true, padValue: 114 })).data as Float32Array;
  const decodeTimes: number[] = [];
  const runTimes: number[] = [];
  let boxes = 0;
  let agentBoxes = 0;
  const rawSide = async (): Promise<void> => {
    const px = await placed.apply(sharp(jpeg), 114).removeAlpha().toColourspace('srgb').raw().toBuffer();
    // HWC bytes -> CHW floats /255, as any caller of session.run must, into one reused array.
    const plane = 640 * 640;
    for (let c = 0; c < 3; c++) for (let i = 0; i < plane; i++) x[c * plane + i] = (px[i * 3 + c] as number) / 255;
    const t0 = performance.now();
    const out = (await session.run({ images: new ort.Tensor('float32', x, [1, 3, 640, 640]) })).output0!;
    const t1 = performance.now();
    const tensors: Record<string, OutputTensor> = { output0: { data: out.data as Float32Array, dims: [...out.dims] } };
    boxes = detect(post, tensors, ['output0'], { classes: 80, inputWidth: 640, inputHeight: 640 }, placed.geometry).length;
    decodeTimes.push(performance.now() - t1);
    runTimes.push(t1 - t0);
  };
  try {
    const res = await interleaved(
      it,
      10,
      async () => {
        const [p] = await runtime.predict({ kind: 'image', bytes: jpeg });
        agentBoxes = p!.detection!.detections.length;
      },
      rawSide,
    );
    const agent = summary(res.agent);
    const raw = summary(res.raw);
    return {
      name: 'detect',
      value: round(agent.p50 / raw.p50),
      target: '<= 1.15',
      head: '[1, 84, 8400]',
      jpeg: `${width}x${height}, ${jpeg.length} bytes`,
      boxes: { agent: agentBoxes, reference: boxes },
      agent_ms: agent,
      reference_ms: raw,
      p99_ratio: round(agent.p99 / raw.p99),
      raw_run_ms: summary(runTimes),
      reference_decode_nms_ms: summary(decodeTimes),
    };
  } finally {
    await runtime.close();
    await session.release();
  }
}
