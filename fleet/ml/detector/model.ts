/**
 * A small centre-point object detector in pure TypeScript, trainable on two cores: a grey
 * S×S input → four 3×3 conv + ReLU layers (max-pool after the first three, so stride 8) → a
 * 1×1 hidden layer → a 1×1 head with, per grid cell, an offset (2), a log size (2) and one
 * logit per class. Trained like CenterNet: a Gaussian-softened focal loss on the class maps
 * (peak at the cell holding a box's centre) and L1 on the box of the cells around each centre.
 *
 * Exported to ONNX with the decoding folded into the graph, so the output is the Ultralytics
 * v8 layout `[1, 4+C, N]` (cx, cy, w, h in input pixels, class scores after a sigmoid; N = the
 * grid's cells) and the agent's existing `yolo` decoder and NMS run it unchanged.
 *
 * Pure computation: no I/O. Deterministic for a given seed.
 */
import { GraphBuilder } from '../../../shared/onnx/builder.js';
import type { OnnxInitializer } from '../../../shared/onnx/reader.js';
import { nms, type RawDetection } from '../../../shared/inference/detect.js';
import { heUniform, mulberry32, uniformArray } from '../init.js';
import { conv1x1, conv1x1Backward, conv3x3, conv3x3Backward, maxPool, maxPoolBackward, relu, reluBackward } from './layers.js';

/** Layer sizes. `size` (the input side) is a multiple of 8; the grid is size / 8 cells a side. */
export interface DetectorShape {
  size: number;
  /** Channels of the four 3×3 layers. */
  widths: readonly [number, number, number, number];
  hidden: number;
  classes: number;
}

const DETECTOR_STRIDE = 8;

/** The parameters in layout order (gradients, Adam state and shared memory follow it). */
const PARAMS = ['w1', 'b1', 'w2', 'b2', 'w3', 'b3', 'w4', 'b4', 'wh', 'bh', 'wo', 'bo'] as const;
type ParamName = (typeof PARAMS)[number];

export interface DetectorWeights extends DetectorShape {
  params: Record<ParamName, Float32Array>;
}

/** One ground-truth box in input pixels. */
export interface TrainBox {
  cls: number;
  x1: number;
  y1: number;
  x2: number;
  y2: number;
}

/** Largest log size the head may emit (e^5 cells = 148 cells): a wild logit cannot overflow Exp. */
const LOG_SIZE_MAX = 5;
const LOG_SIZE_MIN = -3;
/** Prior probability of an object per cell and class: the class bias starts at its logit (RetinaNet's init). */
const PRIOR = 0.01;

function dims(s: DetectorShape): Record<ParamName, number[]> {
  const [c1, c2, c3, c4] = s.widths;
  const out = 4 + s.classes;
  return {
    w1: [c1, 1, 3, 3],
    b1: [c1],
    w2: [c2, c1, 3, 3],
    b2: [c2],
    w3: [c3, c2, 3, 3],
    b3: [c3],
    w4: [c4, c3, 3, 3],
    b4: [c4],
    wh: [s.hidden, c4, 1, 1],
    bh: [s.hidden],
    wo: [out, s.hidden, 1, 1],
    bo: [out],
  };
}

const count = (d: readonly number[]): number => d.reduce((a, b) => a * b, 1);

/** Throws a RangeError for a shape the layers cannot run. */
export function checkDetectorShape(s: DetectorShape): void {
  if (!Number.isInteger(s.size) || s.size < 16 || s.size % DETECTOR_STRIDE !== 0) throw new RangeError(`detector input size must be a multiple of ${DETECTOR_STRIDE} and at least 16, got ${s.size}`);
  if (![...s.widths, s.hidden, s.classes].every((v) => Number.isInteger(v) && v > 0)) throw new RangeError('detector layer widths, hidden and classes must be positive integers');
}

/** The parameter arrays in layout order (views). */
export function detectorParams(w: DetectorWeights): Float32Array[] {
  return PARAMS.map((n) => w.params[n]);
}

/** Parameter counts in layout order. */
export function detectorParamSizes(s: DetectorShape): number[] {
  const d = dims(s);
  return PARAMS.map((n) => count(d[n]));
}

/** Weights over arrays given in layout order (e.g. views over shared memory; not copied). */
export function detectorFromParams(s: DetectorShape, arrays: readonly Float32Array[]): DetectorWeights {
  const params = Object.fromEntries(PARAMS.map((n, i) => [n, arrays[i]!])) as Record<ParamName, Float32Array>;
  return { size: s.size, widths: [...s.widths] as unknown as DetectorShape['widths'], hidden: s.hidden, classes: s.classes, params };
}

