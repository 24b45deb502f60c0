import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as agentMain } from '../../agent/cli/main.js';
import { main as fleetMain } from '../../fleet/edges/cli/main.js';
import { detect, iou, nms, toOriginalPixels, yoloLayoutsFor, type RawDetection } from '../../shared/inference/detect.js';
import { imageSize } from '../../shared/inference/image-size.js';
import { detectionPostprocessing } from '../../shared/schemas/index.js';
import { boxesScoresModel, heatmapModel, yoloEnd2EndModel, yoloV5Model, yoloV8Model } from '../helpers/detect-models.js';
import { io } from '../helpers/fleet-cli.js';
import { tempDir } from '../helpers/packages.js';

type Sq = { x: number; y: number; size: number; rgb: [number, number, number] };
/** A black PNG of `w` x `h` with coloured squares. */
async function scene(w: number, h: number, squares: Sq[]): Promise<Buffer> {
  const data = Buffer.alloc(w * h * 3);
  for (const s of squares) for (let y = s.y; y < s.y + s.size; y++) for (let x = s.x; x < s.x + s.size; x++) data.set(s.rgb, (y * w + x) * 3);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

type Line = { label: string; score: number; detections: Array<{ label: string; score: number; box: number[] }>; counts: Record<string, number> };

let tmp: ReturnType<typeof tempDir>;
let labels: string;
let frame: string;
beforeAll(async () => {
  tmp = tempDir();
  labels = join(tmp.dir, 'labels.txt');
  writeFileSync(labels, 'red\nblue\n');
  frame = join(tmp.dir, 'frame.png');
  // 128x64: letterboxed to 64x64 at scale 0.5 with 16 px of pad above and below.
  writeFileSync(frame, await scene(128, 64, [{ x: 32, y: 16, size: 16, rgb: [255, 0, 0] }, { x: 96, y: 32, size: 16, rgb: [0, 0, 255] }]));
});
afterAll(() => tmp.cleanup());

async function packAndInfer(name: string, model: Uint8Array, flags: string[], images: string[] = [frame]): Promise<{ manifest: Record<string, unknown>; lines: Line[] }> {
  const onnx = join(tmp.dir, `${name}.onnx`);
  writeFileSync(onnx, model);
  const out = join(tmp.dir, name);
  const p = io();
  const code = await fleetMain(['pack', onnx, '--labels', labels, '--out', out, '--task', 'detection', '--json', ...flags], p);
  expect(p.stderr.filter((l) => !l.startsWith('warning: no golden inputs'))).toEqual([]);
  expect(code).toBe(0);
  const run = io();
  expect(await agentMain(['infer', '--model', out, '--allow-unsigned', '--json', ...images], run)).toBe(0);
  return { manifest: JSON.parse(p.stdout[0]!) as Record<string, unknown>, lines: run.stdout.map((l) => JSON.parse(l) as Line) };
}

const near = (got: number[], want: number[], tol = 0.01): void => {
  expect(got).toHaveLength(want.length);
  got.forEach((g, i) => expect(Math.abs(g - want[i]!)).toBeLessThanOrEqual(tol));
};

describe('detection postprocessing (pure)', () => {
  it('NMS against a hand-computed case: class-aware, agnostic, max detections', () => {
    const d = (cls: number, score: number, box: RawDetection['box']): RawDetection => ({ cls, score, box });
    const A = d(0, 0.9, [0, 0, 10, 10]);
    const B = d(0, 0.8, [1, 1, 11, 11]); // IoU with A = 81 / 119 = 0.68: suppressed
    const C = d(1, 0.7, [1, 1, 11, 11]); // same place, other class: kept unless class-agnostic
    const D = d(0, 0.6, [20, 20, 30, 30]); // no overlap: kept
    const E = d(0, 0.5, [5, 0, 15, 10]); // IoU with A = 50 / 150 = 0.33 < 0.45: kept
    expect(iou(A.box, B.box)).toBeCloseTo(81 / 119, 10);
    expect(iou(A.box, E.box)).toBeCloseTo(1 / 3, 10);
    expect(nms([E, D, C, B, A], { iouThreshold: 0.45, maxDetections: 100 })).toEqual([A, C, D, E]);
    expect(nms([E, D, C, B, A], { iouThreshold: 0.45, maxDetections: 100, classAgnostic: true })).toEqual([A, D, E]);
    expect(nms([E, D, C, B, A], { iouThreshold: 0.45, maxDetections: 2 })).toEqual([A, C]);
    // At 0.3, E (0.33) goes too.
    expect(nms([A, E], { iouThreshold: 0.3, maxDetections: 10 })).toEqual([A]);
  });

  it('maps boxes back through a letterbox and clips them to the image', () => {
    const g = { width: 128, height: 64, scaleX: 0.5, scaleY: 0.5, padX: 0, padY: 16 };
    expect(toOriginalPixels([{ cls: 0, score: 1, box: [16, 24, 24, 32] }], g)).toEqual([{ cls: 0, score: 1, box: [32, 16, 48, 32] }]);
    // A box in the pad only has no area once clipped: dropped.
    expect(toOriginalPixels([{ cls: 0, score: 1, box: [0, 0, 8, 8] }], g)).toEqual([]);
    expect(toOriginalPixels([{ cls: 0, score: 1, box: [-4, 12, 8, 20] }], g)).toEqual([{ cls: 0, score: 1, box: [0, 0, 16, 8] }]);
  });

  it('never lets NaN or Infinity from a broken model through', () => {
    const post = detectionPostprocessing.parse({ decoder: { name: 'yolo', layout: 'v5' } });
    // [1, 3, 6]: one class; rows: NaN objectness, Infinity box, a good box.
    const data = Float32Array.from([5, 5, 2, 2, NaN, 1, Infinity, 5, 2, 2, 0.9, 1, 5, 5, 2, 2, 0.9, 1]);
    const g = { width: 10, height: 10, scaleX: 1, scaleY: 1, padX: 0, padY: 0 };
    expect(detect(post, { out: { data, dims: [1, 3, 6] } }, ['out'], { classes: 1, inputWidth: 10, inputHeight: 10 }, g)).toEqual([{ cls: 0, score: expect.closeTo(0.9, 5), box: [4, 4, 6, 6] }]);
  });

  it('reads image sizes from headers as sharp does, and gives up on bytes that say nothing', async () => {
    const base = sharp({ create: { width: 37, height: 23, channels: 4, background: { r: 10, g: 200, b: 30, alpha: 0.5 } } });
    const encoded = [
      await base.clone().png().toBuffer(),
      await base.clone().jpeg().toBuffer(),
      await base.clone().jpeg({ progressive: true }).toBuffer(),
      await base.clone().webp().toBuffer(),
      await base.clone().webp({ lossless: true }).toBuffer(),
      await base.clone().removeAlpha().webp().toBuffer(),
      await sharp({ create: { width: 4000, height: 3, channels: 3, background: 'red' } }).jpeg().toBuffer(),
    ];
    for (const bytes of encoded) {
      const m = await sharp(bytes).metadata();
      expect(imageSize(bytes)).toEqual({ width: m.width, height: m.height });
    }
    for (const junk of [Buffer.alloc(0), Buffer.from([0xff, 0xd8, 0xff]), encoded[1]!.subarray(0, 40), Buffer.from('RIFF0000WEBPVP8 nonsense-here-and-more'), Buffer.alloc(64, 0xff)]) {
      expect(() => imageSize(junk)).not.toThrow();
    }
    expect(imageSize(encoded[1]!.subarray(0, 40))).toBeNull();
  });

  it('reads the YOLO layout from the head shape where it is unambiguous', () => {
    expect(yoloLayoutsFor([1, 84, 8400], 80)).toEqual(['v8']);
    expect(yoloLayoutsFor([1, 84, 'anchors'], 80)).toEqual(['v8']);
    expect(yoloLayoutsFor([1, 25200, 85], 80)).toEqual(['v5']);
    expect(yoloLayoutsFor([1, 300, 6], 80)).toEqual(['end2end']);
    expect(yoloLayoutsFor([1, 'n', 6], 1)).toEqual(['v5', 'end2end']);
    expect(yoloLayoutsFor([1, 1000], 80)).toEqual([]);
  });
});

describe('edgeloop pack --task detection + edgeloop-agent infer (real ONNX models)', () => {
  const red = [32, 16, 48, 32];
  const blue = [96, 32, 112, 48];

  it('yolo v8 [1, 4+C, N]: layout read from the shape, letterbox, boxes in original pixels, counts', async () => {
    const { manifest, lines } = await packAndInfer('v8', yoloV8Model(), ['--decoder', 'yolo']);
    expect(manifest).toMatchObject({ task: 'detection', preprocessing: { fit: 'contain', width: 64, height: 64 }, postprocessing: { kind: 'detection', decoder: { name: 'yolo', layout: 'v8' }, letterbox: { pad_value: 114 } } });
    const [l] = lines;
    expect(l!.counts).toEqual({ red: 1, blue: 1 });
    const byLabel = Object.fromEntries(l!.detections.map((d) => [d.label, d]));
    near(byLabel.red!.box, red);
    near(byLabel.blue!.box, blue);
    expect(byLabel.red!.score).toBeGreaterThan(0.8);
    // The grey pad (114 = 0.45) scores above 0.25 too, but its boxes lie outside the image: clipped away.
    expect(l!.detections).toHaveLength(2);
    expect(l).toMatchObject({ label: l!.detections[0]!.label, score: l!.detections[0]!.score });
  });

  it('yolo v5 [1, N, 5+C] with objectness, and end-to-end [1, K, 6]', async () => {
    const v5 = await packAndInfer('v5', yoloV5Model(), ['--decoder', 'yolo', '--pad-value', '0']);
    expect(v5.manifest).toMatchObject({ postprocessing: { decoder: { layout: 'v5' }, letterbox: { pad_value: 0 } } });
    expect(v5.lines[0]!.counts).toEqual({ red: 1, blue: 1 });
    near(v5.lines[0]!.detections.find((d) => d.label === 'red')!.box, red);
    const e2e = await packAndInfer('e2e', yoloEnd2EndModel(), ['--decoder', 'yolo', '--pad-value', '0']);
    expect(e2e.manifest).toMatchObject({ postprocessing: { decoder: { layout: 'end2end' } } });
    expect(e2e.lines[0]!.counts).toEqual({ red: 1, blue: 1 });
    near(e2e.lines[0]!.detections.find((d) => d.label === 'blue')!.box, blue);
  });

  it('boxes-scores: normalised yxyx boxes, classes counted from 1, outputs found by name', async () => {
    const { manifest, lines } = await packAndInfer('bs', boxesScoresModel(), ['--decoder', 'boxes-scores', '--box-format', 'yxyx', '--normalized', '--class-offset=-1', '--fit', 'contain', '--pad-value', '0']);
    expect(manifest).toMatchObject({ postprocessing: { decoder: { name: 'boxes-scores', boxes: 'detection_boxes', scores: 'detection_scores', classes: 'detection_classes', box_format: 'yxyx', normalized: true, class_offset: -1 } } });
    expect(lines[0]!.counts).toEqual({ red: 1, blue: 1 });
    near(lines[0]!.detections.find((d) => d.label === 'red')!.box, red);
    near(lines[0]!.detections.find((d) => d.label === 'blue')!.box, blue);
  });

  it('heatmap: one box per connected component, stretched input mapped back, optional expansion', async () => {
    const img = join(tmp.dir, 'white.png');
    // 128x64 stretched to 64x64: x halves, y stays.
    writeFileSync(img, await scene(128, 64, [{ x: 16, y: 8, size: 16, rgb: [255, 255, 255] }, { x: 80, y: 40, size: 16, rgb: [255, 255, 255] }]));
    const one = io();
    const { lines } = await packAndInfer('heat', heatmapModel(), ['--decoder', 'heatmap', '--threshold', '0.5'], [img]);
    expect(one.stderr).toEqual([]);
    const boxes = lines[0]!.detections.map((d) => d.box).sort((a, b) => a[0]! - b[0]!);
    expect(lines[0]!.counts).toEqual({ red: 2 });
    near(boxes[0]!, [16, 8, 32, 24], 2);
    near(boxes[1]!, [80, 40, 96, 56], 2);
    const grown = await packAndInfer('heat2', heatmapModel(), ['--decoder', 'heatmap', '--expand', '0.25'], [img]);
    const g0 = grown.lines[0]!.detections.map((d) => d.box).sort((a, b) => a[0]! - b[0]!)[0]!;
    expect(g0[2]! - g0[0]!).toBeGreaterThan(boxes[0]![2]! - boxes[0]![0]! + 4);
    // DB unclip, by hand: the first square is 8x16 map cells (x halved), area 128, perimeter 48:
    // 128 x 1.5 / 48 = 4 cells on every side, [4, 4, 20, 28] in the map, x doubled back.
    const unclipped = await packAndInfer('heat3', heatmapModel(), ['--decoder', 'heatmap', '--unclip', '1.5'], [img]);
    expect(unclipped.manifest).toMatchObject({ postprocessing: { decoder: { name: 'heatmap', unclip: 1.5, expand: 0 } } });
    near(unclipped.lines[0]!.detections.map((d) => d.box).sort((a, b) => a[0]! - b[0]!)[0]!, [8, 4, 40, 28], 1);
  });

  it('refuses a decoder that does not fit the outputs, naming what it found', async () => {
    const onnx = join(tmp.dir, 'v8-wrong.onnx');
    writeFileSync(onnx, yoloV8Model());
    const three = join(tmp.dir, 'three.txt');
    writeFileSync(three, 'a\nb\nc\n');
    const cases: Array<[string[], RegExp]> = [
      [['--labels', three, '--decoder', 'yolo'], /^FLEET_PACK_DECODER_MISMATCH: yolo: output output0 \[1,6,64\] is no YOLO head for 3 labels .*; the model's outputs: output0 \[1,6,64\]/],
      [['--labels', labels, '--decoder', 'yolo', '--yolo-layout', 'v5'], /^FLEET_PACK_DECODER_MISMATCH: yolo: --yolo-layout v5 does not fit output output0 \[1,6,64\] with 2 labels \(it fits v8\)/],
      [['--labels', labels, '--decoder', 'boxes-scores'], /^FLEET_PACK_DECODER_MISMATCH: boxes-scores: no boxes output/],
      [['--labels', labels, '--decoder', 'yolo', '--box-format', 'yxyx'], /^FLEET_PACK_FLAG_UNUSED: --box-format applies to the boxes-scores decoder, not yolo/],
      [['--labels', labels, '--decoder', 'yolo', '--fit', 'fill', '--pad-value', '3'], /^FLEET_PACK_FLAG_UNUSED: --pad-value pads a letterbox/],
      [['--labels', labels, '--decoder', 'heatmap', '--output', 'mask'], /^FLEET_PACK_DECODER_MISMATCH: heatmap: the model has no output mask; the model's outputs: output0 \[1,6,64\]/],
    ];
    for (const [args, want] of cases) {
      const o = io();
      expect(await fleetMain(['pack', onnx, '--out', join(tmp.dir, 'refused'), '--task', 'detection', ...args], o), args.join(' ')).toBe(1);
      expect(o.stderr[0]).toMatch(want);
    }
    // One class: a v5 head [1, N, 6] is also an end-to-end head; the flag decides.
    const one = join(tmp.dir, 'one.txt');
    writeFileSync(one, 'thing\n');
    const e2e = join(tmp.dir, 'e2e-1.onnx');
    writeFileSync(e2e, yoloEnd2EndModel());
    const ambiguous = io();
    expect(await fleetMain(['pack', e2e, '--labels', one, '--out', join(tmp.dir, 'amb'), '--task', 'detection', '--decoder', 'yolo'], ambiguous)).toBe(1);
    expect(ambiguous.stderr[0]).toMatch(/^FLEET_PACK_DECODER_MISMATCH: yolo: output output0 \[1,4,6\] fits v5 and end2end; say which with --yolo-layout/);
    expect(await fleetMain(['pack', e2e, '--labels', one, '--out', join(tmp.dir, 'amb'), '--task', 'detection', '--decoder', 'yolo', '--yolo-layout', 'end2end'], io())).toBe(0);
    const human = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'h'), '--task', 'detection', '--decoder', 'yolo'], human)).toBe(0);
    expect(human.stdout[2]).toBe('  detection: yolo v8, fit contain (pad 114), NMS iou 0.45 score 0.25 max 100');
    const usage = io();
    expect(await fleetMain(['pack', onnx, '--labels', labels, '--out', join(tmp.dir, 'u'), '--decoder', 'yolo'], usage)).toBe(2);
    expect(usage.stderr[0]).toMatch(/--decoder and the detection flags need --task detection/);
  });
});
