import { evenEdges, histogramOf, type BoxStats } from '../../../shared/inference/drift-stats.js';
import type { DriftBaseline } from '../../../shared/schemas/index.js';

/** What one reference image gave when pack ran the model on it, as the device will. */
export interface BaselineObservation {
  /** Top-1 class index (a detector: its best box's, or -1 when it found nothing). */
  index: number;
  /** Brightness and contrast of the preprocessed input, as the agent measures them. */
  stats: { brightness: number; contrast: number };
  /** A detector's boxes on it. */
  boxes?: BoxStats;
}

/** Below this many images a histogram is mostly noise: pack warns. */
export const BASELINE_FEW = 30;

// Bins the device compares its recent inputs against (the agent reads the edges from the
// manifest, so these may change without an agent release).
const BRIGHTNESS_EDGES = evenEdges(0, 1, 10);
const CONTRAST_EDGES = evenEdges(0, 0.5, 10);
const COUNT_EDGES = [0, 1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50];
const UNIT_EDGES = evenEdges(0, 1, 10);

/**
 * The manifest's `drift_baseline` from the model's own answers on reference images (pack
 * `--baseline`): the share of each predicted class, the input brightness and contrast, and
 * for a detector its boxes per frame, box scores and box sizes. The device compares the same
 * figures over its last `window` inputs (PSI) and reports drift when they move apart.
 */
export function driftBaselineOf(obs: readonly BaselineObservation[], classes: number, window = 500): DriftBaseline {
  const counts = new Array<number>(classes).fill(0);
  for (const o of obs) if (o.index >= 0 && o.index < classes) counts[o.index]! += 1;
  const counted = counts.reduce((a, b) => a + b, 0) || 1;
  const detector = obs.some((o) => o.boxes);
  const boxes = obs.flatMap((o) => (o.boxes ? [o.boxes] : []));
  return {
    class_distribution: counts.map((c) => c / counted),
    brightness: histogramOf(
      obs.map((o) => o.stats.brightness),
      BRIGHTNESS_EDGES,
    ),
    contrast: histogramOf(
      obs.map((o) => o.stats.contrast),
      CONTRAST_EDGES,
    ),
    ...(detector
      ? {
          box_count: histogramOf(
            boxes.map((b) => b.count),
            COUNT_EDGES,
          ),
          box_score: histogramOf(
            boxes.flatMap((b) => b.scores),
            UNIT_EDGES,
          ),
          box_size: histogramOf(
            boxes.flatMap((b) => b.sizes),
            UNIT_EDGES,
          ),
        }
      : {}),
    window,
  };
}
