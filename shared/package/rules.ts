import { readOnnxGraphIo } from '../onnx/reader.js';
import type { ModelManifest } from '../schemas/index.js';
import type { PackageProblem } from './problems.js';
import { taskProblems } from './tasks.js';

/**
 * Cross-field rules a manifest that passed the schema must also meet, whatever its task, then
 * the task's own (tasks.ts). Pure: no file is read. Each rule is here because some part of the
 * system refused such a package already (the agent at install, load or smoke test, the
 * registry at push, the trainer-output check); they now all refuse it at the same place.
 */
export function manifestProblems(m: ModelManifest): PackageProblem[] {
  return [...fileListProblems(m), ...inputProblems(m), ...goldenProblems(m), ...driftProblems(m), ...lineageProblems(m), ...taskProblems(m)];
}

function fileListProblems(m: ModelManifest): PackageProblem[] {
  const problems: PackageProblem[] = [];
  const paths = new Set<string>();
  for (const f of m.files) {
    if (paths.has(f.path)) problems.push({ rule: 'file_listed_twice', message: `file ${f.path} is listed twice`, file: f.path });
    paths.add(f.path);
  }
  if (!paths.has(m.model_file)) problems.push({ rule: 'model_file_unlisted', message: `model_file ${m.model_file} is not listed in files`, file: m.model_file });
  return problems;
}

/** The dims the agent feeds for a tensor: the resolved `dims`, else the model's `shape`. */
function feedDims(spec: { shape: Array<number | string>; dims?: number[] | undefined }): Array<number | string> {
  return spec.dims ?? spec.shape;
}

/** The agent feeds one input, built from the preprocessing, with fixed (or resolved) dims after the batch dim. */
function inputProblems(m: ModelManifest): PackageProblem[] {
  const problems: PackageProblem[] = [];
  if (m.inputs.length !== 1) problems.push({ rule: 'input_count', message: `exactly one model input is supported, the manifest lists ${m.inputs.length}` });
  const input = m.inputs[0];
  if (!input) return problems;
  if (input.dims) {
    // Resolved dims must be the model's own where the model fixes them.
    const clash = input.dims.length !== input.shape.length || input.shape.some((d, i) => typeof d === 'number' && d !== input.dims![i]);
    if (clash) problems.push({ rule: 'input_shape', message: `input ${input.name} dims [${input.dims.join(',')}] do not fit its shape [${input.shape.join(',')}]` });
  }
  const dims = feedDims(input);
  const batched = input.batch_dim !== false;
  const item = dims.slice(batched ? 1 : 0);
  const p = m.preprocessing;
  if (p.kind === 'image') {
    const ch = p.color === 'grayscale' ? 1 : 3;
    const want = p.layout === 'NCHW' ? [ch, p.height, p.width] : [p.height, p.width, ch];
    if (item.length !== 3 || item.some((d, i) => typeof d === 'number' && d !== want[i])) {
      problems.push({ rule: 'input_shape', message: `input ${input.name} shape [${dims.join(',')}] does not fit preprocessing ${p.layout} ${p.color} ${p.width}x${p.height} (expected [${batched ? 'batch,' : ''}${want.join(',')}])` });
    }
    if (input.dtype !== p.dtype) problems.push({ rule: 'input_dtype', message: `input dtype ${input.dtype} differs from preprocessing dtype ${p.dtype}`, expected: p.dtype, got: input.dtype });
  } else if (!batched) {
    // Only an image input is packed without a batch dim (fleet/adapters/fs/pack-dims.ts); JSON tensor requests carry batches.
    problems.push({ rule: 'input_shape', message: `input ${input.name} has no batch dim (batch_dim: false), which only an image input may have` });
  }
  // The runtime sizes its buffers from these dims (agent/model/runtime.ts): a name there cannot run.
  if (item.some((d) => typeof d !== 'number')) {
    problems.push({ rule: 'input_shape', message: `input ${input.name} needs fixed dims${batched ? ' after the batch dim' : ''}, got [${input.shape.join(',')}]: pack it with the symbolic dims given (edgeloop pack --dim NAME=N)` });
  }
  return problems;
}

