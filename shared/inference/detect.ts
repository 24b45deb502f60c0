/**
 * Detection postprocessing, pure: a model's output tensors -> candidate boxes (one decoder per
 * export layout) -> class-aware NMS -> boxes in the original image's pixels. The agent runs it
 * in the inference worker, next to `session.run`, so a 672,000-value YOLOv8 head never costs
 * the main thread a frame.
 */
import type { DetectionPostprocessing } from '../schemas/index.js';

/** x1, y1, x2, y2. */
export type BoxXyxy = [number, number, number, number];

/** One box: class index into `labels`, score, corners. */
export interface RawDetection {
  cls: number;
  score: number;
  box: BoxXyxy;
}

/** An output tensor as the runtime hands it over. int64 outputs (torchvision labels) arrive as BigInt64Array. */
export interface OutputTensor {
  data: ArrayLike<number> | BigInt64Array;
  dims: readonly number[];
}

/**
 * How the original image became the model input: input = original * scale + pad, per axis.
 * `fill` stretches (scaleX != scaleY, no pad), `contain` letterboxes (one scale, pad), `cover`
 * crops (one scale, negative pad).
 */
export interface Geometry {
  /** Original image size in pixels. */
  width: number;
  height: number;
  scaleX: number;
  scaleY: number;
  padX: number;
  padY: number;
}

export interface DecodeContext {
  classes: number;
  /** Model input size in pixels (boxes of normalised decoders are scaled to it). */
  inputWidth: number;
  inputHeight: number;
}

/** What a decoder says a model output must look like, checked at pack time (and again at run time). */
export type YoloLayout = 'v5' | 'v8' | 'end2end';

const num = (d: ArrayLike<number>, i: number): number => d[i] as number;

/** int64 outputs (torchvision labels) as numbers once, so the per-value loops index a plain array. */
const numeric = (t: OutputTensor): OutputTensor & { data: ArrayLike<number> } => (t.data instanceof BigInt64Array ? { data: Float64Array.from(t.data, Number), dims: t.dims } : (t as OutputTensor & { data: ArrayLike<number> }));

/**
 * The YOLO layouts a head's declared shape fits, given the label count: v8/v11 `[1, 4+C, N]`,
 * v5 `[1, N, 5+C]`, end-to-end `[1, K, 6]`. A symbolic dim fits only the anchor count. More
 * than one answer is ambiguous (a one-class v5 head is also `[1, N, 6]`): pack then asks for
 * `--yolo-layout`.
 */
export function yoloLayoutsFor(shape: ReadonlyArray<number | string>, classes: number): YoloLayout[] {
  if (shape.length !== 3 || (shape[0] !== 1 && typeof shape[0] !== 'string')) return [];
  const [, a, b] = shape;
  const out: YoloLayout[] = [];
  if (a === 4 + classes && (typeof b === 'string' || (typeof b === 'number' && b > 0))) out.push('v8');
  if (b === 5 + classes && (typeof a === 'string' || (typeof a === 'number' && a > 0))) out.push('v5');
  if (b === 6 && (typeof a === 'string' || (typeof a === 'number' && a > 0))) out.push('end2end');
  return out;
}

/** The outputs a decoder reads, in the order it reads them. */
export function decoderOutputs(post: DetectionPostprocessing, outputs: readonly string[]): string[] {
  const d = post.decoder;
  if (d.name === 'boxes-scores') return [d.boxes, d.scores, ...(d.classes ? [d.classes] : [])];
  return [d.output ?? outputs[0]!];
}

function need(t: OutputTensor | undefined, name: string): OutputTensor & { data: ArrayLike<number> } {
  if (!t) throw new Error(`the model produced no output ${name}`);
  return numeric(t);
}

const cxcywh = (cx: number, cy: number, w: number, h: number): BoxXyxy => [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2];

