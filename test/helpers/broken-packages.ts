import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { sha256Hex } from '../../shared/ids.js';
import { smallCnnModel } from './models.js';
import type { PackageErrorCode, PackageReader, PackageRule } from '../../shared/package/index.js';
import { MANIFEST_FILE } from '../../shared/package/index.js';
import { signManifest } from '../../shared/signing.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- the cases edit raw manifests on purpose */

/** A package as parts: the manifest object (or raw text), and the files by path. */
export interface PackageParts {
  manifest: Record<string, any>;
  /** Replaces the manifest JSON when set (bytes that are not a manifest object). */
  manifestText?: string;
  /** No manifest.json at all. */
  noManifest?: boolean;
  files: Map<string, Uint8Array>;
}

/** One way to break a package, and the rule and code every reader must refuse it with. */
export interface BrokenCase {
  name: string;
  rule: PackageRule;
  code: PackageErrorCode;
  breakIt(p: PackageParts): void;
}

const fileEntry = (p: PackageParts, path: string): any => (p.manifest.files as any[]).find((f) => f.path === path);

/**
 * Broken packages, each broken one way, for a base shaped like test/helpers/packages.ts
 * `imagePackage` (a 28x28 grey NCHW classifier with labels cat, dog, bird, fish, `model.onnx`,
 * `labels.txt` and two golden PNGs). The agent's store, the registry's push and the trainer
 * output check must all refuse each with `code`, naming `rule`.
 */
export const BROKEN_CASES: BrokenCase[] = [
  { name: 'no manifest.json', rule: 'manifest_unreadable', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.noManifest = true) },
  { name: 'manifest is not JSON', rule: 'manifest_json', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifestText = '{ "schema": ') },
  { name: 'manifest is JSON null', rule: 'manifest_json', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifestText = 'null') },
  { name: 'manifest is a JSON array', rule: 'manifest_json', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifestText = '[]') },
  { name: 'version is not semver', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.version = 'one') },
  { name: 'a task this version does not read', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.task = 'segmentation') },
  { name: 'a detection package without its decoder', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.task = 'detection') },
  {
    name: 'a yolo decoder on an output that is no yolo head',
    rule: 'decoder_shape',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => void Object.assign(p.manifest, { task: 'detection', postprocessing: { kind: 'detection', decoder: { name: 'yolo', layout: 'v8' } } }),
  },
  {
    name: 'a letterbox without fit contain',
    rule: 'letterbox_fit',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => void Object.assign(p.manifest, { task: 'detection', postprocessing: { kind: 'detection', decoder: { name: 'heatmap' }, letterbox: { pad_value: 114 } } }),
  },
  { name: 'postprocessing of another task', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.postprocessing = { ...p.manifest.postprocessing, kind: 'detection' }) },
  { name: 'files entry is null', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.files as any[]).push(null) },
  { name: 'file path with ..', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (fileEntry(p, 'labels.txt').path = '../labels.txt') },
  { name: 'absolute file path', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (fileEntry(p, 'labels.txt').path = '/etc/labels.txt') },
  { name: 'file path with a backslash', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (fileEntry(p, 'labels.txt').path = 'golden\\..\\labels.txt') },
  { name: 'file path with a . segment', rule: 'schema', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (fileEntry(p, 'labels.txt').path = './labels.txt') },
  { name: 'file listed twice', rule: 'file_listed_twice', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.files as any[]).push({ ...fileEntry(p, 'labels.txt') }) },
  { name: 'model_file not listed', rule: 'model_file_unlisted', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.model_file = 'other.onnx') },
  {
    name: 'two inputs',
    rule: 'input_count',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => void (p.manifest.inputs as any[]).push({ name: 'second', dtype: 'float32', shape: ['batch', 1, 28, 28] }),
  },
  { name: 'input shape does not fit the preprocessing', rule: 'input_shape', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.preprocessing.width = 32) },
  { name: 'symbolic input dims after the batch dim', rule: 'input_shape', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.inputs[0].shape = ['batch', 1, 'height', 'width']) },
  { name: 'input dtype differs from the preprocessing', rule: 'input_dtype', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.preprocessing.dtype = 'uint8') },
  { name: 'postprocessing reads an output the model lacks', rule: 'output_unknown', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.postprocessing.output = 'logits') },
  { name: 'labels count differs from the class dim', rule: 'labels_count', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.labels as string[]).push('cow') },
  { name: 'golden input with neither file nor tensor', rule: 'golden_input_missing', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.golden[0] = { expected_label: 'cat' }) },
  { name: 'golden file not listed', rule: 'golden_file_unlisted', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.golden[0].file = 'golden/absent.png') },
  {
    name: 'golden image for a tensor model',
    rule: 'golden_file_not_image',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => void (p.manifest.preprocessing = { kind: 'tensor' }),
  },
  { name: 'golden tensor of the wrong size', rule: 'golden_tensor_size', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.golden as any[]).push({ tensor: [0, 1, 2], expected_label: 'cat' }) },
  { name: 'golden label the model cannot answer', rule: 'golden_label_unknown', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.golden[0].expected_label = 'cow') },
  { name: 'drift class distribution of the wrong length', rule: 'drift_classes', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.drift_baseline = { class_distribution: [0.5, 0.5] }) },
  {
    name: 'drift histogram with as many edges as freqs',
    rule: 'drift_histogram',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => void (p.manifest.drift_baseline = { brightness: { edges: [0, 1], freqs: [0.5, 0.5] } }),
  },
  { name: 'an input the ONNX graph does not have', rule: 'model_io_unknown', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.inputs[0].name = 'pixels') },
  {
    name: 'a model file that is not ONNX, correctly hashed',
    rule: 'model_not_onnx',
    code: 'MODEL_PACKAGE_INVALID',
    breakIt: (p) => {
      const bytes = Buffer.from('not a model at all');
      p.files.set('model.onnx', bytes);
      Object.assign(p.manifest.files.find((f: { path: string }) => f.path === 'model.onnx')!, { sha256: sha256Hex(bytes), bytes: bytes.length });
    },
  },
  { name: 'lineage parent is the version itself', rule: 'lineage_self_parent', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void (p.manifest.lineage = { parent: { name: p.manifest.name, version: p.manifest.version } }) },
  { name: 'a listed file is missing', rule: 'file_missing', code: 'MODEL_PACKAGE_INVALID', breakIt: (p) => void p.files.delete('labels.txt') },
  {
    name: 'a file changed after packing',
    rule: 'file_hash_mismatch',
    code: 'MODEL_HASH_MISMATCH',
    breakIt: (p) => {
      const bytes = Buffer.from(p.files.get('labels.txt')!);
      bytes[0] = bytes[0]! ^ 0x20; // same size, other content
      p.files.set('labels.txt', bytes);
    },
  },
  { name: 'a file size the manifest misstates', rule: 'file_size_mismatch', code: 'MODEL_HASH_MISMATCH', breakIt: (p) => void (fileEntry(p, 'labels.txt').bytes += 1) },
];

