/**
 * The detection edition of the demo (`edgeloop demo --scene detection`): scenes of several
 * handwritten digits on a larger sheet, a base detector trained by the local trainer, one site
 * (pit-3) whose cameras drift (light digits on dark paper, seen closer), box labels for the
 * drifted frames that came back, a fine-tune from the base detector, the evaluation gate
 * comparing mAP on the clean and the drifted holdout, and the site's mAP before and after.
 *
 * What runs here is the learning loop's own parts: the `Trainer` port (local trainer), the
 * agent's letterbox, decoder and NMS on real ONNX Runtime sessions (evaluate-detection.ts),
 * and the gate (core/training/gate.ts). Where the boxes come from is a {@link FieldBoxSource}:
 * today a simulated labeler that knows each fed frame's true boxes. The fleet's box labels
 * and dataset versions with boxes plug in there (docs/demo.md says what that merge swaps);
 * until then this edition does not start agents or a rollout, and the recovery time is from the
 * drift onset to the gate's acceptance of the fine-tuned detector.
 */
import { mkdir, rm } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { ModelRef } from '../../shared/schemas/index.js';
import { localTrainer } from '../adapters/trainers/local-trainer.js';
import { evaluateDetectionModels, type DetectionEvalExample, type DetectionModelReport } from '../app/training/evaluate-detection.js';
import type { Trainer, TrainingExample } from '../app/training/trainer.js';
import { gateConfig, judge, type GateConfigInput, type GateVerdict } from '../core/training/gate.js';
import { makeScenes, type Scene, type SceneDrift } from '../ml/detector/scenes.js';
import { BASE_TRAIN, CLEAN_HOLDOUT, FEED } from '../ml/digits.js';
import { loadDigits } from '../ml/mnist-data.js';

/** How the pit-3 cameras see the scenes once they drift: light ink on dark paper, 30% closer. */
const PIT_DETECTION_DRIFT: SceneDrift = { invert: true, zoom: 1.3 };
const DETECTION_LABELS = ['digit'];
export const DETECTION_DRIFT_SITE = 'pit-3';
const CLEAN_SITE = 'plant-2';

/** Box-labeled frames from the drifted site, as a labeler confirmed them. */
export interface FieldBoxSource {
  /** Up to `count` labeled frames (fewer when no more came back). */
  take(count: number): Promise<Array<{ id: string; bytes: Uint8Array; boxes: DetectionEvalExample['boxes'] }>>;
  readonly simulated: boolean;
}

const asBoxes = (s: Scene): DetectionEvalExample['boxes'] => s.boxes.map((b) => ({ label: DETECTION_LABELS[0]!, box: [b.x1, b.y1, b.x2, b.y2] as const }));

/** The simulated labeler: the drifted cameras' frames (digits no model trained on) with the boxes the scene was drawn with. */
function simulatedFieldBoxes(drift: SceneDrift, seed: number): FieldBoxSource {
  const digits = loadDigits(FEED);
  let taken = 0;
  return {
    simulated: true,
    async take(count) {
      const scenes = makeScenes(digits, count, seed + taken, { width: 96, height: 96, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40, drift });
      const out = scenes.map((s, i) => ({ id: `pit-3-frame-${taken + i}`, bytes: s.png, boxes: asBoxes(s) }));
      taken += count;
      return out;
    },
  };
}

export interface DetectionDemoOptions {
  dataDir: string;
  say(line: string): void;
  /** Base set scenes (default 1,200) and base epochs (default 2). */
  baseScenes?: number;
  baseEpochs?: number;
  /** Scenes per holdout (clean, drifted; default 100 each). */
  holdoutScenes?: number;
  /** Labels the labeler gives (default 150 frames). */
  labelBudget?: number;
  /** Detector input side (default 96). */
  size?: number;
  fieldSource?: FieldBoxSource;
  trainer?: Trainer;
  gate?: GateConfigInput;
  seed?: number;
  signal?: AbortSignal;
}

export interface DetectionDemoReport {
  scene: 'detection';
  labels: string[];
  /** mAP@0.5 per site: on the base detector before the drift, during it, and on the new detector. */
  sites: Record<string, { before_drift: number; during_drift: number; after_new_model: number | null }>;
  base_model: { ref: ModelRef; train_s: number; clean_map50: number; clean_map50_95: number };
  new_model: { ref: ModelRef; train_s: number; clean_map50: number; field_map50: number; field_map50_95: number; clean_delta_points: number } | null;
  labels_used: { frames: number; boxes: number; simulated: boolean };
  gate: { passed: boolean; reasons: string[] };
  /** Seconds from the drift onset to the gate accepting the new detector; null when it did not. */
  recovery_s: number | null;
  duration_s: number;
  ok: boolean;
}

const scenesOf = (range: { offset: number; count: number }, n: number, seed: number, drift?: SceneDrift): Scene[] =>
  makeScenes(loadDigits(range), n, seed, { width: 96, height: 96, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40, ...(drift ? { drift } : {}) });

