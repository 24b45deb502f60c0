import { open, readdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { Logger } from 'pino';
import { EdgeloopError } from '../../../shared/errors.js';
import { sha256Hex } from '../../../shared/ids.js';
import type { Clock } from '../../../shared/ids.js';
import { directoryReader, MANIFEST_FILE, packageProblems, readPackage, type VerifiedPackage } from '../../../shared/package/index.js';
import { modelManifest, modelRefString } from '../../../shared/schemas/index.js';
import type { ModelManifest, ModelRef, PackageFile } from '../../../shared/schemas/index.js';
import { canonicalJson, keyIdOf, signManifest } from '../../../shared/signing.js';
import type { ArtifactStore } from '../artifacts.js';
import type { Audit } from '../audit.js';
import type { PackageStaging } from './staging.js';
import { FleetError } from '../../errors.js';
import { compareSemver } from '../../../shared/semver.js';

export { MANIFEST_FILE };

/** `registered`: may be rolled out. `rejected`: an evaluation gate (or a person) said no, with reasons. */
export type ModelStatus = 'registered' | 'rejected';

/** One file of a registered version; `sha256` names its artifact. */
export interface ModelFileRecord {
  path: string;
  sha256: string;
  bytes: number;
  role: PackageFile['role'];
}

/** A registered model version, as the API and the CLI show it. Times are ISO strings. */
export interface ModelVersion {
  name: string;
  version: string;
  /** `name@version`. */
  ref: string;
  /** created_at of the manifest (when the package was built). */
  created_at: string;
  pushed_at: string;
  pushed_by: string;
  /** sha256 of the fleet-signed manifest.json: what a desired state pins, and its artifact. */
  manifest_sha256: string;
  /** sha256 of the canonical manifest without signature: the identity of the package content. */
  content_sha256: string;
  /** The fleet key that signed the manifest. */
  key_id: string;
  model_file: string;
  total_bytes: number;
  description: string | null;
  files: ModelFileRecord[];
  /** The evaluation report the package carries (`manifest.evaluation`), or null. */
  evaluation: Record<string, unknown> | null;
  lineage: { dataset_version: string | null; training_run: string | null; parent: ModelRef | null };
  status: ModelStatus;
  status_reasons: string[];
  status_at: string | null;
  status_by: string | null;
}

/** What {@link ModelRegistry.push} did. */
export interface PushResult {
  version: ModelVersion;
  /** false: the same content was already registered under this name@version (a no-op). */
  created: boolean;
  /** Files in the directory that the manifest does not list: not part of the package, not stored. */
  unlisted: string[];
}

/** One step of {@link ModelRegistry.lineage}, newest first. */
export interface LineageEntry {
  name: string;
  version: string;
  dataset_version: string | null;
  training_run: string | null;
  pushed_at: string | null;
  /** The parent is named by its child's manifest but is not in this registry. */
  missing: boolean;
}

export interface ModelRegistryOptions {
  repo: ModelsRepo;
  clock: Clock;
  artifacts: ArtifactStore;
  /** The fleet's ed25519 key pair (fleet/adapters/fs/keys.ts): devices trust what it signed. */
  signingKey: { privateKeyPem: string; publicKeyPem: string };
  /** Registrations and refused pushes, with the rules a refused package broke. */
  log?: Logger;
  /** Where pushes and verdicts are recorded with their actor. */
  audit?: Audit;
  /** Where uploaded packages are unpacked ({@link ModelRegistry.pushUpload}); without it uploads are refused. */
  staging?: PackageStaging;
}

/** The registry's index row of a version (`model_versions`); JSON columns as stored. */
export interface VersionRow {
  id: number;
  name: string;
  version: string;
  created_at: string;
  pushed_at: number;
  pushed_by: string;
  manifest_sha256: string;
  content_sha256: string;
  key_id: string;
  model_file: string;
  total_bytes: number;
  description: string | null;
  evaluation: string | null;
  dataset_version: string | null;
  training_run: string | null;
  parent_name: string | null;
  parent_version: string | null;
  status: ModelStatus;
  status_reasons: string;
  status_at: number | null;
  status_by: string | null;
}

/** One file of a version (`model_files`). */
export interface FileRow {
  model_id: number;
  path: string;
  sha256: string;
  bytes: number;
  role: PackageFile['role'];
}

/** What a push writes; the verdict columns start as `registered` with no reasons. */
export type NewVersionRow = Omit<VersionRow, 'id' | 'status' | 'status_reasons' | 'status_at' | 'status_by'>;

/**
 * Where the registry's index lives (`model_versions`, `model_files`); the bytes are in the
 * artifact store. A failure throws `FLEET_STORAGE_FAILED`.
 */
export interface ModelsRepo {
  find(name: string, version: string): VersionRow | null;
  /** Versions by name then push order; null leaves a field unfiltered. */
  list(filter: { name: string | null; status: ModelStatus | null }): VersionRow[];
  /** The files of one version, by path. */
  files(modelId: number): FileRow[];
  /** The files of every version (`name` null) or of one model's versions, by version then path. */
  filesOf(name: string | null): FileRow[];
  fileSha(modelId: number, path: string): string | null;
  /**
   * Register a version and its files atomically. When name@version is registered already (another
   * push won the race), nothing is written and the stored row comes back with `created: false`.
   */
  insert(v: NewVersionRow, files: readonly ModelFileRecord[]): { row: VersionRow; created: boolean };
  setStatus(id: number, s: { status: ModelStatus; reasons: string[]; at: number; by: string }): void;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/**
 * The model registry: content-addressed, fleet-signed, immutable model versions with
 * lineage. Packages go in with {@link push}; devices get the signed manifest and the files
 * from the artifact store by sha256 (`manifestBytes`, `fileSha`).
 *
 * Validation on push is the agent's own (shared/package: schema, the package rules, the
 * sha256 and size of every listed file), so the registry refuses exactly the packages a
 * device would refuse at install; `storeFile` checks each file's hash again as it stores it.
 */
export class ModelRegistry {
  private readonly repo: ModelsRepo;
  private readonly clock: Clock;
  private readonly artifacts: ArtifactStore;
  private readonly privateKeyPem: string;
  private readonly keyId: string;
  private readonly log: Logger | undefined;
  private readonly audit: Audit | undefined;
  private readonly staging: PackageStaging | undefined;

  constructor(opts: ModelRegistryOptions) {
    this.repo = opts.repo;
    this.audit = opts.audit;
    this.staging = opts.staging;
    this.clock = opts.clock;
    this.log = opts.log;
    this.artifacts = opts.artifacts;
    this.privateKeyPem = opts.signingKey.privateKeyPem;
    this.keyId = keyIdOf(opts.signingKey.publicKeyPem);
  }

  /**
   * Register the package in `dir` (manifest.json + the files it lists). Every file goes to
   * the artifact store (hash checked while writing), the manifest is signed with the fleet
   * key (replacing any signature it had: the fleet key is what devices trust) and stored as
   * an artifact too. Pushing the same content again returns the existing version
   * (`created: false`); a different package under an existing name@version is refused with
   * `FLEET_MODEL_VERSION_EXISTS`: versions are immutable.
   */
  async push(dir: string, opts: { actor: string; label?: string; requireGolden?: boolean }): Promise<PushResult> {
    const { raw, manifest } = await this.verified(dir, opts.label ?? dir);
    if (opts.requireGolden && manifest.golden.length === 0) {
      this.log?.warn({ actor: opts.actor, model: `${manifest.name}@${manifest.version}` }, 'model package refused: no golden inputs');
      throw new FleetError('GOLDEN_MISSING', `${manifest.name}@${manifest.version} has no golden inputs, so no device can smoke-test it before switching to it: repack with 'edgeloop pack ... --golden FILE=LABEL', or push anyway with force (\`edgeloop models push --force\`, \`POST /v1/models?force=true\`)`);
    }
    const { signature: _previous, ...unsigned } = raw;
    const contentSha = sha256Hex(canonicalJson(unsigned));
    const unlisted = await unlistedFiles(dir, manifest);

    const existing = this.repo.find(manifest.name, manifest.version);
    if (existing) return { version: this.same(existing, contentSha), created: false, unlisted };

    for (const f of manifest.files) await this.storeFile(dir, f);
    const signed = signManifest(unsigned, this.privateKeyPem);
    const manifestBytes = Buffer.from(`${JSON.stringify(signed, null, 2)}\n`, 'utf8');
    const stored = await this.artifacts.put(manifestBytes);

    const parent = manifest.lineage?.parent ?? null;
    // Another push may have won the race since the check above: then insert returns its row.
    const result = this.repo.insert(
      {
        name: manifest.name,
        version: manifest.version,
        created_at: manifest.created_at,
        pushed_at: this.clock.now(),
        pushed_by: opts.actor,
        manifest_sha256: stored.sha256,
        content_sha256: contentSha,
        key_id: this.keyId,
        model_file: manifest.model_file,
        total_bytes: manifest.files.reduce((n, f) => n + f.bytes, 0),
        description: manifest.description ?? null,
        evaluation: manifest.evaluation ? JSON.stringify(manifest.evaluation) : null,
        dataset_version: manifest.lineage?.dataset_version ?? null,
        training_run: manifest.lineage?.training_run ?? null,
        parent_name: parent?.name ?? null,
        parent_version: parent?.version ?? null,
      },
      manifest.files.map((f) => ({ path: f.path, sha256: f.sha256, bytes: f.bytes, role: f.role })),
    );
    const version = result.created ? this.toVersion(result.row) : this.same(result.row, contentSha);
    if (result.created) {
      this.log?.info({ model: version.ref, manifest_sha256: version.manifest_sha256, actor: opts.actor, unlisted }, 'model version registered');
      this.audit?.record({ actor: opts.actor, action: 'model.push', target: version.ref, details: { manifest_sha256: version.manifest_sha256, bytes: version.total_bytes } });
    }
    return { version, created: result.created, unlisted };
  }

  /**
   * Register an uploaded package: `archive` is a tar stream of the package directory (what
   * `edgeloop models push` sends). It is unpacked into a fresh directory of the fleet's own
   * (the staging port: size caps, no name leaving the directory), then registered exactly like
   * {@link push} (every file's sha256 and size checked against the manifest), then removed.
   * A package without golden inputs is refused (`FLEET_GOLDEN_MISSING`) unless `force`: the
   * same rule `edgeloop models push` applies before uploading, so a client that skips the CLI
   * gets it too.
   */
  async pushUpload(archive: AsyncIterable<Uint8Array>, opts: { actor: string; force?: boolean }): Promise<PushResult> {
    if (!this.staging) throw new FleetError('UPLOAD_INVALID', 'this fleet accepts no uploads (no staging directory)');
    let staged;
    try {
      staged = await this.staging.unpack(archive);
    } catch (err) {
      if (err instanceof EdgeloopError) this.log?.warn({ actor: opts.actor, code: err.code, reason: err.message }, 'model upload refused');
      throw err;
    }
    try {
      return await this.push(staged.dir, { actor: opts.actor, label: 'the uploaded package', requireGolden: !opts.force });
    } finally {
      await staged.discard();
    }
  }

  /** The package in `dir`, verified as a device would; a refusal is logged with its rules. */
  private async verified(dir: string, label: string): Promise<VerifiedPackage> {
    try {
      return await readPackage({ ...directoryReader(dir), label });
    } catch (err) {
      const problems = packageProblems(err);
      if (problems) this.log?.warn({ dir, code: (err as EdgeloopError).code, rules: problems.map((p) => p.rule) }, 'model package refused');
      throw err;
    }
  }

  /** Versions, by name then push order; `name` narrows to one model. */
  list(filter: { name?: string; status?: ModelStatus } = {}): ModelVersion[] {
    const rows = this.repo.list({ name: filter.name ?? null, status: filter.status ?? null });
    const files = groupFiles(this.repo.filesOf(filter.name ?? null));
    return rows.map((r) => this.toVersion(r, files.get(r.id) ?? []));
  }

  /** One version. Throws `FLEET_MODEL_NOT_FOUND`. */
  get(name: string, version: string): ModelVersion {
    return this.toVersion(this.row(name, version));
  }

  /** One version, or null when name@version is not registered. */
  find(name: string, version: string): ModelVersion | null {
    const row = this.repo.find(name, version);
    return row ? this.toVersion(row) : null;
  }

  /** The highest version (semver precedence) of a model with the given status (default `registered`), or null. */
  latest(name: string, status: ModelStatus = 'registered'): ModelVersion | null {
    const rows = this.repo.list({ name, status });
    if (rows.length === 0) return null;
    const best = rows.reduce((a, b) => (compareSemver(a.version, b.version) >= 0 ? a : b));
    return this.toVersion(best);
  }

  /** The fleet-signed manifest.json bytes, exactly as devices download them (sha256 = `manifest_sha256`). */
  async manifestBytes(name: string, version: string): Promise<Buffer> {
    return this.artifacts.get(this.row(name, version).manifest_sha256);
  }

  /** The signed manifest, parsed with schema defaults applied. */
  async manifest(name: string, version: string): Promise<ModelManifest> {
    return modelManifest.parse(JSON.parse((await this.manifestBytes(name, version)).toString('utf8')));
  }

  /** The artifact sha256 of one file of a version. Throws `FLEET_MODEL_NOT_FOUND` / `FLEET_NOT_FOUND`. */
  fileSha(name: string, version: string, path: string): string {
    const row = this.row(name, version);
    const sha = this.repo.fileSha(row.id, path);
    if (sha === null) throw new FleetError('NOT_FOUND', `${name}@${version} has no file ${path}`, { details: { name, version, path } });
    return sha;
  }

  /**
   * The chain of parents from `name@version` back to the first version without a parent,
   * newest first. A parent the registry does not hold ends the chain with `missing: true`;
   * a cycle (possible when parents are pushed after children) ends where it repeats.
   */
  lineage(name: string, version: string): LineageEntry[] {
    const chain: LineageEntry[] = [];
    const seen = new Set<string>();
    let ref: ModelRef | null = { name, version };
    let row: VersionRow | null = this.row(name, version);
    while (ref && !seen.has(modelRefString(ref))) {
      seen.add(modelRefString(ref));
      if (!row) {
        chain.push({ name: ref.name, version: ref.version, dataset_version: null, training_run: null, pushed_at: null, missing: true });
        break;
      }
      chain.push({ name: row.name, version: row.version, dataset_version: row.dataset_version, training_run: row.training_run, pushed_at: iso(row.pushed_at), missing: false });
      ref = row.parent_name !== null && row.parent_version !== null ? { name: row.parent_name, version: row.parent_version } : null;
      row = ref ? this.repo.find(ref.name, ref.version) : null;
    }
    return chain;
  }

  /**
   * Mark a version `registered` or `rejected` (evaluation gate, a person), with reasons.
   * The package stays immutable; only this verdict changes.
   */
  setStatus(name: string, version: string, s: { status: ModelStatus; reasons?: string[]; actor: string }): ModelVersion {
    const row = this.row(name, version);
    this.repo.setStatus(row.id, { status: s.status, reasons: s.reasons ?? [], at: this.clock.now(), by: s.actor });
    this.audit?.record({ actor: s.actor, action: 'model.status', target: `${name}@${version}`, details: { status: s.status, reasons: s.reasons ?? [] } });
    return this.get(name, version);
  }

  private row(name: string, version: string): VersionRow {
    const row = this.repo.find(name, version);
    if (!row) throw new FleetError('MODEL_NOT_FOUND', `model ${name}@${version} is not registered`, { details: { name, version } });
    return row;
  }

  /** The existing row when it holds the same content; otherwise the version is taken. */
  private same(row: VersionRow, contentSha: string): ModelVersion {
    if (row.content_sha256 !== contentSha) {
      throw new FleetError('MODEL_VERSION_EXISTS', `${row.name}@${row.version} is already registered with different content; versions are immutable, push a new version`, {
        details: { name: row.name, version: row.version, registered_content_sha256: row.content_sha256, pushed_content_sha256: contentSha },
      });
    }
    return this.toVersion(row);
  }

  private async storeFile(dir: string, f: PackageFile): Promise<void> {
    let fh: FileHandle;
    try {
      fh = await open(join(dir, f.path), 'r');
    } catch (err) {
      throw new FleetError('MODEL_PACKAGE_INVALID', `file ${f.path} listed in the manifest is missing from ${dir}`, { cause: err, details: { file: f.path } });
    }
    try {
      const stored = await this.artifacts.put(fh.createReadStream({ autoClose: false }), { sha256: f.sha256 });
      if (stored.bytes !== f.bytes) {
        throw new FleetError('MODEL_HASH_MISMATCH', `file ${f.path} is ${stored.bytes} bytes, the manifest says ${f.bytes}`, { details: { file: f.path, expected: f.bytes, got: stored.bytes } });
      }
    } catch (err) {
      if (err instanceof EdgeloopError && err.code === 'FLEET_ARTIFACT_HASH_MISMATCH') {
        throw new FleetError('MODEL_HASH_MISMATCH', `file ${f.path} does not match the manifest: ${err.message}`, { cause: err, details: { file: f.path, ...err.details } });
      }
      throw err;
    } finally {
      await fh.close().catch(() => undefined);
    }
  }

  private toVersion(r: VersionRow, files?: ModelFileRecord[]): ModelVersion {
    const fileList = files ?? this.repo.files(r.id).map(({ path, sha256, bytes, role }) => ({ path, sha256, bytes, role }));
    return {
      name: r.name,
      version: r.version,
      ref: `${r.name}@${r.version}`,
      created_at: r.created_at,
      pushed_at: iso(r.pushed_at) as string,
      pushed_by: r.pushed_by,
      manifest_sha256: r.manifest_sha256,
      content_sha256: r.content_sha256,
      key_id: r.key_id,
      model_file: r.model_file,
      total_bytes: r.total_bytes,
      description: r.description,
      files: fileList,
      evaluation: r.evaluation === null ? null : (JSON.parse(r.evaluation) as Record<string, unknown>),
      lineage: {
        dataset_version: r.dataset_version,
        training_run: r.training_run,
        parent: r.parent_name !== null && r.parent_version !== null ? { name: r.parent_name, version: r.parent_version } : null,
      },
      status: r.status,
      status_reasons: JSON.parse(r.status_reasons) as string[],
      status_at: iso(r.status_at),
      status_by: r.status_by,
    };
  }
}

function groupFiles(rows: FileRow[]): Map<number, ModelFileRecord[]> {
  const out = new Map<number, ModelFileRecord[]>();
  for (const { model_id, path, sha256, bytes, role } of rows) {
    const list = out.get(model_id) ?? [];
    list.push({ path, sha256, bytes, role });
    out.set(model_id, list);
  }
  return out;
}

async function unlistedFiles(dir: string, m: ModelManifest): Promise<string[]> {
  const listed = new Set(m.files.map((f) => f.path));
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => relative(dir, join(e.parentPath, e.name)).split(sep).join('/'))
    .filter((p) => p !== MANIFEST_FILE && !listed.has(p))
    .sort();
}
