/**
 * `edgeloop sample-model`: a real, working model for a first run, so a newcomer never packs a
 * model with the wrong preprocessing. The local trainer's digit CNN is trained on real `mnist`
 * digits rendered as camera frames (the demo's base model, with a shorter recipe), and the
 * directory holds what a person brings to `edgeloop pack`: the ONNX file, its labels, golden
 * inputs with their expected labels, held-out frames to send to a device, and the exact pack
 * command (the model needs `--invert`: it reads white ink on black, cameras see dark ink).
 */
import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderMnistExamples } from '../../app/training/base-sets.js';
import { readPackageManifest } from '../../app/training/evaluate.js';
import { packageAccuracy } from '../../app/training/package-accuracy.js';
import { CLEAN_HOLDOUT, renderDigitPng } from '../../ml/digits.js';
import { DIGIT_LABELS } from './digit-model.js';
import { localTrainer } from './local-trainer.js';

export interface SampleModelOptions {
  outDir: string;
  /** Training digits (default 3000: about 95% on held-out digits in seconds). */
  trainCount?: number;
  /** Epochs (default 4). */
  epochs?: number;
  seed?: number;
  /** Held-out frames written to `frames/` for sending to a device (default 20). */
  frames?: number;
  onProgress?(line: string): void;
  signal?: AbortSignal;
}

export interface SampleModel {
  dir: string;
  model: string;
  labels: string;
  /** Golden inputs: `golden/<label>.png`, one per class the model is sure of. */
  golden: Array<{ file: string; label: string }>;
  /** Held-out digits (never trained on): `frames/<n>-<label>.png`. */
  frames: Array<{ file: string; label: string }>;
  /** Accuracy on CLEAN_HOLDOUT's first 500 digits, measured through the package as a device runs it. */
  holdoutAccuracy: number;
  /** The `edgeloop pack` arguments (after `edgeloop pack`) that package this model correctly. */
  packArgs: string[];
}

/** Trains and writes the sample digit model into `outDir` (created; existing files of the same names are replaced). */
export async function writeSampleModel(o: SampleModelOptions): Promise<SampleModel> {
  const say = o.onProgress ?? (() => undefined);
  const trainCount = o.trainCount ?? 3000;
  say(`rendering ${trainCount} mnist digits as camera frames`);
  const train = await renderMnistExamples(0, trainCount, (pixels) => renderDigitPng(pixels));
  const work = await mkdtemp(join(tmpdir(), 'edgeloop-sample-model-'));
  try {
    const pkg = join(work, 'pkg');
    await localTrainer().train({
      model: { name: 'digits', version: '1.0.0' },
      datasetVersion: `mnist-base:0-${trainCount}`,
      train,
      labels: DIGIT_LABELS,
      parent: null,
      params: { epochs: o.epochs ?? 4 },
      seed: o.seed ?? 7,
      outputDir: pkg,
      onProgress: (p) => say(p.message),
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const holdout = await renderMnistExamples(CLEAN_HOLDOUT.offset, 500, (pixels) => renderDigitPng(pixels));
    const { accuracy } = await packageAccuracy(pkg, holdout);

    await mkdir(join(o.outDir, 'golden'), { recursive: true });
    await mkdir(join(o.outDir, 'frames'), { recursive: true });
    const model = join(o.outDir, 'model.onnx');
    const labels = join(o.outDir, 'labels.txt');
    await copyFile(join(pkg, 'model.onnx'), model);
    await writeFile(labels, `${DIGIT_LABELS.join('\n')}\n`);
    // The trainer chose, per class, the training frame its model is surest of: the smoke test
    // checks the runtime and the preprocessing on a device, not the model's hard cases.
    const manifest = await readPackageManifest(pkg);
    const golden: SampleModel['golden'] = [];
    for (const g of manifest.golden) {
      if (!g.file) continue;
      const file = join(o.outDir, 'golden', `${g.expected_label}.png`);
      await copyFile(join(pkg, g.file), file);
      golden.push({ file, label: g.expected_label });
    }
    const frames: SampleModel['frames'] = [];
    for (const [i, e] of holdout.slice(0, o.frames ?? 20).entries()) {
      const file = join(o.outDir, 'frames', `${String(i).padStart(2, '0')}-${e.label}.png`);
      await writeFile(file, e.bytes);
      frames.push({ file, label: e.label });
    }
    const packArgs = [model, '--labels', labels, '--invert', ...golden.flatMap((g) => ['--golden', `${g.file}=${g.label}`])];
    say(`holdout accuracy ${(accuracy * 100).toFixed(1)}% on 500 digits it never saw`);
    return { dir: o.outDir, model, labels, golden, frames, holdoutAccuracy: accuracy, packArgs };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
