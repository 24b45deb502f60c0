/**
 * COCO-style average precision for object detection, pure.
 *
 * Per class and IoU threshold: the class's detections over every image, highest score first
 * (at most `maxDetections` per image, COCO's maxDets), each matched to the unmatched ground
 * truth box of its class in its image with the highest IoU at or above the threshold (a
 * true positive) or to none (a false positive). Precision is made monotone from the right
 * (the precision envelope) and read at the 101 recall points 0, 0.01, ..., 1 (COCO's
 * interpolation); AP is their mean. A class with no ground truth box has no AP and is left
 * out of the means (COCO's -1). mAP@0.5 is the mean AP at IoU 0.5; mAP@0.5:0.95 the mean
 * over the ten thresholds 0.5, 0.55, ..., 0.95. Crowd regions and area ranges are not
 * modelled: every box counts.
 */
import { iou } from '../../shared/inference/detect.js';

/** A box in pixels: x1, y1, x2, y2 with x1 <= x2 and y1 <= y2. */
export type Box = readonly [number, number, number, number];

export interface GroundTruthBox {
  label: string;
  box: Box;
}

export interface PredictedBox extends GroundTruthBox {
  score: number;
}

/** One evaluated image: what is there and what the model said. */
export interface DetectionExample {
  truth: readonly GroundTruthBox[];
  predicted: readonly PredictedBox[];
}

export interface ClassAp {
  /** Ground-truth boxes of the class over all images. */
  truths: number;
  /** Predictions of the class that were ranked (after the per-image cap). */
  predictions: number;
  /** AP at IoU 0.5; null when the class has no ground truth. */
  ap50: number | null;
  /** Mean AP over IoU 0.5:0.95; null when the class has no ground truth. */
  ap50_95: number | null;
}

export interface DetectionMetrics {
  images: number;
  /** Mean of the classes' AP at IoU 0.5 (classes with ground truth); 0 when none has any. */
  map50: number;
  map50_95: number;
  per_class: Record<string, ClassAp>;
}

export interface MapOptions {
  /** Most detections per image that count, highest scores first. Default 100 (COCO). */
  maxDetections?: number;
}

/** The ten COCO IoU thresholds 0.5, 0.55, ..., 0.95. */
const IOU_THRESHOLDS: readonly number[] = Array.from({ length: 10 }, (_, i) => 0.5 + 0.05 * i);

const RECALL_POINTS = 101;

interface Ranked {
  image: number;
  score: number;
  box: Box;
}

/** AP of one class at one IoU threshold. */
function averagePrecision(ranked: readonly Ranked[], truths: ReadonlyArray<readonly Box[]>, truthCount: number, threshold: number): number {
  const matched = truths.map((t) => new Array<boolean>(t.length).fill(false));
  const precision: number[] = [];
  const recall: number[] = [];
  let tp = 0;
  for (let i = 0; i < ranked.length; i++) {
    const d = ranked[i] as Ranked;
    const gts = truths[d.image] ?? [];
    const used = matched[d.image] ?? [];
    let best = -1;
    let bestIou = threshold;
    for (let g = 0; g < gts.length; g++) {
      if (used[g]) continue;
      const o = iou(d.box, gts[g] as Box);
      if (o >= bestIou) {
        bestIou = o;
        best = g;
      }
    }
    if (best >= 0) {
      used[best] = true;
      tp++;
    }
    precision.push(tp / (i + 1));
    recall.push(tp / truthCount);
  }
  // Precision envelope: the best precision at this recall or any higher one.
  for (let i = precision.length - 2; i >= 0; i--) precision[i] = Math.max(precision[i] as number, precision[i + 1] as number);
  let sum = 0;
  let k = 0;
  for (let r = 0; r < RECALL_POINTS; r++) {
    const at = r / (RECALL_POINTS - 1);
    while (k < recall.length && (recall[k] as number) < at - 1e-12) k++;
    if (k < precision.length) sum += precision[k] as number;
  }
  return sum / RECALL_POINTS;
}

/** COCO-style mAP@0.5, mAP@0.5:0.95 and per-class AP over a set of images. */
export function detectionMetrics(examples: readonly DetectionExample[], opts: MapOptions = {}): DetectionMetrics {
  const maxDetections = opts.maxDetections ?? 100;
  if (!Number.isInteger(maxDetections) || maxDetections < 1) throw new RangeError(`maxDetections must be a positive integer, got ${maxDetections}`);
  const labels = new Set<string>();
  for (const ex of examples) {
    for (const t of ex.truth) labels.add(t.label);
    for (const p of ex.predicted) labels.add(p.label);
  }
  // The per-image cap applies over all classes, as COCO's maxDets does.
  const kept = examples.map((ex) => [...ex.predicted].sort((a, b) => b.score - a.score).slice(0, maxDetections));
  const perClass: Record<string, ClassAp> = {};
  const ap50s: number[] = [];
  const apAll: number[] = [];
  for (const label of [...labels].sort()) {
    const truths = examples.map((ex) => ex.truth.filter((t) => t.label === label).map((t) => t.box));
    const truthCount = truths.reduce((n, t) => n + t.length, 0);
    const ranked: Ranked[] = [];
    kept.forEach((preds, image) => {
      for (const p of preds) if (p.label === label) ranked.push({ image, score: p.score, box: p.box });
    });
    // Stable: equal scores keep image order, so the result does not depend on the sort engine.
    ranked.sort((a, b) => b.score - a.score);
    if (truthCount === 0) {
      perClass[label] = { truths: 0, predictions: ranked.length, ap50: null, ap50_95: null };
      continue;
    }
    const aps = IOU_THRESHOLDS.map((t) => averagePrecision(ranked, truths, truthCount, t));
    const ap50 = aps[0] as number;
    const ap50_95 = aps.reduce((a, b) => a + b, 0) / aps.length;
    perClass[label] = { truths: truthCount, predictions: ranked.length, ap50, ap50_95 };
    ap50s.push(ap50);
    apAll.push(ap50_95);
  }
  const mean = (xs: number[]): number => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0);
  return { images: examples.length, map50: mean(ap50s), map50_95: mean(apAll), per_class: perClass };
}
