import type BetterSqlite3 from 'better-sqlite3';
import { sha256Hex } from '../../../shared/ids.js';
import { canonicalJson } from '../../../shared/signing.js';
import { parseJsonWith } from '../../../shared/validate.js';
import type { ArtifactStore } from '../artifacts.js';
import { FleetError, FleetErrors } from '../../errors.js';
import { buildWhere, parseFilter, StatementCache } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import type { FleetDb } from '../../adapters/sqlite/db.js';
import { storageError } from '../../adapters/sqlite/db.js';
import { DATASET_SCHEMA, datasetManifest } from '../../core/labels/dataset-schema.js';
import type { BaseRef, DatasetEntry, DatasetManifest } from '../../core/labels/dataset-schema.js';
import { splitField } from '../../core/labels/split.js';
import type { FieldSplit, HoldoutRule } from '../../core/labels/split.js';

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

const bySampleId = (a: DatasetEntry, b: DatasetEntry): number => (a.sample_id < b.sample_id ? -1 : a.sample_id > b.sample_id ? 1 : 0);

/** A dataset entry from a labeled sample row (what every dataset version records of a sample). */
const entryOf = (r: EntryRow): DatasetEntry => ({
  sample_id: r.sample_id,
  label: r.label,
  blob_sha256: r.blob_sha256,
  device_id: r.device_id,
  labeled_by: r.labeled_by,
  labeled_at: new Date(r.labeled_at).toISOString(),
});

function labelCounts(entries: DatasetEntry[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) counts[e.label] = (counts[e.label] ?? 0) + 1;
  return counts;
}

/** The fields every dataset manifest starts with. */
const manifestHead = (id: string, o: { actor: string; name?: string | undefined }, now: number) => ({
  schema: DATASET_SCHEMA,
  v: 1 as const,
  id,
  ...(o.name !== undefined ? { name: o.name } : {}),
  created_at: new Date(now).toISOString(),
  created_by: o.actor,
});

/** The id of a set of entries: sha256 of their canonical JSON, sorted by sample_id. */
export function datasetId(entries: DatasetEntry[]): string {
  return sha256Hex(canonicalJson([...entries].sort(bySampleId)));
}

/**
 * The id of a manifest: {@link datasetId} of the entries for a plain export; for a training
 * version (base set and holdout rule) sha256 of `{ entries, base, split_rule }`, so another
 * base set or rule over the same labels is another version.
 */
export function datasetIdOf(m: Pick<DatasetManifest, 'entries' | 'base' | 'split_rule'>): string {
  if (m.base === undefined && m.split_rule === undefined) return datasetId(m.entries);
  return sha256Hex(canonicalJson({ entries: [...m.entries].sort(bySampleId), base: m.base ?? [], split_rule: m.split_rule ?? null }));
}

/** What {@link Datasets.createTrainingVersion} needs. */
export interface TrainingVersionRequest {
  /** The model the version is cut for: its samples (by model name) with a label in `labels`. */
  model: string;
  labels: readonly string[];
  base: BaseRef[];
  rule: HoldoutRule;
  actor: string;
  name?: string;
  /** The model's previous training version: its placements are kept (see split.ts). */
  previous?: string | null;
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
    const entries: DatasetEntry[] = rows.map(entryOf);
    const id = datasetId(entries);
    if (this.stmts.get.get(id)) return { dataset: await this.getDataset(id), created: false };

