import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { exportDataset } from '../../fleet/adapters/trainers/command-trainer.js';
import { datasetIdOf } from '../../fleet/app/labels/datasets.js';
import { loopModelConfig } from '../../fleet/app/training/config.js';
import type { RunStart } from '../../fleet/app/training/run-record.js';
import { datasetStep } from '../../fleet/app/training/steps/dataset.js';
import { prepareStep } from '../../fleet/app/training/steps/prepare.js';
import { trainStep } from '../../fleet/app/training/steps/train.js';
import type { Trainer, TrainRequest } from '../../fleet/app/training/trainer.js';
import type { DatasetManifest } from '../../fleet/core/labels/dataset-schema.js';
import { DETECT_CLASSES, DETECTOR, registerDetector, runStepDeps, seedDetectSamples } from '../helpers/detect-samples.js';
import { tempDir } from '../helpers/packages.js';
import { openTestFleet, type TestFleet } from '../fleet/http/context.js';

type Box = { label: string; box: [number, number, number, number] };

/** The labels a person gave, by sample id; sizes and formats vary on purpose. */
const LABELED: Record<string, { width: number; height: number; format: 'png' | 'jpeg'; boxes: Box[] }> = {
  'd-01': { width: 320, height: 240, format: 'png', boxes: [{ label: 'red', box: [10.5, 20, 110, 120.25] }, { label: 'blue', box: [200, 30, 319, 239] }] },
  'd-02': { width: 640, height: 360, format: 'jpeg', boxes: [{ label: 'blue', box: [0, 0, 640, 360] }] },
  'd-03': { width: 200, height: 200, format: 'png', boxes: [] },
  'd-04': { width: 300, height: 100, format: 'jpeg', boxes: [{ label: 'red', box: [1, 1, 2, 2] }, { label: 'red', box: [50, 10, 90, 95] }, { label: 'blue', box: [100, 10, 299, 99] }] },
  'd-05': { width: 150, height: 150, format: 'png', boxes: [{ label: 'blue', box: [30, 40, 60, 80] }] },
  'd-06': { width: 256, height: 128, format: 'png', boxes: [{ label: 'red', box: [5, 6, 7, 8] }] },
  'd-07': { width: 180, height: 120, format: 'jpeg', boxes: [] },
  'd-08': { width: 400, height: 300, format: 'png', boxes: [{ label: 'red', box: [100, 100, 300, 250] }] },
};

let f: TestFleet;
const tmp = tempDir('edgeloop-detect-export-');
let dataset: DatasetManifest;
let request: TrainRequest;

/** A trainer that only records what it was asked (the export is what is under test). */
class RecordingTrainer implements Trainer {
  readonly name = 'recording';
  train(req: TrainRequest): never {
    request = req;
    throw new Error('recorded');
  }
}

beforeAll(async () => {
  f = await openTestFleet();
  await registerDetector(f.ctx, tmp.dir);
  await f.ctx.devices.register('cam-1', { tags: { site: 'pit-1' } });
  await seedDetectSamples(
    f.ctx,
    Object.entries(LABELED).map(([id, s]) => ({ id, device: 'cam-1', width: s.width, height: s.height, format: s.format, detections: s.boxes.slice(0, 1).map((b) => ({ ...b, score: 0.4 })) })),
  );
  for (const [id, s] of Object.entries(LABELED)) await f.ctx.labels.assignBoxes(id, s.boxes, { actor: 'lena' });

  const config = loopModelConfig.parse({ name: DETECTOR.name, labels: DETECT_CLASSES, trainer: 'recording', holdout: { kind: 'hash', fraction: 0.4, salt: 'boxes' } });
  const run = f.ctx.trainingRuns.start({ id: 'run_boxes', model: config.name, trainer: 'recording', params: {}, seed: 1, trigger: { kind: 'manual', reason: 'test' }, actor: 'otto', parent: null });
  const start: RunStart = { run, config, trainer: new RecordingTrainer(), parent: null, workDir: join(f.dir, 'work', 'run_boxes'), signal: new AbortController().signal };
  const deps = runStepDeps(f.ctx);
  const ready = await datasetStep(deps, await prepareStep(deps, start));
  dataset = ready.dataset;
  await expect(trainStep(deps, ready)).rejects.toThrow(/recorded/);
});
afterAll(async () => {
  await f?.close();
  tmp.cleanup();
});