/** Seeded He-uniform init; the class biases start at the logit of a 1% prior, the box outputs near 0. */
export function initDetector(s: DetectorShape, seed: number): DetectorWeights {
  checkDetectorShape(s);
  const rand = mulberry32(seed);
  const d = dims(s);
  const p = {} as Record<ParamName, Float32Array>;
  for (const n of PARAMS) {
    const size = count(d[n]);
    if (n.startsWith('b')) p[n] = new Float32Array(size);
    else if (n === 'wo') p[n] = uniformArray(rand, size, 0.01);
    else p[n] = heUniform(rand, size, count(d[n].slice(1)));
  }
  p.bo.fill(Math.log(PRIOR / (1 - PRIOR)), 4);
  return detectorFromParams(s, PARAMS.map((n) => p[n]));
}

export function cloneDetector(w: DetectorWeights): DetectorWeights {
  return detectorFromParams(w, detectorParams(w).map((a) => a.slice()));
}

/** Per-image activations and gradients, allocated once per thread. */
export class DetectorScratch {
  readonly x: Float32Array;
  readonly a1: Float32Array;
  readonly p1: Float32Array;
  readonly m1: Int32Array;
  readonly a2: Float32Array;
  readonly p2: Float32Array;
  readonly m2: Int32Array;
  readonly a3: Float32Array;
  readonly p3: Float32Array;
  readonly m3: Int32Array;
  readonly a4: Float32Array;
  readonly h: Float32Array;
  readonly z: Float32Array;
  readonly d1: Float32Array;
  readonly d2: Float32Array;
  readonly d3: Float32Array;
  readonly dp1: Float32Array;
  readonly dp2: Float32Array;
  readonly dp3: Float32Array;
  readonly d4: Float32Array;
  readonly dh: Float32Array;
  readonly dz: Float32Array;
  /** Targets: class heat [C, G²], box [4, G²], box weight [G²]. */
  readonly heat: Float32Array;
  readonly box: Float32Array;
  readonly boxW: Float32Array;
  constructor(s: DetectorShape) {
    const S = s.size;
    const [c1, c2, c3, c4] = s.widths;
    const G = S / DETECTOR_STRIDE;
    const n = (c: number, side: number): number => c * side * side;
    this.x = new Float32Array(S * S);
    this.a1 = new Float32Array(n(c1, S));
    this.p1 = new Float32Array(n(c1, S / 2));
    this.m1 = new Int32Array(n(c1, S / 2));
    this.a2 = new Float32Array(n(c2, S / 2));
    this.p2 = new Float32Array(n(c2, S / 4));
    this.m2 = new Int32Array(n(c2, S / 4));
    this.a3 = new Float32Array(n(c3, S / 4));
    this.p3 = new Float32Array(n(c3, G));
    this.m3 = new Int32Array(n(c3, G));
    this.a4 = new Float32Array(n(c4, G));
    this.h = new Float32Array(n(s.hidden, G));
    this.z = new Float32Array(n(4 + s.classes, G));
    this.d1 = new Float32Array(this.a1.length);
    this.d2 = new Float32Array(this.a2.length);
    this.d3 = new Float32Array(this.a3.length);
    this.dp1 = new Float32Array(this.p1.length);
    this.dp2 = new Float32Array(this.p2.length);
    this.dp3 = new Float32Array(this.p3.length);
    this.d4 = new Float32Array(this.a4.length);
    this.dh = new Float32Array(this.h.length);
    this.dz = new Float32Array(this.z.length);
    this.heat = new Float32Array(s.classes * G * G);
    this.box = new Float32Array(4 * G * G);
    this.boxW = new Float32Array(G * G);
  }
}

