/**
 * The demo's two editions as one shape (`DemoScene`): what the cameras show and how they
 * drift, the model the loop trains, its base set and base model, what the simulated labeler
 * answers, and the figure a site is scored by. run.ts runs the same loop for either: the
 * fleet service, agents, rollouts, the learning loop and the report do not know which.
 *
 * - `classification` (the default): single handwritten digits, the base CNN, pit-3's cameras
 *   tilt, blur and dim; accuracy.
 * - `detection`: 1-4 digits scattered on a 96x96 sheet, a base detector (one class `digit`;
 *   decisions/0007), pit-3's cameras see light digits on dark paper, 30% closer; box labels;
 *   mAP@0.5 through the agent's own letterbox, decoder and NMS.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import type { ModelManifest, ModelRef } from '../../shared/schemas/index.js';
import { DETECTOR_OUTLIER } from '../adapters/trainers/local-detector.js';
import { localTrainer } from '../adapters/trainers/local-trainer.js';
import type { BaseSetSource } from '../app/training/base-source.js';
import type { LoopModelConfigInput } from '../app/training/config.js';
import { evaluateDetectionModels, type DetectionEvalExample } from '../app/training/evaluate-detection.js';
import { readPackageManifest } from '../app/training/evaluate.js';
import type { TrainingExample } from '../app/training/trainer.js';
import type { BaseRef } from '../core/labels/dataset-schema.js';
import type { GatesOverride } from '../core/rollouts/plan-schema.js';
import { detectionMetrics } from '../ml/detection-map.js';
import { makeScenes, type SceneDrift } from '../ml/detector/scenes.js';
import { BASE_TRAIN, CLEAN_HOLDOUT, FEED, PIT_DRIFT, renderDigitPng } from '../ml/digits.js';
import { DIGIT_ORDER, loadDigits, type DigitSet } from '../ml/mnist-data.js';
import { buildBaseModel } from './base-model.js';
import { mnistBaseSource, SCENE_LABEL, sceneBaseSource } from './base-set.js';
import type { RenderFrame } from './cameras.js';
import type { SimulatedLabel } from './labeler.js';
import type { DemoOptions, DemoTimings } from './options.js';
import type { ScoreFn } from './report.js';

export type SceneKind = 'classification' | 'detection';

/** The base model as the demo pushes it: a package directory, from the cache or trained now. */
export interface BuiltBase {
  dir: string;
  manifest: ModelManifest;
  cached: boolean;
  /** Its clean-holdout figure (the scene's metric) when measured. */
  clean: number | null;
}

export interface DemoScene<T> {
  kind: SceneKind;
  /** What site and model figures are: accuracy, or a detector's mAP@0.5. */
  metric: 'accuracy' | 'map50';
  /** The model the loop trains and the rollouts move. */
  model: string;
  baseSet: BaseSetSource;
  /** The loop's base references: the base training slice first, then the clean holdout. */
  baseRefs: BaseRef[];
  /** The scene's part of the loop's model config (trainer recipe, gate). */
  loop: Pick<LoopModelConfigInput, 'params' | 'gate'>;
  /** The scene's rollout gates over the retrained model's plan (run.ts). */
  rolloutGates: GatesOverride;
  /** Timings this edition runs with unless the caller sets them. */
  timings: Partial<DemoTimings>;
  /** How pit-3's drift looks, for the terminal. */
  driftSays: string;
  /** Builds (or loads from `dir`'s cache) the base model, signed with the fleet's key. */
  buildBase(o: { dir: string; signKeyPem: string; onProgress(line: string): void; signal?: AbortSignal }): Promise<BuiltBase>;
  /** Frame `n` of the feed; cameras start at their own offsets of it. */
  render: RenderFrame<T>;
  /** Frames before the feed repeats (cameras start evenly spread over it). */
  feedLength: number;
  /** The simulated labeler's answer for a frame. */
  label(truth: T): SimulatedLabel;
  score: ScoreFn<T>;
}

