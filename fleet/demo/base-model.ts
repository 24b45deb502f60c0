import { readFile, rm, writeFile } from 'node:fs/promises';
import type { ModelManifest } from '../../shared/schemas/index.js';
import { DIGIT_LABELS } from '../adapters/trainers/digit-model.js';
import { localTrainer } from '../adapters/trainers/local-trainer.js';
import { renderMnistExamples } from '../app/training/base-sets.js';
import { DIGIT_ORDER } from '../ml/mnist-data.js';
import { readPackageManifest } from '../app/training/evaluate.js';
import { packageAccuracy, type LabelledImage } from '../app/training/package-accuracy.js';
import type { TrainingExample } from '../app/training/trainer.js';
import { BASE_TRAIN, CLEAN_HOLDOUT, renderDigitPng, type CameraDrift } from '../ml/digits.js';

export { DIGIT_LABELS };

export interface BaseModelOptions {
  /** Package directory; reused when it already holds a package (the cache). */
  dir: string;
  signKeyPem: string;
  /** Digits [0, trainCount) (default BASE_TRAIN). */
  trainCount?: number;
  /** Digits measured for the cache's record, from CLEAN_HOLDOUT's offset (default its count). */
  holdoutCount?: number;
  epochs?: number;
  seed?: number;
  version?: string;
  onProgress?(line: string): void;
  /** Extra local-trainer parameters (see LocalTrainParams). */
  params?: Record<string, unknown>;
  /**
   * The training examples when they are not cached (default: digits [0, trainCount) rendered
   * here). The demo passes its learning loop's base set, so the same images are rendered and
   * decoded once for the base model and the retrain.
   */
  examples?: () => Promise<TrainingExample[]>;
  /** Stops the training at once (Ctrl-C); nothing is cached then. */
  signal?: AbortSignal;
}

/**
 * The base training set as the fleet holds it: `mnist` digits [offset, offset + count) rendered
 * to camera-like PNGs (what devices capture), optionally drifted, ids `mnist-<index>`.
 */
export function renderBaseExamples(opts: { count: number; offset?: number; drift?: CameraDrift }): Promise<TrainingExample[]> {
  return renderMnistExamples(opts.offset ?? 0, opts.count, (pixels) => renderDigitPng(pixels, opts.drift ?? {}));
}

/** Same digits as labelled images (for accuracy checks), optionally drifted like a camera. */
export async function renderLabelledDigits(opts: { count: number; offset: number; drift?: CameraDrift }): Promise<LabelledImage[]> {
  return (await renderBaseExamples(opts)).map((e) => ({ label: e.label, bytes: e.bytes }));
}

/**
 * The demo's base digit classifier: the local trainer's CNN trained on the `mnist` package's
 * first `trainCount` digits (rendered to PNG like camera frames), packed with golden inputs,
 * drift baselines and a signature. Cached: a second call returns the existing package (and the
 * holdout accuracy measured when it was built, from `<dir>.holdout.json`), unless that was
 * built from another digit order or training count, whose digits may now be held out or fed.
 */
export async function buildBaseModel(o: BaseModelOptions): Promise<{ dir: string; manifest: ModelManifest; cached: boolean; holdoutAccuracy?: number }> {
  const sidecar = `${o.dir}.holdout.json`;
  const trainCount = o.trainCount ?? BASE_TRAIN.count;
  const holdoutCount = o.holdoutCount ?? CLEAN_HOLDOUT.count;
  try {
    const manifest = await readPackageManifest(o.dir);
    const side = JSON.parse(await readFile(sidecar, 'utf8')) as { holdout_accuracy?: number; digit_order?: string; train_count?: number };
    // A model cached from another digit order or split was trained on other digits (maybe the holdout's or the feed's).
    if (side.digit_order !== DIGIT_ORDER || side.train_count !== trainCount) throw new Error('stale cache');
    const holdout = side.holdout_accuracy;
    return { dir: o.dir, manifest, cached: true, ...(typeof holdout === 'number' ? { holdoutAccuracy: holdout } : {}) };
  } catch {
    /* not built yet */
  }
  const say = o.onProgress ?? (() => undefined);
  say(`rendering ${trainCount} training digits`);
  const train = o.examples ? await o.examples() : await renderBaseExamples({ count: trainCount });
  await rm(o.dir, { recursive: true, force: true });
  const res = await localTrainer().train({
    model: { name: 'digits', version: o.version ?? '1.0.0' },
    datasetVersion: `mnist-base:0-${trainCount}`,
    train,
    labels: DIGIT_LABELS,
    parent: null,
    params: { ...(o.epochs !== undefined ? { epochs: o.epochs } : {}), ...o.params },
    seed: o.seed ?? 7,
    outputDir: o.dir,
    signKeyPem: o.signKeyPem,
    onProgress: (p) => say(p.message),
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const holdout = await renderLabelledDigits({ count: holdoutCount, offset: CLEAN_HOLDOUT.offset });
  const { accuracy } = await packageAccuracy(o.dir, holdout);
  say(`trained in ${(res.durationMs / 1000).toFixed(1)} s; clean holdout accuracy ${(accuracy * 100).toFixed(1)}%`);
  await writeFile(sidecar, `${JSON.stringify({ holdout_accuracy: accuracy, holdout_count: holdoutCount, train_count: trainCount, digit_order: DIGIT_ORDER })}\n`);
  const manifest = await readPackageManifest(o.dir);
  return { dir: o.dir, manifest, cached: false, holdoutAccuracy: accuracy };
}
