import { mkdirSync, writeFileSync } from 'node:fs';
import { main as agentMain } from '../../agent/cli/main.js';
import type { Io } from '../../shared/cli.js';
import { iou } from '../../shared/inference/detect.js';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainDetectorPackage } from '../../fleet/adapters/trainers/local-detector.js';
import { localTrainer } from '../../fleet/adapters/trainers/local-trainer.js';
import { evaluateStep } from '../../fleet/app/training/steps/evaluate.js';
import type { Pushed } from '../../fleet/app/training/run-record.js';
import { readYoloDataset } from '../../fleet/adapters/trainers/yolo-dataset.js';
import { evaluateDetectionModels, type DetectionEvalExample } from '../../fleet/app/training/evaluate-detection.js';
import { validatePackageDir } from '../../fleet/app/training/package-check.js';
import { gateConfig, judge } from '../../fleet/core/training/gate.js';
import { makeScenes, type Scene } from '../../fleet/ml/detector/scenes.js';
import { loadDigits } from '../../fleet/ml/mnist-data.js';
import type { TrainProgress } from '../../fleet/app/training/trainer.js';
import { fleetKeys, tempDir } from '../helpers/packages.js';
import { writeYoloScenes } from '../helpers/yolo-scenes.js';

/** Single class: what the demo trains (docs/benchmarks.md has why). */
const ONE_CLASS = { names: ['digit'], classOf: () => 0 };
const PARAMS = { size: 64, epochs: 2, threads: 2 };

let tmp: ReturnType<typeof tempDir>;
let dataset: string;
let holdout: DetectionEvalExample[];

const asHoldout = (scenes: readonly Scene[], label: (d: number) => string): DetectionEvalExample[] =>
  scenes.map((s, i) => ({ id: `h${i}`, bytes: s.png, boxes: s.boxes.map((b) => ({ label: label(b.cls), box: [b.x1, b.y1, b.x2, b.y2] as const })) }));

beforeAll(async () => {
  tmp = tempDir();
  const digits = loadDigits({ count: 2000 });
  dataset = await writeYoloScenes(join(tmp.dir, 'ds'), { train: makeScenes(digits, 300, 1), val: makeScenes(loadDigits({ count: 300, offset: 2000 }), 40, 2) }, ONE_CLASS);
  holdout = asHoldout(makeScenes(loadDigits({ count: 300, offset: 2400 }), 60, 3), () => 'digit');
}, 60_000);
afterAll(() => tmp.cleanup());

