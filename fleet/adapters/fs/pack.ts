import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { sha256Hex } from '../../../shared/ids.js';
import { classify } from '../../../shared/inference/postprocess.js';
import { imageToTensor } from '../../../shared/inference/preprocess.js';
import { checkManifest, MANIFEST_FILE } from '../../../shared/package/index.js';
import { MANIFEST_SCHEMA, modelManifest, preprocessing as preprocessingSchema, type ImagePreprocessing, type ModelManifest, type ModelManifestInput, type PackageFile } from '../../../shared/schemas/index.js';
import { signManifest } from '../../../shared/signing.js';
import { FleetError } from '../../errors.js';

export interface PackOptions {
  /** The ONNX file to package. */
  onnxPath: string;
  outDir: string;
  /** Class labels, one per output class. */
  labels: string[];
  name?: string;
  version?: string;
  description?: string;
  /** Image preprocessing; unset keys are read from the ONNX input where possible. */
  image?: Partial<Omit<ImagePreprocessing, 'kind'>>;
  /** Force tensor input (tabular/sensor) even for a 4-D input. */
  tensorInput?: boolean;
  /** The model emits logits: apply softmax on the device. */
  softmax?: boolean;
  topK?: number;
  /** Golden images: `label` omitted = record what the model predicts now. */
  golden?: Array<{ file: string; label?: string }>;
  /** Golden tensors for tensor models, recorded the same way. */
  goldenTensors?: Array<{ tensor: number[]; label?: string }>;
  outlier?: ModelManifestInput['outlier'];
  driftBaseline?: ModelManifestInput['drift_baseline'];
  lineage?: ModelManifestInput['lineage'];
  evaluation?: Record<string, unknown>;
  /** ed25519 private key (PEM) to sign with; unsigned packages need `--allow-unsigned` on devices. */
  signKeyPem?: string;
  createdAt?: Date;
}

export interface PackResult {
  dir: string;
  manifest: ModelManifest;
  /** What the package lacks or what pack assumed (no golden inputs, a golden label recorded from the model itself): printed by the CLI. */
  warnings: string[];
}

type OrtMeta = { name: string; isTensor: boolean; type: string; shape: Array<number | string> };

const slug = (s: string): string => s.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 63) || 'model';

/** Guess image preprocessing from a 4-D input: channel axis is the one of size 1 or 3. */
export function inferImageLayout(shape: Array<number | string>): { layout: 'NCHW' | 'NHWC'; channels: 1 | 3; height: number; width: number } | null {
  if (shape.length !== 4) return null;
  const [, a, b, c] = shape;
  if ((a === 1 || a === 3) && typeof b === 'number' && typeof c === 'number') return { layout: 'NCHW', channels: a, height: b, width: c };
  if ((c === 1 || c === 3) && typeof a === 'number' && typeof b === 'number') return { layout: 'NHWC', channels: c, height: a, width: b };
  return null;
}

/**
 * Build a model package (directory) from any image-classification or tensor ONNX file: copies
 * the model, writes labels and golden inputs, derives inputs/outputs and preprocessing
 * defaults from the ONNX graph, records golden expectations, validates and signs the manifest.
 */
