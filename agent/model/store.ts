import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import { z } from 'zod';
import { EdgeloopError } from '../../shared/errors.js';
import { openManifest, packageError } from '../../shared/package/index.js';
import { modelName, modelRef, modelRefString, type ModelRef } from '../../shared/schemas/index.js';
import { AgentError } from '../errors.js';
import { fleetSignature, MANIFEST_FILE, readModelPackage, type ModelPackage, type VerifyOptions } from './package.js';

const slotState = z.object({
  active: modelRef.nullable(),
  previous: modelRef.nullable(),
  /** Last desired-state revision applied to this slot, so a stale retained message is not re-applied. */
  revision: z.number().int().nonnegative().default(0),
});
export type StoreState = z.infer<typeof slotState>;

/** `state.json`: the model slots in the order they were first installed (the first is the default). */
const storeFile = z.object({ slots: z.array(slotState.extend({ name: modelName })) });
type StoreFile = z.infer<typeof storeFile>;

/** `state.json` before model slots: one slot, named by its active (or previous) model. */
const legacyStoreFile = slotState;

function readStoreFile(raw: unknown): StoreFile {
  if (raw && typeof raw === 'object' && 'slots' in raw) return storeFile.parse(raw);
  const legacy = legacyStoreFile.parse(raw);
  const name = legacy.active?.name ?? legacy.previous?.name;
  // A previous version of another model (an old rollout replaced model A by model B) is not this
  // slot's to go back to: a rollback of slot B would have started model A beside it.
  const previous = legacy.previous && legacy.previous.name === name ? legacy.previous : null;
  return { slots: name ? [{ name, ...legacy, previous }] : [] };
}

const EMPTY_SLOT: StoreState = Object.freeze({ active: null, previous: null, revision: 0 });

/** Where a package comes from: a local directory now, the fleet's HTTP server or S3 later. */
export interface PackageSource {
  /** Describe the source for logs. */
  readonly label: string;
  /**
   * Stable key (the pinned manifest sha256) under which a partial download is kept, so an
   * install interrupted by a dropped link or a restart resumes instead of starting over.
   */
  readonly resumeKey?: string;
  readManifest(): Promise<Buffer>;
  /** Copy one file of the package to `dest`. */
  fetchFile(path: string, dest: string): Promise<void>;
}

export function directorySource(dir: string): PackageSource {
  return {
    label: dir,
    readManifest: () => readFile(join(dir, MANIFEST_FILE)),
    fetchFile: (path, dest) => copyFile(join(dir, path), dest),
  };
}

/** Write a file so that a crash leaves either the old or the new content, never half of one. */
async function writeFileAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, path);
  // fsync the directory so the rename itself survives a power cut.
  const dh = await open(dirname(path), 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}

/** Staging directories named by a manifest sha256 hold resumable downloads. */
const RESUMABLE = /^[0-9a-f]{64}$/;

function storageError(what: string, err: unknown): AgentError {
  const code = (err as NodeJS.ErrnoException).code;
  const why = code === 'ENOSPC' ? 'the disk is full' : code === 'EACCES' || code === 'EROFS' ? 'the model directory is not writable' : (err as Error).message;
  return new AgentError('STORAGE_FAILED', `${what}: ${why}`, { cause: err, details: { errno: code } });
}

const missing = (err: unknown): boolean => ['ENOENT', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '');

/** The file's stats, or null when it does not exist; any other failure is `AGENT_STORAGE_FAILED`, not "missing". */
async function statIfExists(path: string): Promise<Stats | null> {
  try {
    return await stat(path);
  } catch (err) {
    if (missing(err)) return null;
    throw storageError('cannot read the model store', err);
  }
}

/** A directory's entries, or none when it does not exist; any other failure is `AGENT_STORAGE_FAILED`. */
async function entriesIfExists(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if (missing(err)) return [];
    throw storageError('cannot read the model store', err);
  }
}

/**
 * Model versions side by side on disk: `<root>/<name>/<version>/`. An install copies into a
 * staging directory, verifies there (hashes, signature) and only then renames into place, so
 * a half-copied or tampered package never becomes visible. `state.json` (written atomically)
 * records each model slot's active and previous versions for rollback after a restart.
 */
