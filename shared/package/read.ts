import { sha256Hex } from '../ids.js';
import { modelManifest, type ModelManifest } from '../schemas/index.js';
import { formatIssues } from '../validate.js';
import { packageError, type PackageProblem } from './problems.js';
import { manifestProblems, modelFileProblems } from './rules.js';

/** The manifest's file name in a package directory, and its key in download URLs. */
export const MANIFEST_FILE = 'manifest.json';

/**
 * Where the bytes of a package come from: the port this module reads through, so the rules
 * stay free of I/O. shared/package/dir.ts reads a directory; a test may serve a map.
 */
export interface PackageReader {
  /** Names the package in messages (a directory, a URL). */
  readonly label: string;
  /** manifest.json's bytes. Rejects when there is none or it cannot be read. */
  readManifest(): Promise<Uint8Array>;
  /** One file's bytes by its manifest path; null when it does not exist. Rejects when it exists but cannot be read. */
  readFile(path: string): Promise<Uint8Array | null>;
}

/** A package whose manifest passed the schema and the rules, and whose files match it. */
export interface VerifiedPackage {
  /** The manifest with schema defaults applied. */
  manifest: ModelManifest;
  /** The manifest as written (what a signature covers). */
  raw: Record<string, unknown>;
  manifestBytes: Uint8Array;
  /** sha256 of manifest.json as stored: what a desired state pins. */
  manifestSha256: string;
  /** The bytes of `model_file`, the ones that were hashed. */
  modelBytes: Uint8Array;
}

export interface ReadPackageOptions {
  /**
   * Called with the raw manifest before the schema: signatures cover the JSON as written, and
   * defaults would change it. Throw to refuse (the agent checks the fleet's signature here).
   */
  authenticate?(raw: Record<string, unknown>): void;
}

/** What {@link inspectPackage} found: every problem, and what could be read on the way. */
export interface PackageInspection {
  problems: PackageProblem[];
  raw?: Record<string, unknown>;
  manifestBytes?: Uint8Array;
  /** Set when the manifest passed the schema (the rules may still have failed). */
  manifest?: ModelManifest;
  /** Set when `model_file` was listed, found and matched its sha256. */
  modelBytes?: Uint8Array;
}

const errnoOf = (err: unknown): string => (err as { code?: unknown }).code?.toString() ?? (err as Error).message;

/** The manifest's JSON object, or the problem with the bytes. */
function decodeManifest(bytes: Uint8Array | string): { raw: Record<string, unknown> } | { problem: PackageProblem } {
  try {
    const raw = JSON.parse(typeof bytes === 'string' ? bytes : Buffer.from(bytes).toString('utf8')) as unknown;
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a JSON object');
    return { raw: raw as Record<string, unknown> };
  } catch (err) {
    // Never the parser's own message: V8 quotes the start of the text ("root:x:0:0"...), which
    // would hand back the first bytes of whatever file was read. Only where it broke.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    const where = (err as Error).message === 'not a JSON object' ? 'it is not a JSON object' : at !== undefined ? `it breaks at byte ${at}` : 'it does not parse';
    return { problem: { rule: 'manifest_json', message: `${MANIFEST_FILE} is not valid JSON: ${where}` } };
  }
}

/**
 * Schema, then the rules (rules.ts, tasks.ts), of a raw manifest. The schema failing stops
 * there: the rules read parsed fields.
 */
export function checkManifest(raw: unknown): { manifest?: ModelManifest; problems: PackageProblem[] } {
  const parsed = modelManifest.safeParse(raw);
  if (!parsed.success) {
    return {
      problems: parsed.error.issues.map((issue, i) => ({ rule: 'schema' as const, field: issue.path.map(String).join('.'), message: formatIssues(parsed.error.issues)[i] as string })),
    };
  }
  return { manifest: parsed.data, problems: manifestProblems(parsed.data) };
}

/**
 * The manifest from its bytes, or one refusal naming every problem: JSON, then `authenticate`,
 * then schema and rules. Files are not read: this is what may be trusted before fetching them
 * (file paths included).
 */