export async function packModel(o: PackOptions): Promise<PackResult> {
  let modelBytes: Buffer;
  try {
    modelBytes = await readFile(o.onnxPath);
  } catch (err) {
    throw new FleetError('PACK_FAILED', `cannot read ${o.onnxPath}: ${(err as Error).message}`, { cause: err });
  }
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelBytes);
  } catch (err) {
    throw new FleetError('PACK_FAILED', `${o.onnxPath} is not a model ONNX Runtime can load: ${(err as Error).message}`, { cause: err });
  }
  try {
    const inputs = session.inputMetadata as unknown as OrtMeta[];
    const outputs = session.outputMetadata as unknown as OrtMeta[];
    if (inputs.length !== 1) throw new FleetError('PACK_FAILED', `the model has ${inputs.length} inputs; one is supported`);
    const input = inputs[0]!;
    const dtype = input.type === 'uint8' ? 'uint8' : input.type === 'float32' ? 'float32' : null;
    if (!dtype) throw new FleetError('PACK_FAILED', `input ${input.name} is ${input.type}; float32 or uint8 is supported`);
    const output = outputs[0]!;
    const classes = output.shape.at(-1);
    if (typeof classes === 'number' && classes !== o.labels.length) throw new FleetError('PACK_FAILED', `the model has ${classes} output classes, the labels file ${o.labels.length}`);

    const guess = o.tensorInput ? null : inferImageLayout(input.shape);
    const im = o.image ?? {};
    const preprocessing: ModelManifestInput['preprocessing'] = guess
      ? {
          kind: 'image',
          width: im.width ?? guess.width,
          height: im.height ?? guess.height,
          layout: im.layout ?? guess.layout,
          color: im.color ?? (guess.channels === 1 ? 'grayscale' : 'rgb'),
          dtype,
          fit: im.fit ?? 'fill',
          scale: im.scale ?? (dtype === 'uint8' ? 1 : 1 / 255),
          mean: im.mean ?? [0],
          std: im.std ?? [1],
          invert: im.invert ?? false,
        }
      : { kind: 'tensor' };

    await mkdir(o.outDir, { recursive: true });
    const files: PackageFile[] = [];
    const add = async (rel: string, bytes: Uint8Array, role: PackageFile['role']): Promise<void> => {
      await mkdir(join(o.outDir, rel, '..'), { recursive: true });
      await writeFile(join(o.outDir, rel), bytes);
      files.push({ path: rel, sha256: sha256Hex(bytes), bytes: bytes.length, role });
    };
    await add('model.onnx', modelBytes, 'model');
    await add('labels.txt', Buffer.from(`${o.labels.join('\n')}\n`), 'labels');

    const golden: NonNullable<ModelManifestInput['golden']> = [];
    const warnings: string[] = [];
    const known = new Set(o.labels);
    const fix = 'check the preprocessing flags against how the model was trained (--invert for white-on-black models such as MNIST, --color, --scale, --mean/--std, --softmax for logits)';
    for (const g of o.golden ?? []) {
      if (g.label !== undefined && !known.has(g.label)) throw new FleetError('GOLDEN_MISMATCH', `golden ${g.file}: expected label ${JSON.stringify(g.label)} is not one of the labels (${o.labels.slice(0, 12).join(', ')}${o.labels.length > 12 ? ', ...' : ''})`);
    }
    for (const [i, g] of (o.golden ?? []).entries()) {
      if (preprocessing.kind !== 'image') throw new FleetError('PACK_FAILED', 'golden image files need an image model');
      const bytes = await readFile(g.file);
      const rel = `golden/${i}-${basename(g.file).replace(/[^A-Za-z0-9._-]/g, '_')}`;
      await add(rel, bytes, 'golden');
      const p = preprocessingSchema.parse(preprocessing) as ImagePreprocessing;
      const t = await imageToTensor(bytes, p);
      const res = await session.run({ [input.name]: new ort.Tensor(dtype, t.data as Float32Array, [1, ...t.itemDims]) });
      const c = classify(res[output.name]!.data as Float32Array, { softmax: o.softmax ?? false, topK: 1, labels: o.labels });
      if (g.label !== undefined && g.label !== c.label) throw new FleetError('GOLDEN_MISMATCH', `golden ${g.file}: expected ${g.label}, the model predicts ${c.label} (score ${c.score.toFixed(3)}); ${fix}`, { details: { file: g.file, expected: g.label, predicted: c.label } });
      if (g.label === undefined) warnings.push(`golden ${g.file} has no =LABEL: recorded the model's own prediction ${JSON.stringify(c.label)} as its expected label; check it is right`);
      // A margin below today's score, so a numerically different but equivalent runtime passes.
      golden.push({ file: rel, expected_label: c.label, min_score: Math.max(0, Math.floor(c.score * 0.8 * 1000) / 1000) });
    }

    for (const g of o.goldenTensors ?? []) {
      const item = input.shape.slice(1).map((d) => (typeof d === 'number' ? d : 1));
      const res = await session.run({ [input.name]: new ort.Tensor(dtype, dtype === 'uint8' ? Uint8Array.from(g.tensor) : Float32Array.from(g.tensor), [1, ...item]) });
      const c = classify(res[output.name]!.data as Float32Array, { softmax: o.softmax ?? false, topK: 1, labels: o.labels });
      if (g.label !== undefined && !known.has(g.label)) throw new FleetError('GOLDEN_MISMATCH', `golden tensor: expected label ${JSON.stringify(g.label)} is not one of the labels`);
      if (g.label !== undefined && g.label !== c.label) throw new FleetError('GOLDEN_MISMATCH', `golden tensor: expected ${g.label}, the model predicts ${c.label}`);
      golden.push({ tensor: g.tensor, expected_label: c.label, min_score: Math.max(0, Math.floor(c.score * 0.8 * 1000) / 1000) });
    }

    if (golden.length === 0) warnings.push('no golden inputs: a device cannot smoke-test this package before it switches to it, and edgeloop models push refuses it without --force; add --golden FILE=LABEL (an input and the label the model must give it)');

    const raw: ModelManifestInput = {
      schema: MANIFEST_SCHEMA,
      v: 1,
      name: slug(o.name ?? basename(o.onnxPath, extname(o.onnxPath))),
      version: o.version ?? '0.1.0',
      ...(o.description ? { description: o.description } : {}),
      task: 'classification',
      created_at: (o.createdAt ?? new Date()).toISOString(),
      model_file: 'model.onnx',
      files,
      inputs: [{ name: input.name, dtype, shape: input.shape }],
      outputs: outputs.map((x) => ({ name: x.name, dtype: 'float32' as const, shape: x.shape })),
      preprocessing,
      postprocessing: { kind: 'classification', output: output.name, softmax: o.softmax ?? false, top_k: Math.min(o.topK ?? 5, o.labels.length) },
      labels: o.labels,
      ...(o.outlier ? { outlier: o.outlier } : {}),
      ...(o.driftBaseline ? { drift_baseline: o.driftBaseline } : {}),
      golden,
      ...(o.lineage ? { lineage: o.lineage } : {}),
      ...(o.evaluation ? { evaluation: o.evaluation } : {}),
    };
    // The rules every reader applies (shared/package), so pack never writes what the registry or a device refuses.
    const check = checkManifest(raw);
    if (!check.manifest || check.problems.length) {
      throw new FleetError('PACK_FAILED', `the manifest would be invalid: ${check.problems.map((p) => p.message).join('; ')}`, { details: { problems: check.problems } });
    }
    const final = o.signKeyPem ? signManifest(raw as Record<string, unknown>, o.signKeyPem) : raw;
    await writeFile(join(o.outDir, MANIFEST_FILE), `${JSON.stringify(final, null, 2)}\n`);
    return { dir: o.outDir, manifest: modelManifest.parse(final), warnings };
  } finally {
    await session.release();
  }
}

/** Labels from a file: one per line, or a JSON array. */
export async function readLabels(path: string): Promise<string[]> {
  const text = (await readFile(path, 'utf8')).trim();
  const labels = text.startsWith('[') ? (JSON.parse(text) as unknown[]).map(String) : text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (labels.length < 2) throw new FleetError('PACK_FAILED', `${path} lists ${labels.length} labels; a classifier needs at least 2`);
  return labels;
}