export class ModelStore {
  private constructor(
    readonly root: string,
    private readonly verify: VerifyOptions,
    private readonly log: Logger | undefined,
    private state: StoreFile,
  ) {}

  static async open(root: string, verify: VerifyOptions, log?: Logger): Promise<ModelStore> {
    await mkdir(join(root, '.staging'), { recursive: true });
    // Leftovers of an install interrupted by a crash; resumable downloads (named by their
    // manifest sha256) are kept so the next attempt continues them.
    for (const entry of await readdir(join(root, '.staging'))) {
      if (!RESUMABLE.test(entry)) await rm(join(root, '.staging', entry), { recursive: true, force: true });
    }
    let state: StoreFile = { slots: [] };
    try {
      state = readStoreFile(JSON.parse(await readFile(join(root, 'state.json'), 'utf8')));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') log?.warn({ err }, 'model store state unreadable; starting with no active model');
    }
    return new ModelStore(root, verify, log, state);
  }

  /** The first (default) slot's state; no active model when there is none yet. */
  get current(): Readonly<StoreState> {
    return this.state.slots[0] ?? EMPTY_SLOT;
  }

  /** One model slot's state (empty for a name never installed). */
  slot(name: string): Readonly<StoreState> {
    return this.state.slots.find((s) => s.name === name) ?? EMPTY_SLOT;
  }

  /** The model slots' names, the default (first installed) first. */
  get slotNames(): string[] {
    return this.state.slots.map((s) => s.name);
  }

  dirOf(ref: ModelRef): string {
    return join(this.root, ref.name, ref.version);
  }

  /** Verify an installed version again (hashes and signature) and return it. Throws `AGENT_MODEL_VERSION_UNKNOWN`. */
  async get(ref: ModelRef): Promise<ModelPackage> {
    if (!(await this.has(ref))) throw new AgentError('MODEL_VERSION_UNKNOWN', `${modelRefString(ref)} is not installed`);
    return readModelPackage(this.dirOf(ref), this.verify);
  }

  /** Whether a version is installed; a store that cannot be read throws `AGENT_STORAGE_FAILED`. */
  async has(ref: ModelRef): Promise<boolean> {
    return (await statIfExists(join(this.dirOf(ref), MANIFEST_FILE))) !== null;
  }

  /** Installed versions, newest directory first within a name. */
  async list(): Promise<ModelRef[]> {
    const out: ModelRef[] = [];
    for (const name of await entriesIfExists(this.root)) {
      if (name.startsWith('.') || name === 'state.json') continue;
      const versions = await entriesIfExists(join(this.root, name));
      for (const version of versions) if (await this.has({ name, version })) out.push({ name, version });
    }
    return out;
  }

