/**
 * Base training sets by reference, resolved to examples when a run needs them: the `mnist`
 * package's digits (`{ source: 'mnist', offset, count }`, in loadDigits' fixed order, ids
 * `mnist-<index>`) rendered to image bytes by a function the caller passes (the demo renders
 * camera-like PNGs), and content-addressed artifacts (`{ source: 'artifacts', items: [{ sha256,
 * label }] }`, ids `artifact-<sha256>`). Nothing is copied into dataset manifests.
 */
import type { ArtifactStore } from '../artifacts.js';
import { FleetError } from '../../errors.js';
import type { BaseRef } from '../../core/labels/dataset-schema.js';
import type { BaseSetSource } from './base-source.js';
import { digitCount, loadDigits } from '../../ml/mnist-data.js';
import type { TrainingExample } from './trainer.js';

/** `mnist` references; rendered examples are cached per (offset, count) for the process's life. */
export function mnistBaseSet(o: { render(pixels: Float32Array): Promise<Uint8Array> }): BaseSetSource {
  const cache = new Map<string, Promise<TrainingExample[]>>();
  return {
    examples(ref: BaseRef): Promise<TrainingExample[]> {
      const { offset, count } = ref;
      if (ref.source !== 'mnist' || offset === undefined || count === undefined) {
        return Promise.reject(new FleetError('BASE_SET_INVALID', `an mnist base set needs source 'mnist', offset and count (got ${JSON.stringify(ref)})`));
      }
      if (offset + count > digitCount()) return Promise.reject(new FleetError('BASE_SET_INVALID', `mnist has ${digitCount()} digits; [${offset}, ${offset + count}) is outside`));
      const key = `${offset}:${count}`;
      let p = cache.get(key);
      if (!p) {
        p = renderMnistExamples(offset, count, o.render);
        p.catch(() => cache.delete(key));
        cache.set(key, p);
      }
      return p;
    },
  };
}

/** `mnist` digits [offset, offset + count) rendered by `render`, ids `mnist-<index>`, `origin: 'base'`. */
export async function renderMnistExamples(offset: number, count: number, render: (pixels: Float32Array) => Promise<Uint8Array>): Promise<TrainingExample[]> {
  const d = loadDigits({ offset, count });
  const out = new Array<TrainingExample>(d.images.length);
  let next = 0;
  // sharp runs on libuv's pool: a few renders in flight keep both cores busy.
  const worker = async (): Promise<void> => {
    while (next < d.images.length) {
      const i = next++;
      out[i] = { id: `mnist-${offset + i}`, origin: 'base', label: String(d.labels[i]), bytes: await render(d.images[i]!) };
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return out;
}

/** `artifacts` references: each item's bytes from the artifact store. */
export function artifactBaseSet(artifacts: ArtifactStore): BaseSetSource {
  return {
    async examples(ref: BaseRef): Promise<TrainingExample[]> {
      if (ref.source !== 'artifacts' || !ref.items) throw new FleetError('BASE_SET_INVALID', `an artifacts base set needs source 'artifacts' and items (got ${JSON.stringify(ref)})`);
      const out: TrainingExample[] = [];
      for (const it of ref.items) {
        try {
          out.push({ id: `artifact-${it.sha256}`, origin: 'base', label: it.label, bytes: new Uint8Array(await artifacts.get(it.sha256)) });
        } catch (err) {
          throw new FleetError('BASE_SET_INVALID', `base set artifact ${it.sha256} cannot be read: ${(err as Error).message}`, { cause: err });
        }
      }
      return out;
    },
  };
}

/** Dispatch by `source`. */
export function baseSets(by: Readonly<Record<string, BaseSetSource>>): BaseSetSource {
  return {
    examples(ref: BaseRef): Promise<TrainingExample[]> {
      const s = by[ref.source];
      if (!s) return Promise.reject(new FleetError('BASE_SET_INVALID', `no base set source ${ref.source} (known: ${Object.keys(by).join(', ')})`));
      return s.examples(ref);
    },
  };
}
