import { MANIFEST_FILE, readPackageDir } from '../../shared/package/index.js';
import type { ModelManifest, ModelRef } from '../../shared/schemas/index.js';
import { verifyManifestSignature } from '../../shared/signing.js';
import { AgentError } from '../errors.js';

export { MANIFEST_FILE };

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
 * The device's trust rule, applied to the raw manifest (before schema defaults, which would
 * change the signed bytes): signed by the fleet key, unless unsigned packages are allowed.
 */
export function fleetSignature(opts: VerifyOptions): (raw: Record<string, unknown>) => void {
  return (raw) => {
    const hasSignature = raw.signature !== undefined;
    if (opts.publicKeyPem && (hasSignature || !opts.allowUnsigned)) verifyManifestSignature(raw, opts.publicKeyPem);
    else if (!opts.allowUnsigned) {
      throw new AgentError('MODEL_SIGNATURE_INVALID', hasSignature ? 'no fleet public key is configured to verify the signature' : 'the package is not signed (use --allow-unsigned to run it anyway)');
    }
  };
}

/**
 * Read and fully verify a model package directory: the ed25519 signature against the fleet
 * key, then the package rules and the sha256 of every listed file (shared/package, the same
 * module the registry refuses pushes with). Nothing is trusted before all checks pass.
 */
export async function readModelPackage(dir: string, opts: VerifyOptions): Promise<ModelPackage> {
  const p = await readPackageDir(dir, { authenticate: fleetSignature(opts) });
  return { dir, manifest: p.manifest, ref: { name: p.manifest.name, version: p.manifest.version }, manifestSha256: p.manifestSha256, modelBytes: p.modelBytes, signed: p.raw.signature !== undefined };
}