/** Runs the detection loop once and reports the drifted site's mAP@0.5 before and after. */
export async function runDetectionDemo(o: DetectionDemoOptions): Promise<DetectionDemoReport> {
  const t0 = Date.now();
  const seed = o.seed ?? 1;
  const work = resolve(o.dataDir, 'detection');
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  const trainer = o.trainer ?? localTrainer();
  const holdoutN = o.holdoutScenes ?? 100;
  const size = o.size ?? 96;
  const label = DETECTION_LABELS[0]!;
  const abortIf = (): void => {
    if (o.signal?.aborted) throw o.signal.reason instanceof Error ? o.signal.reason : new Error('aborted');
  };

  // The base set: clean scenes of the digits the classification demo trains on.
  const baseScenes = scenesOf(BASE_TRAIN, o.baseScenes ?? 1200, seed);
  const base: TrainingExample[] = baseScenes.map((s, i) => ({ id: `base-scene-${i}`, origin: 'base', label, bytes: s.png, boxes: asBoxes(s) }));
  // Holdouts from the clean-holdout digits: the same scenes seen by a clean camera and by pit-3's drifted one.
  const cleanHoldout = scenesOf(CLEAN_HOLDOUT, holdoutN, seed + 100).map((s, i) => ({ id: `clean-${i}`, bytes: s.png, boxes: asBoxes(s) }));
  const driftHoldout = scenesOf(CLEAN_HOLDOUT, holdoutN, seed + 100, PIT_DETECTION_DRIFT).map((s, i) => ({ id: `drift-${i}`, bytes: s.png, boxes: asBoxes(s) }));

  const baseRef: ModelRef = { name: 'digit-detector', version: '1.0.0' };
  o.say(`training the base detector on ${base.length} scenes (${base.reduce((n, e) => n + (e.boxes?.length ?? 0), 0)} digits, one class "${label}")`);
  const tb = Date.now();
  const baseRun = await trainer.train({
    model: baseRef,
    datasetVersion: 'demo-detection-base',
    train: base,
    labels: DETECTION_LABELS,
    parent: null,
    params: { task: 'detection', size, epochs: o.baseEpochs ?? 2 },
    seed,
    outputDir: join(work, 'base'),
    onProgress: (p) => o.say(`  train: ${p.message}`),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const baseTrainS = (Date.now() - tb) / 1000;
  abortIf();
  const [before] = (await evaluateDetectionModels([{ ref: baseRef, dir: baseRun.packageDir }], { clean: cleanHoldout, field: driftHoldout }, { warmup: 2, timedRuns: 1 })) as [DetectionModelReport];
  o.say(`base detector: clean mAP@0.5 ${before.clean.map50.toFixed(3)}; pit-3's cameras drift (light digits on dark paper, closer): its mAP@0.5 falls to ${before.field.map50.toFixed(3)}`);

  // The drift: labeled frames from pit-3 come back.
  const driftAt = Date.now();
  const source = o.fieldSource ?? simulatedFieldBoxes(PIT_DETECTION_DRIFT, seed + 1000);
  const field = await source.take(o.labelBudget ?? 150);
  const boxes = field.reduce((n, f) => n + f.boxes.length, 0);
  o.say(`${field.length} pit-3 frames labeled with ${boxes} boxes (${source.simulated ? 'simulated labeler' : 'people'}); fine-tuning from ${baseRef.name}@${baseRef.version}`);
  abortIf();
  const candRef: ModelRef = { name: baseRef.name, version: '1.1.0' };
  const tc = Date.now();
  const candRun = await trainer.train({
    model: candRef,
    datasetVersion: 'demo-detection-field',
    train: [...base, ...field.map((f) => ({ id: f.id, origin: 'field' as const, label, bytes: f.bytes, boxes: f.boxes }))],
    labels: DETECTION_LABELS,
    parent: { ref: baseRef, dir: baseRun.packageDir },
    params: {},
    seed,
    outputDir: join(work, 'candidate'),
    onProgress: (p) => o.say(`  train: ${p.message}`),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const candTrainS = (Date.now() - tc) / 1000;
  abortIf();
  const [prod, cand] = (await evaluateDetectionModels(
    [
      { ref: baseRef, dir: baseRun.packageDir },
      { ref: candRef, dir: candRun.packageDir },
    ],
    { clean: cleanHoldout, field: driftHoldout },
    { warmup: 2 },
  )) as [DetectionModelReport, DetectionModelReport];
  // Latency: the same architecture, so the ratio is noise on a shared host; a small slack keeps it from deciding.
  const verdict: GateVerdict = judge(cand, prod, gateConfig.parse({ latency_slack_ms: 2, class_min_samples: 1, ...o.gate }));
  const recovery = verdict.passed ? (Date.now() - driftAt) / 1000 : null;
  o.say(`gate ${verdict.passed ? 'passed' : `failed: ${verdict.reasons.join('; ')}`}: pit-3 mAP@0.5 ${prod.field.map50.toFixed(3)} -> ${cand.field.map50.toFixed(3)}, clean ${prod.clean.map50.toFixed(3)} -> ${cand.clean.map50.toFixed(3)}`);
  const after = verdict.passed ? cand : null;
  return {
    scene: 'detection',
    labels: DETECTION_LABELS,
    sites: {
      [DETECTION_DRIFT_SITE]: { before_drift: before.clean.map50, during_drift: before.field.map50, after_new_model: after ? after.field.map50 : null },
      [CLEAN_SITE]: { before_drift: before.clean.map50, during_drift: before.clean.map50, after_new_model: after ? after.clean.map50 : null },
    },
    base_model: { ref: baseRef, train_s: baseTrainS, clean_map50: before.clean.map50, clean_map50_95: before.clean.map50_95 },
    new_model: { ref: candRef, train_s: candTrainS, clean_map50: cand.clean.map50, field_map50: cand.field.map50, field_map50_95: cand.field.map50_95, clean_delta_points: (cand.clean.map50 - prod.clean.map50) * 100 },
    labels_used: { frames: field.length, boxes, simulated: source.simulated },
    gate: { passed: verdict.passed, reasons: verdict.reasons },
    recovery_s: recovery,
    duration_s: (Date.now() - t0) / 1000,
    ok: verdict.passed,
  };
}