/** Forward pass of one S×S grey image (ink = 1); the raw head output is left in `s.z` ([4+C, G, G]). */
export function forwardDetector(w: DetectorWeights, x: Float32Array, s: DetectorScratch): void {
  const S = w.size;
  const [c1, c2, c3, c4] = w.widths;
  const G = S / DETECTOR_STRIDE;
  const p = w.params;
  conv3x3(p.w1, p.b1, 1, c1, S, x, s.a1);
  relu(s.a1);
  maxPool(s.a1, c1, S, s.p1, s.m1);
  conv3x3(p.w2, p.b2, c1, c2, S / 2, s.p1, s.a2);
  relu(s.a2);
  maxPool(s.a2, c2, S / 2, s.p2, s.m2);
  conv3x3(p.w3, p.b3, c2, c3, S / 4, s.p2, s.a3);
  relu(s.a3);
  maxPool(s.a3, c3, S / 4, s.p3, s.m3);
  conv3x3(p.w4, p.b4, c3, c4, G, s.p3, s.a4);
  relu(s.a4);
  conv1x1(p.wh, p.bh, c4, w.hidden, G * G, s.a4, s.h);
  relu(s.h);
  conv1x1(p.wo, p.bo, w.hidden, 4 + w.classes, G * G, s.h, s.z);
}

/** Adds one image's gradients into `g` (layout order); `s.dz` holds dL/dz. */
export function backwardDetector(w: DetectorWeights, x: Float32Array, s: DetectorScratch, g: readonly Float32Array[]): void {
  const S = w.size;
  const [c1, c2, c3, c4] = w.widths;
  const G = S / DETECTOR_STRIDE;
  const p = w.params;
  const [g1, gb1, g2, gb2, g3, gb3, g4, gb4, gh, gbh, go, gbo] = g as Float32Array[] as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
  conv1x1Backward(p.wo, w.hidden, 4 + w.classes, G * G, s.h, s.dz, go, gbo, s.dh);
  reluBackward(s.h, s.dh);
  conv1x1Backward(p.wh, c4, w.hidden, G * G, s.a4, s.dh, gh, gbh, s.d4);
  reluBackward(s.a4, s.d4);
  conv3x3Backward(p.w4, c3, c4, G, s.p3, s.d4, g4, gb4, s.dp3);
  maxPoolBackward(s.dp3, s.m3, s.d3);
  reluBackward(s.a3, s.d3);
  conv3x3Backward(p.w3, c2, c3, S / 4, s.p2, s.d3, g3, gb3, s.dp2);
  maxPoolBackward(s.dp2, s.m2, s.d2);
  reluBackward(s.a2, s.d2);
  conv3x3Backward(p.w2, c1, c2, S / 2, s.p1, s.d2, g2, gb2, s.dp1);
  maxPoolBackward(s.dp1, s.m1, s.d1);
  reluBackward(s.a1, s.d1);
  conv3x3Backward(p.w1, 1, c1, S, x, s.d1, g1, gb1, null);
}

/**
 * Fills the targets in `s` from the image's boxes: per class, a Gaussian around the cell holding
 * each centre (1 at that cell, σ a sixth of the box's larger side in cells); per cell within one
 * cell of a centre, the box (offset of the centre from the cell's centre and log size, in cells)
 * weighted by the Gaussian. Where two boxes claim a cell, the nearer centre wins.
 */
export function buildTargets(shape: DetectorShape, boxes: readonly TrainBox[], s: DetectorScratch): number {
  const G = shape.size / DETECTOR_STRIDE;
  const N = G * G;
  s.heat.fill(0);
  s.box.fill(0);
  s.boxW.fill(0);
  let objects = 0;
  for (const b of boxes) {
    const bw = (b.x2 - b.x1) / DETECTOR_STRIDE;
    const bh = (b.y2 - b.y1) / DETECTOR_STRIDE;
    if (!(bw > 0 && bh > 0) || b.cls < 0 || b.cls >= shape.classes) continue;
    const cx = (b.x1 + b.x2) / 2 / DETECTOR_STRIDE;
    const cy = (b.y1 + b.y2) / 2 / DETECTOR_STRIDE;
    const gx = Math.min(G - 1, Math.max(0, Math.floor(cx)));
    const gy = Math.min(G - 1, Math.max(0, Math.floor(cy)));
    objects++;
    const sigma = Math.max(0.4, Math.max(bw, bh) / 6);
    const r = Math.ceil(3 * sigma);
    const plane = b.cls * N;
    for (let y = Math.max(0, gy - r); y <= Math.min(G - 1, gy + r); y++) {
      for (let x = Math.max(0, gx - r); x <= Math.min(G - 1, gx + r); x++) {
        const v = Math.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * sigma * sigma));
        const i = plane + y * G + x;
        if (v > (s.heat[i] as number)) s.heat[i] = v;
        if (Math.abs(x - gx) <= 1 && Math.abs(y - gy) <= 1 && v > (s.boxW[y * G + x] as number)) {
          const c = y * G + x;
          s.boxW[c] = v;
          s.box[c] = cx - (x + 0.5);
          s.box[N + c] = cy - (y + 0.5);
          s.box[2 * N + c] = Math.log(bw);
          s.box[3 * N + c] = Math.log(bh);
        }
      }
    }
  }
  return objects;
}

