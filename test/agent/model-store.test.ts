import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { httpPackageSource } from '../../agent/deploy/http-source.js';
import { readModelPackage } from '../../agent/model/package.js';
import { directorySource, ModelStore, type PackageSource } from '../../agent/model/store.js';
import { brokenModelBytes } from '../helpers/models.js';
import { sha256Hex } from '../../shared/ids.js';
import { signManifest } from '../../shared/signing.js';
import { startTestAgent } from '../helpers/agent.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
beforeEach(() => {
  tmp = tempDir();
});
afterEach(() => tmp.cleanup());

const verify = () => ({ publicKeyPem: fleetKeys().publicKeyPem });

/** Rewrite one file of a package and its manifest entry, re-signing with `key` (or not). */
function rewrite(dir: string, file: string, bytes: Uint8Array, resignWith?: string): void {
  writeFileSync(join(dir, file), bytes);
  const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as { files: Array<{ path: string; sha256: string; bytes: number }>; signature?: unknown };
  const f = m.files.find((x) => x.path === file)!;
  f.sha256 = sha256Hex(bytes);
  f.bytes = bytes.length;
  delete m.signature;
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(resignWith ? signManifest(m, resignWith) : m));
}

describe('model package verification', () => {
  it('accepts a signed package and refuses unsigned, tampered and foreign-signed ones', async () => {
    const good = join(tmp.dir, 'good');
    await imagePackage(good);
    const pkg = await readModelPackage(good, verify());
    expect(pkg.ref).toEqual({ name: 'pets', version: '1.0.0' });
    expect(pkg.signed).toBe(true);

    const unsigned = join(tmp.dir, 'unsigned');
    await imagePackage(unsigned, { sign: false });
    await expect(readModelPackage(unsigned, verify())).rejects.toMatchObject({ code: 'MODEL_SIGNATURE_INVALID' });
    await expect(readModelPackage(unsigned, { allowUnsigned: true })).resolves.toMatchObject({ signed: false });

    // A file changed after signing: its hash no longer matches.
    const tampered = join(tmp.dir, 'tampered');
    await imagePackage(tampered);
    const onnx = readFileSync(join(tampered, 'model.onnx'));
    onnx.writeUInt8(onnx.readUInt8(onnx.length - 1) ^ 0xff, onnx.length - 1);
    writeFileSync(join(tampered, 'model.onnx'), onnx);
    await expect(readModelPackage(tampered, verify())).rejects.toMatchObject({ code: 'MODEL_HASH_MISMATCH' });

    // The manifest edited to match the changed file: the signature breaks.
    rewrite(tampered, 'model.onnx', onnx);
    await expect(readModelPackage(tampered, verify())).rejects.toMatchObject({ code: 'MODEL_SIGNATURE_INVALID' });
  });
});