function yolo(layout: YoloLayout, t: OutputTensor & { data: ArrayLike<number> }, ctx: DecodeContext, threshold: number): RawDetection[] {
  const { data, dims } = t;
  const C = ctx.classes;
  const out: RawDetection[] = [];
  if (layout === 'v8') {
    const n = dims.at(-1)!;
    if (dims.length !== 3 || dims[1] !== 4 + C) throw new Error(`yolo v8 head should be [1, ${4 + C}, N], got [${dims.join(', ')}]`);
    // Class-major: each class row is read front to back (a [84, 8400] head read anchor by
    // anchor would stride 33 KB per value).
    const best = new Float32Array(n).fill(-Infinity);
    const bestCls = new Uint16Array(n);
    for (let c = 0; c < C; c++) {
      const base = (4 + c) * n;
      for (let i = 0; i < n; i++) {
        const v = data[base + i] as number;
        if (v > best[i]!) {
          best[i] = v;
          bestCls[i] = c;
        }
      }
    }
    for (let i = 0; i < n; i++) {
      const score = best[i]!;
      if (!(score >= threshold)) continue;
      out.push({ cls: bestCls[i]!, score, box: cxcywh(num(data, i), num(data, n + i), num(data, 2 * n + i), num(data, 3 * n + i)) });
    }
  } else if (layout === 'v5') {
    const row = 5 + C;
    if (dims.length !== 3 || dims[2] !== row) throw new Error(`yolo v5 head should be [1, N, ${row}], got [${dims.join(', ')}]`);
    const n = dims[1]!;
    for (let i = 0; i < n; i++) {
      const r = i * row;
      const obj = num(data, r + 4);
      if (!(obj >= threshold)) continue;
      let best = -Infinity;
      let cls = 0;
      for (let c = 0; c < C; c++) {
        const v = num(data, r + 5 + c);
        if (v > best) {
          best = v;
          cls = c;
        }
      }
      const score = obj * best;
      if (!(score >= threshold)) continue;
      out.push({ cls, score, box: cxcywh(num(data, r), num(data, r + 1), num(data, r + 2), num(data, r + 3)) });
    }
  } else {
    if (dims.length !== 3 || dims[2] !== 6) throw new Error(`end-to-end head should be [1, K, 6], got [${dims.join(', ')}]`);
    for (let i = 0; i < dims[1]!; i++) {
      const r = i * 6;
      const score = num(data, r + 4);
      if (!(score >= threshold)) continue;
      out.push({ cls: Math.round(num(data, r + 5)), score, box: [num(data, r), num(data, r + 1), num(data, r + 2), num(data, r + 3)] });
    }
  }
  return out;
}

function boxesScores(d: Extract<DetectionPostprocessing['decoder'], { name: 'boxes-scores' }>, outs: Record<string, OutputTensor>, ctx: DecodeContext, threshold: number): RawDetection[] {
  const boxes = need(outs[d.boxes], d.boxes);
  const scores = need(outs[d.scores], d.scores);
  const classes = d.classes ? need(outs[d.classes], d.classes) : null;
  const n = boxes.data.length / 4;
  if (!Number.isInteger(n)) throw new Error(`boxes output ${d.boxes} has ${boxes.data.length} values, not 4 per box`);
  const perClass = scores.data.length === n * ctx.classes && !classes && ctx.classes > 1;
  if (!perClass && scores.data.length !== n) throw new Error(`scores output ${d.scores} has ${scores.data.length} values for ${n} boxes`);
  if (classes && classes.data.length !== n) throw new Error(`classes output ${d.classes} has ${classes.data.length} values for ${n} boxes`);
  const sx = d.normalized ? ctx.inputWidth : 1;
  const sy = d.normalized ? ctx.inputHeight : 1;
  const out: RawDetection[] = [];
  for (let i = 0; i < n; i++) {
    let score: number;
    let cls = 0;
    if (perClass) {
      score = -Infinity;
      for (let c = 0; c < ctx.classes; c++) {
        const v = num(scores.data, i * ctx.classes + c);
        if (v > score) {
          score = v;
          cls = c;
        }
      }
    } else {
      score = num(scores.data, i);
      if (classes) cls = Math.round(num(classes.data, i)) + d.class_offset;
    }
    if (!(score >= threshold) || cls < 0 || cls >= ctx.classes) continue;
    const [a, b, c, e] = [num(boxes.data, i * 4), num(boxes.data, i * 4 + 1), num(boxes.data, i * 4 + 2), num(boxes.data, i * 4 + 3)];
    const box: BoxXyxy = d.box_format === 'yxyx' ? [b * sx, a * sy, e * sx, c * sy] : [a * sx, b * sy, c * sx, e * sy];
    out.push({ cls, score, box });
  }
  return out;
}

/** Threshold, 8-connected components, one box per component (score: the component's peak). */
function heatmap(d: Extract<DetectionPostprocessing['decoder'], { name: 'heatmap' }>, t: OutputTensor & { data: ArrayLike<number> }, ctx: DecodeContext, scoreThreshold: number): RawDetection[] {
  const dims = t.dims;
  if (dims.length < 2) throw new Error(`heatmap output should be [1, C, H, W], [1, H, W] or [H, W], got [${dims.join(', ')}]`);
  const H = dims.at(-2)!;
  const W = dims.at(-1)!;
  const planes = t.data.length / (H * W);
  if (!Number.isInteger(planes) || (planes !== 1 && planes !== ctx.classes)) throw new Error(`heatmap output [${dims.join(', ')}] has ${planes} planes for ${ctx.classes} labels`);
  const sx = ctx.inputWidth / W;
  const sy = ctx.inputHeight / H;
  const out: RawDetection[] = [];
  const seen = new Uint8Array(H * W);
  const stack: number[] = [];
  for (let p = 0; p < planes; p++) {
    seen.fill(0);
    const base = p * H * W;
    for (let start = 0; start < H * W; start++) {
      if (seen[start] || !(num(t.data, base + start) >= d.threshold)) continue;
      let [x1, y1, x2, y2, peak, area] = [W, H, -1, -1, 0, 0];
      seen[start] = 1;
      stack.push(start);
      while (stack.length) {
        const i = stack.pop()!;
        const x = i % W;
        const y = (i - x) / W;
        area++;
        peak = Math.max(peak, num(t.data, base + i));
        x1 = Math.min(x1, x);
        y1 = Math.min(y1, y);
        x2 = Math.max(x2, x);
        y2 = Math.max(y2, y);
        for (let dy = -1; dy <= 1; dy++) {
          for (let dx = -1; dx <= 1; dx++) {
            const nx = x + dx;
            const ny = y + dy;
            if (nx < 0 || ny < 0 || nx >= W || ny >= H) continue;
            const j = ny * W + nx;
            if (seen[j] || !(num(t.data, base + j) >= d.threshold)) continue;
            seen[j] = 1;
            stack.push(j);
          }
        }
      }
      if (area < d.min_area || peak < scoreThreshold) continue;
      const w = x2 + 1 - x1;
      const h = y2 + 1 - y1;
      const grow = d.unclip ? (area * d.unclip) / (2 * (w + h)) : 0;
      const gx = grow + w * d.expand;
      const gy = grow + h * d.expand;
      out.push({ cls: p, score: peak, box: [(x1 - gx) * sx, (y1 - gy) * sy, (x2 + 1 + gx) * sx, (y2 + 1 + gy) * sy] });
    }
  }
  return out;
}