/** The parts of a package directory (every file under it, manifest parsed). */
export function readParts(dir: string): PackageParts {
  const files = new Map<string, Uint8Array>();
  for (const e of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const rel = relative(dir, join(e.parentPath, e.name)).split(sep).join('/');
    if (rel !== MANIFEST_FILE) files.set(rel, readFileSync(join(dir, rel)));
  }
  return { manifest: JSON.parse(readFileSync(join(dir, MANIFEST_FILE), 'utf8')) as Record<string, any>, files };
}

/** A copy of `base` (a package directory) broken by `c`, written to `dest`; the manifest re-signed with `signKeyPem` when it is still an object. */
export function writeBroken(base: string, dest: string, c: Pick<BrokenCase, 'breakIt'>, signKeyPem?: string): string {
  const parts = readParts(base);
  parts.manifest = structuredClone(parts.manifest);
  delete parts.manifest.signature;
  c.breakIt(parts);
  rmSync(dest, { recursive: true, force: true });
  cpSync(base, dest, { recursive: true });
  for (const path of readParts(dest).files.keys()) if (!parts.files.has(path)) rmSync(join(dest, path));
  for (const [path, bytes] of parts.files) {
    mkdirSync(dirname(join(dest, path)), { recursive: true });
    writeFileSync(join(dest, path), bytes);
  }
  if (parts.noManifest) rmSync(join(dest, MANIFEST_FILE));
  else writeFileSync(join(dest, MANIFEST_FILE), parts.manifestText ?? JSON.stringify(signKeyPem ? signManifest(parts.manifest, signKeyPem) : parts.manifest, null, 2));
  return dest;
}

/** An in-memory package: parts as a reader. */
export function memoryReader(parts: PackageParts, label = 'memory'): PackageReader {
  return {
    label,
    readManifest: async () => {
      if (parts.noManifest) throw Object.assign(new Error('no such file'), { code: 'ENOENT' });
      return Buffer.from(parts.manifestText ?? JSON.stringify(parts.manifest));
    },
    readFile: async (path) => parts.files.get(path) ?? null,
  };
}

/**
 * A package as parts, shaped like `imagePackage` (its CNN, generated here; placeholder golden
 * images): for the rules, which read the model's graph but never run it.
 */
export function syntheticParts(): PackageParts {
  const files = new Map<string, Uint8Array>([
    ['model.onnx', smallCnnModel({ channels: 1, height: 28, width: 28, classes: 4, seed: 1, layout: 'NCHW', inputType: 'float32' }).bytes],
    ['labels.txt', Buffer.from('cat\ndog\nbird\nfish\n')],
    ['golden/0-a.png', Buffer.from('png 0')],
    ['golden/1-b.png', Buffer.from('png 1')],
  ]);
  const roles: Record<string, string> = { 'model.onnx': 'model', 'labels.txt': 'labels' };
  return {
    manifest: {
      schema: 'edgeloop.model-manifest',
      v: 1,
      name: 'pets',
      version: '1.0.0',
      task: 'classification',
      created_at: '2026-01-01T00:00:00.000Z',
      model_file: 'model.onnx',
      files: [...files].map(([path, bytes]) => ({ path, sha256: sha256Hex(bytes), bytes: bytes.length, role: roles[path] ?? 'golden' })),
      inputs: [{ name: 'input', dtype: 'float32', shape: ['batch', 1, 28, 28] }],
      outputs: [{ name: 'probabilities', dtype: 'float32', shape: ['batch', 4] }],
      preprocessing: { kind: 'image', width: 28, height: 28, layout: 'NCHW', color: 'grayscale', dtype: 'float32' },
      postprocessing: { kind: 'classification', output: 'probabilities', softmax: false, top_k: 4 },
      labels: ['cat', 'dog', 'bird', 'fish'],
      golden: [
        { file: 'golden/0-a.png', expected_label: 'cat' },
        { file: 'golden/1-b.png', expected_label: 'dog' },
      ],
    },
    files,
  };
}
