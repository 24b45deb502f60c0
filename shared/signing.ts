import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { sharedError } from './errors.js';
import { sha256Hex } from './ids.js';
import type { ManifestSignature } from './schemas/manifest.js';

/**
 * Canonical JSON: object keys sorted, no whitespace. The signature covers these bytes, so
 * two tools that write the same manifest with different key order verify alike.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') {
    if (typeof value === 'number' && !Number.isFinite(value)) throw new Error('canonicalJson: non-finite number');
    return JSON.stringify(value) ?? 'null';
  }
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

export interface SigningKeyPair {
  privateKeyPem: string;
  publicKeyPem: string;
  keyId: string;
}

export function generateSigningKeyPair(): SigningKeyPair {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return {
    privateKeyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    publicKeyPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    keyId: keyIdOf(publicKey),
  };
}

export function keyIdOf(publicKey: KeyObject | string): string {
  const key = typeof publicKey === 'string' ? createPublicKey(publicKey) : publicKey;
  return sha256Hex(key.export({ type: 'spki', format: 'der' }));
}

/** The bytes a manifest signature covers: the manifest minus its `signature` field. */
function signedPayload(manifest: Record<string, unknown>): Buffer {
  const { signature: _omit, ...rest } = manifest;
  return Buffer.from(canonicalJson(rest), 'utf8');
}

/**
 * Sign a raw manifest object (as written to manifest.json). Returns a copy with `signature`.
 * Because the manifest lists the sha256 of every file, the signature covers the whole package.
 */
export function signManifest<T extends Record<string, unknown>>(manifest: T, privateKeyPem: string): T & { signature: ManifestSignature } {
  const key = createPrivateKey(privateKeyPem);
  const value = sign(null, signedPayload(manifest), key).toString('base64');
  return { ...manifest, signature: { alg: 'ed25519', key_id: keyIdOf(createPublicKey(key)), value } };
}

/**
 * Verify the signature of a raw manifest object (before schema defaults are applied: defaults
 * would change the signed bytes). Throws MODEL_SIGNATURE_INVALID with the reason.
 */
export function verifyManifestSignature(manifest: Record<string, unknown>, publicKeyPem: string): void {
  let key: KeyObject;
  try {
    key = createPublicKey(publicKeyPem);
  } catch (err) {
    throw sharedError('MODEL_SIGNATURE_INVALID', 'the configured fleet public key cannot be read', { status: 500, cause: err });
  }
  const why = signatureProblem(manifest, key, 'manifest');
  if (why) throw sharedError('MODEL_SIGNATURE_INVALID', `model package signature invalid: ${why}`);
}

/**
 * Why the `signature` of a signed document (a manifest, a rule set) does not verify with `key`,
 * or null when it does. The document is the raw object, before schema defaults.
 */
export function signatureProblem(doc: Record<string, unknown>, key: KeyObject, what: string): string | null {
  const sig = doc.signature as Partial<ManifestSignature> | undefined;
  if (!sig || typeof sig !== 'object') return `the ${what} is not signed`;
  if (sig.alg !== 'ed25519' || typeof sig.value !== 'string') return 'unsupported signature algorithm';
  const expectedKeyId = keyIdOf(key);
  if (sig.key_id !== expectedKeyId) return `signed by key ${String(sig.key_id).slice(0, 12)}..., expected ${expectedKeyId.slice(0, 12)}...`;
  const ok = verify(null, signedPayload(doc), key, Buffer.from(sig.value, 'base64'));
  return ok ? null : `the ${what} was changed after signing`;
}
