import '../../../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import { sha256Hex } from '../../../shared/ids.js';
import { classify } from '../../../shared/inference/postprocess.js';
import { feedDimsOf, imageToTensor } from '../../../shared/inference/preprocess.js';
import { checkManifest, MANIFEST_FILE } from '../../../shared/package/index.js';
import { MANIFEST_SCHEMA, modelManifest, preprocessing as preprocessingSchema, type ImagePreprocessing, type ModelManifest, type ModelManifestInput, type PackageFile } from '../../../shared/schemas/index.js';
import { signManifest } from '../../../shared/signing.js';
import { readOnnxMetadata } from '../../../shared/onnx/reader.js';
import { FleetError } from '../../errors.js';
import { imageAxes, recordedDims, resolveInputDims } from './pack-dims.js';
import { detectionPostprocessing, type DetectionOptions } from './pack-detection.js';
import { BASELINE_FEW, driftBaselineOf, type BaselineObservation } from './pack-baseline.js';
import { boxStats } from '../../../shared/inference/drift-stats.js';
import { detect, type OutputTensor } from '../../../shared/inference/detect.js';

/** Image flags by their CLI name, for the refusal of flags a tensor model would ignore. */
const IMAGE_FLAGS: Record<string, string> = { width: '--width', height: '--height', color: '--color', layout: '--layout', fit: '--fit', scale: '--scale', mean: '--mean', std: '--std', invert: '--invert' };

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
  /** `--channels`: the channel count of an input whose channel dim is symbolic. */
  channels?: number;
  /** `--dim NAME=N`: sizes of symbolic input dims by name. */
  dims?: Record<string, number>;
  /** `classification` (default) or `detection` (then `detection` says how to decode). */
  task?: 'classification' | 'detection';
  detection?: DetectionOptions;
  /** The model emits logits: apply softmax on the device. */
  softmax?: boolean;
  topK?: number;
  /** Golden images: `label` omitted = record what the model predicts now. */
  golden?: Array<{ file: string; label?: string }>;
  /** Golden tensors for tensor models, recorded the same way. */
  goldenTensors?: Array<{ tensor: number[]; label?: string }>;
  outlier?: ModelManifestInput['outlier'];
  driftBaseline?: ModelManifestInput['drift_baseline'];
  /**
   * Reference images (the scenes the device will see, in their usual conditions): pack runs the
   * model on each as the device will and records the `drift_baseline` the device compares its
   * recent inputs with. Not with `driftBaseline`.
   */
  baseline?: string[];
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
    const task = o.task ?? 'classification';
    if (task === 'detection' && !o.detection) throw new FleetError('USAGE', 'a detector needs a decoder (--decoder yolo|boxes-scores|heatmap)');
    if (task === 'classification' && o.detection) throw new FleetError('PACK_FLAG_UNUSED', 'decoder options apply to --task detection');
    const classes = output.shape.at(-1);
    if (task === 'classification' && typeof classes === 'number' && classes !== o.labels.length) throw new FleetError('PACK_FAILED', `the model has ${classes} output classes, the labels file ${o.labels.length}`);
    const det = o.detection ? detectionPostprocessing(o.detection, outputs, o.labels.length, o.image?.fit) : null;

    const im = o.image ?? {};
    const channelsWanted = o.channels ?? (im.color === undefined ? undefined : im.color === 'grayscale' ? 1 : 3);
    if (task === 'detection' && !imageAxes(input.shape, { channels: channelsWanted, layout: im.layout, tensor: o.tensorInput })) {
      // First: a symbolic channel dim would otherwise be refused as image flags on a tensor, or asked for as `--dim NAME=N`.
      throw new FleetError('PACK_FAILED', `a detector takes images; input ${input.name} [${input.shape.join(',')}] is not one (a 4-D input with a channel dim of 1 or 3, or a 3-D [C,H,W] image without a batch dim); a symbolic channel dim is set with --channels 3 (or --color rgb)`, { details: { input: input.name, shape: input.shape } });
    }
    if (!imageAxes(input.shape, { channels: channelsWanted, layout: im.layout, tensor: o.tensorInput })) {
      // The issue this prevents: flags for a size the device never used, packed as `tensor` without a word.
      const given = [...Object.entries(im).filter(([k, v]) => v !== undefined && k !== 'dtype').map(([k]) => IMAGE_FLAGS[k] ?? `--${k}`), ...(o.channels !== undefined ? ['--channels'] : [])];
      if (given.length) {
        throw new FleetError('PACK_FLAG_UNUSED', `${given.join(', ')} set image preprocessing, but input ${input.name} [${input.shape.join(',')}] is ${o.tensorInput ? 'packed as a tensor (--tensor)' : 'not an image (a 4-D input with a channel dim of 1 or 3, NCHW or NHWC, or a 3-D [C,H,W] one; a symbolic channel dim is set with --channels)'}`, { details: { input: input.name, shape: input.shape, flags: given } });
      }
    }
    const resolved = resolveInputDims(
      input.name,
      input.shape,
      { width: im.width, height: im.height, channels: o.channels, colorChannels: channelsWanted, layout: im.layout, named: o.dims, tensor: o.tensorInput },
      recordedDims(readOnnxMetadata(modelBytes)),
    );
    const guess = resolved.image;
    if (guess && im.color !== undefined && (im.color === 'grayscale' ? 1 : 3) !== guess.channels) {
      throw new FleetError('PACK_FLAG_UNUSED', `--color ${im.color} does not fit input ${input.name}, which has ${guess.channels} channel(s)`, { details: { input: input.name } });
    }
    if (guess) {
      for (const key of ['mean', 'std'] as const) {
        const v = im[key];
        if (v && v.length !== 1 && v.length !== guess.channels) throw new FleetError('PACK_FLAG_UNUSED', `--${key} has ${v.length} values; input ${input.name} has ${guess.channels} channel(s) (give 1 or ${guess.channels})`, { details: { input: input.name, flag: `--${key}` } });
      }
    }
    const preprocessing: ModelManifestInput['preprocessing'] = guess
      ? {
          kind: 'image',
          width: guess.width,
          height: guess.height,
          layout: guess.layout,
          color: guess.channels === 1 ? 'grayscale' : 'rgb',
          dtype,
          fit: det?.fit ?? im.fit ?? 'fill',
          scale: im.scale ?? (dtype === 'uint8' ? 1 : 1 / 255),
          mean: im.mean ?? [0],
          std: im.std ?? [1],
          invert: im.invert ?? false,
        }
      : { kind: 'tensor' };
    const itemDims = resolved.dims.slice(resolved.batched ? 1 : 0);
    /** One example's feed: with a leading batch dim of 1, or as it is for an input without a batch dim. */
    const feed = (item: readonly number[]): number[] => feedDimsOf(resolved.batched ? {} : { batch_dim: false }, item);
    if (det && preprocessing.kind !== 'image') throw new FleetError('PACK_FAILED', `a detector takes images; input ${input.name} [${input.shape.join(',')}] is not one (a 4-D input with a channel dim of 1 or 3)`);
    /** A detector's boxes for one frame, decoded as the device will (refused with the outputs found when the decoder cannot read them). */
    const runDetector = async (data: Float32Array | Uint8Array, geometry: Parameters<typeof detect>[4]): Promise<ReturnType<typeof detect>> => {
      const res = await session.run({ [input.name]: new ort.Tensor(dtype, data, feed(itemDims)) });
      const tensors: Record<string, OutputTensor> = {};
      for (const [name, t] of Object.entries(res)) tensors[name] = { data: t.data as OutputTensor['data'], dims: [...t.dims] };
      const p = preprocessing as { width: number; height: number };
      try {
        return detect(det!.post, tensors, outputs.map((x) => x.name), { classes: o.labels.length, inputWidth: p.width, inputHeight: p.height }, geometry);
      } catch (err) {
        const found = Object.entries(tensors).map(([n, t]) => `${n} [${t.dims.join(',')}]`).join(', ');
        throw new FleetError('PACK_DECODER_MISMATCH', `decoder ${det!.post.decoder.name} cannot read the outputs the model produced (${found}): ${(err as Error).message}`, { cause: err });
      }
    };
    if (det) {
      // Run once on a blank frame: outputs whose dims are symbolic in the graph are checked as they come out.
      const size = itemDims.reduce((a, b) => a * b, 1);
      const p = preprocessing as { width: number; height: number };
      await runDetector(dtype === 'uint8' ? new Uint8Array(size) : new Float32Array(size), { width: p.width, height: p.height, scaleX: 1, scaleY: 1, padX: 0, padY: 0 });
    }

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
    const decoder = det?.post.decoder;
    if (decoder?.name === 'boxes-scores' && decoder.classes && o.detection?.classOffset === undefined) {
      // Nothing in the graph says where class ids start; a torchvision export read from 0 shifts every label by one.
      const cls = outputs.find((x) => x.name === decoder.classes);
      if (cls && /int/.test(cls.type)) warnings.push(`classes output ${cls.name} holds ${cls.type} ids, read as indices into the labels from 0; torchvision's detectors count from 1 (0 is the background): for one of them give --class-offset=-1 and labels without the background class`);
    }
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
      if (det) {
        const t = await imageToTensor(bytes, p, { withGeometry: true, padValue: det.post.letterbox?.pad_value ?? 0 });
        const best = (await runDetector(t.data, t.geometry!))[0];
        const label = best ? (o.labels[best.cls] ?? '') : '';
        if (g.label !== undefined && g.label !== label) throw new FleetError('GOLDEN_MISMATCH', `golden ${g.file}: expected a ${g.label} box first, the model finds ${label || 'nothing'}`, { details: { file: g.file, expected: g.label, predicted: label } });
        golden.push({ file: rel, expected_label: label, min_score: best ? Math.max(0, Math.floor(best.score * 0.8 * 1000) / 1000) : 0 });
        continue;
      }
      const t = await imageToTensor(bytes, p);
      const res = await session.run({ [input.name]: new ort.Tensor(dtype, t.data as Float32Array, feed(t.itemDims)) });
      const c = classify(res[output.name]!.data as Float32Array, { softmax: o.softmax ?? false, topK: 1, labels: o.labels });
      if (g.label !== undefined && g.label !== c.label) throw new FleetError('GOLDEN_MISMATCH', `golden ${g.file}: expected ${g.label}, the model predicts ${c.label} (score ${c.score.toFixed(3)}); ${fix}`, { details: { file: g.file, expected: g.label, predicted: c.label } });
      if (g.label === undefined) warnings.push(`golden ${g.file} has no =LABEL: recorded the model's own prediction ${JSON.stringify(c.label)} as its expected label; check it is right`);
      // A margin below today's score, so a numerically different but equivalent runtime passes.
      golden.push({ file: rel, expected_label: c.label, min_score: Math.max(0, Math.floor(c.score * 0.8 * 1000) / 1000) });
    }

    for (const g of o.goldenTensors ?? []) {
      const size = itemDims.reduce((a, b) => a * b, 1);
      if (g.tensor.length !== size) throw new FleetError('PACK_FAILED', `golden tensor has ${g.tensor.length} values, input ${input.name} takes ${size} [${itemDims.join(',')}]`);
      const res = await session.run({ [input.name]: new ort.Tensor(dtype, dtype === 'uint8' ? Uint8Array.from(g.tensor) : Float32Array.from(g.tensor), feed(itemDims)) });
      const c = classify(res[output.name]!.data as Float32Array, { softmax: o.softmax ?? false, topK: 1, labels: o.labels });
      if (g.label !== undefined && !known.has(g.label)) throw new FleetError('GOLDEN_MISMATCH', `golden tensor: expected label ${JSON.stringify(g.label)} is not one of the labels`);
      if (g.label !== undefined && g.label !== c.label) throw new FleetError('GOLDEN_MISMATCH', `golden tensor: expected ${g.label}, the model predicts ${c.label}`);
      golden.push({ tensor: g.tensor, expected_label: c.label, min_score: Math.max(0, Math.floor(c.score * 0.8 * 1000) / 1000) });
    }

    let driftBaseline = o.driftBaseline;
    if (o.baseline) {
      if (o.driftBaseline) throw new FleetError('PACK_FAILED', 'give reference images (--baseline) or a drift baseline, not both');
      if (preprocessing.kind !== 'image') throw new FleetError('PACK_FLAG_UNUSED', `--baseline takes images; input ${input.name} is a tensor input`, { details: { input: input.name, flag: '--baseline' } });
      const p = preprocessingSchema.parse(preprocessing) as ImagePreprocessing;
      const seen: BaselineObservation[] = [];
      const skipped: string[] = [];
      for (const file of o.baseline) {
        let t: Awaited<ReturnType<typeof imageToTensor>>;
        try {
          t = await imageToTensor(await readFile(file), p, det ? { withGeometry: true, padValue: det.post.letterbox?.pad_value ?? 0 } : {});
        } catch (err) {
          // One unreadable file in a folder of reference frames costs that frame, not the package.
          skipped.push(`${basename(file)} (${(err as { code?: string }).code ?? 'unreadable'})`);
          continue;
        }
        if (det) {
          const found = await runDetector(t.data, t.geometry!);
          const g = t.geometry!;
          const boxes = found.map((d) => ({ score: d.score, box: d.box }));
          seen.push({ index: found[0]?.cls ?? -1, stats: t.stats, boxes: boxStats(boxes, { width: g.width, height: g.height }) });
        } else {
          const res = await session.run({ [input.name]: new ort.Tensor(dtype, t.data as Float32Array, feed(t.itemDims)) });
          seen.push({ index: classify(res[output.name]!.data as Float32Array, { softmax: o.softmax ?? false, topK: 1, labels: o.labels }).index, stats: t.stats });
        }
      }
      if (skipped.length) warnings.push(`--baseline: ${skipped.length} of ${o.baseline.length} files skipped (not images the device could read): ${skipped.slice(0, 5).join(', ')}${skipped.length > 5 ? ', ...' : ''}`);
      if (seen.length === 0) throw new FleetError('PACK_BASELINE_EMPTY', `--baseline: none of the ${o.baseline.length} files is an image the model can read`, { details: { skipped } });
      if (seen.length < BASELINE_FEW) warnings.push(`--baseline: only ${seen.length} images; drift figures from a baseline this small are noisy (give ${BASELINE_FEW} or more of the scenes the device will see)`);
      driftBaseline = driftBaselineOf(seen, o.labels.length);
    }

    if (golden.length === 0) warnings.push('no golden inputs: a device cannot smoke-test this package before it switches to it, and edgeloop models push refuses it without --force; add --golden FILE=LABEL (an input and the label the model must give it)');

    // The task and its postprocessing are chosen together above; the union cannot see that.
    const raw = {
      schema: MANIFEST_SCHEMA,
      v: 1,
      name: slug(o.name ?? basename(o.onnxPath, extname(o.onnxPath))),
      version: o.version ?? '0.1.0',
      ...(o.description ? { description: o.description } : {}),
      task,
      created_at: (o.createdAt ?? new Date()).toISOString(),
      model_file: 'model.onnx',
      files,
      inputs: [{ name: input.name, dtype, shape: input.shape, ...(resolved.dynamic ? { dims: resolved.dims } : {}), ...(resolved.batched ? {} : { batch_dim: false as const }) }],
      outputs: outputs.map((x) => ({ name: x.name, dtype: 'float32' as const, shape: x.shape })),
      preprocessing,
      postprocessing: det ? { ...det.post, top_k: o.topK ?? 5 } : { kind: 'classification', output: output.name, softmax: o.softmax ?? false, top_k: Math.min(o.topK ?? 5, o.labels.length) },
      labels: o.labels,
      ...(o.outlier ? { outlier: o.outlier } : {}),
      ...(driftBaseline ? { drift_baseline: driftBaseline } : {}),
      golden,
      ...(o.lineage ? { lineage: o.lineage } : {}),
      ...(o.evaluation ? { evaluation: o.evaluation } : {}),
    } as ModelManifestInput;
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
export async function readLabels(path: string, min = 2): Promise<string[]> {
  const text = (await readFile(path, 'utf8')).trim();
  const labels = text.startsWith('[') ? (JSON.parse(text) as unknown[]).map(String) : text.split(/\r?\n/).map((l) => l.trim()).filter(Boolean);
  if (labels.length < min) throw new FleetError('PACK_FAILED', `${path} lists ${labels.length} labels; a ${min === 1 ? 'detector' : 'classifier'} needs at least ${min}`);
  return labels;
}