    const counts = labelCounts(entries);
    const now = this.db.clock.now();
    const manifest = datasetManifest.parse({ ...manifestHead(id, o, now), filters, entries, counts });
    return this.record(manifest, o, now, counts);
  }

  /**
   * A training dataset version for a model: every labeled field sample of the model whose
   * label is one of the model's classes, each placed in `train` or `field_holdout` (earlier
   * placements of `previous` kept, the rule for new ones), plus the base set by reference.
   * Immutable and content-addressed like every version: the same inputs give the same id
   * (`created: false`). Samples with a label outside the classes are left out and counted.
   */
  async createTrainingVersion(o: TrainingVersionRequest): Promise<{ dataset: DatasetManifest; created: boolean; excluded: number }> {
    const rows = this.stmts.labeledOf.all(o.model);
    const classes = new Set(o.labels);
    const kept = rows.filter((r) => classes.has(r.label));
    const previous = new Map<string, FieldSplit>();
    if (o.previous) {
      for (const e of (await this.getDataset(o.previous)).entries) if (e.split) previous.set(e.sample_id, e.split);
    }
    const placed = splitField(
      kept.map((r) => ({ sample_id: r.sample_id, captured_at_ms: r.captured_at })),
      o.rule,
      previous,
    );
    const entries: DatasetEntry[] = kept.map((r) => ({
      ...entryOf(r),
      captured_at: new Date(r.captured_at).toISOString(),
      split: placed.get(r.sample_id) as FieldSplit,
    }));
    const id = datasetIdOf({ entries, base: o.base, split_rule: o.rule });
    if (this.stmts.get.get(id)) return { dataset: await this.getDataset(id), created: false, excluded: rows.length - kept.length };
    const counts = labelCounts(entries);
    const baseCount = (split: BaseRef['split']): number => o.base.filter((b) => b.split === split).reduce((n, b) => n + (b.count ?? b.items?.length ?? 0), 0);
    const fieldHoldout = entries.filter((e) => e.split === 'field_holdout').length;
    const now = this.db.clock.now();
    const manifest = datasetManifest.parse({
      ...manifestHead(id, o, now),
      filters: { model: o.model, labeled: true },
      entries: [...entries].sort(bySampleId),
      counts,
      model: o.model,
      base: o.base,
      split_rule: o.rule,
      ...(o.previous ? { previous: o.previous } : {}),
      splits: { train: baseCount('train') + entries.length - fieldHoldout, clean_holdout: baseCount('clean_holdout'), field_holdout: fieldHoldout },
    });
    const recorded = await this.record(manifest, o, now, counts, () => {
      this.stmts.setModel.run(o.model, id);
      for (const e of entries) this.stmts.insertSample.run(id, e.sample_id, e.split as string);
    });
    return { ...recorded, excluded: rows.length - kept.length };
  }

  /**
   * Store the manifest artifact, then its row (and `extra` rows, in the same transaction).
   * When another call recorded the same id first, its version is the one.
   */
  private async record(manifest: DatasetManifest, o: { actor: string; name?: string | undefined }, now: number, counts: Record<string, number>, extra?: () => void): Promise<{ dataset: DatasetManifest; created: boolean }> {
    const id = manifest.id;
    const stored = await this.artifacts.put(Buffer.from(canonicalJson(manifest), 'utf8'));
    const insert = this.db.sqlite.transaction((): number => {
      const n = this.stmts.insert.run({ id, name: o.name ?? null, created_at: now, created_by: o.actor, manifest_sha256: stored.sha256, entries: manifest.entries.length, counts: JSON.stringify(counts) }).changes;
      if (n > 0) extra?.();
      return n;
    });
    let inserted: number;
    try {
      inserted = insert.immediate();
    } catch (err) {
      throw storageError(`cannot record dataset ${id}`, err);
    }
    if (inserted === 0) return { dataset: await this.getDataset(id), created: false };
    return { dataset: manifest, created: true };
  }

  /** Dataset versions that hold a sample, with its split there (reverse lineage). */
  datasetsOfSample(sampleId: string): Array<{ dataset_id: string; split: string }> {
    return this.stmts.ofSample.all(sampleId);
  }

  /** A dataset version, read from its artifact and checked against its id. Throws `FLEET_DATASET_NOT_FOUND`. */
  async getDataset(id: string): Promise<DatasetManifest> {
    const row = this.stmts.get.get(id);
    if (!row) throw new FleetError('DATASET_NOT_FOUND', `dataset ${id} does not exist`, { details: { id } });
    const manifest = parseJsonWith(datasetManifest, await this.artifacts.get(row.manifest_sha256), FleetErrors.STORAGE_FAILED, `dataset manifest ${id}`);
    if (manifest.id !== id || datasetIdOf(manifest) !== id) throw new FleetError('STORAGE_FAILED', `dataset manifest ${id} does not hash to its id`, { details: { id } });
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
    labeledOf: db.prepare<[string], EntryRow & { captured_at: number }>(
      `SELECT sample_id, label, blob_sha256, device_id, labeled_by, labeled_at, captured_at FROM samples
       WHERE model_name = ? AND label_state = 'labeled' ORDER BY sample_id`,
    ),
    setModel: db.prepare<[string, string]>('UPDATE datasets SET model_name = ? WHERE id = ?'),
    insertSample: db.prepare<[string, string, string]>('INSERT INTO dataset_samples (dataset_id, sample_id, split) VALUES (?, ?, ?) ON CONFLICT DO NOTHING'),
    ofSample: db.prepare<[string], { dataset_id: string; split: string }>('SELECT dataset_id, split FROM dataset_samples WHERE sample_id = ? ORDER BY dataset_id'),
    insert: db.prepare(
      `INSERT INTO datasets (id, name, created_at, created_by, manifest_sha256, entries, counts)
       VALUES (@id, @name, @created_at, @created_by, @manifest_sha256, @entries, @counts) ON CONFLICT (id) DO NOTHING`,
    ),
  };
}
