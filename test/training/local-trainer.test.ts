import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as agentMain } from '../../agent/cli/main.js';
import { renderBaseExamples, renderLabelledDigits } from '../../fleet/demo/base-model.js';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import { DIGIT_LABELS } from '../../fleet/adapters/trainers/digit-model.js';
import { classBalancedWeights, FINE_TUNE_RECIPE, localTrainer } from '../../fleet/adapters/trainers/local-trainer.js';
import { exportMlpOnnx, initMlp } from '../helpers/mlp-trainer.js';
import { packageAccuracy } from '../../fleet/app/training/package-accuracy.js';
import { validatePackageDir } from '../../fleet/app/training/package-check.js';
import type { TrainingExample, TrainProgress, TrainRequest } from '../../fleet/app/training/trainer.js';
import { modelManifest } from '../../shared/schemas/index.js';
import type { Io } from '../../shared/cli.js';
import { fleetKeys, tempDir } from '../helpers/packages.js';
import { trainerContract } from '../fleet/training/trainer-contract.js';

/** The demo's pit-3 camera drift (fleet/ml/digits.ts). */
const DRIFT = { rotateDeg: 35, blurSigma: 1.2, dim: 0.45 };

let tmp: ReturnType<typeof tempDir>;
let base: TrainingExample[];
const created = new Date('2026-01-02T03:04:05Z');
const trainer = localTrainer({ now: () => created });

function request(name: string, over: Partial<TrainRequest> = {}): TrainRequest {
  return { model: { name: 'digits', version: '1.0.0' }, datasetVersion: 'ds-test', train: base, labels: DIGIT_LABELS, parent: null, params: {}, seed: 1, outputDir: join(tmp.dir, name), signKeyPem: fleetKeys().privateKeyPem, ...over };
}

beforeAll(async () => {
  tmp = tempDir();
  base = await renderBaseExamples({ count: 1200 });
}, 120_000);
afterAll(() => tmp.cleanup());

