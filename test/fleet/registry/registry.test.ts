import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, beforeEach, afterEach, describe, expect, it } from 'vitest';
import { readModelPackage } from '../../../agent/model/package.js';
import { openFsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import type { FsArtifactStore } from '../../../fleet/adapters/fs/artifact-store.js';
import { ModelRegistry } from '../../../fleet/app/models/registry.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteModelsRepo } from '../../../fleet/adapters/sqlite/models-repo.js';
import type { FleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sha256Hex } from '../../../shared/ids.js';
import { generateSigningKeyPair, keyIdOf, verifyManifestSignature } from '../../../shared/signing.js';
import { fleetKeys, imagePackage, tempDir } from '../../helpers/packages.js';

/** Packages built once (ORT + sharp are slow); variants are edited copies. */
const work = tempDir('edgeloop-registry-pkgs-');
let basePkg: string;
let otherPkg: string;
const otherKey = generateSigningKeyPair();

beforeAll(async () => {
  basePkg = join(work.dir, 'base');
  otherPkg = join(work.dir, 'other');
  // Signed by some other key: the fleet must re-sign with its own.
  await imagePackage(basePkg, { seed: 1, extra: { signKeyPem: otherKey.privateKeyPem } });
  await imagePackage(otherPkg, { seed: 7, sign: false });
});
afterAll(() => work.cleanup());

let n = 0;
/** A copy of `src` with its manifest patched (version, lineage...). */
function variant(src: string, patch: Record<string, unknown>): string {
  const dest = join(work.dir, `variant-${n++}`);
  cpSync(src, dest, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dest, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(dest, 'manifest.json'), JSON.stringify({ ...manifest, ...patch }, null, 2));
  return dest;
}

describe('ModelRegistry', () => {
  let t: ReturnType<typeof tempDir>;
  let db: FleetDb;
  let artifacts: FsArtifactStore;
  let registry: ModelRegistry;
  let now: number;

  beforeEach(async () => {
    t = tempDir('edgeloop-registry-');
    now = Date.parse('2025-03-01T10:00:00Z');
    db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock: { now: () => now } });
    artifacts = await openFsArtifactStore({ dir: join(t.dir, 'artifacts') });
    registry = new ModelRegistry({ repo: sqliteModelsRepo(db), clock: db.clock, artifacts, signingKey: fleetKeys() });
  });
  afterEach(() => {
    db.close();
    t.cleanup();
  });

  it('re-signs the manifest with the fleet key and records the version', async () => {
    const { version, created, unlisted } = await registry.push(basePkg, { actor: 'alice' });
    expect(created).toBe(true);
    expect(unlisted).toEqual([]);
    expect(version).toMatchObject({ name: 'pets', version: '1.0.0', ref: 'pets@1.0.0', pushed_by: 'alice', pushed_at: '2025-03-01T10:00:00.000Z', status: 'registered', key_id: keyIdOf(fleetKeys().publicKeyPem) });
    const bytes = await registry.manifestBytes('pets', '1.0.0');
    expect(sha256Hex(bytes)).toBe(version.manifest_sha256);
    const signed = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    expect(() => verifyManifestSignature(signed, fleetKeys().publicKeyPem)).not.toThrow();
    // The package's own signature (another key) is gone.
    expect(() => verifyManifestSignature(signed, otherKey.publicKeyPem)).toThrow(expect.objectContaining({ code: 'MODEL_SIGNATURE_INVALID' }));
    expect(await artifacts.has(version.manifest_sha256)).toBe(true);
    for (const f of version.files) expect(await artifacts.size(f.sha256)).toBe(f.bytes);
  });

  it('produces a package that, downloaded file by file, passes the agent verification', async () => {
    const { version } = await registry.push(basePkg, { actor: 'alice' });
    const dl = join(t.dir, 'download');
    mkdirSync(dl);
    writeFileSync(join(dl, 'manifest.json'), await registry.manifestBytes('pets', '1.0.0'));
    for (const f of version.files) {
      const dest = join(dl, f.path);
      mkdirSync(dirname(dest), { recursive: true });
      writeFileSync(dest, await artifacts.get(registry.fileSha('pets', '1.0.0', f.path)));
    }
    const pkg = await readModelPackage(dl, { publicKeyPem: fleetKeys().publicKeyPem });
    expect(pkg.ref).toEqual({ name: 'pets', version: '1.0.0' });
    expect(pkg.manifestSha256).toBe(version.manifest_sha256);
    expect(pkg.signed).toBe(true);
  });

  it('treats a re-push of the same content as a no-op, whoever signed it', async () => {
    const first = await registry.push(basePkg, { actor: 'alice' });
    now += 60_000;
    const again = await registry.push(basePkg, { actor: 'bob' });
    expect(again.created).toBe(false);
    expect(again.version).toEqual(first.version);
    // Same content with no signature at all: still the same package.
    const unsigned = variant(basePkg, { signature: undefined });
    expect((await registry.push(unsigned, { actor: 'carol' })).created).toBe(false);
    expect(registry.list()).toHaveLength(1);
  });

  it('refuses a different package under an existing name@version: versions are immutable', async () => {
    await registry.push(basePkg, { actor: 'alice' });
    const before = await registry.manifestBytes('pets', '1.0.0');
    await expect(registry.push(otherPkg, { actor: 'mallory' })).rejects.toMatchObject({ code: 'FLEET_MODEL_VERSION_EXISTS', status: 409 });
    const relabeled = variant(basePkg, { description: 'changed after the fact' });
    await expect(registry.push(relabeled, { actor: 'mallory' })).rejects.toMatchObject({ code: 'FLEET_MODEL_VERSION_EXISTS' });
    expect((await registry.manifestBytes('pets', '1.0.0')).equals(before)).toBe(true);
  });

  it('refuses a package whose files do not match the manifest, and registers nothing', async () => {
    const tampered = variant(basePkg, {});
    writeFileSync(join(tampered, 'labels.txt'), 'cat\ndog\nbird\nfox\n');
    await expect(registry.push(tampered, { actor: 'alice' })).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH', status: 422 });
    expect(registry.list()).toEqual([]);

    const missing = variant(basePkg, { version: '1.0.1' });
    writeFileSync(join(missing, 'manifest.json'), readFileSync(join(missing, 'manifest.json'), 'utf8').replaceAll('"model.onnx"', '"gone.onnx"'));
    await expect(registry.push(missing, { actor: 'alice' })).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID' });

    const invalid = variant(basePkg, { version: 'one', labels: ['only'] });
    await expect(registry.push(invalid, { actor: 'alice' })).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID', details: { issues: expect.arrayContaining([expect.stringMatching(/^version:/), expect.stringMatching(/^labels:/)]) } });

    const notListed = variant(basePkg, { model_file: 'other.onnx' });
    await expect(registry.push(notListed, { actor: 'alice' })).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID', message: expect.stringContaining('model_file other.onnx is not listed') });
    await expect(registry.push(join(t.dir, 'nowhere'), { actor: 'alice' })).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID' });
    expect(registry.list()).toEqual([]);
  });

  it('lists files in the directory that the manifest does not name', async () => {
    const extra = variant(basePkg, {});
    writeFileSync(join(extra, 'notes.md'), 'not part of the package');
    const { unlisted, version } = await registry.push(extra, { actor: 'alice' });
    expect(unlisted).toEqual(['notes.md']);
    expect(version.files.map((f) => f.path)).not.toContain('notes.md');
  });

  it('walks lineage through parents, newest first, and marks a parent it does not hold', async () => {
    await registry.push(basePkg, { actor: 'alice' });
    await registry.push(variant(basePkg, { version: '1.1.0', lineage: { parent: { name: 'pets', version: '1.0.0' }, dataset_version: 'ds-1', training_run: 'run-7' } }), { actor: 'trainer' });
    await registry.push(variant(basePkg, { version: '1.2.0', lineage: { parent: { name: 'pets', version: '1.1.0' }, dataset_version: 'ds-2' } }), { actor: 'trainer' });
    const chain = registry.lineage('pets', '1.2.0');
    expect(chain.map((c) => [c.version, c.dataset_version, c.training_run, c.missing])).toEqual([
      ['1.2.0', 'ds-2', null, false],
      ['1.1.0', 'ds-1', 'run-7', false],
      ['1.0.0', null, null, false],
    ]);
    expect(registry.get('pets', '1.1.0').lineage).toEqual({ dataset_version: 'ds-1', training_run: 'run-7', parent: { name: 'pets', version: '1.0.0' } });

    await registry.push(variant(basePkg, { version: '2.0.0', lineage: { parent: { name: 'pets', version: '0.9.0' } } }), { actor: 'alice' });
    expect(registry.lineage('pets', '2.0.0').map((c) => [c.version, c.missing])).toEqual([
      ['2.0.0', false],
      ['0.9.0', true],
    ]);
    expect(() => registry.lineage('pets', '9.9.9')).toThrow(expect.objectContaining({ code: 'FLEET_MODEL_NOT_FOUND' }));
  });

  it('stops a lineage cycle where it repeats', async () => {
    await registry.push(variant(basePkg, { version: '3.0.0', lineage: { parent: { name: 'pets', version: '3.1.0' } } }), { actor: 'a' });
    await registry.push(variant(basePkg, { version: '3.1.0', lineage: { parent: { name: 'pets', version: '3.0.0' } } }), { actor: 'a' });
    expect(registry.lineage('pets', '3.0.0').map((c) => c.version)).toEqual(['3.0.0', '3.1.0']);
  });

  it('lists, gets, finds the latest registered version and records a rejection with reasons', async () => {
    await registry.push(basePkg, { actor: 'alice' });
    await registry.push(variant(basePkg, { version: '1.10.0' }), { actor: 'alice' });
    await registry.push(variant(basePkg, { version: '1.9.0' }), { actor: 'alice' });
    await registry.push(variant(basePkg, { version: '2.0.0-rc.1', evaluation: { accuracy: 0.91 } }), { actor: 'alice' });
    expect(registry.list({ name: 'pets' }).map((v) => v.version)).toEqual(['1.0.0', '1.10.0', '1.9.0', '2.0.0-rc.1']);
    expect(registry.list({ name: 'other' })).toEqual([]);
    expect(registry.latest('pets')?.version).toBe('2.0.0-rc.1');
    expect(registry.get('pets', '2.0.0-rc.1').evaluation).toEqual({ accuracy: 0.91 });

    now += 1000;
    const rejected = registry.setStatus('pets', '2.0.0-rc.1', { status: 'rejected', reasons: ['accuracy 0.91 < current 0.93'], actor: 'gate' });
    expect(rejected).toMatchObject({ status: 'rejected', status_reasons: ['accuracy 0.91 < current 0.93'], status_by: 'gate', status_at: '2025-03-01T10:00:01.000Z' });
    expect(registry.latest('pets')?.version).toBe('1.10.0');
    expect(registry.list({ status: 'rejected' }).map((v) => v.ref)).toEqual(['pets@2.0.0-rc.1']);

    expect(() => registry.get('pets', '0.0.1')).toThrow(expect.objectContaining({ code: 'FLEET_MODEL_NOT_FOUND', status: 404 }));
    expect(() => registry.fileSha('pets', '1.0.0', 'nope.bin')).toThrow(expect.objectContaining({ code: 'FLEET_NOT_FOUND' }));
    expect((await registry.manifest('pets', '1.0.0')).labels).toEqual(['cat', 'dog', 'bird', 'fish']);
  });
});