describe('model store and activation', () => {
  it('installs side by side, switches, keeps the previous for rollback, and survives a restart', async () => {
    const v1 = join(tmp.dir, 'v1');
    const v2 = join(tmp.dir, 'v2');
    await imagePackage(v1, { version: '1.0.0', seed: 1 });
    await imagePackage(v2, { version: '1.1.0', seed: 2 });
    const { agent } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: v1 } });
    try {
      expect(agent.service.activeRef).toEqual({ name: 'pets', version: '1.0.0' });
      await agent.install(directorySource(v2));
      expect(agent.service.activeRef?.version).toBe('1.1.0');
      expect(agent.store.current.previous?.version).toBe('1.0.0');
      expect((await agent.store.list()).map((r) => r.version).sort()).toEqual(['1.0.0', '1.1.0']);
      await agent.rollback();
      expect(agent.service.activeRef?.version).toBe('1.0.0');
      await agent.install(directorySource(v2));
    } finally {
      await agent.stop();
    }
    const again = await startTestAgent(join(tmp.dir, 'data'));
    try {
      expect(again.agent.service.activeRef?.version).toBe('1.1.0');
    } finally {
      await again.agent.stop();
    }
  });

  it('says a package without golden inputs had nothing to smoke-test, instead of "passed its smoke test"', async () => {
    const checked = join(tmp.dir, 'checked');
    const bare = join(tmp.dir, 'bare');
    await imagePackage(checked, { version: '1.0.0' });
    await imagePackage(bare, { version: '1.1.0', extra: { golden: [] } });
    const { agent, lines } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: checked } });
    try {
      await agent.install(directorySource(bare));
      expect(agent.service.activeRef?.version).toBe('1.1.0');
      const about = (v: string) => lines.filter((l) => l.model === `pets@${v}` && /smoke|golden/.test(String(l.msg)));
      expect(about('1.0.0')).toEqual([expect.objectContaining({ level: 30, msg: 'model passed its smoke test', golden: 2 })]);
      expect(about('1.1.0')).toEqual([expect.objectContaining({ level: 40, golden: 0, msg: expect.stringMatching(/^model has no golden inputs: nothing to smoke-test .* --golden FILE=LABEL$/) })]);
    } finally {
      await agent.stop();
    }
  });

  it('rejects bad packages with their codes while the old model keeps serving', async () => {
    const v1 = join(tmp.dir, 'v1');
    await imagePackage(v1);
    const { agent, url, lines } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: v1 } });
    try {
      const img = await patternImage(5);
      const infer = async () => (await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: img })).json() as Promise<{ model_version: string }>;

      // Corrupt ONNX, correctly hashed and signed: refused before ONNX Runtime sees it.
      const corrupt = join(tmp.dir, 'corrupt');
      await imagePackage(corrupt, { version: '2.0.0' });
      rewrite(corrupt, 'model.onnx', brokenModelBytes(), fleetKeys().privateKeyPem);
      await expect(agent.install(directorySource(corrupt))).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID', message: expect.stringContaining('is not an ONNX model') });

      // A model whose golden inputs no longer give the recorded labels fails its smoke test.
      const smoke = join(tmp.dir, 'smoke');
      await imagePackage(smoke, { version: '2.1.0', seed: 1 });
      const m = JSON.parse(readFileSync(join(smoke, 'manifest.json'), 'utf8')) as { golden: Array<{ expected_label: string }>; signature?: unknown };
      m.golden[0]!.expected_label = m.golden[0]!.expected_label === 'cat' ? 'dog' : 'cat';
      delete m.signature;
      writeFileSync(join(smoke, 'manifest.json'), JSON.stringify(signManifest(m, fleetKeys().privateKeyPem)));
      await expect(agent.install(directorySource(smoke))).rejects.toMatchObject({ code: 'MODEL_SMOKE_TEST_FAILED' });

      // Unsigned.
      const unsigned = join(tmp.dir, 'unsigned');
      await imagePackage(unsigned, { version: '2.2.0', sign: false });
      await expect(agent.install(directorySource(unsigned))).rejects.toMatchObject({ code: 'MODEL_SIGNATURE_INVALID' });

      // The disk fills up while staging: STORAGE_FAILED, nothing half-installed.
      const full: PackageSource = { ...directorySource(v1), label: 'full-disk', fetchFile: async () => { throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }); } };
      await expect(agent.install(full)).rejects.toMatchObject({ code: 'AGENT_STORAGE_FAILED', message: expect.stringContaining('disk is full') });

      expect(agent.service.activeRef?.version).toBe('1.0.0');
      expect((await infer()).model_version).toBe('1.0.0');
      expect((await agent.store.list()).map((r) => r.version)).toEqual(['1.0.0']);
      const rejected = lines.filter((l) => l.msg === 'model install rejected; the current model keeps serving');
      expect(rejected.map((l) => String(l.reason).split(':')[0])).toEqual(['MODEL_PACKAGE_INVALID', 'MODEL_SMOKE_TEST_FAILED', 'MODEL_SIGNATURE_INVALID', 'AGENT_STORAGE_FAILED']);
    } finally {
      await agent.stop();
    }
  });

  it('falls back to the previous version when the active one no longer loads at start', async () => {
    const v1 = join(tmp.dir, 'v1');
    const v2 = join(tmp.dir, 'v2');
    await imagePackage(v1, { version: '1.0.0' });
    await imagePackage(v2, { version: '1.1.0', seed: 2 });
    const first = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: v1 } });
    await first.agent.install(directorySource(v2));
    await first.agent.stop();
    // Bit rot on the device: the active version's model file changes on disk.
    const store = await ModelStore.open(join(tmp.dir, 'data', 'models'), verify());
    writeFileSync(join(store.dirOf({ name: 'pets', version: '1.1.0' }), 'model.onnx'), 'garbage');
    const second = await startTestAgent(join(tmp.dir, 'data'));
    try {
      expect(second.agent.service.activeRef?.version).toBe('1.0.0');
      expect(second.lines.some((l) => String(l.reason ?? '').startsWith('MODEL_HASH_MISMATCH'))).toBe(true);
    } finally {
      await second.agent.stop();
    }
  });
});