/** The classification edition: one digit per frame, its class the truth. */
export function digitScene(o: Pick<DemoOptions, 'training' | 'cleanHoldoutCount'>): DemoScene<number> {
  const baseSet = mnistBaseSource();
  const baseRefs: BaseRef[] = [
    { source: 'mnist', offset: BASE_TRAIN.offset, count: o.training?.trainCount ?? BASE_TRAIN.count, split: 'train' },
    { source: 'mnist', offset: CLEAN_HOLDOUT.offset, count: o.cleanHoldoutCount ?? CLEAN_HOLDOUT.count, split: 'clean_holdout' },
  ];
  let feed: DigitSet | null = null;
  return {
    kind: 'classification',
    metric: 'accuracy',
    model: 'digits',
    baseSet,
    baseRefs,
    loop: {},
    rolloutGates: {},
    timings: {},
    driftSays: `rotation ${PIT_DRIFT.rotateDeg}°, blur ${PIT_DRIFT.blurSigma}, dimmed ${PIT_DRIFT.dim! * 100}%`,
    async buildBase(b) {
      const built = await buildBaseModel({ ...b, ...o.training, examples: () => baseSet.examples(baseRefs[0]!) });
      const recorded = built.manifest.evaluation?.holdout_accuracy;
      return { dir: built.dir, manifest: built.manifest, cached: built.cached, clean: built.holdoutAccuracy ?? (typeof recorded === 'number' ? recorded : null) };
    },
    async render(n, drifted) {
      feed ??= loadDigits(FEED);
      const i = n % feed.images.length;
      return { png: await renderDigitPng(feed.images[i]!, drifted ? PIT_DRIFT : {}), truth: feed.labels[i]! };
    },
    feedLength: FEED.count,
    label: (truth) => ({ label: String(truth) }),
    score: (rows) => {
      const scored = rows.filter((r) => r.result.label !== undefined);
      return scored.length ? scored.filter((r) => Number(r.result.label) === r.truth).length / scored.length : null;
    },
  };
}

/** A detection frame's truth: the box of every digit drawn, in the frame's pixels. */
export interface SceneTruth {
  boxes: Array<{ label: string; box: [number, number, number, number] }>;
}

/** How the pit-3 cameras see the scenes once they drift: light ink on dark paper, 30% closer. */
const SCENE_DRIFT: SceneDrift = { invert: true, zoom: 1.3 };
const SCENE = { width: 96, height: 96, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40 } as const;
/** Digits per scene on average (1-4): a base reference of `count` digits is about `count / 2.5` scenes. */
const DIGITS_PER_SCENE = 2.5;

/** The detection edition: scenes of 1-4 digits, every digit's box the truth, scored by mAP@0.5. */
export function detectionScene(o: Pick<DemoOptions, 'training' | 'cleanHoldoutCount'>): DemoScene<SceneTruth> {
  const baseSet = sceneBaseSource({ width: SCENE.width, height: SCENE.height });
  // 1,200 base scenes (3,000 digits) and a 100-scene clean holdout unless the caller shrinks them.
  const trainDigits = o.training?.trainCount ?? 3000;
  const holdoutDigits = Math.round((o.cleanHoldoutCount ?? 100) * DIGITS_PER_SCENE);
  const baseRefs: BaseRef[] = [
    { source: 'mnist-scenes', offset: BASE_TRAIN.offset, count: trainDigits, split: 'train' },
    { source: 'mnist-scenes', offset: CLEAN_HOLDOUT.offset, count: holdoutDigits, split: 'clean_holdout' },
  ];
  let feed: DigitSet | null = null;
  return {
    kind: 'detection',
    metric: 'map50',
    model: 'digit-detector',
    baseSet,
    baseRefs,
    // Two same-sized detectors' latency on a shared 2-core host is noise: a small slack; one class.
    // The fine-tune draws the field frames harder than the trainer's default: a couple of
    // hundred of them beside 1,200 base scenes. Runs on pit-3 (mAP@0.5 of the agents' answers):
    // default 2 epochs, field weight 4: 0.60; 3 epochs: 0.65; 3 epochs, field weight 8: 0.79
    // with clean +4 points (docs/benchmarks.md).
    loop: { gate: { latency_slack_ms: 2, class_min_samples: 1 }, params: { epochs: 3, fieldWeight: 8 } },
    // Two device-side gates compare what a detector's fine-tune changes on purpose, so they are
    // off here; the evaluation gate already compared the two detectors by mAP on both holdouts,
    // and errors, failures and latency still gate every stage:
    // - outlier rate: captures follow how many boxes score inside the uncertainty band, and the
    //   new detector finds the digits the base one missed (0.117 over the base rate on a clean
    //   wave, 0.251 on pit-3's canary in two runs);
    // - confidence: a detector's per-frame confidence is its best box's score, which a fine-tune
    //   recalibrates while mAP (rank-based) improves (a 0.41 drop in shadow in the shortened test
    //   on a candidate better by mAP).
    rolloutGates: { max_outlier_rate_increase: null, max_confidence_drop: null },
    // A detector learns the drifted look from fewer frames than the classifier needs labels.
    timings: { labelBudget: 350, retrainAfterLabels: 250, afterFrames: 50 },
    driftSays: 'light digits on dark paper, 30% closer',
    async buildBase(b) {
      return buildBaseDetector({ ...b, examples: () => baseSet.examples(baseRefs[0]!), holdout: () => baseSet.examples(baseRefs[1]!), trainDigits, epochs: o.training?.epochs ?? 2 });
    },
    async render(n, drifted) {
      feed ??= loadDigits(FEED);
      // Each frame draws the next few feed digits, so no two frames show the same ones for a while.
      const from = (n * 4) % feed.images.length;
      const digits: DigitSet = { images: feed.images.slice(from, from + 4), labels: feed.labels.slice(from, from + 4) };
      const [scene] = makeScenes(digits, 1, FEED.offset + n, { ...SCENE, ...(drifted ? { drift: SCENE_DRIFT } : {}) });
      return { png: scene!.png, truth: { boxes: scene!.boxes.map((b) => ({ label: SCENE_LABEL, box: [b.x1, b.y1, b.x2, b.y2] })) } };
    },
    feedLength: Math.floor(FEED.count / 4),
    label: (truth) => ({ boxes: truth.boxes }),
    score: (rows) => (rows.length ? detectionMetrics(rows.map((r) => ({ truth: r.truth.boxes, predicted: r.result.detections ?? [] }))).map50 : null),
  };
}

