import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { histogramOf } from '../../shared/inference/drift-stats.js';
import { imageToTensor } from '../../shared/inference/preprocess.js';
import { imagePreprocessing } from '../../shared/schemas/index.js';
import type { ModelManifest } from '../../shared/schemas/index.js';
import { packModel } from '../registry/pack.js';
import { DIGIT_MLP_RECIPE, evaluateMlp, exportMlpOnnx, predictMlp, trainMlp } from '../training/mlp-trainer.js';
import { loadDigits } from '../training/mnist-data.js';
import { renderDigitPng } from './digits.js';

export interface BaseModelOptions {
  /** Package directory; reused when it already holds a package (the cache). */
  dir: string;
  signKeyPem: string;
  trainCount?: number;
  holdoutCount?: number;
  epochs?: number;
  seed?: number;
  version?: string;
  onProgress?(line: string): void;
}

export const DIGIT_LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/**
 * The demo's base digit classifier: an MLP trained on the `mnist` package's digits, exported to
 * ONNX and packed with golden inputs, drift baselines (class distribution, brightness, contrast
 * of rendered frames) and a signature. Cached: a second call returns the existing package.
 */
export async function buildBaseModel(o: BaseModelOptions): Promise<{ dir: string; manifest: ModelManifest; cached: boolean; holdoutAccuracy?: number }> {
  try {
    const manifest = JSON.parse(await readFile(join(o.dir, 'manifest.json'), 'utf8')) as ModelManifest;
    return { dir: o.dir, manifest, cached: true };
  } catch {
    /* not built yet */
  }
  const say = o.onProgress ?? (() => undefined);
  const trainCount = o.trainCount ?? 8000;
  const holdoutCount = o.holdoutCount ?? 1000;
  const train = loadDigits({ count: trainCount });
  const holdout = loadDigits({ count: holdoutCount, offset: trainCount });
  const epochs = o.epochs ?? DIGIT_MLP_RECIPE.epochs;
  say(`training the base digit model: ${trainCount} digits, ${epochs} epochs`);
  const t0 = Date.now();
  const res = trainMlp({
    images: train.images,
    labels: train.labels,
    ...DIGIT_MLP_RECIPE,
    epochs,
    seed: o.seed ?? 7,
    onProgress: (epoch, loss, acc) => say(`  epoch ${epoch}/${epochs}: loss ${loss.toFixed(3)}, train accuracy ${(acc * 100).toFixed(1)}%`),
  });
  const holdoutAccuracy = evaluateMlp(res.weights, holdout.images, holdout.labels);
  say(`trained in ${((Date.now() - t0) / 1000).toFixed(1)} s; holdout accuracy ${(holdoutAccuracy * 100).toFixed(1)}%`);

  const work = `${o.dir}.work`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  await writeFile(join(work, 'model.onnx'), exportMlpOnnx(res.weights));
  // Golden inputs: one clear example per class from the holdout, rendered like camera frames.
  const golden: Array<{ file: string; label: string }> = [];
  for (let d = 0; d < 10; d += 3) {
    // The clearest holdout example of the class: a smoke test checks the runtime, not the model's hard cases.
    let i = 0;
    let best = -1;
    holdout.labels.forEach((l, j) => {
      const p = l === d ? (predictMlp(res.weights, holdout.images[j]!)[d] ?? 0) : -1;
      if (p > best) [best, i] = [p, j];
    });
    const file = join(work, `golden-${d}.png`);
    await writeFile(file, await renderDigitPng(holdout.images[i]!));
    golden.push({ file, label: String(d) });
  }
  // Baselines measured with the agent's own preprocessing code, so a device on clean input reports PSI near 0.
  const image = { width: 28, height: 28, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert: true, fit: 'fill' } as const;
  const pre = imagePreprocessing.parse({ kind: 'image', ...image });
  const stats = await Promise.all(train.images.slice(0, 1000).map(async (im) => (await imageToTensor(await renderDigitPng(im), pre)).stats));
  const edges = (lo: number, hi: number, n: number): number[] => Array.from({ length: n + 1 }, (_, i) => lo + ((hi - lo) * i) / n);
  await rm(o.dir, { recursive: true, force: true });
  const packed = await packModel({
    onnxPath: join(work, 'model.onnx'),
    outDir: o.dir,
    labels: DIGIT_LABELS,
    name: 'digits',
    version: o.version ?? '1.0.0',
    description: 'Handwritten digit classifier (MLP) trained on the mnist package',
    image,
    golden,
    outlier: { min_confidence: 0.7, min_margin: 0.2, max_entropy: 0.6, random_sample_rate: 0.02 },
    driftBaseline: {
      class_distribution: DIGIT_LABELS.map(() => 0.1),
      brightness: histogramOf(stats.map((s) => s.brightness), edges(0.5, 1, 10)),
      contrast: histogramOf(stats.map((s) => s.contrast), edges(0, 0.5, 10)),
      window: 200,
    },
    evaluation: { holdout_accuracy: holdoutAccuracy, holdout_count: holdoutCount, train_count: trainCount },
    lineage: { trainer: 'local-mlp', code_version: 'edgeloop' },
    signKeyPem: o.signKeyPem,
  });
  await rm(work, { recursive: true, force: true });
  return { ...packed, cached: false, holdoutAccuracy };
}