export function openManifest(bytes: Uint8Array | string, where: string, o: ReadPackageOptions = {}): { manifest: ModelManifest; raw: Record<string, unknown> } {
  const decoded = decodeManifest(bytes);
  if ('problem' in decoded) throw packageError(where, [decoded.problem]);
  o.authenticate?.(decoded.raw);
  const { manifest, problems } = checkManifest(decoded.raw);
  if (problems.length || !manifest) throw packageError(where, problems);
  return { manifest, raw: decoded.raw };
}

/**
 * Every problem of a package, without throwing (except what `authenticate` throws): the
 * manifest (read, JSON, schema, rules), every listed file against its sha256 and size, then
 * the model file's inputs and outputs against the manifest's.
 * Files are read even when the rules failed, so one answer lists everything to fix.
 */
export async function inspectPackage(reader: PackageReader, o: ReadPackageOptions = {}): Promise<PackageInspection> {
  let manifestBytes: Uint8Array;
  try {
    manifestBytes = await reader.readManifest();
  } catch (err) {
    return { problems: [{ rule: 'manifest_unreadable', message: `${MANIFEST_FILE} cannot be read (${errnoOf(err)})` }] };
  }
  const decoded = decodeManifest(manifestBytes);
  if ('problem' in decoded) return { problems: [decoded.problem], manifestBytes };
  const raw = decoded.raw;
  o.authenticate?.(raw);
  const { manifest, problems } = checkManifest(raw);
  if (!manifest) return { problems, raw, manifestBytes };

  let modelBytes: Uint8Array | undefined;
  const seen = new Set<string>();
  for (const f of manifest.files) {
    if (seen.has(f.path)) continue;
    seen.add(f.path);
    let bytes: Uint8Array | null;
    try {
      bytes = await reader.readFile(f.path);
    } catch (err) {
      problems.push({ rule: 'file_unreadable', message: `file ${f.path} cannot be read (${errnoOf(err)})`, file: f.path });
      continue;
    }
    if (bytes === null) {
      problems.push({ rule: 'file_missing', message: `file ${f.path} listed in the manifest is missing`, file: f.path });
      continue;
    }
    const got = sha256Hex(bytes);
    if (got !== f.sha256) {
      const size = bytes.length !== f.bytes ? `, ${bytes.length} bytes where the manifest says ${f.bytes}` : '';
      problems.push({ rule: 'file_hash_mismatch', message: `file ${f.path} does not match its sha256 (sha256 ${got.slice(0, 12)}..., expected ${f.sha256.slice(0, 12)}...${size})`, file: f.path, expected: f.sha256, got });
    } else if (bytes.length !== f.bytes) {
      problems.push({ rule: 'file_size_mismatch', message: `file ${f.path} is ${bytes.length} bytes, the manifest says ${f.bytes}`, file: f.path, expected: f.bytes, got: bytes.length });
    } else if (f.path === manifest.model_file) modelBytes = bytes;
  }
  // The model is compared with a manifest that is sound on its own; else its problems say enough.
  if (modelBytes && problems.length === 0) problems.push(...modelFileProblems(manifest, modelBytes));
  return { problems, raw, manifestBytes, manifest, ...(modelBytes ? { modelBytes } : {}) };
}

/**
 * Read and verify a package: what the agent installs, the registry registers and the trainers'
 * output must be. Throws one `MODEL_PACKAGE_INVALID` / `MODEL_HASH_MISMATCH` naming every
 * problem (shared/package/problems.ts), or what `authenticate` throws.
 */
export async function readPackage(reader: PackageReader, o: ReadPackageOptions = {}): Promise<VerifiedPackage> {
  const r = await inspectPackage(reader, o);
  if (r.problems.length || !r.manifest || !r.raw || !r.manifestBytes || !r.modelBytes) throw packageError(reader.label, r.problems);
  return { manifest: r.manifest, raw: r.raw, manifestBytes: r.manifestBytes, manifestSha256: sha256Hex(r.manifestBytes), modelBytes: r.modelBytes };
}
