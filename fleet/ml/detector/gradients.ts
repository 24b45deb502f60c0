/**
 * One thread's share of a detector batch: forward, loss and backward over a list of draws,
 * adding into the gradient arrays. Used by the gradient worker (gradient-worker.ts) and by
 * tests on the calling thread. A draw may be shifted by whole pixels (seeded per draw), its
 * boxes moving with it: the only augmentation, since a digit's look is what the model learns.
 */
import { mulberry32 } from '../init.js';
import type { DetectorScratch} from './model.js';
import { backwardDetector, buildTargets, detectorLoss, forwardDetector, type DetectorWeights, type TrainBox } from './model.js';

/** One draw of a batch: which image, and the seed of its shift. */
export interface Draw {
  index: number;
  seed: number;
}

/** `x` shifted by (dx, dy) whole pixels into `out` (zeros where nothing moved in), and its boxes moved and clipped. */
export function shiftImage(x: Float32Array, side: number, boxes: readonly TrainBox[], dx: number, dy: number, out: Float32Array): TrainBox[] {
  out.fill(0);
  for (let y = 0; y < side; y++) {
    const sy = y - dy;
    if (sy < 0 || sy >= side) continue;
    const x0 = Math.max(0, dx);
    const x1 = Math.min(side, side + dx);
    if (x1 > x0) out.set(x.subarray(sy * side + x0 - dx, sy * side + x1 - dx), y * side + x0);
  }
  const moved: TrainBox[] = [];
  for (const b of boxes) {
    const m = { cls: b.cls, x1: Math.max(0, b.x1 + dx), y1: Math.max(0, b.y1 + dy), x2: Math.min(side, b.x2 + dx), y2: Math.min(side, b.y2 + dy) };
    // A box cut to less than half its area is no longer the object: left out rather than taught.
    const before = (b.x2 - b.x1) * (b.y2 - b.y1);
    if (m.x2 > m.x1 && m.y2 > m.y1 && (m.x2 - m.x1) * (m.y2 - m.y1) >= before / 2) moved.push(m);
  }
  return moved;
}

/** Adds the gradients of `draws` into `grads` (layout order); returns the summed loss. */
export function accumulateDetectorGradients(
  w: DetectorWeights,
  images: readonly Float32Array[],
  boxes: ReadonlyArray<readonly TrainBox[]>,
  draws: readonly Draw[],
  maxShift: number,
  s: DetectorScratch,
  grads: readonly Float32Array[],
): number {
  let loss = 0;
  for (const d of draws) {
    let x = images[d.index]!;
    let b = boxes[d.index]!;
    if (maxShift > 0) {
      const rand = mulberry32(d.seed);
      const dx = Math.floor(rand() * (2 * maxShift + 1)) - maxShift;
      const dy = Math.floor(rand() * (2 * maxShift + 1)) - maxShift;
      b = shiftImage(x, w.size, b, dx, dy, s.x);
      x = s.x;
    }
    const objects = buildTargets(w, b, s);
    forwardDetector(w, x, s);
    loss += detectorLoss(w, s, objects);
    backwardDetector(w, x, s, grads);
  }
  return loss;
}
