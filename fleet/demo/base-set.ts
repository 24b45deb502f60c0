import { FleetError } from '../errors.js';
import type { BaseRef } from '../labels/dataset-schema.js';
import type { BaseSetSource } from '../training/loop.js';
import { loadDigits } from '../training/mnist-data.js';
import type { TrainingExample } from '../training/trainer.js';
import { renderDigitPng } from './digits.js';

/**
 * The demo's base set for the learning loop: `{ source: 'mnist', offset, count }` resolves to
 * the `mnist` package's digits rendered as camera frames (what devices capture), with stable
 * ids `base-<index>` (the local trainer weighs `base-*` examples apart from field samples).
 * Rendered once per process and kept: every retrain of the demo asks for the same slices.
 */
export function mnistBaseSource(): BaseSetSource {
  const cache = new Map<string, Promise<TrainingExample[]>>();
  return {
    examples(ref: BaseRef): Promise<TrainingExample[]> {
      if (ref.source !== 'mnist' || ref.offset === undefined || ref.count === undefined) {
        return Promise.reject(new FleetError('BASE_SET_INVALID', `the demo knows only { source: 'mnist', offset, count } base sets, not ${ref.source}`, { details: { ref } }));
      }
      const key = `${ref.offset}+${ref.count}`;
      let hit = cache.get(key);
      if (!hit) {
        hit = render(ref.offset, ref.count);
        cache.set(key, hit);
        hit.catch(() => cache.delete(key));
      }
      return hit;
    },
  };
}

async function render(offset: number, count: number): Promise<TrainingExample[]> {
  const set = loadDigits({ count, offset });
  const out = new Array<TrainingExample>(set.images.length);
  let next = 0;
  // sharp runs on libuv's pool: a few renders in flight keep both cores busy.
  const worker = async (): Promise<void> => {
    while (next < set.images.length) {
      const i = next++;
      out[i] = { id: `base-${offset + i}`, label: String(set.labels[i]), bytes: await renderDigitPng(set.images[i]!) };
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return out;
}