  /**
   * Stage, verify and install a package. Re-installing an identical version is a no-op; a
   * different package under an installed name@version is refused (versions are immutable).
   */
  async install(source: PackageSource, onVerifying?: () => void): Promise<ModelPackage & { fresh: boolean }> {
    const resumable = source.resumeKey !== undefined && RESUMABLE.test(source.resumeKey);
    const staging = join(this.root, '.staging', resumable ? source.resumeKey! : randomBytes(6).toString('hex'));
    let keepPartial = false;
    try {
      const manifestBytes = await source.readManifest().catch((err: unknown) => {
        // The local disk failing (a file:// source) is not a bad package.
        if (err instanceof AgentError && err.code === 'AGENT_STORAGE_FAILED') throw err;
        throw packageError(source.label, [{ rule: 'manifest_unreadable', message: `${MANIFEST_FILE} cannot be read from ${source.label}: ${(err as Error).message}` }], err);
      });
      // The whole manifest (signature, schema, rules: shared/package) before any file is
      // fetched: its paths are trusted only then, and a refused package costs no download.
      const { manifest } = openManifest(manifestBytes, source.label, { authenticate: fleetSignature(this.verify) });
      try {
        await mkdir(staging, { recursive: true });
        await writeFileAtomic(join(staging, MANIFEST_FILE), manifestBytes);
        for (const f of manifest.files) {
          await mkdir(dirname(join(staging, f.path)), { recursive: true });
          // A file already complete from an interrupted attempt is not fetched again.
          if (resumable && (await statIfExists(join(staging, f.path)))?.size === f.bytes) continue;
          keepPartial = resumable;
          await source.fetchFile(f.path, join(staging, f.path)).catch((err: unknown) => {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
            throw packageError(source.label, [{ rule: 'file_missing', message: `file ${f.path} listed in the manifest is missing from ${source.label}`, file: f.path }], err);
          });
          keepPartial = false;
        }
      } catch (err) {
        if (err instanceof EdgeloopError) throw err;
        throw storageError('cannot stage the model package', err);
      }
      onVerifying?.();
      const staged = await readModelPackage(staging, this.verify);
      const dest = this.dirOf(staged.ref);
      if (await this.has(staged.ref)) {
        const existing = await readModelPackage(dest, this.verify);
        if (existing.manifestSha256 !== staged.manifestSha256) {
          throw new AgentError('MODEL_PACKAGE_INVALID', `${modelRefString(staged.ref)} is already installed with different content; versions are immutable`);
        }
        return { ...existing, fresh: false };
      }
      try {
        await mkdir(dirname(dest), { recursive: true });
        await rename(staging, dest);
      } catch (err) {
        throw storageError('cannot move the staged package into place', err);
      }
      this.log?.info({ model: modelRefString(staged.ref), from: source.label }, 'model version installed');
      return { ...staged, dir: dest, fresh: true };
    } finally {
      if (!keepPartial) await rm(staging, { recursive: true, force: true }).catch(() => undefined);
    }
  }

  /** Record `ref` as the active version of its model's slot; the version it replaces becomes that slot's rollback target. */
  async setActive(ref: ModelRef, revision?: number): Promise<void> {
    const cur = this.slot(ref.name);
    const prev = cur.active;
    const same = prev && prev.name === ref.name && prev.version === ref.version;
    await this.saveSlot(ref.name, { active: ref, previous: same ? cur.previous : prev, revision: revision ?? cur.revision });
  }

  /** Record the desired-state revision applied to a slot (default: the first slot). */
  async setRevision(revision: number, name = this.state.slots[0]?.name): Promise<void> {
    if (name === undefined) return;
    await this.saveSlot(name, { ...this.slot(name), revision });
  }

  private async saveSlot(name: string, next: StoreState): Promise<void> {
    const slots = this.state.slots.some((s) => s.name === name) ? this.state.slots.map((s) => (s.name === name ? { name, ...next } : s)) : [...this.state.slots, { name, ...next }];
    const state: StoreFile = { slots };
    try {
      await writeFileAtomic(join(this.root, 'state.json'), JSON.stringify(state, null, 2));
    } catch (err) {
      throw storageError('cannot record the active model', err);
    }
    this.state = state;
  }

  /** Every slot's active and previous version: never deleted. */
  private pinned(): string[] {
    return this.state.slots.flatMap((s) => [s.active, s.previous]).filter((r): r is ModelRef => r !== null).map(modelRefString);
  }

  /** Delete an installed version (never the active or previous one). */
  async remove(ref: ModelRef): Promise<boolean> {
    if (this.pinned().includes(modelRefString(ref))) return false;
    await rm(this.dirOf(ref), { recursive: true, force: true });
    return true;
  }

  /** Delete installed versions of one model (every model when `name` is absent) other than the active and previous ones, keeping the newest `keep` of the rest. */
  async prune(keep = 1, name?: string): Promise<ModelRef[]> {
    const pinned = this.pinned();
    const candidates = (await this.list()).filter((r) => !pinned.includes(modelRefString(r)) && (name === undefined || r.name === name));
    const removed = candidates.slice(0, Math.max(0, candidates.length - keep));
    for (const r of removed) await rm(this.dirOf(r), { recursive: true, force: true });
    return removed;
  }
}
