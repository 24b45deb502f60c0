/**
 * Detection models built with the ONNX builder whose outputs are computed from the input, one
 * per decoder layout, for the detection tests and the `detect` benchmark.
 *
 * The input is `[1, 3, 64, 64]` float32 (pixels scaled to 0..1). The image is cut into an 8x8
 * grid of 8-pixel cells (64 anchors); anchor n is cell (n % 8, n / 8) with a fixed 8x8 box at
 * the cell's centre. Its class scores are the cell's mean red (`red`) and mean blue (`blue`), so
 * a pure red square covering a cell is a `red` box of score ~1 exactly there, and a dark cell
 * scores 0.
 */
import { GraphBuilder } from '../../shared/onnx/builder.js';

export const GRID = 8;
export const CELL = 8;
export const SIZE = GRID * CELL;
const N = GRID * GRID;

function anchors(): { cxcywh: Float32Array; xyxy: Float32Array; yxyxNorm: Float32Array } {
  const cxcywh = new Float32Array(4 * N);
  const xyxy = new Float32Array(N * 4);
  const yxyxNorm = new Float32Array(N * 4);
  for (let n = 0; n < N; n++) {
    const x = (n % GRID) * CELL;
    const y = Math.floor(n / GRID) * CELL;
    // v8 layout: [4, N] (cx row, cy row, w row, h row).
    cxcywh[n] = x + CELL / 2;
    cxcywh[N + n] = y + CELL / 2;
    cxcywh[2 * N + n] = CELL;
    cxcywh[3 * N + n] = CELL;
    xyxy.set([x, y, x + CELL, y + CELL], n * 4);
    yxyxNorm.set([y / SIZE, x / SIZE, (y + CELL) / SIZE, (x + CELL) / SIZE], n * 4);
  }
  return { cxcywh, xyxy, yxyxNorm };
}

/** Per-anchor colour scores `[1, N, 2]` (red, blue) from the input. */
function colourRows(g: GraphBuilder): string {
  const x = g.input('images', 'float32', [1, 3, SIZE, SIZE]);
  const pooled = g.node('Reshape', [g.node('AveragePool', [x], { kernel_shape: [CELL, CELL], strides: [CELL, CELL] }), g.int64Initializer('pooled_shape', [1, 3, N])]);
  const select = Float32Array.from([1, 0, 0, 0, 0, 1]); // [3, 2]: red -> class 0, blue -> class 1
  return g.node('MatMul', [g.node('Transpose', [pooled], { perm: [0, 2, 1] }), g.initializer('select', select, [3, 2])]);
}

/** Ultralytics v8/v11 head `[1, 4+C, N]` (C = 2). */
export function yoloV8Model(): Uint8Array {
  const g = new GraphBuilder('grid_v8');
  const rows = colourRows(g);
  const cls = g.node('Transpose', [rows], { perm: [0, 2, 1] });
  const boxes = g.initializer('anchors', anchors().cxcywh, [1, 4, N]);
  g.output(g.node('Concat', [boxes, cls], { axis: 1 }), 'float32', [1, 6, N], 'output0');
  return g.toBytes();
}

/** Ultralytics v5 head `[1, N, 5+C]`: objectness = best colour, class scores = colours / objectness. */
export function yoloV5Model(): Uint8Array {
  const g = new GraphBuilder('grid_v5');
  const rows = colourRows(g);
  const obj = g.node('ReduceMax', [rows], { axes: [2], keepdims: 1 });
  const cls = g.node('Div', [rows, g.node('Max', [obj, g.scalar('eps', 1e-6)])]);
  const boxes = g.node('Transpose', [g.initializer('anchors', anchors().cxcywh, [1, 4, N])], { perm: [0, 2, 1] });
  g.output(g.node('Concat', [boxes, obj, cls], { axis: 2 }), 'float32', [1, N, 7], 'output0');
  return g.toBytes();
}

/** Class index per anchor `[N, 1]` float, and best score per anchor `[N]`. */
function bestPerAnchor(g: GraphBuilder, rows: string): { score: string; cls: string } {
  const score = g.node('Reshape', [g.node('ReduceMax', [rows], { axes: [2], keepdims: 1 }), g.int64Initializer('flat', [N])]);
  const cls = g.node('Reshape', [g.node('Cast', [g.node('ArgMax', [rows], { axis: 2, keepdims: 1 })], { to: 1 }), g.int64Initializer('col', [N, 1])]);
  return { score, cls };
}

