import type { BaseSetSource } from '../app/training/base-source.js';
import { mnistBaseSet } from '../app/training/base-sets.js';
import type { TrainingExample } from '../app/training/trainer.js';
import type { BaseRef } from '../core/labels/dataset-schema.js';
import { FleetError } from '../errors.js';
import { makeScenes } from '../ml/detector/scenes.js';
import { renderDigitPng } from '../ml/digits.js';
import { digitCount, loadDigits } from '../ml/mnist-data.js';

/**
 * The demo's base set for the learning loop: `{ source: 'mnist', offset, count }` resolves to
 * the `mnist` package's digits rendered as camera frames (what devices capture), marked
 * `origin: 'base'`. Rendered once per process and kept: every retrain asks for the same slices.
 */
export function mnistBaseSource(): BaseSetSource {
  return mnistBaseSet({ render: (pixels) => renderDigitPng(pixels) });
}

/** The detection demo's one class. */
export const SCENE_LABEL = 'digit';

/**
 * The detection edition's base set for the learning loop: `{ source: 'mnist-scenes', offset, count }`
 * resolves to the `mnist` digits [offset, offset + count) laid out as 96x96 detection scenes
 * (1-4 digits each, about `count / 2.5` scenes, seeded by `offset`), every example carrying its
 * boxes (class `digit`) and frame, marked `origin: 'base'`. Cached per reference.
 */
export function sceneBaseSource(o: { width?: number; height?: number } = {}): BaseSetSource {
  const cache = new Map<string, Promise<TrainingExample[]>>();
  const width = o.width ?? 96;
  const height = o.height ?? 96;
  return {
    examples(ref: BaseRef): Promise<TrainingExample[]> {
      const { offset, count } = ref;
      if (ref.source !== 'mnist-scenes' || offset === undefined || count === undefined || count < 1) {
        return Promise.reject(new FleetError('BASE_SET_INVALID', `a scene base set needs source 'mnist-scenes', offset and count (got ${JSON.stringify(ref)})`));
      }
      if (offset + count > digitCount()) return Promise.reject(new FleetError('BASE_SET_INVALID', `mnist has ${digitCount()} digits; [${offset}, ${offset + count}) is outside`));
      const key = `${offset}:${count}`;
      let p = cache.get(key);
      if (!p) {
        p = Promise.resolve().then(() =>
          makeScenes(loadDigits({ offset, count }), Math.max(1, Math.round(count / 2.5)), offset + 1, { width, height, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40 }).map(
            (s, i): TrainingExample => ({ id: `scene-${offset}-${i}`, origin: 'base', label: '', bytes: s.png, boxes: s.boxes.map((b) => ({ label: SCENE_LABEL, box: [b.x1, b.y1, b.x2, b.y2] })), frame: { width: s.width, height: s.height } }),
          ),
        );
        p.catch(() => cache.delete(key));
        cache.set(key, p);
      }
      return p;
    },
  };
}