/**
 * Loss of the head output `s.z` against the targets in `s`, and dL/dz into `s.dz`: the
 * CenterNet focal loss (α 2, β 4) on the class logits plus L1 on the box outputs, both divided
 * by the number of objects (at least 1).
 */
export function detectorLoss(shape: DetectorShape, s: DetectorScratch, objects: number): number {
  const G = shape.size / DETECTOR_STRIDE;
  const N = G * G;
  const C = shape.classes;
  const norm = 1 / Math.max(1, objects);
  const z = s.z;
  const dz = s.dz;
  let loss = 0;
  for (let c = 0; c < C; c++) {
    for (let i = 0; i < N; i++) {
      const k = (4 + c) * N + i;
      const logit = Math.min(30, Math.max(-30, z[k] as number));
      const prob = 1 / (1 + Math.exp(-logit));
      const pc = Math.min(1 - 1e-6, Math.max(1e-6, prob));
      const y = s.heat[c * N + i] as number;
      if (y >= 1) {
        // -(1-p)^2 log p
        loss -= (1 - pc) ** 2 * Math.log(pc);
        dz[k] = norm * (2 * pc * (1 - pc) ** 2 * Math.log(pc) - (1 - pc) ** 3);
      } else {
        // -(1-y)^4 p^2 log(1-p)
        const wgt = (1 - y) ** 4;
        loss -= wgt * pc * pc * Math.log(1 - pc);
        dz[k] = -norm * wgt * (2 * pc * pc * (1 - pc) * Math.log(1 - pc) - pc ** 3);
      }
    }
  }
  for (let j = 0; j < 4; j++) {
    for (let i = 0; i < N; i++) {
      const k = j * N + i;
      const wgt = s.boxW[i] as number;
      if (wgt === 0) {
        dz[k] = 0;
        continue;
      }
      const diff = (z[k] as number) - (s.box[k] as number);
      loss += wgt * Math.abs(diff);
      dz[k] = norm * wgt * (diff > 0 ? 1 : diff < 0 ? -1 : 0);
    }
  }
  return loss * norm;
}

/** Candidate boxes (input pixels) of the head output in `s.z`, at or above `threshold`. */
function decodeHead(shape: DetectorShape, z: Float32Array, threshold: number): RawDetection[] {
  const G = shape.size / DETECTOR_STRIDE;
  const N = G * G;
  const out: RawDetection[] = [];
  for (let i = 0; i < N; i++) {
    let best = -Infinity;
    let cls = 0;
    for (let c = 0; c < shape.classes; c++) {
      const v = z[(4 + c) * N + i] as number;
      if (v > best) [best, cls] = [v, c];
    }
    const score = 1 / (1 + Math.exp(-best));
    if (!(score >= threshold)) continue;
    const gx = i % G;
    const gy = (i - gx) / G;
    const cx = (gx + 0.5 + (z[i] as number)) * DETECTOR_STRIDE;
    const cy = (gy + 0.5 + (z[N + i] as number)) * DETECTOR_STRIDE;
    const clamp = (v: number): number => Math.min(LOG_SIZE_MAX, Math.max(LOG_SIZE_MIN, v));
    const bw = Math.exp(clamp(z[2 * N + i] as number)) * DETECTOR_STRIDE;
    const bh = Math.exp(clamp(z[3 * N + i] as number)) * DETECTOR_STRIDE;
    out.push({ cls, score, box: [cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2] });
  }
  return out;
}

/** Boxes in input pixels after NMS (IoU 0.45), as the ONNX export plus the agent's `yolo` decoder give them. */
export function predictDetector(w: DetectorWeights, images: readonly Float32Array[], threshold = 0.25): RawDetection[][] {
  const s = new DetectorScratch(w);
  return images.map((x) => {
    if (x.length !== w.size * w.size) throw new RangeError(`image has ${x.length} values, expected ${w.size * w.size}`);
    forwardDetector(w, x, s);
    return nms(decodeHead(w, s.z, threshold), { iouThreshold: 0.45, maxDetections: 100 });
  });
}

/** ONNX tensor names. */
const DETECTOR_ONNX_INPUT = 'images';
const DETECTOR_ONNX_OUTPUT = 'output0';

