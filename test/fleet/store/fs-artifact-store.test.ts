import { mkdirSync, readdirSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import { sha256Hex } from '../../../shared/ids.js';
import { tempDir } from '../../helpers/packages.js';
import { artifactStoreContract } from './artifact-contract.js';

artifactStoreContract('filesystem', async () => {
  const t = tempDir('edgeloop-artifacts-');
  const store = await openFsArtifactStore({ dir: t.dir });
  return { store, dispose: async () => t.cleanup() };
});

describe('filesystem artifact store', () => {
  it('lays artifacts out as <dir>/<aa>/<sha256> and leaves no temp files', async () => {
    const t = tempDir('edgeloop-artifacts-');
    try {
      const store = await openFsArtifactStore({ dir: t.dir });
      const { sha256 } = await store.put(Buffer.from('layout'));
      expect(existsSync(join(t.dir, sha256.slice(0, 2), sha256))).toBe(true);
      expect(store.pathOf(sha256)).toBe(join(t.dir, sha256.slice(0, 2), sha256));
      await store.put(Readable.from([Buffer.from('streamed')]));
      await store.put(Buffer.from('x'), { sha256: sha256Hex('y') }).catch(() => undefined);
      expect(readdirSync(store.tempDir)).toEqual([]);
    } finally {
      t.cleanup();
    }
  });

  it('removes stale temp files of a crashed writer at open, keeps fresh ones', async () => {
    const t = tempDir('edgeloop-artifacts-');
    try {
      mkdirSync(join(t.dir, 'tmp'), { recursive: true });
      writeFileSync(join(t.dir, 'tmp', 'old'), 'half');
      writeFileSync(join(t.dir, 'tmp', 'fresh'), 'writing');
      const hourAgo = (Date.now() - 2 * 3_600_000) / 1000;
      utimesSync(join(t.dir, 'tmp', 'old'), hourAgo, hourAgo);
      await openFsArtifactStore({ dir: t.dir });
      expect(readdirSync(join(t.dir, 'tmp'))).toEqual(['fresh']);
    } finally {
      t.cleanup();
    }
  });
});
