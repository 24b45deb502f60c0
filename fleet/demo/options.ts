import type { Logger } from 'pino';
import type { GateConfigInput } from '../core/training/gate.js';
import type { Trainer } from '../app/training/trainer.js';

/**
 * The demo's clock: every duration and rate in one place, so the headless test and the
 * `loop` benchmark can run the same loop shorter. Seconds unless named otherwise.
 */
export interface DemoTimings {
  /** Images per second per camera. */
  rate: number;
  /** Feeding on the base model before the pit-3 cameras drift. */
  baselineS: number;
  /** ridge-1 loses its uplink this long after the drift onset... */
  outageAfterS: number;
  /** ...for this long. */
  outageS: number;
  /** Simulated labeler pace (labels per second) and budget (labels in all). */
  labelRate: number;
  labelBudget: number;
  /**
   * Retrain once this many labels exist (the fallback trigger; the learning loop's trigger
   * policy decides when it is present).
   */
  retrainAfterLabels: number;
  /** Bake times of the retrained model's rollout stages. */
  shadowBakeS: number;
  canaryBakeS: number;
  waveBakeS: number;
  /** Frames each pit-3 camera must show the new model before the loop counts as closed. */
  afterFrames: number;
  /** Agent telemetry period. */
  telemetryS: number;
  /** Give up (report what happened) after this long in all; 0 = no limit. */
  maxS: number;
}

export const DEFAULT_TIMINGS: DemoTimings = {
  rate: 2,
  baselineS: 40,
  outageAfterS: 10,
  outageS: 60,
  labelRate: 8,
  labelBudget: 500,
  retrainAfterLabels: 400,
  shadowBakeS: 15,
  canaryBakeS: 15,
  waveBakeS: 10,
  afterFrames: 100,
  telemetryS: 2,
  maxS: 0,
};

export interface DemoOptions {
  /** The edition: `classification` (default) or `detection` (scenes.ts). */
  scene?: 'classification' | 'detection';
  /** Data directory: the base model is cached in `<dir>/models`; fleet and device state are fresh each run. */
  dataDir: string;
  timings?: Partial<DemoTimings>;
  /** Wait for people on the labeling page instead of the simulated labeler. */
  humanLabels?: boolean;
  /** Return the report once the loop closed (pit-3 recovered); otherwise run until `signal`. */
  exitWhenDone?: boolean;
  httpPort?: number;
  log: Logger;
  /** Progress lines for the terminal. */
  say(line: string): void;
  /** Ctrl-C. */
  signal?: AbortSignal;
  /** Smaller base training for tests (defaults: the trainer's recipe); `trainCount` in digits (a detection scene holds 2.5 on average). */
  training?: { trainCount?: number; epochs?: number };
  /** The trainer for retraining (default: the built-in local trainer). */
  trainer?: Trainer;
  /** Evaluation gate settings over the defaults (field +2 points, clean -1, any class -3, latency 1.2x). */
  gate?: GateConfigInput;
  /** Clean holdout size for the evaluation (default CLEAN_HOLDOUT: 2,000 digits; detection: 100 scenes). */
  cleanHoldoutCount?: number;
  seed?: number;
}

export const SITES = ['pit-3', 'ridge-1', 'plant-2'] as const;
export const DRIFT_SITE = 'pit-3';
export const OUTAGE_SITE = 'ridge-1';
export const CAMERAS_PER_SITE = 2;
