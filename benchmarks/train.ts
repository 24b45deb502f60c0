/**
 * `train`: the local trainer building the demo's base model from scratch, the way the demo does
 * (the demo's BASE_TRAIN: 7,000 mnist digits rendered to camera PNGs, decoded with the agent's
 * preprocessing, trained, packed and signed). value = wall seconds (target <= 120); `accuracy` =
 * the demo's clean holdout (CLEAN_HOLDOUT: 2,000 digits at offset 7000, target >= 0.97),
 * measured through ONNX Runtime on the package.
 *
 * With `fineTune` (default on; off with --quick) it then fine-tunes the base model with the
 * FINE_TUNE_RECIPE on 300 drifted field labels (pit-3 drift, the first 300 of the camera FEED,
 * digits 9000-9299) plus the base set, and reports accuracy on the 700 other drifted feed digits
 * before and after, the change on the clean holdout in points and the worst clean class drop.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderBaseExamples, renderLabelledDigits } from '../fleet/demo/base-model.js';
import { BASE_TRAIN, CLEAN_HOLDOUT, FEED, PIT_DRIFT } from '../fleet/ml/digits.js';
import { DIGIT_LABELS } from '../fleet/adapters/trainers/digit-model.js';
import { localTrainer } from '../fleet/adapters/trainers/local-trainer.js';
import { classDropPoints, packageAccuracy } from '../fleet/app/training/package-accuracy.js';
import { generateSigningKeyPair } from '../shared/signing.js';

export interface TrainBenchOptions {
  trainCount?: number;
  holdoutCount?: number;
  epochs?: number;
  fineTune?: boolean;
  fieldLabels?: number;
  progress?(line: string): void;
}

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

export async function benchTrain(o: TrainBenchOptions = {}): Promise<{ name: 'train'; value: number } & Record<string, unknown>> {
  const say = o.progress ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-train-'));
  const key = generateSigningKeyPair().privateKeyPem;
  const trainCount = o.trainCount ?? BASE_TRAIN.count;
  const trainer = localTrainer();
  try {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const train = await renderBaseExamples({ count: trainCount });
    const renderS = (performance.now() - t0) / 1000;
    const base = await trainer.train({
      model: { name: 'digits', version: '1.0.0' },
      datasetVersion: `mnist-base:0-${trainCount}`,
      train,
      labels: DIGIT_LABELS,
      parent: null,
      params: o.epochs ? { epochs: o.epochs } : {},
      seed: 7,
      outputDir: join(dir, 'base'),
      signKeyPem: key,
      onProgress: (p) => say(`  ${p.message}`),
    });
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const clean = await renderLabelledDigits({ count: o.holdoutCount ?? CLEAN_HOLDOUT.count, offset: CLEAN_HOLDOUT.offset });
    const cleanBase = await packageAccuracy(base.packageDir, clean);
    const accuracy = cleanBase.accuracy;
    const result: { name: 'train'; value: number } & Record<string, unknown> = {
      name: 'train',
      value: round(wallS, 1),
      target: '<= 120 s, accuracy >= 0.97',
      accuracy: round(accuracy, 4),
      cpu_s: round((cpu.user + cpu.system) / 1e6, 1),
      render_s: round(renderS, 1),
      train_count: trainCount,
      epochs: base.metrics.epochs,
      train_accuracy: round(base.metrics.train_accuracy ?? 0, 4),
    };
    if (o.fineTune !== false) {
      const fieldN = o.fieldLabels ?? 300;
      say(`fine-tuning on ${fieldN} drifted field labels`);
      const field = (await renderBaseExamples({ count: fieldN, offset: FEED.offset, drift: PIT_DRIFT })).map((e) => ({ ...e, id: `field-${e.id}`, origin: 'field' as const }));
      const drifted = await renderLabelledDigits({ count: FEED.count - fieldN, offset: FEED.offset + fieldN, drift: PIT_DRIFT });
      const driftedBefore = (await packageAccuracy(base.packageDir, drifted)).accuracy;
      const ft0 = performance.now();
      const child = await trainer.train({
        model: { name: 'digits', version: '1.1.0' },
        datasetVersion: `bench-field-${fieldN}`,
        train: [...train, ...field],
        labels: DIGIT_LABELS,
        parent: { ref: { name: 'digits', version: '1.0.0' }, dir: base.packageDir },
        params: {},
        seed: 8,
        outputDir: join(dir, 'child'),
        signKeyPem: key,
        onProgress: (p) => say(`  ${p.message}`),
      });
      const ftS = (performance.now() - ft0) / 1000;
      const driftedAfter = (await packageAccuracy(child.packageDir, drifted)).accuracy;
      const cleanChild = await packageAccuracy(child.packageDir, clean);
      const cleanAfter = cleanChild.accuracy;
      Object.assign(result, {
        finetune_field_labels: fieldN,
        finetune_s: round(ftS, 1),
        drifted_before: round(driftedBefore, 4),
        drifted_after: round(driftedAfter, 4),
        clean_after: round(cleanAfter, 4),
        clean_delta_points: round((cleanAfter - accuracy) * 100, 1),
        // The gate's per-class rule, on the same clean holdout.
        worst_class_drop_points: round(Math.max(...classDropPoints(cleanBase, cleanChild)), 1),
        finetune_targets: 'drifted_after > 0.90, clean_delta_points >= -1, worst_class_drop_points <= 3',
      });
    }
    return result;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