describe('the local detector trainer on a YOLO txt dataset', () => {
  it('trains a package the agent decodes; it scores far above an untrained one on mAP, and the gate compares mAP', async () => {
    const progress: TrainProgress[] = [];
    const common = { datasetDir: dataset, parent: null, seed: 1, signKeyPem: fleetKeys().privateKeyPem, datasetVersion: 'ds-1' };
    const trained = await trainDetectorPackage({ ...common, model: { name: 'digits-det', version: '1.1.0' }, params: PARAMS, outputDir: join(tmp.dir, 'trained'), onProgress: (p) => progress.push(p) });
    // The same recipe with a step too small to move the weights: the untrained model.
    const untrained = await trainDetectorPackage({ ...common, model: { name: 'digits-det', version: '1.0.0' }, params: { ...PARAMS, epochs: 1, lr: 1e-9 }, outputDir: join(tmp.dir, 'untrained') });

    const m = await validatePackageDir(trained.packageDir, { expect: { name: 'digits-det', version: '1.1.0' }, labels: ['digit'] });
    expect(m.task).toBe('detection');
    expect(m.postprocessing).toMatchObject({ decoder: { name: 'yolo', layout: 'v8' }, letterbox: { pad_value: 255 } });
    expect(m.preprocessing).toMatchObject({ width: 64, height: 64, color: 'grayscale', invert: true, fit: 'contain' });
    expect(m.lineage).toMatchObject({ dataset_version: 'ds-1', trainer: 'local', code_version: 'edgeloop-local-detector/1' });
    expect(m.golden.length).toBeGreaterThan(0);
    expect(progress.some((p) => /^epoch 2\/2: loss /.test(p.message))).toBe(true);
    expect(trained.metrics.val_map50).toBeGreaterThan(0);

    const [base, cand] = await evaluateDetectionModels(
      [
        { ref: { name: 'digits-det', version: '1.0.0' }, dir: untrained.packageDir },
        { ref: { name: 'digits-det', version: '1.1.0' }, dir: trained.packageDir },
      ],
      { clean: holdout.slice(0, 30), field: holdout.slice(30) },
      { warmup: 1, timedRuns: 1 },
    );
    // Measured on a loaded 2-core host: trained mAP@0.5 0.60 clean / 0.69 field after these 600 draws, untrained 0.
    expect(base!.clean.map50).toBeLessThan(0.1);
    expect(cand!.clean.map50).toBeGreaterThan(0.4);
    expect(cand!.field.map50).toBeGreaterThan(base!.field.map50 + 0.3);
    expect(cand!.clean.per_class.digit!.count).toBe(holdout.slice(0, 30).reduce((n, h) => n + h.boxes.length, 0));
    expect(cand!.clean.map50_95).toBeLessThanOrEqual(cand!.clean.map50);

    const gate = gateConfig.parse({ latency_ratio_max: 100, class_min_samples: 1 });
    const better = judge(cand!, base!, gate);
    expect(better.passed).toBe(true);
    expect(better.checks.find((c) => c.name === 'field_gain')?.detail).toMatch(/^field holdout mAP@0\.5 /);
    const worse = judge(base!, cand!, gate);
    expect(worse.passed).toBe(false);
    expect(worse.reasons).toEqual(expect.arrayContaining([expect.stringMatching(/^field holdout mAP@0\.5 .* at least \+2 needed\)$/), expect.stringMatching(/^clean holdout mAP@0\.5 /), expect.stringMatching(/^class digit on the clean holdout \(AP@0\.5\)/)]));
    // A detector judged on accuracy is a configuration mistake, named.
    expect(() => judge(cand!, base!, gateConfig.parse({ metric: 'accuracy' }))).toThrow(/gate metric is accuracy, but the model is a detector/);

    // The agent runs the package unchanged: its own letterbox, decoder and NMS, boxes in the frame's pixels.
    const imgDir = join(tmp.dir, 'frames');
    mkdirSync(imgDir, { recursive: true });
    const frames = holdout.slice(30, 40).map((h, i) => {
      const f = join(imgDir, `f${i}.png`);
      writeFileSync(f, h.bytes);
      return f;
    });
    const pub = join(tmp.dir, 'fleet.pub');
    writeFileSync(pub, fleetKeys().publicKeyPem);
    const stdout: string[] = [];
    const io: Io = { out: (l) => stdout.push(...l.split('\n')), err: () => undefined };
    expect(await agentMain(['infer', '--model', trained.packageDir, '--public-key', pub, '--json', ...frames], io)).toBe(0);
    const results = stdout.filter(Boolean).map((l) => JSON.parse(l) as { file: string; detections: Array<{ label: string; score: number; box: [number, number, number, number] }> });
    expect(results.map((r) => r.file)).toEqual(frames);
    let truths = 0;
    let found = 0;
    results.forEach((r, i) => {
      for (const t of holdout[30 + i]!.boxes) {
        truths++;
        if (r.detections.some((d) => d.label === 'digit' && iou(d.box, t.box) >= 0.5)) found++;
      }
      for (const d of r.detections) expect(d.box.every((v) => v >= 0 && v <= 96)).toBe(true);
    });
    // Measured: 19 of the 21 true boxes found at IoU >= 0.5 on these 10 frames.
    expect(found / truths).toBeGreaterThan(0.5);
  }, 240_000);
});

describe('the local trainer behind the Trainer port', () => {
  it('trains a detector from examples with boxes, and fine-tunes one from a detector parent without being told', async () => {
    const scenes = makeScenes(loadDigits({ count: 200 }), 40, 7);
    const train = scenes.map((s, i) => ({ id: `s${i}`, origin: (i < 30 ? 'base' : 'field') as 'base' | 'field', label: 'digit', bytes: s.png, boxes: s.boxes.map((b) => ({ label: 'digit', box: [b.x1, b.y1, b.x2, b.y2] as const })) }));
    const trainer = localTrainer();
    const req = { model: { name: 'det', version: '1.0.0' }, datasetVersion: 'ds-2', train, labels: ['digit'], parent: null, params: { size: 32, epochs: 1, widths: [4, 4, 4, 4], hidden: 8 }, seed: 3, outputDir: join(tmp.dir, 'port-a') };
    const first = await trainer.train(req);
    expect(first.run.params).toMatchObject({ task: 'detection', fineTuned: false, size: 32 });
    expect((await validatePackageDir(first.packageDir, { expect: req.model, labels: ['digit'] })).task).toBe('detection');
    const second = await trainer.train({ ...req, model: { name: 'det', version: '1.1.0' }, params: { epochs: 1 }, parent: { ref: req.model, dir: first.packageDir }, outputDir: join(tmp.dir, 'port-b') });
    expect(second.run.params).toMatchObject({ task: 'detection', fineTuned: true, size: 32, widths: [4, 4, 4, 4] });
    await expect(trainer.train({ ...req, train: [{ ...train[0]!, boxes: [{ label: 'cat', box: [0, 0, 5, 5] }] }], outputDir: join(tmp.dir, 'port-c') })).rejects.toMatchObject({ code: 'INPUT_INVALID', message: expect.stringMatching(/has a "cat" box, not one of digit/) });
  }, 120_000);
});

