import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EdgeloopError } from '../../shared/errors.js';
import { sha256Hex } from '../../shared/ids.js';
import { modelManifest, type ModelManifest, type ModelRef } from '../../shared/schemas/index.js';
import { verifyManifestSignature } from '../../shared/signing.js';
import { formatIssues } from '../../shared/validate.js';
import { AgentError } from '../errors.js';

export const MANIFEST_FILE = 'manifest.json';

export interface ModelPackage {
  dir: string;
  manifest: ModelManifest;
  ref: ModelRef;
  /** sha256 of manifest.json as stored: what a desired state pins. */
  manifestSha256: string;
  modelBytes: Uint8Array;
  signed: boolean;
}

export interface VerifyOptions {
  /** The fleet's ed25519 public key (PEM). Required unless `allowUnsigned`. */
  publicKeyPem?: string | undefined;
  /** Accept a package with no signature (one-shot `infer --allow-unsigned`, local development). */
  allowUnsigned?: boolean;
}

/**
 * Read and fully verify a model package directory: manifest schema, ed25519 signature against
 * the fleet key, and the sha256 of every listed file. Nothing is trusted before all checks pass.
 */
export async function readModelPackage(dir: string, opts: VerifyOptions): Promise<ModelPackage> {
  let text: Buffer;
  try {
    text = await readFile(join(dir, MANIFEST_FILE));
  } catch (err) {
    throw new AgentError('MODEL_PACKAGE_INVALID', `no ${MANIFEST_FILE} in ${dir}`, { cause: err });
  }
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text.toString('utf8')) as Record<string, unknown>;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a JSON object');
  } catch (err) {
    throw new AgentError('MODEL_PACKAGE_INVALID', `${MANIFEST_FILE} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }

  // Signature first, on the raw object: schema defaults would change the signed bytes.
  const hasSignature = raw.signature !== undefined;
  if (opts.publicKeyPem && (hasSignature || !opts.allowUnsigned)) verifyManifestSignature(raw, opts.publicKeyPem);
  else if (!opts.allowUnsigned) {
    throw new AgentError('MODEL_SIGNATURE_INVALID', hasSignature ? 'no fleet public key is configured to verify the signature' : 'the package is not signed (use --allow-unsigned to run it anyway)');
  }

  const parsed = modelManifest.safeParse(raw);
  if (!parsed.success) {
    const issues = formatIssues(parsed.error.issues);
    throw new AgentError('MODEL_PACKAGE_INVALID', `manifest is invalid: ${issues.join('; ')}`, { details: { issues } });
  }
  const manifest = parsed.data;
  checkConsistency(manifest);

  let modelBytes: Uint8Array | null = null;
  for (const f of manifest.files) {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, f.path));
    } catch (err) {
      throw new AgentError('MODEL_PACKAGE_INVALID', `file ${f.path} listed in the manifest is missing`, { cause: err });
    }
    const got = sha256Hex(bytes);
    if (got !== f.sha256 || bytes.length !== f.bytes) {
      throw new AgentError('MODEL_HASH_MISMATCH', `file ${f.path} does not match the manifest (sha256 ${got.slice(0, 12)}..., expected ${f.sha256.slice(0, 12)}...)`, {
        details: { file: f.path, expected: f.sha256, got },
      });
    }
    if (f.path === manifest.model_file) modelBytes = bytes;
  }
  if (!modelBytes) throw new AgentError('MODEL_PACKAGE_INVALID', `model_file ${manifest.model_file} is not listed in files`);
  return { dir, manifest, ref: { name: manifest.name, version: manifest.version }, manifestSha256: sha256Hex(text), modelBytes, signed: hasSignature };
}

/** Cross-field checks the schema cannot express. */
function checkConsistency(m: ModelManifest): void {
  const problems: string[] = [];
  if (m.inputs.length !== 1) problems.push(`exactly one model input is supported, the manifest lists ${m.inputs.length}`);
  const input = m.inputs[0];
  if (input && m.preprocessing.kind === 'image') {
    const p = m.preprocessing;
    const ch = p.color === 'grayscale' ? 1 : 3;
    const want = p.layout === 'NCHW' ? [ch, p.height, p.width] : [p.height, p.width, ch];
    const got = input.shape.slice(1);
    if (input.shape.length !== 4 || got.some((d, i) => typeof d === 'number' && d !== want[i])) {
      problems.push(`input ${input.name} shape [${input.shape.join(',')}] does not fit preprocessing ${p.layout} ${p.color} ${p.width}x${p.height} (expected [batch,${want.join(',')}])`);
    }
    if (input.dtype !== p.dtype) problems.push(`input dtype ${input.dtype} differs from preprocessing dtype ${p.dtype}`);
  }
  const out = m.postprocessing.output ?? m.outputs[0]?.name;
  if (!m.outputs.some((o) => o.name === out)) problems.push(`postprocessing output ${out} is not a model output`);
  const classes = m.outputs.find((o) => o.name === out)?.shape.at(-1);
  if (typeof classes === 'number' && classes !== m.labels.length) problems.push(`output has ${classes} classes, labels has ${m.labels.length}`);
  if (m.drift_baseline?.class_distribution && m.drift_baseline.class_distribution.length !== m.labels.length) problems.push('drift_baseline.class_distribution length differs from labels');
  if (problems.length) throw new AgentError('MODEL_PACKAGE_INVALID', `manifest is inconsistent: ${problems.join('; ')}`, { details: { issues: problems } });
}

export function isSignatureError(err: unknown): boolean {
  return err instanceof EdgeloopError && err.code === 'MODEL_SIGNATURE_INVALID';
}
