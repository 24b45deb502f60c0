import type BetterSqlite3 from 'better-sqlite3';
import { sha256Hex } from '../../shared/ids.js';
import { canonicalJson } from '../../shared/signing.js';
import { parseJsonWith } from '../../shared/validate.js';
import type { ArtifactStore } from '../artifacts/types.js';
import { FleetError } from '../errors.js';
import { buildWhere, parseFilter, StatementCache } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import type { FleetDb } from '../store/db.js';
import { storageError } from '../store/db.js';
import { DATASET_SCHEMA, datasetManifest } from './dataset-schema.js';
import type { DatasetEntry, DatasetManifest } from './dataset-schema.js';

/** A dataset version in listings (the entries are in its manifest). */
export interface DatasetSummary {
  id: string;
  name: string | null;
  created_at: string;
  created_by: string;
  entries: number;
  counts: Record<string, number>;
  /** The manifest artifact. */
  manifest_sha256: string;
}

interface DatasetRow {
  id: string;
  name: string | null;
  created_at: number;
  created_by: string;
  manifest_sha256: string;
  entries: number;
  counts: string;
}

interface EntryRow {
  sample_id: string;
  label: string;
  blob_sha256: string;
  device_id: string;
  labeled_by: string;
  labeled_at: number;
}

const toSummary = (r: DatasetRow): DatasetSummary => ({
  id: r.id,
  name: r.name,
  created_at: new Date(r.created_at).toISOString(),
  created_by: r.created_by,
  entries: r.entries,
  counts: JSON.parse(r.counts) as Record<string, number>,
  manifest_sha256: r.manifest_sha256,
});

/** The id of a set of entries: sha256 of their canonical JSON, sorted by sample_id. */
export function datasetId(entries: DatasetEntry[]): string {
  return sha256Hex(canonicalJson([...entries].sort((a, b) => (a.sample_id < b.sample_id ? -1 : a.sample_id > b.sample_id ? 1 : 0))));
}

/**
 * Immutable dataset versions cut from the labeled samples. The manifest is stored as an
 * artifact (canonical JSON) and indexed in SQLite; a model's `lineage.dataset_version`
 * names it by id.
 */
export class Datasets {
  private readonly db: FleetDb;
  private readonly artifacts: ArtifactStore;
  private readonly stmts: ReturnType<typeof prepare>;
  private readonly cache: StatementCache;

  constructor(opts: { db: FleetDb; artifacts: ArtifactStore }) {
    this.db = opts.db;
    this.artifacts = opts.artifacts;
    this.stmts = prepare(opts.db.sqlite);
    this.cache = new StatementCache(opts.db.sqlite);
  }

  /**
   * Freeze the samples the filter selects that have a human label (skipped and unlabeled
   * ones are left out) into a dataset version. The same set exported again returns the
   * existing version (`created: false`, its original name and creator). Throws
   * `INPUT_INVALID` when no labeled sample matches.
   */
  async exportDataset(o: { filters?: SampleFilter; actor: string; name?: string }): Promise<{ dataset: DatasetManifest; created: boolean }> {
    const filters = parseFilter(o.filters ?? {});
    const where = buildWhere({ ...filters, labeled: true });
    const stmt = this.cache.get(`export|${where.key}`, () =>
      `SELECT sample_id, label, blob_sha256, device_id, labeled_by, labeled_at FROM samples WHERE ${where.sql} ORDER BY sample_id`,
    );
    const rows = stmt.all(where.params) as EntryRow[];
    if (rows.length === 0) throw new FleetError('INPUT_INVALID', 'no labeled sample matches the filter: nothing to export', { details: { filters } });
    const entries: DatasetEntry[] = rows.map((r) => ({
      sample_id: r.sample_id,
      label: r.label,
      blob_sha256: r.blob_sha256,
      device_id: r.device_id,
      labeled_by: r.labeled_by,
      labeled_at: new Date(r.labeled_at).toISOString(),
    }));
    const id = datasetId(entries);
    if (this.stmts.get.get(id)) return { dataset: await this.getDataset(id), created: false };

    const counts: Record<string, number> = {};
    for (const e of entries) counts[e.label] = (counts[e.label] ?? 0) + 1;
    const now = this.db.clock.now();
    const manifest = datasetManifest.parse({
      schema: DATASET_SCHEMA,
      v: 1,
      id,
      ...(o.name !== undefined ? { name: o.name } : {}),
      created_at: new Date(now).toISOString(),
      created_by: o.actor,
      filters,
      entries,
      counts,
    });
    const stored = await this.artifacts.put(Buffer.from(canonicalJson(manifest), 'utf8'));
    let inserted: number;
    try {
      inserted = this.stmts.insert.run({ id, name: o.name ?? null, created_at: now, created_by: o.actor, manifest_sha256: stored.sha256, entries: entries.length, counts: JSON.stringify(counts) }).changes;
    } catch (err) {
      throw storageError(`cannot record dataset ${id}`, err);
    }
    // Another export of the same set won the race: its version is the one.
    if (inserted === 0) return { dataset: await this.getDataset(id), created: false };
    return { dataset: manifest, created: true };
  }

  /** A dataset version, read from its artifact and checked against its id. Throws `FLEET_DATASET_NOT_FOUND`. */
  async getDataset(id: string): Promise<DatasetManifest> {
    const row = this.stmts.get.get(id);
    if (!row) throw new FleetError('DATASET_NOT_FOUND', `dataset ${id} does not exist`, { details: { id } });
    const manifest = parseJsonWith(datasetManifest, await this.artifacts.get(row.manifest_sha256), 'FLEET_STORAGE_FAILED', `dataset manifest ${id}`, 507);
    if (manifest.id !== id || datasetId(manifest.entries) !== id) throw new FleetError('STORAGE_FAILED', `dataset manifest ${id} does not hash to its id`, { details: { id } });
    return manifest;
  }

  /** Every dataset version, oldest first. */
  listDatasets(): DatasetSummary[] {
    return this.stmts.list.all().map(toSummary);
  }

  /** One dataset's summary. Throws `FLEET_DATASET_NOT_FOUND`. */
  summary(id: string): DatasetSummary {
    const row = this.stmts.get.get(id);
    if (!row) throw new FleetError('DATASET_NOT_FOUND', `dataset ${id} does not exist`, { details: { id } });
    return toSummary(row);
  }
}

function prepare(db: BetterSqlite3.Database) {
  return {
    get: db.prepare<[string], DatasetRow>('SELECT * FROM datasets WHERE id = ?'),
    list: db.prepare<[], DatasetRow>('SELECT * FROM datasets ORDER BY created_at, id'),
    insert: db.prepare(
      `INSERT INTO datasets (id, name, created_at, created_by, manifest_sha256, entries, counts)
       VALUES (@id, @name, @created_at, @created_by, @manifest_sha256, @entries, @counts) ON CONFLICT (id) DO NOTHING`,
    ),
  };
}
