import '../../shared/no-telemetry.js';
import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { detect } from '../../shared/inference/detect.js';
import { detectionPostprocessing } from '../../shared/schemas/index.js';
import { accumulateDetectorGradients, shiftImage } from '../../fleet/ml/detector/gradients.js';
import { buildTargets, DetectorScratch, detectorFromInitializers, detectorLoss, detectorParams, exportDetectorOnnx, forwardDetector, initDetector, predictDetector, type DetectorShape, type TrainBox } from '../../fleet/ml/detector/model.js';
import { makeScenes } from '../../fleet/ml/detector/scenes.js';
import { trainDetector } from '../../fleet/ml/detector/train.js';
import { mulberry32 } from '../../fleet/ml/init.js';
import { loadDigits } from '../../fleet/ml/mnist-data.js';
import { readOnnxInitializers } from '../../shared/onnx/reader.js';
import { imageToTensor } from '../../shared/inference/preprocess.js';
import { detectorPreprocessing } from '../../fleet/adapters/trainers/local-detector.js';

const TINY: DetectorShape = { size: 16, widths: [2, 3, 3, 4], hidden: 5, classes: 2 };

function randomImage(side: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: side * side }, () => r());
}

function lossOf(shape: DetectorShape, w: ReturnType<typeof initDetector>, x: Float32Array, boxes: TrainBox[]): number {
  const s = new DetectorScratch(shape);
  const n = buildTargets(shape, boxes, s);
  forwardDetector(w, x, s);
  return detectorLoss(shape, s, n);
}

describe('the centre-point detector', () => {
  it("back-propagates the loss's gradient (finite differences on every layer)", () => {
    const w = initDetector(TINY, 3);
    // Bigger box and class weights so the head is not flat at the prior.
    for (const p of detectorParams(w)) for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) * 1.5;
    const x = randomImage(16, 4);
    const boxes: TrainBox[] = [{ cls: 1, x1: 2, y1: 3, x2: 11, y2: 13 }];
    const s = new DetectorScratch(TINY);
    const grads = detectorParams(w).map((p) => new Float32Array(p.length));
    accumulateDetectorGradients(w, [x], [boxes], [{ index: 0, seed: 0 }], 0, s, grads);
    const rand = mulberry32(9);
    let checked = 0;
    let agreed = 0;
    let nonZero = 0;
    for (const [k, p] of detectorParams(w).entries()) {
      for (let t = 0; t < 4; t++) {
        const i = Math.floor(rand() * p.length);
        const keep = p[i] as number;
        const eps = 1e-2;
        p[i] = keep + eps;
        const up = lossOf(TINY, w, x, boxes);
        p[i] = keep - eps;
        const down = lossOf(TINY, w, x, boxes);
        p[i] = keep;
        const numeric = (up - down) / (2 * eps);
        const analytic = grads[k]![i] as number;
        checked++;
        if (Math.abs(numeric) > 1e-3) nonZero++;
        if (Math.abs(numeric - analytic) <= 0.02 + 0.05 * Math.abs(numeric)) agreed++;
      }
    }
    // A ReLU or max-pool switch inside ±eps can make one difference quotient wrong; a wrong
    // backward pass makes most of them wrong.
    expect(agreed / checked).toBeGreaterThanOrEqual(0.9);
    expect(nonZero / checked).toBeGreaterThan(0.5);
  });

  it('shifts an image and its boxes together, dropping a box cut to less than half', () => {
    const x = new Float32Array(16 * 16);
    x[5 * 16 + 5] = 1;
    const out = new Float32Array(16 * 16);
    const moved = shiftImage(x, 16, [{ cls: 0, x1: 4, y1: 4, x2: 7, y2: 7 }, { cls: 1, x1: 0, y1: 0, x2: 4, y2: 4 }], 2, -1, out);
    expect(out[4 * 16 + 7]).toBe(1);
    expect(moved).toEqual([{ cls: 0, x1: 6, y1: 3, x2: 9, y2: 6 }, { cls: 1, x1: 2, y1: 0, x2: 6, y2: 3 }]);
    expect(shiftImage(x, 16, [{ cls: 0, x1: 0, y1: 0, x2: 4, y2: 4 }], -3, 0, out)).toEqual([]);
  });

  it('exports ONNX whose yolo-v8 output gives, through the agent’s decoder and NMS, the boxes the TypeScript forward pass finds', async () => {
    const shape: DetectorShape = { size: 32, widths: [3, 4, 5, 6], hidden: 7, classes: 3 };
    const w = initDetector(shape, 11);
    for (const p of detectorParams(w)) for (let i = 0; i < p.length; i++) p[i] = (p[i] as number) * 2;
    w.params.bo.fill(0.5, 4);
    const x = randomImage(32, 12);
    const bytes = exportDetectorOnnx(w);
    const back = detectorFromInitializers(readOnnxInitializers(bytes));
    expect(back && detectorParams(back).map((a) => Array.from(a))).toEqual(detectorParams(w).map((a) => Array.from(a)));
    const session = await ort.InferenceSession.create(bytes);
    try {
      const out = await session.run({ images: new ort.Tensor('float32', x, [1, 1, 32, 32]) });
      const t = out.output0!;
      expect(t.dims).toEqual([1, 7, 16]);
      const post = detectionPostprocessing.parse({ decoder: { name: 'yolo', layout: 'v8' }, nms: { score_threshold: 0.3, iou_threshold: 0.45 } });
      const agent = detect(post, { output0: { data: t.data as Float32Array, dims: t.dims } }, ['output0'], { classes: 3, inputWidth: 32, inputHeight: 32 }, { width: 32, height: 32, scaleX: 1, scaleY: 1, padX: 0, padY: 0 });
      const here = predictDetector(w, [x], 0.3)[0]!;
      expect(agent.length).toBeGreaterThan(0);
      expect(agent.map((d) => d.cls)).toEqual(here.map((d) => d.cls));
      agent.forEach((d, i) => {
        expect(d.score).toBeCloseTo(here[i]!.score, 4);
        d.box.forEach((v, j) => expect(v).toBeCloseTo(Math.min(32, Math.max(0, here[i]!.box[j]!)), 1));
      });
    } finally {
      await session.release();
    }
  });

  it('two gradient threads give the same weights run after run, and the loss falls', async () => {
    const scenes = makeScenes(loadDigits({ count: 200 }), 24, 5, { width: 32, height: 32, minDigits: 1, maxDigits: 2, minSize: 12, maxSize: 16 });
    const pre = detectorPreprocessing(32, true);
    const images = await Promise.all(scenes.map(async (s) => (await imageToTensor(s.png, pre)).data as Float32Array));
    const opts = { images, boxes: scenes.map((s) => s.boxes.map((b) => ({ ...b, cls: 0 }))), shape: { size: 32, widths: [4, 4, 4, 4], hidden: 8, classes: 1 } as DetectorShape, epochs: 3, batchSize: 8, lr: 0.01, seed: 2, maxShift: 2, threads: 2 };
    const losses: number[] = [];
    const a = await trainDetector({ ...opts, onEpoch: (_, l) => losses.push(l) });
    const b = await trainDetector(opts);
    expect(Buffer.from(exportDetectorOnnx(a.weights)).equals(Buffer.from(exportDetectorOnnx(b.weights)))).toBe(true);
    expect(losses).toHaveLength(3);
    expect(losses[2]!).toBeLessThan(losses[0]!);
  }, 60_000);
});
