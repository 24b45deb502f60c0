/**
 * Writes digit scenes (fleet/ml/detector/scenes.ts) as a dataset in the standard YOLO txt
 * layout (data.yaml, images/{train,val}/*.png, labels/{train,val}/*.txt), the way the fleet's
 * exporter and any Ultralytics user lay it out, so trainer tests and benchmarks read the same
 * contract.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Scene } from '../../fleet/ml/detector/scenes.js';

export const DIGIT_NAMES = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

/** One scene's label file: `class cx cy w h` normalised; `classOf` maps the digit to a class index. */
export function yoloLabelText(s: Scene, classOf: (digit: number) => number = (d) => d): string {
  return s.boxes
    .map((b) => {
      const cx = (b.x1 + b.x2) / 2 / s.width;
      const cy = (b.y1 + b.y2) / 2 / s.height;
      return `${classOf(b.cls)} ${cx.toFixed(6)} ${cy.toFixed(6)} ${((b.x2 - b.x1) / s.width).toFixed(6)} ${((b.y2 - b.y1) / s.height).toFixed(6)}`;
    })
    .join('\n');
}

/** Writes the layout under `dir`; image ids are `<prefix><n>` (prefix `base-` marks the base set for the local trainer). */
export async function writeYoloScenes(
  dir: string,
  sets: { train: readonly Scene[]; val?: readonly Scene[] },
  o: { names?: readonly string[]; classOf?: (digit: number) => number; prefix?: string } = {},
): Promise<string> {
  const names = o.names ?? DIGIT_NAMES;
  for (const [split, scenes] of [['train', sets.train], ['val', sets.val ?? []]] as const) {
    await mkdir(join(dir, 'images', split), { recursive: true });
    await mkdir(join(dir, 'labels', split), { recursive: true });
    for (const [i, s] of scenes.entries()) {
      const id = `${o.prefix ?? ''}${String(i).padStart(5, '0')}`;
      await writeFile(join(dir, 'images', split, `${id}.png`), s.png);
      await writeFile(join(dir, 'labels', split, `${id}.txt`), yoloLabelText(s, o.classOf));
    }
  }
  await writeFile(join(dir, 'data.yaml'), `path: .\ntrain: images/train\nval: images/val\nnc: ${names.length}\nnames: [${names.map((n) => JSON.stringify(n)).join(', ')}]\n`);
  return dir;
}