describe('dataset versions with box labels', () => {
  it('hold each sample\u2019s boxes and image size; the id changes when a box moves, class-label ids stay what they were', async () => {
    expect(dataset.entries.map((e) => e.sample_id)).toEqual(Object.keys(LABELED));
    for (const e of dataset.entries) {
      const want = LABELED[e.sample_id]!;
      expect(e).toMatchObject({ boxes: want.boxes, frame: { width: want.width, height: want.height }, labeled_by: 'lena' });
      expect(e.label).toBeUndefined();
    }
    expect(dataset.counts).toEqual({ red: 5, blue: 4 });
    const moved = dataset.entries.map((e, i) => (i === 0 ? { ...e, boxes: [{ label: 'red', box: [11.5, 20, 110, 120.25] as [number, number, number, number] }, ...e.boxes!.slice(1)] } : e));
    expect(datasetIdOf({ ...dataset, entries: moved })).not.toBe(dataset.id);
    expect(datasetIdOf(dataset)).toBe(dataset.id);
    // Pinned before box labels existed: a class-label version keeps its id.
    const classEntries = [
      { sample_id: 'cls-2', label: 'dog', blob_sha256: 'a'.repeat(64), device_id: 'cam-1', labeled_by: 'lena', labeled_at: '2025-03-01T10:00:00.000Z' },
      { sample_id: 'cls-1', label: 'cat', blob_sha256: 'b'.repeat(64), device_id: 'cam-1', labeled_by: 'lena', labeled_at: '2025-03-01T10:00:01.000Z', captured_at: '2025-03-01T09:00:00.000Z', split: 'train' as const },
    ];
    expect(datasetIdOf({ entries: classEntries })).toBe('01895796b2c7ad6966d45980e301e3224ccdaa1f1d4a97e33958fe75442d3f32');
    expect(datasetIdOf({ entries: classEntries, base: [], split_rule: { kind: 'hash', fraction: 0.2, salt: 'x' } })).toBe('9440329c4cf2e5a3912a4834ada1199a193f85851e5979b5a1b786c24dc81863');
  });

  it('reach the trainer with their boxes: train is the train split, val the field holdout', () => {
    const held = dataset.entries.filter((e) => e.split === 'field_holdout').map((e) => e.sample_id);
    expect(held.length).toBeGreaterThan(0);
    expect(held.length).toBeLessThan(dataset.entries.length);
    expect(request.val?.map((e) => e.id).sort()).toEqual([...held].sort());
    expect(request.train.map((e) => e.id).sort()).toEqual(Object.keys(LABELED).filter((id) => !held.includes(id)));
    for (const ex of [...request.train, ...request.val!]) expect(ex.boxes).toEqual(LABELED[ex.id]!.boxes);
  });
});

/** Image size as libvips reads the exported file (independent of the exporter). */
const sizeOf = async (file: string): Promise<{ width: number; height: number }> => {
  const m = await sharp(file).metadata();
  return { width: m.width!, height: m.height! };
};

const expectBoxesClose = (got: Box[], want: Box[]): void => {
  expect(got.map((b) => b.label)).toEqual(want.map((b) => b.label));
  got.forEach((b, i) => b.box.forEach((v, k) => expect(Math.abs(v - want[i]!.box[k]!)).toBeLessThanOrEqual(1)));
};