const asEval = (ex: readonly TrainingExample[]): DetectionEvalExample[] => ex.map((e) => ({ id: e.id, bytes: e.bytes, boxes: e.boxes ?? [] }));

/**
 * The demo's base detector: the local trainer's detector on the base scenes, packed with golden
 * inputs and signed; its clean-holdout mAP@0.5 measured through the agent's decoder. Cached in
 * `dir` (with `<dir>.holdout.json`) unless built from another digit order or training size.
 */
async function buildBaseDetector(o: {
  dir: string;
  signKeyPem: string;
  onProgress(line: string): void;
  signal?: AbortSignal;
  examples(): Promise<TrainingExample[]>;
  holdout(): Promise<TrainingExample[]>;
  trainDigits: number;
  epochs: number;
}): Promise<BuiltBase> {
  const sidecar = `${o.dir}.holdout.json`;
  // A detector cached from other digits, another size or before its outlier policy changed is rebuilt.
  const key = { digit_order: DIGIT_ORDER, train_digits: o.trainDigits, epochs: o.epochs, outlier: JSON.stringify(DETECTOR_OUTLIER) };
  try {
    const manifest = await readPackageManifest(o.dir);
    const side = JSON.parse(await readFile(sidecar, 'utf8')) as typeof key & { clean_map50?: number };
    if ((Object.keys(key) as Array<keyof typeof key>).some((k) => side[k] !== key[k])) throw new Error('stale cache');
    return { dir: o.dir, manifest, cached: true, clean: typeof side.clean_map50 === 'number' ? side.clean_map50 : null };
  } catch {
    /* not built yet */
  }
  const train = await o.examples();
  o.onProgress(`training on ${train.length} scenes (${train.reduce((n, e) => n + (e.boxes?.length ?? 0), 0)} digits, one class "${SCENE_LABEL}")`);
  await rm(o.dir, { recursive: true, force: true });
  const ref: ModelRef = { name: 'digit-detector', version: '1.0.0' };
  const res = await localTrainer().train({
    model: ref,
    datasetVersion: `mnist-scenes-base:0-${o.trainDigits}`,
    train,
    labels: [SCENE_LABEL],
    parent: null,
    params: { task: 'detection', size: SCENE.width, epochs: o.epochs },
    seed: 1,
    outputDir: o.dir,
    signKeyPem: o.signKeyPem,
    onProgress: (p) => o.onProgress(p.message),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const holdout = asEval(await o.holdout());
  const [rep] = await evaluateDetectionModels([{ ref, dir: o.dir }], { clean: holdout, field: [] }, { warmup: 1, timedRuns: 1 });
  const clean = rep!.clean.map50;
  o.onProgress(`trained in ${(res.durationMs / 1000).toFixed(1)} s; clean holdout mAP@0.5 ${clean.toFixed(3)}`);
  await writeFile(sidecar, `${JSON.stringify({ ...key, clean_map50: clean })}\n`);
  return { dir: o.dir, manifest: await readPackageManifest(o.dir), cached: false, clean };
}