/** NMS-free end-to-end export `[1, K, 6]` (x1, y1, x2, y2, score, class): the K best anchors. */
export function yoloEnd2EndModel(k = 4): Uint8Array {
  const g = new GraphBuilder('grid_e2e');
  const rows = colourRows(g);
  const { score, cls } = bestPerAnchor(g, rows);
  const [vals, idx] = g.nodeOutputs('TopK', [score, g.int64Initializer('k', [k])], { axis: 0 }, { outputs: 2 }) as [string, string];
  const boxes = g.node('Gather', [g.initializer('anchors_xyxy', anchors().xyxy, [N, 4]), idx], { axis: 0 });
  const classes = g.node('Gather', [cls, idx], { axis: 0 });
  const scores = g.node('Reshape', [vals, g.int64Initializer('kcol', [k, 1])]);
  const rows6 = g.node('Concat', [boxes, scores, classes], { axis: 1 });
  g.output(g.node('Reshape', [rows6, g.int64Initializer('out_shape', [1, k, 6])]), 'float32', [1, k, 6], 'output0');
  return g.toBytes();
}

/** TF object-detection style: `detection_boxes [1, N, 4]` normalised yxyx, `detection_scores [1, N]`, `detection_classes [1, N]` counted from 1. */
export function boxesScoresModel(): Uint8Array {
  const g = new GraphBuilder('grid_boxes_scores');
  const rows = colourRows(g);
  const { score, cls } = bestPerAnchor(g, rows);
  g.output(g.node('Identity', [g.initializer('anchors_yxyx', anchors().yxyxNorm, [1, N, 4])]), 'float32', [1, N, 4], 'detection_boxes');
  g.output(g.node('Reshape', [score, g.int64Initializer('row', [1, N])]), 'float32', [1, N], 'detection_scores');
  g.output(g.node('Add', [g.node('Reshape', [cls, g.int64Initializer('row2', [1, N])]), g.scalar('one', 1)]), 'float32', [1, N], 'detection_classes');
  return g.toBytes();
}

/** A per-pixel map `[1, 1, 64, 64]`: the pixel's mean over channels (white is 1). */
export function heatmapModel(): Uint8Array {
  const g = new GraphBuilder('heat');
  const x = g.input('images', 'float32', [1, 3, SIZE, SIZE]);
  g.output(g.node('ReduceMean', [x], { axes: [1], keepdims: 1 }), 'float32', [1, 1, SIZE, SIZE], 'heat');
  return g.toBytes();
}

/**
 * A YOLOv8n-sized head for benchmarks: input `[1, 3, 640, 640]`, output `[1, 84, 8400]`
 * (80 classes), computed from the input (a strided pool then a fixed projection), so decode
 * and NMS see realistic values rather than zeros.
 */
export function yoloV8nSizedModel(): Uint8Array {
  const g = new GraphBuilder('v8n_sized');
  const x = g.input('images', 'float32', [1, 3, 640, 640]);
  // 640/8 = 80 -> 6400 anchors, plus 40x40 + 20x20 = 2000: three strides as Ultralytics has.
  const heads = [8, 16, 32].map((s, i) => g.node('Reshape', [g.node('AveragePool', [x], { kernel_shape: [s, s], strides: [s, s] }), g.int64Initializer(`shape${i}`, [1, 3, (640 / s) ** 2])]));
  const pooled = g.node('Concat', heads, { axis: 2 }); // [1, 3, 8400]
  const w = new Float32Array(84 * 3);
  for (let r = 0; r < 84; r++) for (let c = 0; c < 3; c++) w[r * 3 + c] = r < 4 ? 40 + r * 10 : (0.2 * ((r * 7 + c * 13) % 11)) / 11;
  const out = g.node('MatMul', [g.initializer('proj', w, [84, 3]), pooled]); // [84,3] x [1,3,8400] -> [1,84,8400]
  g.output(out, 'float32', [1, 84, 8400], 'output0');
  return g.toBytes();
}