describe('a model store or package directory that cannot be read is not an empty one', () => {
  // A symlink to itself: stat and readFile fail with ELOOP (permissions would not stop root).
  const loop = (path: string): void => symlinkSync(path.split('/').at(-1) as string, path);

  it('the store answers AGENT_STORAGE_FAILED, not MODEL_VERSION_UNKNOWN, when a version cannot be read', async () => {
    const store = await ModelStore.open(join(tmp.dir, 'models'), verify());
    const ref = { name: 'pets', version: '1.0.0' };
    await expect(store.get(ref)).rejects.toMatchObject({ code: 'AGENT_MODEL_VERSION_UNKNOWN' });
    mkdirSync(join(tmp.dir, 'models', 'pets'));
    loop(join(tmp.dir, 'models', 'pets', '1.0.0'));
    await expect(store.get(ref)).rejects.toMatchObject({ code: 'AGENT_STORAGE_FAILED' });
    await expect(store.has(ref)).rejects.toMatchObject({ code: 'AGENT_STORAGE_FAILED' });
  });

  it('a file:// package answers 404 for a missing file and AGENT_STORAGE_FAILED for one it cannot read', async () => {
    const dir = join(tmp.dir, 'pkg');
    mkdirSync(dir);
    const source = httpPackageSource({ baseUrl: pathToFileURL(dir).href, manifestSha256: 'f'.repeat(64) });
    await expect(source.readManifest()).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID', message: expect.stringContaining('answered 404') });
    loop(join(dir, 'manifest.json'));
    await expect(source.readManifest()).rejects.toMatchObject({ code: 'AGENT_STORAGE_FAILED' });
  });
});

describe('model store state across the model-slots upgrade (issue 14)', () => {
  it('reads a state.json written before slots as one slot, and writes each slot apart after', async () => {
    const t = tempDir();
    try {
      const root = join(t.dir, 'models');
      mkdirSync(root, { recursive: true });
      writeFileSync(join(root, 'state.json'), JSON.stringify({ active: { name: 'pets', version: '2.0.0' }, previous: { name: 'pets', version: '1.0.0' }, revision: 7 }));
      const store = await ModelStore.open(root, { publicKeyPem: fleetKeys().publicKeyPem });
      expect(store.slotNames).toEqual(['pets']);
      expect(store.current).toMatchObject({ active: { name: 'pets', version: '2.0.0' }, previous: { name: 'pets', version: '1.0.0' }, revision: 7 });
      await store.setActive({ name: 'ppe-classifier', version: '1.0.0' });
      await store.setRevision(9, 'ppe-classifier');
      const again = await ModelStore.open(root, { publicKeyPem: fleetKeys().publicKeyPem });
      expect(again.slotNames).toEqual(['pets', 'ppe-classifier']);
      expect(again.slot('pets').revision).toBe(7);
      expect(again.slot('ppe-classifier')).toMatchObject({ active: { name: 'ppe-classifier', version: '1.0.0' }, previous: null, revision: 9 });
      // Pinned versions of every slot are never removed.
      expect(await again.remove({ name: 'pets', version: '1.0.0' })).toBe(false);
      expect(await again.remove({ name: 'ppe-classifier', version: '1.0.0' })).toBe(false);
    } finally {
      t.cleanup();
    }
  });

  it("drops a pre-slot previous version of another model: it is not the slot's to roll back to", async () => {
    const t = tempDir();
    try {
      const root = join(t.dir, 'models');
      mkdirSync(root, { recursive: true });
      // An old rollout replaced model pets by detector.
      writeFileSync(join(root, 'state.json'), JSON.stringify({ active: { name: 'detector', version: '1.0.0' }, previous: { name: 'pets', version: '3.0.0' }, revision: 4 }));
      const store = await ModelStore.open(root, { publicKeyPem: fleetKeys().publicKeyPem });
      expect(store.slotNames).toEqual(['detector']);
      expect(store.slot('detector')).toMatchObject({ active: { name: 'detector', version: '1.0.0' }, previous: null, revision: 4 });
    } finally {
      t.cleanup();
    }
  });
});
