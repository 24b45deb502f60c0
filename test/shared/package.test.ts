import { describe, expect, it } from 'vitest';
import { sha256Hex } from '../../shared/ids.js';
import { checkManifest, inspectPackage, MANIFEST_FILE, openManifest, packageError, packageErrorCode, packageProblems, PACKAGE_RULES, readPackage, TASK_RULES } from '../../shared/package/index.js';
import { MODEL_TASKS, modelManifest, unsafePackagePath } from '../../shared/schemas/index.js';
import { canonicalJson, generateSigningKeyPair, signManifest, verifyManifestSignature } from '../../shared/signing.js';
import { BROKEN_CASES, memoryReader, syntheticParts, type PackageParts } from '../helpers/broken-packages.js';

const broken = (breakIt: (p: PackageParts) => void): PackageParts => {
  const p = syntheticParts();
  breakIt(p);
  return p;
};

describe('model package module', () => {
  it('names the manifest file once', () => {
    expect(MANIFEST_FILE).toBe('manifest.json');
  });

  it('reads a valid package: parsed manifest, the bytes hashed, the model file', async () => {
    const parts = syntheticParts();
    const pkg = await readPackage(memoryReader(parts));
    expect(pkg.manifest).toMatchObject({ name: 'pets', task: 'classification', postprocessing: { kind: 'classification', top_k: 4 } });
    expect(pkg.modelBytes).toEqual(parts.files.get('model.onnx'));
    expect(pkg.manifestSha256).toBe(sha256Hex(JSON.stringify(parts.manifest)));
    expect(pkg.raw).toEqual(parts.manifest);
  });

  it.each(BROKEN_CASES.map((c) => [c.name, c] as const))('refuses a package broken one way: %s', async (_name, c) => {
    const r = await inspectPackage(memoryReader(broken(c.breakIt)));
    expect(r.problems.length).toBeGreaterThan(0);
    expect(new Set(r.problems.map((p) => p.rule))).toEqual(new Set([c.rule]));
    expect(packageErrorCode(r.problems)).toBe(c.code);
    await expect(readPackage(memoryReader(broken(c.breakIt)))).rejects.toMatchObject({ code: c.code, status: 422, details: { problems: r.problems } });
  });

  it('covers every rule with a broken case', () => {
    expect(new Set(BROKEN_CASES.map((c) => c.rule))).toEqual(new Set([...Object.keys(PACKAGE_RULES)].filter((r) => r !== 'file_unreadable')));
  });

  it('lists every problem of a package in one refusal; a hash mismatch alone is MODEL_HASH_MISMATCH', async () => {
    const many = broken((p) => {
      p.manifest.labels.push('cow');
      p.manifest.golden[0].file = 'golden/absent.png';
      p.files.delete('golden/1-b.png');
      p.files.set('labels.txt', Buffer.from('CAT\ndog\nbird\nfish\n'));
    });
    const err = await readPackage(memoryReader(many, '/pkgs/pets')).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'MODEL_PACKAGE_INVALID' });
    expect((err as Error).message).toMatch(/^model package \/pkgs\/pets is invalid: /);
    expect(packageProblems(err)!.map((p) => p.rule)).toEqual(['golden_file_unlisted', 'labels_count', 'file_hash_mismatch', 'file_missing']);

    const tampered = broken((p) => p.files.set('model.onnx', Buffer.from('not the model')));
    await expect(readPackage(memoryReader(tampered))).rejects.toMatchObject({
      code: 'MODEL_HASH_MISMATCH',
      message: expect.stringContaining('file model.onnx does not match its sha256'),
      details: { file: 'model.onnx', expected: tampered.manifest.files[0].sha256, got: sha256Hex('not the model') },
    });
  });

  it('compares the model graph with the manifest only when it parses, and only for a manifest sound on its own', async () => {
    const renamed = await inspectPackage(memoryReader(broken((p) => void (p.manifest.outputs[0].name = p.manifest.postprocessing.output = 'scores'))));
    expect(renamed.problems).toEqual([{ rule: 'model_io_unknown', message: 'model.onnx has no output scores (it has probabilities)', file: 'model.onnx' }]);
    // Not an ONNX file, correctly hashed: refused by the rules, so no registry takes it.
    const notOnnx = broken((p) => {
      const bytes = Buffer.from('not a model');
      p.files.set('model.onnx', bytes);
      Object.assign(p.manifest.files[0], { sha256: sha256Hex(bytes), bytes: bytes.length });
    });
    expect((await inspectPackage(memoryReader(notOnnx))).problems.map((p) => p.rule)).toEqual(['model_not_onnx']);
    const twoWays = await inspectPackage(memoryReader(broken((p) => void p.manifest.inputs.push({ name: 'second', dtype: 'float32', shape: ['batch', 1, 28, 28] }))));
    expect(twoWays.problems.map((p) => p.rule)).toEqual(['input_count']);
  });

  it('names a file that exists but cannot be read, instead of calling it missing', async () => {
    const parts = syntheticParts();
    const reader = { ...memoryReader(parts), readFile: async (path: string) => (path === 'labels.txt' ? Promise.reject(Object.assign(new Error('permission denied'), { code: 'EACCES' })) : (parts.files.get(path) ?? null)) };
    const r = await inspectPackage(reader);
    expect(r.problems).toEqual([{ rule: 'file_unreadable', message: 'file labels.txt cannot be read (EACCES)', file: 'labels.txt' }]);
  });

  it('authenticates the raw manifest before the schema, and refuses files before reading them', async () => {
    const seen: unknown[] = [];
    const parts = broken((p) => void (p.manifest.version = 'one'));
    await expect(readPackage(memoryReader(parts), { authenticate: (raw) => void seen.push(raw.version) })).rejects.toMatchObject({ code: 'MODEL_PACKAGE_INVALID' });
    expect(seen).toEqual(['one']);
    const refused = new Error('not signed');
    await expect(readPackage(memoryReader(syntheticParts()), { authenticate: () => { throw refused; } })).rejects.toBe(refused);
    expect(() => openManifest(JSON.stringify(parts.manifest), 'pkg')).toThrow(expect.objectContaining({ code: 'MODEL_PACKAGE_INVALID', details: expect.objectContaining({ issues: [expect.stringMatching(/^version: /)] }) }));
  });

  it('keeps package paths relative, canonical and inside the package', () => {
    for (const ok of ['model.onnx', 'golden/0-a.png', 'a/b/c.bin', '..hidden', 'x..y']) expect(unsafePackagePath(ok), ok).toBeNull();
    for (const bad of ['/etc/passwd', '../x', 'a/../../x', 'a\\b', '..\\x', './a', 'a//b', 'a/', 'a/.', 'C:/x', 'c:x', 'a\0b']) expect(unsafePackagePath(bad), bad).not.toBeNull();
  });

  it('packageError keeps the issue strings the registry and the agent always sent', () => {
    const err = packageError('here', [{ rule: 'schema', field: 'version', message: 'version: expected a semantic version such as 1.2.0' }]);
    expect(err.toJSON()).toEqual({
      code: 'MODEL_PACKAGE_INVALID',
      message: 'model package here is invalid: version: expected a semantic version such as 1.2.0',
      details: { problems: [{ rule: 'schema', field: 'version', message: 'version: expected a semantic version such as 1.2.0' }], issues: ['version: expected a semantic version such as 1.2.0'] },
    });
  });
});