describe('export for the command trainer', () => {
  it('auto picks the YOLO layout for box labels; it parses back to the same boxes within 1 px', async () => {
    const dir = join(mkdtempSync(join(tmp.dir, 'yolo-')), 'ds');
    const out = await exportDataset(request, dir);
    expect(out.format).toBe('yolo');
    const data = parseYaml(readFileSync(join(dir, 'data.yaml'), 'utf8')) as { path: string; train: string; val: string; nc: number; names: Record<string, string> };
    expect(data).toEqual({ path: dir, train: 'images/train', val: 'images/val', nc: 2, names: { 0: 'red', 1: 'blue' } });
    let images = 0;
    for (const [split, examples] of [['train', request.train], ['val', request.val!]] as const) {
      const files = readdirSync(join(dir, 'images', split)).sort();
      expect(files).toHaveLength(examples.length);
      expect(readdirSync(join(dir, 'labels', split)).sort()).toEqual(files.map((x) => x.replace(/\.(png|jpg)$/, '.txt')));
      for (const file of files) {
        const id = file.replace(/\.(png|jpg)$/, '');
        const want = LABELED[id]!;
        expect(file.endsWith(want.format === 'jpeg' ? '.jpg' : '.png')).toBe(true);
        const { width, height } = await sizeOf(join(dir, 'images', split, file));
        const text = readFileSync(join(dir, 'labels', split, `${id}.txt`), 'utf8');
        if (want.boxes.length === 0) expect(text).toBe('');
        const got = text
          .split('\n')
          .filter(Boolean)
          .map((line): Box => {
            const [c, cx, cy, w, h] = line.split(' ').map(Number) as [number, number, number, number, number];
            for (const v of [cx, cy, w, h]) expect(v >= 0 && v <= 1).toBe(true);
            return { label: data.names[c]!, box: [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height] };
          });
        expectBoxesClose(got, want.boxes);
        images++;
      }
    }
    expect(images).toBe(Object.keys(LABELED).length);
    expect(out.summary).toMatch(/^exported \d+ train and \d+ val images with 9 boxes \(yolo layout\)$/);
  });

  it('writes COCO instances files beside the same images; they parse back to the same boxes within 1 px', async () => {
    const dir = join(mkdtempSync(join(tmp.dir, 'coco-')), 'ds');
    expect((await exportDataset(request, dir, 'coco')).format).toBe('coco');
    let annotations = 0;
    for (const [split, examples] of [['train', request.train], ['val', request.val!]] as const) {
      type Coco = {
        images: Array<{ id: number; file_name: string; width: number; height: number }>;
        annotations: Array<{ id: number; image_id: number; category_id: number; bbox: [number, number, number, number]; area: number; iscrowd: number }>;
        categories: Array<{ id: number; name: string }>;
      };
      const coco = JSON.parse(readFileSync(join(dir, 'annotations', `instances_${split}.json`), 'utf8')) as Coco;
      expect(coco.categories.map((c) => [c.id, c.name])).toEqual([
        [1, 'red'],
        [2, 'blue'],
      ]);
      expect(coco.images).toHaveLength(examples.length);
      expect(new Set(coco.annotations.map((a) => a.id)).size).toBe(coco.annotations.length);
      for (const img of coco.images) {
        const id = img.file_name.replace(/\.(png|jpg)$/, '');
        const want = LABELED[id]!;
        expect(await sizeOf(join(dir, 'images', split, img.file_name))).toEqual({ width: img.width, height: img.height });
        const mine = coco.annotations.filter((a) => a.image_id === img.id);
        if (want.boxes.length === 0) expect(mine).toEqual([]);
        for (const a of mine) {
          expect(a.iscrowd).toBe(0);
          expect(a.area).toBeCloseTo(a.bbox[2] * a.bbox[3], 6);
        }
        const name = (cat: number): string => coco.categories.find((c) => c.id === cat)!.name;
        expectBoxesClose(
          mine.map((a) => ({ label: name(a.category_id), box: [a.bbox[0], a.bbox[1], a.bbox[0] + a.bbox[2], a.bbox[1] + a.bbox[3]] })),
          want.boxes,
        );
        annotations += mine.length;
      }
    }
    expect(annotations).toBe(9);
    expect(readdirSync(dir).sort()).toEqual(['annotations', 'dataset.json', 'images', 'labels.txt']);
  });

  it('keeps the edgeloop layout for a classifier\u2019s dataset and refuses yolo for one without boxes', async () => {
    const classReq: TrainRequest = { ...request, val: [], train: [{ id: 'c-1', label: 'red', bytes: await sharp({ create: { width: 8, height: 8, channels: 3, background: 'red' } }).png().toBuffer() }] };
    const dir = join(mkdtempSync(join(tmp.dir, 'cls-')), 'ds');
    expect((await exportDataset(classReq, dir)).format).toBe('edgeloop');
    expect(readdirSync(join(dir, 'train'))).toEqual(['red']);
    await expect(exportDataset(classReq, join(dir, '..', 'y'), 'yolo')).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringMatching(/needs box labels/) });
  });
});
