/**
 * A detection dataset written in the two layouts training scripts read unchanged, so an
 * Ultralytics or torchvision script runs on `DATASET_DIR` as it is (the command trainer's
 * `dataset_format`, docs/learning-loop.md). Both put the images in the same place:
 *
 *   images/{train,val}/<id>.<jpg|png|webp>   the bytes as the device captured them
 *
 * `yolo` (Ultralytics txt):
 *
 *   labels/{train,val}/<id>.txt   one line per box: `class cx cy w h`, normalised to 0..1 by the
 *                                 image's width and height, class = index into `names`; an image
 *                                 with nothing in it has an empty file
 *   data.yaml                     path (this directory), train, val, nc, names
 *
 * `coco` (COCO JSON, e.g. torchvision `CocoDetection(root=images/train, annFile=...)`):
 *
 *   annotations/instances_{train,val}.json   images (id, file_name, width, height),
 *                                            annotations (bbox [x, y, w, h] in pixels, area,
 *                                            iscrowd 0), categories (ids from 1, in label order)
 *
 * `val` is the dataset's field holdout (TrainRequest.val), possibly empty. Boxes are in the
 * stored image's pixels (no EXIF rotation), as devices and labelers saw them.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { imageSize } from '../../../shared/inference/image-size.js';
import { sniffImageFormat } from '../../../shared/inference/preprocess.js';
import type { FrameSize } from '../../core/labels/boxes.js';
import { FleetError } from '../../errors.js';
import type { BoxLabel, TrainingExample } from '../../app/training/trainer.js';

export type DetectionFormat = 'yolo' | 'coco';

const SPLITS = ['train', 'val'] as const;
type Split = (typeof SPLITS)[number];

const EXT: Record<string, string> = { png: 'png', jpeg: 'jpg', webp: 'webp', gif: 'gif', tiff: 'tiff', unknown: 'bin' };

/** One image as written: where, its size, its boxes. */
interface WrittenImage {
  id: string;
  /** File name inside `images/<split>/`. */
  file: string;
  frame: FrameSize;
  boxes: readonly BoxLabel[];
}

/** Six decimals: under a thousandth of a pixel on a 4K frame. */
const norm = (v: number): string => String(Math.round(v * 1e6) / 1e6);

/** The YOLO label lines of one image (class cx cy w h, normalised). */
function yoloLines(boxes: readonly BoxLabel[], frame: FrameSize, classIndex: ReadonlyMap<string, number>): string {
  return boxes
    .map((b) => {
      const [x1, y1, x2, y2] = b.box;
      return `${classIndex.get(b.label)} ${norm((x1 + x2) / 2 / frame.width)} ${norm((y1 + y2) / 2 / frame.height)} ${norm((x2 - x1) / frame.width)} ${norm((y2 - y1) / frame.height)}`;
    })
    .map((l) => `${l}\n`)
    .join('');
}

/** A YAML double-quoted scalar: JSON string syntax is valid YAML. */
const yamlString = (s: string): string => JSON.stringify(s);

function dataYaml(dir: string, labels: readonly string[]): string {
  return [
    '# Ultralytics dataset file, written by edgeloop (fleet/adapters/trainers/detection-layouts.ts).',
    `path: ${yamlString(dir)}`,
    'train: images/train',
    'val: images/val',
    `nc: ${labels.length}`,
    'names:',
    ...labels.map((l, i) => `  ${i}: ${yamlString(l)}`),
    '',
  ].join('\n');
}

/** A COCO instances file for one split. Image and annotation ids count from 1 in example order. */
function cocoInstances(images: readonly WrittenImage[], labels: readonly string[], split: Split): unknown {
  const categoryId = new Map(labels.map((l, i) => [l, i + 1]));
  const annotations: unknown[] = [];
  images.forEach((img, i) => {
    for (const b of img.boxes) {
      const [x1, y1, x2, y2] = b.box;
      const w = x2 - x1;
      const h = y2 - y1;
      annotations.push({ id: annotations.length + 1, image_id: i + 1, category_id: categoryId.get(b.label), bbox: [x1, y1, w, h], area: w * h, iscrowd: 0, segmentation: [] });
    }
  });
  return {
    info: { description: `edgeloop detection dataset, ${split} split`, version: '1.0' },
    licenses: [],
    images: images.map((img, i) => ({ id: i + 1, file_name: img.file, width: img.frame.width, height: img.frame.height, edgeloop_id: img.id })),
    annotations,
    categories: labels.map((name, i) => ({ id: i + 1, name, supercategory: 'object' })),
  };
}

/**
 * Writes the detection examples of `train` and `val` in `format` under `dir`. Examples without
 * boxes (a classifier's base set) have no place in a detection layout and are left out (counted
 * as `skipped`); a box whose class is not in `labels` is `FLEET_TRAINING_FAILED` (dataset versions
 * keep only boxes of the model's classes). Returns what was written per split.
 */
export async function writeDetectionLayout(
  o: { train: readonly TrainingExample[]; val: readonly TrainingExample[]; labels: readonly string[]; format: DetectionFormat; safeName: (id: string) => string },
  dir: string,
): Promise<{ train: number; val: number; skipped: number; boxes: number }> {
  const classIndex = new Map(o.labels.map((l, i) => [l, i]));
  const written: Record<Split, WrittenImage[]> = { train: [], val: [] };
  let skipped = 0;
  let boxes = 0;
  for (const split of SPLITS) {
    await mkdir(join(dir, 'images', split), { recursive: true });
    if (o.format === 'yolo') await mkdir(join(dir, 'labels', split), { recursive: true });
    for (const ex of o[split]) {
      if (!ex.boxes) {
        skipped++;
        continue;
      }
      const unknown = ex.boxes.find((b) => !classIndex.has(b.label));
      if (unknown) throw new FleetError('TRAINING_FAILED', `example ${ex.id} has a box of class ${JSON.stringify(unknown.label)}, which is not one of the labels (${o.labels.join(', ')})`, { details: { example: ex.id } });
      const frame = ex.frame ?? imageSize(ex.bytes);
      if (!frame) throw new FleetError('TRAINING_FAILED', `example ${ex.id} has boxes but its image size cannot be read`, { details: { example: ex.id } });
      const stem = o.safeName(ex.id);
      const file = `${stem}.${EXT[sniffImageFormat(ex.bytes)]}`;
      await writeFile(join(dir, 'images', split, file), ex.bytes);
      if (o.format === 'yolo') await writeFile(join(dir, 'labels', split, `${stem}.txt`), yoloLines(ex.boxes, frame, classIndex));
      written[split].push({ id: ex.id, file, frame, boxes: ex.boxes });
      boxes += ex.boxes.length;
    }
  }
  if (o.format === 'yolo') {
    await writeFile(join(dir, 'data.yaml'), dataYaml(dir, o.labels));
  } else {
    await mkdir(join(dir, 'annotations'), { recursive: true });
    for (const split of SPLITS) await writeFile(join(dir, 'annotations', `instances_${split}.json`), `${JSON.stringify(cocoInstances(written[split], o.labels, split))}\n`);
  }
  return { train: written.train.length, val: written.val.length, skipped, boxes };
}