describe('the evaluate step of a training run', () => {
  it('scores a detection candidate against its detector parent by mAP, and refuses holdout examples without boxes', async () => {
    const scenes = makeScenes(loadDigits({ count: 200 }), 40, 8);
    const train = scenes.map((s, i) => ({ id: `s${i}`, origin: 'base' as const, label: 'digit', bytes: s.png, boxes: s.boxes.map((b) => ({ label: 'digit', box: [b.x1, b.y1, b.x2, b.y2] as const })) }));
    const trainer = localTrainer();
    const req = { datasetVersion: 'ds-3', train, labels: ['digit'], parent: null, params: { task: 'detection', size: 32, epochs: 1, widths: [4, 4, 4, 4], hidden: 8 }, seed: 4 };
    const parent = await trainer.train({ ...req, model: { name: 'det', version: '1.0.0' }, outputDir: join(tmp.dir, 'step-parent') });
    const cand = await trainer.train({ ...req, model: { name: 'det', version: '1.1.0' }, params: { epochs: 1 }, parent: { ref: { name: 'det', version: '1.0.0' }, dir: parent.packageDir }, outputDir: join(tmp.dir, 'step-cand') });
    const holdout = asHoldout(makeScenes(loadDigits({ count: 100, offset: 3000 }), 12, 9), () => 'digit').map((h) => ({ ...h, label: 'digit' }));
    const emitted: string[] = [];
    const record = {
      parent: { name: 'det', version: '1.0.0', ref: 'det@1.0.0' },
      parentDir: parent.packageDir,
      split: { train: [], clean: holdout.slice(0, 6), field: holdout.slice(6) },
      config: { evaluation: { warmup: 1, intra_op_threads: 1 } },
      pushed: { ref: 'det@1.1.0' },
      candidate: { name: 'det', version: '1.1.0' },
      trained: cand,
    } as unknown as Pushed;
    const r = await evaluateStep({ emit: (_phase, message) => void emitted.push(message) }, record);
    expect(r.reports.candidate).toMatchObject({ task: 'detection', model: { name: 'det', version: '1.1.0' }, clean: { task: 'detection', count: 6 }, field: { count: 6 } });
    expect(r.reports.production).toMatchObject({ task: 'detection', model: { name: 'det', version: '1.0.0' } });
    expect(emitted[0]).toMatch(/^evaluating det@1\.1\.0 against det@1\.0\.0 on 6 clean and 6 field holdout examples/);
    const { boxes: _dropped, ...noBoxes } = holdout[0]!;
    await expect(evaluateStep({ emit: () => undefined }, { ...record, split: { train: [], clean: [noBoxes], field: holdout.slice(6) } } as unknown as Pushed)).rejects.toMatchObject({
      code: 'FLEET_EVALUATION_FAILED',
      message: expect.stringMatching(/clean holdout example h0 has no box labels/),
    });
  }, 120_000);
});

describe('reading the YOLO txt layout', () => {
  const write = (files: Record<string, string | Buffer>): string => {
    const dir = join(tmp.dir, `y-${Math.random().toString(36).slice(2)}`);
    for (const [f, body] of Object.entries(files)) {
      mkdirSync(join(dir, f, '..'), { recursive: true });
      writeFileSync(join(dir, f), body);
    }
    return dir;
  };
  const png = makeScenes(loadDigits({ count: 10 }), 1, 1)[0]!.png;

  it('reads names as a list or a map, a missing label file as a background image, and the val split', async () => {
    const dir = write({ 'data.yaml': 'names:\n  0: person\n  1: truck\n', 'images/train/a.png': png, 'labels/train/a.txt': '1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.1 0.1\n', 'images/train/b.png': png, 'images/val/c.png': png });
    const ds = await readYoloDataset(dir);
    expect(ds.names).toEqual(['person', 'truck']);
    expect(ds.train.map((e) => [e.id, e.boxes.length])).toEqual([['a', 2], ['b', 0]]);
    expect(ds.train[0]!.boxes[0]).toEqual({ cls: 1, cx: 0.5, cy: 0.5, w: 0.2, h: 0.4 });
    expect(ds.val.map((e) => e.id)).toEqual(['c']);
  });

  it.each([
    [{ 'data.yaml': 'nc: 2\n' }, /has no names/],
    [{ 'data.yaml': 'names: [a]\n', 'images/train/a.png': '', 'labels/train/a.txt': '0 0.5 0.5 0.2\n' }, /labels\/train\/a\.txt:1: expected "class cx cy w h", got 4 fields/],
    [{ 'data.yaml': 'names: [a]\n', 'images/train/a.png': '', 'labels/train/a.txt': '0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n' }, /a\.txt:2: class 3 is not one of the 1 names/],
    [{ 'data.yaml': 'names: [a]\n', 'images/train/a.png': '', 'labels/train/a.txt': '0 50 60 20 20\n' }, /a\.txt:1: cx cy w h must be numbers normalised to 0\.\.1/],
    [{ 'data.yaml': 'names: [a, b]\nnc: 3\n' }, /nc is 3 but names lists 2/],
    [{ 'data.yaml': 'names: [a]\n' }, /has no training images/],
  ])('refuses a malformed layout with FLEET_DATASET_LAYOUT_INVALID naming the file and line (%#)', async (files, message) => {
    await expect(readYoloDataset(write(files as Record<string, string>))).rejects.toMatchObject({ code: 'FLEET_DATASET_LAYOUT_INVALID', message: expect.stringMatching(message) });
  });
});