/**
 * ONNX export: `images` [1, 1, S, S] → the layers → head [1, 4+C, G, G] → reshaped to
 * [1, 4+C, G²] and decoded in the graph: cx, cy = (offset + cell centre) · 8, w, h =
 * exp(clip(log size)) · 8, scores = sigmoid(logits) → `output0` [1, 4+C, G²]. Initializer
 * names are the parameter names, so {@link detectorFromInitializers} reads them back.
 */
export function exportDetectorOnnx(w: DetectorWeights): Uint8Array {
  const d = dims(w);
  const S = w.size;
  const G = S / DETECTOR_STRIDE;
  const N = G * G;
  const out = 4 + w.classes;
  const g = new GraphBuilder('edgeloop_detector');
  g.meta('edgeloop.detector', JSON.stringify({ size: S, widths: w.widths, hidden: w.hidden, classes: w.classes, stride: DETECTOR_STRIDE }));
  const init = (n: ParamName): string => g.initializer(n, w.params[n], d[n]);
  const conv3 = (t: string, wn: ParamName, bn: ParamName): string => g.node('Relu', [g.node('Conv', [t, init(wn), init(bn)], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
  const pool = (t: string): string => g.node('MaxPool', [t], { kernel_shape: [2, 2], strides: [2, 2] });
  let t = g.input(DETECTOR_ONNX_INPUT, 'float32', [1, 1, S, S]);
  t = pool(conv3(t, 'w1', 'b1'));
  t = pool(conv3(t, 'w2', 'b2'));
  t = pool(conv3(t, 'w3', 'b3'));
  t = conv3(t, 'w4', 'b4');
  t = g.node('Relu', [g.node('Conv', [t, init('wh'), init('bh')], { kernel_shape: [1, 1] })]);
  t = g.node('Conv', [t, init('wo'), init('bo')], { kernel_shape: [1, 1] });
  t = g.node('Reshape', [t, g.int64Initializer('head_shape', [1, out, N])]);
  const slice = (name: string, from: number, to: number): string => g.node('Slice', [t, g.int64Initializer(`${name}_starts`, [from]), g.int64Initializer(`${name}_ends`, [to]), g.int64Initializer(`${name}_axes`, [1])]);
  const centres = new Float32Array(2 * N);
  for (let i = 0; i < N; i++) {
    centres[i] = (i % G) + 0.5;
    centres[N + i] = Math.floor(i / G) + 0.5;
  }
  const stride = g.scalar('stride', DETECTOR_STRIDE);
  const xy = g.node('Mul', [g.node('Add', [slice('offset', 0, 2), g.initializer('cell_centres', centres, [1, 2, N])]), stride]);
  const wh = g.node('Mul', [g.node('Exp', [g.node('Clip', [slice('log_size', 2, 4), g.scalar('log_size_min', LOG_SIZE_MIN), g.scalar('log_size_max', LOG_SIZE_MAX)])]), stride]);
  const scores = g.node('Sigmoid', [slice('logits', 4, out)]);
  const head = g.node('Concat', [xy, wh, scores], { axis: 1 });
  g.output(head, 'float32', [1, out, N], DETECTOR_ONNX_OUTPUT);
  return g.toBytes();
}

/** Rebuilds weights from a model's initializers (as {@link exportDetectorOnnx} writes them); null when they are not this architecture. */
export function detectorFromInitializers(init: ReadonlyMap<string, OnnxInitializer>): DetectorWeights | null {
  const w1 = init.get('w1');
  const w2 = init.get('w2');
  const w3 = init.get('w3');
  const w4 = init.get('w4');
  const wh = init.get('wh');
  const wo = init.get('wo');
  const centres = init.get('cell_centres');
  if (!w1 || !w2 || !w3 || !w4 || !wh || !wo || !centres || w1.dims.length !== 4 || wo.dims.length !== 4 || centres.dims.length !== 3) return null;
  const G = Math.round(Math.sqrt(centres.dims[2]!));
  const shape: DetectorShape = { size: G * DETECTOR_STRIDE, widths: [w1.dims[0]!, w2.dims[0]!, w3.dims[0]!, w4.dims[0]!], hidden: wh.dims[0]!, classes: wo.dims[0]! - 4 };
  if (shape.classes < 1) return null;
  const d = dims(shape);
  const arrays: Float32Array[] = [];
  for (const n of PARAMS) {
    const t = init.get(n);
    if (!t || t.dims.join(',') !== d[n].join(',')) return null;
    arrays.push(t.data.slice());
  }
  return detectorFromParams(shape, arrays);
}