describe('local trainer', () => {
  it('is deterministic: the same examples and seed give bit-identical ONNX, with lineage and progress', async () => {
    const small = base.slice(0, 300);
    const progress: TrainProgress[] = [];
    const params = { epochs: 1, c1: 4, c2: 8, hidden: 16 };
    const a = await trainer.train(request('det-a', { train: small, params, runId: 'run-1', onProgress: (p) => progress.push(p) }));
    const b = await trainer.train(request('det-b', { train: small, params }));
    const c = await trainer.train(request('det-c', { train: small, params, seed: 2 }));
    const bytes = (d: string): Buffer => readFileSync(join(d, 'model.onnx'));
    expect(bytes(a.packageDir).equals(bytes(b.packageDir))).toBe(true);
    expect(bytes(a.packageDir).equals(bytes(c.packageDir))).toBe(false);

    const m = await validatePackageDir(a.packageDir, { expect: { name: 'digits', version: '1.0.0' }, labels: DIGIT_LABELS });
    expect(m.lineage).toEqual({ dataset_version: 'ds-test', training_run: 'run-1', trainer: 'local', code_version: 'edgeloop-local-cnn/1' });
    expect(m.created_at).toBe(created.toISOString());
    expect(m.signature?.alg).toBe('ed25519');
    expect(m.preprocessing).toMatchObject({ kind: 'image', width: 28, height: 28, color: 'grayscale', invert: true });
    expect(m.outlier).toMatchObject({ min_confidence: 0.7 });
    expect(m.drift_baseline?.class_distribution).toHaveLength(10);
    expect(m.drift_baseline?.brightness?.freqs.reduce((x, y) => x + y, 0)).toBeCloseTo(1, 5);
    expect(m.files.map((f) => f.role)).toEqual(expect.arrayContaining(['model', 'labels']));
    const epochLine = progress.find((p) => p.metrics?.epoch === 1);
    expect(epochLine).toMatchObject({ message: expect.stringMatching(/^epoch 1\/1: loss /), metrics: { loss: expect.any(Number), accuracy: expect.any(Number) } });
    expect(progress.at(-1)?.fraction).toBe(1);
    expect(a.run).toMatchObject({ trainer: 'local', seed: 1, code_version: 'edgeloop-local-cnn/1', params: { epochs: 1, c1: 4, fineTuned: false } });
    expect(a.metrics.train_count).toBe(300);
  }, 180_000);

  let parentDir = '';
  it('writes a package the real agent loads and classifies digits with', async () => {
    const res = await trainer.train(request('base', { params: { epochs: 2 } }));
    parentDir = res.packageDir;
    const m = modelManifest.parse(JSON.parse(readFileSync(join(parentDir, 'manifest.json'), 'utf8')));
    expect(m.golden.length).toBeGreaterThanOrEqual(8);

    const holdout = await renderLabelledDigits({ count: 20, offset: 8000 });
    const dir = join(tmp.dir, 'images');
    mkdirSync(dir, { recursive: true });
    const files = holdout.map((h, i) => {
      const f = join(dir, `h${i}.png`);
      writeFileSync(f, h.bytes);
      return f;
    });
    const pub = join(tmp.dir, 'fleet.pub');
    writeFileSync(pub, fleetKeys().publicKeyPem);
    const stdout: string[] = [];
    const io: Io = { out: (l) => stdout.push(...l.split('\n')), err: () => undefined };
    expect(await agentMain(['infer', '--model', parentDir, '--public-key', pub, '--json', ...files], io)).toBe(0);
    const lines = stdout.filter(Boolean).map((l) => JSON.parse(l) as { file: string; label: string; model_version: string });
    expect(lines).toHaveLength(20);
    const correct = lines.filter((l, i) => l.file === files[i] && l.label === holdout[i]!.label).length;
    expect(correct).toBeGreaterThanOrEqual(16);
  }, 300_000);

  it('fine-tunes from the parent weights: a few drifted field labels lift drifted accuracy, clean holds', async () => {
    expect(parentDir).not.toBe('');
    const field = (await renderBaseExamples({ count: 200, offset: 9000, drift: DRIFT })).map((e) => ({ ...e, id: `field-${e.id}`, origin: 'field' as const }));
    const drifted = await renderLabelledDigits({ count: 150, offset: 9500, drift: DRIFT });
    const clean = await renderLabelledDigits({ count: 150, offset: 8000 });
    const res = await trainer.train(
      request('child', { model: { name: 'digits', version: '1.1.0' }, train: [...base, ...field], parent: { ref: { name: 'digits', version: '1.0.0' }, dir: parentDir }, params: { epochs: 2 } }),
    );
    expect(res.run.params).toMatchObject({ fineTuned: true, fieldWeight: FINE_TUNE_RECIPE.fieldWeight, baseWeight: FINE_TUNE_RECIPE.baseWeight, lr: FINE_TUNE_RECIPE.lr, balanceClasses: true });
    const before = { drifted: (await packageAccuracy(parentDir, drifted)).accuracy, clean: (await packageAccuracy(parentDir, clean)).accuracy };
    const after = { drifted: (await packageAccuracy(res.packageDir, drifted)).accuracy, clean: (await packageAccuracy(res.packageDir, clean)).accuracy };
    expect(after.drifted).toBeGreaterThanOrEqual(before.drifted + 0.2);
    expect(after.clean).toBeGreaterThanOrEqual(before.clean - 0.05);
    const m = await validatePackageDir(res.packageDir);
    expect(m.lineage?.parent).toEqual({ name: 'digits', version: '1.0.0' });
    // Drift stays measured against the base set: the drifted field labels are not the reference.
    expect(m.drift_baseline).toEqual((await validatePackageDir(parentDir)).drift_baseline);
    expect(m.evaluation).toMatchObject({ field_count: 200 });
  }, 300_000);

  it('balances classes within the base set and within the field set', () => {
    // Base: three 0s and one 1 at weight 2; field: one 0 and two 2s at weight 6.
    const w = classBalancedWeights([2, 2, 2, 2, 6, 6, 6], [0, 0, 0, 1, 0, 2, 2], [true, true, true, true, false, false, false], 3);
    const draws = (pick: number[]): number => pick.reduce((a, i) => a + w[i]!, 0);
    // Same total per group as before (8 and 18), split evenly over the classes present there.
    expect([draws([0, 1, 2]), draws([3])]).toEqual([4, 4]);
    expect(draws([4])).toBeCloseTo(9, 10);
    expect(draws([5, 6])).toBeCloseTo(9, 10);
  });

  it('answers bad input with coded errors', async () => {
    // A parent that is not this trainer's CNN (the old MLP) cannot be fine-tuned.
    const work = join(tmp.dir, 'mlp-work');
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, 'model.onnx'), exportMlpOnnx(initMlp(784, 8, 10, 1)));
    const mlpDir = join(tmp.dir, 'mlp');
    await packModel({ onnxPath: join(work, 'model.onnx'), outDir: mlpDir, labels: [...DIGIT_LABELS], name: 'digits', version: '0.9.0' });
    const small = base.slice(0, 20);
    await expect(trainer.train(request('e1', { train: small, parent: { ref: { name: 'digits', version: '0.9.0' }, dir: mlpDir } }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringMatching(/not a local-trainer CNN/) });
    await expect(trainer.train(request('e2', { train: small, params: { epochs: 0, learningRate: 1 } }))).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/unknown parameter learningRate.*epochs must be a positive integer|epochs must be a positive integer.*unknown parameter learningRate/) });
    await expect(trainer.train(request('e2b', { train: small, params: { balanceClasses: 'yes' } }))).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/balanceClasses must be true or false/) });
    const corrupt = [...small, { id: 'field-bad', label: '3', bytes: Buffer.from('not a png') }];
    await expect(trainer.train(request('e3', { train: corrupt }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', details: { sample_id: 'field-bad' } });
    await expect(trainer.train(request('e4', { train: [{ ...small[0]!, label: 'x' }] }))).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    const ac = new AbortController();
    await expect(
      trainer.train(request('e5', { train: base.slice(0, 100), params: { epochs: 5, c1: 2, c2: 2, hidden: 4 }, signal: ac.signal, onProgress: (p) => (p.metrics?.epoch === 1 ? ac.abort() : undefined) })),
    ).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
  });
});

trainerContract('local', async () => {
  const train = await renderBaseExamples({ count: 100 });
  const holdout = await renderBaseExamples({ count: 30, offset: 8000 });
  return {
    trainer: localTrainer({ now: () => created }),
    labels: DIGIT_LABELS,
    train,
    holdout,
    params: { epochs: 6, threads: 1 },
    // In-process: the request is all it reads, so what it trained on shows in its package, whose
    // golden inputs are the training images it is surest of.
    received: async (outputDir) => {
      if (!existsSync(join(outputDir, 'manifest.json'))) return { sha256: [], complete: false };
      const m = modelManifest.parse(JSON.parse(readFileSync(join(outputDir, 'manifest.json'), 'utf8')));
      return { sha256: m.golden.map((g) => createHash('sha256').update(readFileSync(join(outputDir, g.file!))).digest('hex')), complete: false };
    },
    long: { params: { epochs: 500, c1: 2, c2: 2, hidden: 4, threads: 1 }, underway: (p) => p.metrics?.epoch === 1 },
    abortWithinMs: 5000,
  };
});
