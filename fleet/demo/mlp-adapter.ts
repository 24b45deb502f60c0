import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { imageToTensor } from '../../shared/inference/preprocess.js';
import { imagePreprocessing, type ModelManifest } from '../../shared/schemas/index.js';
import { packModel } from '../registry/pack.js';
import { DIGIT_MLP_RECIPE, evaluateMlp, exportMlpOnnx, trainMlp } from '../training/mlp-trainer.js';
import { loadDigits } from '../training/mnist-data.js';
import type { Trainer, TrainRequest, TrainResult } from '../training/trainer.js';
import { CLEAN_HOLDOUT } from './digits.js';

/**
 * A thin stand-in `Trainer` over the MLP trainer (fast, weaker than the local CNN): it decodes
 * the examples (camera PNGs) with the agent's own preprocessing, trains from scratch on the base
 * examples plus the field examples (oversampled so a few hundred count against thousands), and
 * packs the result with the parent's outlier policy and drift baselines.
 */
export function mlpFieldTrainer(o: { oversample?: number; epochs?: number } = {}): Trainer {
  return {
    name: 'demo-mlp',
    async train(req: TrainRequest): Promise<TrainResult> {
      const t0 = Date.now();
      const say = (message: string, fraction?: number): void => req.onProgress?.({ message, ...(fraction !== undefined ? { fraction } : {}) });
      const parent = req.parent ? (JSON.parse(await readFile(join(req.parent.dir, 'manifest.json'), 'utf8')) as ModelManifest) : null;
      const pre = parent?.preprocessing.kind === 'image' ? parent.preprocessing : imagePreprocessing.parse({ kind: 'image', width: 28, height: 28, color: 'grayscale', layout: 'NCHW', dtype: 'float32', scale: 1 / 255, invert: true, fit: 'fill' });
      // Base examples (`base-*`, rendered frames) once each; field examples oversampled.
      const images: Float32Array[] = [];
      const labels: number[] = [];
      const oversample = o.oversample ?? 6;
      let field = 0;
      for (const ex of req.train) {
        const idx = req.labels.indexOf(ex.label);
        if (idx < 0) continue;
        const t = await imageToTensor(ex.bytes, pre);
        const x = Float32Array.from(t.data);
        const copies = ex.id.startsWith('base-') ? 1 : oversample;
        if (copies > 1) field++;
        for (let k = 0; k < copies; k++) {
          images.push(x);
          labels.push(idx);
        }
      }
      const epochs = o.epochs ?? (typeof req.params.epochs === 'number' ? req.params.epochs : DIGIT_MLP_RECIPE.epochs);
      say(`training ${images.length} examples (${field} field x${oversample}), ${epochs} epochs`, 0);
      const res = trainMlp({
        images,
        labels,
        ...DIGIT_MLP_RECIPE,
        epochs,
        seed: req.seed,
        onProgress: (e, loss, acc) => say(`epoch ${e}/${epochs}: loss ${loss.toFixed(3)}, train accuracy ${(acc * 100).toFixed(1)}%`, e / epochs),
      });
      const holdout = loadDigits(CLEAN_HOLDOUT);
      const cleanAccuracy = evaluateMlp(res.weights, holdout.images, holdout.labels);
      const work = `${req.outputDir}.work`;
      await rm(work, { recursive: true, force: true });
      await mkdir(work, { recursive: true });
      await writeFile(join(work, 'model.onnx'), exportMlpOnnx(res.weights));
      // The parent's golden inputs: the same frames must still be read the same way.
      const golden: Array<{ file: string; label?: string }> = [];
      for (const g of parent?.golden ?? []) {
        if (!g.file || !req.parent) continue;
        const file = join(work, g.file.split('/').pop()!);
        await writeFile(file, await readFile(join(req.parent.dir, g.file)));
        golden.push({ file, label: g.expected_label });
      }
      const params = { ...DIGIT_MLP_RECIPE, epochs, oversample };
      await rm(req.outputDir, { recursive: true, force: true });
      await packModel({
        onnxPath: join(work, 'model.onnx'),
        outDir: req.outputDir,
        labels: [...req.labels],
        name: req.model.name,
        version: req.model.version,
        description: 'Digit classifier (MLP) retrained on base digits plus labeled field samples',
        image: pre,
        golden,
        ...(parent?.outlier ? { outlier: parent.outlier } : {}),
        ...(parent?.drift_baseline ? { driftBaseline: parent.drift_baseline } : {}),
        evaluation: { holdout_accuracy: cleanAccuracy, holdout_count: holdout.images.length, train_count: images.length },
        lineage: { dataset_version: req.datasetVersion, trainer: 'demo-mlp', code_version: 'edgeloop', ...(req.parent ? { parent: req.parent.ref } : {}) },
        ...(req.signKeyPem ? { signKeyPem: req.signKeyPem } : {}),
      });
      await rm(work, { recursive: true, force: true });
      return {
        packageDir: req.outputDir,
        metrics: { train_accuracy: res.trainAccuracy, final_loss: res.finalLoss, clean_holdout_accuracy: cleanAccuracy },
        durationMs: Date.now() - t0,
        run: { trainer: 'demo-mlp', params, seed: req.seed, code_version: 'edgeloop' },
      };
    },
  };
}
