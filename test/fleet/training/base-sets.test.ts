import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import type { FsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import { artifactBaseSet, baseSets, mnistBaseSet } from '../../../fleet/app/training/base-sets.js';
import { baseContentSha } from '../../../fleet/app/training/base-source.js';
import { loadDigits } from '../../../fleet/ml/mnist-data.js';
import { tempDir } from '../../helpers/packages.js';
import { digitPng } from './fixtures.js';

let t: ReturnType<typeof tempDir>;
let store: FsArtifactStore;
beforeAll(async () => {
  t = tempDir('edgeloop-base-');
  store = await openFsArtifactStore({ dir: join(t.dir, 'a') });
});
afterAll(() => t.cleanup());

describe('base training sets by reference', () => {
  it('mnist: the digits of loadDigits in order, rendered, with stable ids and a stable content hash', async () => {
    let renders = 0;
    const src = mnistBaseSet({ render: (p) => (renders++, digitPng(p)) });
    const ex = await src.examples({ source: 'mnist', offset: 10, count: 5, split: 'train' });
    expect(ex.map((e) => e.id)).toEqual(['mnist-10', 'mnist-11', 'mnist-12', 'mnist-13', 'mnist-14']);
    expect(ex.map((e) => e.label)).toEqual(loadDigits({ offset: 10, count: 5 }).labels.map(String));
    // Marked as base data, so a trainer weighs them apart from field samples without guessing from ids.
    expect(ex.every((e) => e.origin === 'base')).toBe(true);
    const again = await mnistBaseSet({ render: digitPng }).examples({ source: 'mnist', offset: 10, count: 5, split: 'train' });
    expect(baseContentSha(again)).toBe(baseContentSha(ex));
    await src.examples({ source: 'mnist', offset: 10, count: 5, split: 'train' });
    expect(renders).toBe(5); // cached
    await expect(src.examples({ source: 'mnist', offset: 9999, count: 5, split: 'train' })).rejects.toMatchObject({ code: 'FLEET_BASE_SET_INVALID' });
  });

  it('artifacts: items by sha256; a missing one is FLEET_BASE_SET_INVALID; dispatch by source', async () => {
    const put = await store.put(Buffer.from('png bytes'));
    const src = baseSets({ artifacts: artifactBaseSet(store) });
    const ex = await src.examples({ source: 'artifacts', items: [{ sha256: put.sha256, label: 'cat' }], split: 'clean_holdout' });
    expect(ex).toEqual([{ id: `artifact-${put.sha256}`, origin: 'base', label: 'cat', bytes: new Uint8Array(Buffer.from('png bytes')) }]);
    await expect(src.examples({ source: 'artifacts', items: [{ sha256: 'f'.repeat(64), label: 'cat' }], split: 'train' })).rejects.toMatchObject({ code: 'FLEET_BASE_SET_INVALID' });
    await expect(src.examples({ source: 'imagenet', split: 'train' })).rejects.toMatchObject({ code: 'FLEET_BASE_SET_INVALID' });
  });
});
