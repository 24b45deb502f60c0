/**
 * Validates a directory a trainer wrote as a model package before the fleet accepts it: the
 * manifest parses against the one schema, names the expected model, every listed file exists
 * with its sha256 and size, and ONNX Runtime loads the model with the inputs and outputs the
 * manifest declares. Every problem is listed in one FLEET_TRAINING_OUTPUT_INVALID error.
 */
import { readFile } from 'node:fs/promises';
import { join, normalize, sep } from 'node:path';
import * as ort from 'onnxruntime-node';
import { sha256Hex } from '../../../shared/ids.js';
import { modelManifest, modelRefString, type ModelManifest, type ModelRef } from '../../../shared/schemas/index.js';
import { formatIssues } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';

export interface PackageCheckOptions {
  /** The name@version the package must carry. */
  expect?: ModelRef;
  /** The labels the package must list, in order. */
  labels?: readonly string[];
}

/** Returns the parsed manifest, or throws FLEET_TRAINING_OUTPUT_INVALID listing every problem. */
export async function validatePackageDir(dir: string, o: PackageCheckOptions = {}): Promise<ModelManifest> {
  const fail = (problems: string[]): never => {
    throw new FleetError('TRAINING_OUTPUT_INVALID', `${dir} is not a valid model package: ${problems.join('; ')}`, { details: { dir, problems } });
  };
  let text: string;
  try {
    text = await readFile(join(dir, 'manifest.json'), 'utf8');
  } catch (err) {
    return fail([`manifest.json cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return fail([`manifest.json is not JSON: ${(err as Error).message}`]);
  }
  const parsed = modelManifest.safeParse(json);
  if (!parsed.success) return fail(formatIssues(parsed.error.issues).map((i) => `manifest: ${i}`));
  const m = parsed.data;
  const problems: string[] = [];
  if (o.expect && (m.name !== o.expect.name || m.version !== o.expect.version)) problems.push(`manifest names ${m.name}@${m.version}, expected ${modelRefString(o.expect)}`);
  if (o.labels && m.labels.join('\n') !== o.labels.join('\n')) problems.push(`labels are [${m.labels.join(', ')}], expected [${o.labels.join(', ')}]`);
  if (!m.files.some((f) => f.path === m.model_file)) problems.push(`model_file ${m.model_file} is not listed in files`);
  let modelBytes: Buffer | null = null;
  for (const f of m.files) {
    const rel = normalize(f.path);
    if (rel.startsWith('..') || rel.startsWith(sep)) {
      problems.push(`file path ${f.path} leaves the package`);
      continue;
    }
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, rel));
    } catch (err) {
      // Named as what it is: a file that could not be read is not necessarily missing.
      const code = (err as NodeJS.ErrnoException).code;
      problems.push(code === 'ENOENT' ? `${f.path} is missing` : `${f.path} cannot be read (${code ?? (err as Error).message})`);
      continue;
    }
    if (bytes.length !== f.bytes) problems.push(`${f.path} has ${bytes.length} bytes, the manifest says ${f.bytes}`);
    if (sha256Hex(bytes) !== f.sha256) problems.push(`${f.path} does not match its sha256`);
    if (f.path === m.model_file) modelBytes = bytes;
  }
  if (modelBytes) {
    try {
      const session = await ort.InferenceSession.create(modelBytes);
      try {
        const ins = session.inputNames;
        const outs = session.outputNames;
        for (const i of m.inputs) if (!ins.includes(i.name)) problems.push(`the model has no input ${i.name} (it has ${ins.join(', ')})`);
        for (const x of m.outputs) if (!outs.includes(x.name)) problems.push(`the model has no output ${x.name} (it has ${outs.join(', ')})`);
      } finally {
        await session.release();
      }
    } catch (err) {
      problems.push(`ONNX Runtime cannot load ${m.model_file}: ${(err as Error).message.split('\n')[0]}`);
    }
  }
  if (problems.length) fail(problems);
  return m;
}