describe('manifest task', () => {
  const keys = generateSigningKeyPair();

  it('reads a manifest written before tasks as a classifier, and its signature still verifies', () => {
    const old = syntheticParts().manifest;
    delete old.task;
    delete old.postprocessing;
    const signed = signManifest(old, keys.privateKeyPem);
    const bytes = JSON.stringify(signed, null, 2);
    const { manifest, raw } = openManifest(bytes, 'old', { authenticate: (r) => verifyManifestSignature(r, keys.publicKeyPem) });
    expect(manifest.task).toBe('classification');
    expect(manifest.postprocessing).toEqual({ kind: 'classification', softmax: false, top_k: 5 });
    // Defaults are applied to the parsed copy only: the raw object (what is signed and pinned) is untouched.
    expect(raw).toEqual(JSON.parse(bytes));
    expect(canonicalJson(raw)).not.toContain('"task"');
  });

  it('is a discriminated union: one member and one rule entry per task', () => {
    expect(modelManifest.options.map((o) => MODEL_TASKS.find((t) => o.shape.task.safeParse(t).success))).toEqual([...MODEL_TASKS]);
    expect(Object.keys(TASK_RULES)).toEqual([...MODEL_TASKS]);
    const r = checkManifest({ ...syntheticParts().manifest, task: 'segmentation' });
    expect(r.problems).toEqual([{ rule: 'schema', field: 'task', message: 'task: unknown task "segmentation": this version reads classification, detection' }]);
  });
});