/** What the agent's smoke test (agent/model/runtime.ts) can never pass, found before it runs. */
function goldenProblems(m: ModelManifest): PackageProblem[] {
  const problems: PackageProblem[] = [];
  const listed = new Set(m.files.map((f) => f.path));
  const input = m.inputs[0];
  const item = input ? feedDims(input).slice(input.batch_dim === false ? 0 : 1) : undefined;
  const itemSize = item?.every((d) => typeof d === 'number') ? (item as number[]).reduce((a, b) => a * b, 1) : null;
  for (const [i, g] of m.golden.entries()) {
    if (g.file === undefined && g.tensor === undefined) problems.push({ rule: 'golden_input_missing', message: `golden[${i}] has neither file nor tensor` });
    if (g.file !== undefined) {
      if (!listed.has(g.file)) problems.push({ rule: 'golden_file_unlisted', message: `golden file ${g.file} is not listed in files`, file: g.file });
      if (m.preprocessing.kind !== 'image') problems.push({ rule: 'golden_file_not_image', message: `golden[${i}] is an image file, but the model takes tensors`, file: g.file });
    } else if (g.tensor !== undefined && itemSize !== null && (g.tensor.length === 0 || g.tensor.length % itemSize !== 0)) {
      problems.push({ rule: 'golden_tensor_size', message: `golden[${i}] has ${g.tensor.length} values, input ${input?.name} takes ${itemSize} per example`, expected: itemSize, got: g.tensor.length });
    }
  }
  return problems;
}

function driftProblems(m: ModelManifest): PackageProblem[] {
  const problems: PackageProblem[] = [];
  for (const key of ['brightness', 'contrast', 'box_count', 'box_score', 'box_size'] as const) {
    const h = m.drift_baseline?.[key];
    if (!h) continue;
    const ascending = h.edges.every((e, i) => i === 0 || e > (h.edges[i - 1] as number));
    if (h.edges.length !== h.freqs.length + 1 || !ascending) {
      problems.push({ rule: 'drift_histogram', message: `drift_baseline.${key} needs ascending edges, one more than freqs (${h.edges.length} edges, ${h.freqs.length} freqs)` });
    }
  }
  return problems;
}

/**
 * The model file against the manifest: every input and output the manifest declares is one the
 * ONNX graph has (the agent's runtime refuses the package at load otherwise). Read from the
 * protobuf, no runtime needed. Bytes that are not an ONNX model at all (a hash-correct text
 * file, a truncated upload) are refused here too, so the fleet never registers a package no
 * device can load.
 */
export function modelFileProblems(m: ModelManifest, modelBytes: Uint8Array): PackageProblem[] {
  let io: { inputs: string[]; outputs: string[] };
  try {
    io = readOnnxGraphIo(modelBytes);
  } catch (err) {
    return [{ rule: 'model_not_onnx', message: `${m.model_file} is not an ONNX model: ${(err as Error).message}`, file: m.model_file }];
  }
  const problems: PackageProblem[] = [];
  for (const [kind, declared, has] of [['input', m.inputs, io.inputs], ['output', m.outputs, io.outputs]] as const) {
    for (const t of declared) {
      if (!has.includes(t.name)) problems.push({ rule: 'model_io_unknown', message: `${m.model_file} has no ${kind} ${t.name} (it has ${has.join(', ') || 'none'})`, file: m.model_file });
    }
  }
  return problems;
}

function lineageProblems(m: ModelManifest): PackageProblem[] {
  const parent = m.lineage?.parent;
  return parent && parent.name === m.name && parent.version === m.version ? [{ rule: 'lineage_self_parent', message: 'lineage.parent names the version itself' }] : [];
}
