import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import { openSqliteArtifactStore } from '../../../fleet/adapters/sqlite/artifact-store.js';
import { TieredArtifactStore } from '../../../fleet/adapters/fs/tiered-store.js';
import { tempDir } from '../../helpers/packages.js';
import { artifactStoreContract } from './artifact-contract.js';

artifactStoreContract('sqlite', async () => {
  const t = tempDir('edgeloop-artifacts-sqlite-');
  const store = openSqliteArtifactStore({ path: join(t.dir, 'artifacts.db') });
  return {
    store,
    dispose: async () => {
      store.close();
      t.cleanup();
    },
  };
});

// A small threshold, so the contract's artifacts land in both tiers.
artifactStoreContract('tiered (sqlite <= 4 KiB < filesystem)', async () => {
  const t = tempDir('edgeloop-artifacts-tiered-');
  const small = openSqliteArtifactStore({ path: join(t.dir, 'small.db') });
  const large = await openFsArtifactStore({ dir: join(t.dir, 'files') });
  return {
    store: new TieredArtifactStore({ small, large, maxSmallBytes: 4096 }),
    dispose: async () => {
      small.close();
      t.cleanup();
    },
  };
});

describe('sqlite artifact store', () => {
  it('writes puts that arrive together in one transaction', async () => {
    const t = tempDir('edgeloop-artifacts-sqlite-');
    const store = openSqliteArtifactStore({ path: join(t.dir, 'artifacts.db') });
    try {
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(Buffer.from(`blob ${i}`))));
      expect(results.every((r) => r.created)).toBe(true);
      expect(await store.get(results[7]!.sha256)).toEqual(Buffer.from('blob 7'));
    } finally {
      store.close();
      t.cleanup();
    }
  });

  it('keeps small artifacts in the small tier and large ones on disk', async () => {
    const t = tempDir('edgeloop-artifacts-tiered-');
    const small = openSqliteArtifactStore({ path: join(t.dir, 'small.db') });
    const large = await openFsArtifactStore({ dir: join(t.dir, 'files') });
    try {
      const tiered = new TieredArtifactStore({ small, large, maxSmallBytes: 100 });
      const a = await tiered.put(Buffer.alloc(100, 1));
      const b = await tiered.put(Buffer.alloc(101, 2));
      expect(await small.has(a.sha256)).toBe(true);
      expect(await large.has(a.sha256)).toBe(false);
      expect(await large.has(b.sha256)).toBe(true);
      expect(await small.has(b.sha256)).toBe(false);
    } finally {
      small.close();
      t.cleanup();
    }
  });
});