/** Candidate boxes in model-input pixels, every one at or above the score threshold. */
function decodeDetections(post: DetectionPostprocessing, outputs: Record<string, OutputTensor>, outputNames: readonly string[], ctx: DecodeContext): RawDetection[] {
  const d = post.decoder;
  const thr = post.nms.score_threshold;
  if (d.name === 'boxes-scores') return boxesScores(d, outputs, ctx, thr);
  const name = d.output ?? outputNames[0]!;
  const t = need(outputs[name], name);
  return d.name === 'yolo' ? yolo(d.layout, t, ctx, thr) : heatmap(d, t, ctx, thr);
}

/** Intersection over union of two xyxy boxes (0 when either has no area). */
export function iou(a: Readonly<BoxXyxy>, b: Readonly<BoxXyxy>): number {
  const iw = Math.min(a[2], b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[3], b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  const inter = iw * ih;
  const union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter;
  return union > 0 ? inter / union : 0;
}

/** Candidates NMS looks at, best first (Ultralytics' `max_nms`): a flood of low boxes cannot make it quadratic. */
const MAX_NMS_CANDIDATES = 30_000;

/**
 * Greedy non-maximum suppression, best score first: a box is dropped when it overlaps a kept box
 * of the same class (any class when `classAgnostic`) by more than `iouThreshold`. Ties keep the
 * earlier candidate. At most `maxDetections` boxes.
 */
export function nms(cands: readonly RawDetection[], o: { iouThreshold: number; maxDetections: number; classAgnostic?: boolean }): RawDetection[] {
  const order = cands
    .map((c, i) => ({ c, i }))
    .sort((a, b) => b.c.score - a.c.score || a.i - b.i)
    .slice(0, MAX_NMS_CANDIDATES);
  const kept: RawDetection[] = [];
  for (const { c } of order) {
    if (kept.length >= o.maxDetections) break;
    if (kept.some((k) => (o.classAgnostic || k.cls === c.cls) && iou(k.box, c.box) > o.iouThreshold)) continue;
    kept.push(c);
  }
  return kept;
}

/** Boxes from model-input pixels back to the original image's, clipped to it; boxes left with no area are dropped. */
export function toOriginalPixels(dets: readonly RawDetection[], g: Geometry): RawDetection[] {
  const round = (v: number): number => Math.round(v * 100) / 100;
  const out: RawDetection[] = [];
  for (const d of dets) {
    const x1 = Math.min(g.width, Math.max(0, (d.box[0] - g.padX) / g.scaleX));
    const y1 = Math.min(g.height, Math.max(0, (d.box[1] - g.padY) / g.scaleY));
    const x2 = Math.min(g.width, Math.max(0, (d.box[2] - g.padX) / g.scaleX));
    const y2 = Math.min(g.height, Math.max(0, (d.box[3] - g.padY) / g.scaleY));
    if (x2 > x1 && y2 > y1) out.push({ cls: d.cls, score: d.score, box: [round(x1), round(y1), round(x2), round(y2)] });
  }
  return out;
}

/** The whole postprocessing: decode, NMS (not for end-to-end heads: their graph did it), map back. */
export function detect(post: DetectionPostprocessing, outputs: Record<string, OutputTensor>, outputNames: readonly string[], ctx: DecodeContext, g: Geometry): RawDetection[] {
  // A hostile or broken model's NaN/Infinity never reaches a result (JSON would turn it into null).
  const cands = decodeDetections(post, outputs, outputNames, ctx).filter((c) => Number.isFinite(c.score) && c.box.every(Number.isFinite));
  const endToEnd = post.decoder.name === 'yolo' && post.decoder.layout === 'end2end';
  const kept = endToEnd
    ? [...cands].sort((a, b) => b.score - a.score).slice(0, post.nms.max_detections)
    : nms(cands, { iouThreshold: post.nms.iou_threshold, maxDetections: post.nms.max_detections, classAgnostic: post.nms.class_agnostic });
  return toOriginalPixels(kept, g);
}
