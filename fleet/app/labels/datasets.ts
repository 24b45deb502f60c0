import { sha256Hex } from '../../../shared/ids.js';
import type { Clock } from '../../../shared/ids.js';
import { canonicalJson } from '../../../shared/signing.js';
import { parseJsonWith } from '../../../shared/validate.js';
import type { ArtifactStore } from '../artifacts.js';
import { FleetError, FleetErrors } from '../../errors.js';
import { parseFilter } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import type { SamplesRepo } from '../samples/repo.js';
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

/** A dataset version's index row (`datasets`). */
export interface DatasetRow {
  id: string;
  name: string | null;
  created_at: number;
  created_by: string;
  manifest_sha256: string;
  entries: number;
  counts: string;
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

/**
 * Where dataset versions are indexed (`datasets`, and `dataset_samples`: which field samples a
 * training version holds). A failure throws `FLEET_STORAGE_FAILED`.
 */
export interface DatasetsRepo {
  find(id: string): DatasetRow | null;
  /** Oldest first. */
  list(): DatasetRow[];
  /**
   * Index a version, with a training version's model and sample placements, in one transaction.
   * False when a version with this id is indexed already (nothing written).
   */
  insert(row: DatasetRow, training?: { model: string; samples: ReadonlyArray<{ sample_id: string; split: string }> }): boolean;
  /** The versions holding a sample, with its split there, by dataset id. */
  ofSample(sampleId: string): Array<{ dataset_id: string; split: string }>;
}

/** Entries per class label; a box entry counts each of its boxes under its class. */
function labelCounts(entries: DatasetEntry[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const e of entries) {
    if (e.label !== undefined) counts[e.label] = (counts[e.label] ?? 0) + 1;
    for (const b of e.boxes ?? []) counts[b.label] = (counts[b.label] ?? 0) + 1;
  }
  return counts;
}

/** A class label among the classes, or boxes whose classes all are (no box at all fits any model). */
const withinClasses = (e: DatasetEntry, classes: ReadonlySet<string>): boolean => (e.boxes ? e.boxes.every((b) => classes.has(b.label)) : classes.has(e.label as string));

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
function datasetId(entries: DatasetEntry[]): string {
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
  private readonly repo: DatasetsRepo;
  private readonly samples: SamplesRepo;
  private readonly artifacts: ArtifactStore;
  private readonly clock: Clock;

  constructor(opts: { repo: DatasetsRepo; samples: SamplesRepo; artifacts: ArtifactStore; clock: Clock }) {
    this.repo = opts.repo;
    this.samples = opts.samples;
    this.artifacts = opts.artifacts;
    this.clock = opts.clock;
  }

  /**
   * Freeze the samples the filter selects that have a human label (skipped and unlabeled
   * ones are left out) into a dataset version. The same set exported again returns the
   * existing version (`created: false`, its original name and creator). Throws
   * `INPUT_INVALID` when no labeled sample matches.
   */
  async exportDataset(o: { filters?: SampleFilter; actor: string; name?: string }): Promise<{ dataset: DatasetManifest; created: boolean }> {
    const filters = parseFilter(o.filters ?? {});
    const entries: DatasetEntry[] = this.samples.labeledEntries({ ...filters, labeled: true });
    if (entries.length === 0) throw new FleetError('INPUT_INVALID', 'no labeled sample matches the filter: nothing to export', { details: { filters } });
    const id = datasetId(entries);
    if (this.repo.find(id)) return { dataset: await this.getDataset(id), created: false };

    const counts = labelCounts(entries);
    const now = this.clock.now();
    const manifest = datasetManifest.parse({ ...manifestHead(id, o, now), filters, entries, counts });
    return this.record(manifest, o, now, counts);
  }

  /**
   * A training dataset version for a model: every labeled field sample of the model whose
   * label (or every box's class) is one of the model's classes, each placed in `train` or `field_holdout` (earlier
   * placements of `previous` kept, the rule for new ones), plus the base set by reference.
   * Immutable and content-addressed like every version: the same inputs give the same id
   * (`created: false`). Samples with a label outside the classes are left out and counted.
   */
  async createTrainingVersion(o: TrainingVersionRequest): Promise<{ dataset: DatasetManifest; created: boolean; excluded: number }> {
    const rows = this.samples.labeledOfModel(o.model);
    const classes = new Set(o.labels);
    const kept = rows.filter((r) => withinClasses(r.entry, classes));
    const previous = new Map<string, FieldSplit>();
    if (o.previous) {
      for (const e of (await this.getDataset(o.previous)).entries) if (e.split) previous.set(e.sample_id, e.split);
    }
    const placed = splitField(
      kept.map((r) => ({ sample_id: r.entry.sample_id, captured_at_ms: r.capturedAt })),
      o.rule,
      previous,
    );
    const entries: DatasetEntry[] = kept.map((r) => ({
      ...r.entry,
      captured_at: new Date(r.capturedAt).toISOString(),
      split: placed.get(r.entry.sample_id) as FieldSplit,
    }));
    const id = datasetIdOf({ entries, base: o.base, split_rule: o.rule });
    if (this.repo.find(id)) return { dataset: await this.getDataset(id), created: false, excluded: rows.length - kept.length };
    const counts = labelCounts(entries);
    const baseCount = (split: BaseRef['split']): number => o.base.filter((b) => b.split === split).reduce((n, b) => n + (b.count ?? b.items?.length ?? 0), 0);
    const fieldHoldout = entries.filter((e) => e.split === 'field_holdout').length;
    const now = this.clock.now();
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
    const recorded = await this.record(manifest, o, now, counts, { model: o.model, samples: entries.map((e) => ({ sample_id: e.sample_id, split: e.split as string })) });
    return { ...recorded, excluded: rows.length - kept.length };
  }

  /**
   * Store the manifest artifact, then its row (and a training version's placements, in the same
   * transaction). When another call recorded the same id first, its version is the one.
   */
  private async record(manifest: DatasetManifest, o: { actor: string; name?: string | undefined }, now: number, counts: Record<string, number>, training?: Parameters<DatasetsRepo['insert']>[1]): Promise<{ dataset: DatasetManifest; created: boolean }> {
    const id = manifest.id;
    const stored = await this.artifacts.put(Buffer.from(canonicalJson(manifest), 'utf8'));
    const inserted = this.repo.insert({ id, name: o.name ?? null, created_at: now, created_by: o.actor, manifest_sha256: stored.sha256, entries: manifest.entries.length, counts: JSON.stringify(counts) }, training);
    if (!inserted) return { dataset: await this.getDataset(id), created: false };
    return { dataset: manifest, created: true };
  }

  /** Dataset versions that hold a sample, with its split there (reverse lineage). */
  datasetsOfSample(sampleId: string): Array<{ dataset_id: string; split: string }> {
    return this.repo.ofSample(sampleId);
  }

  /** A dataset version, read from its artifact and checked against its id. Throws `FLEET_DATASET_NOT_FOUND`. */
  async getDataset(id: string): Promise<DatasetManifest> {
    const manifest = await this.findDataset(id);
    if (!manifest) throw new FleetError('DATASET_NOT_FOUND', `dataset ${id} does not exist`, { details: { id } });
    return manifest;
  }

  /** A dataset version as {@link getDataset} reads it, or null when this fleet holds none with this id. */
  async findDataset(id: string): Promise<DatasetManifest | null> {
    const row = this.repo.find(id);
    if (!row) return null;
    const manifest = parseJsonWith(datasetManifest, await this.artifacts.get(row.manifest_sha256), FleetErrors.STORAGE_FAILED, `dataset manifest ${id}`);
    if (manifest.id !== id || datasetIdOf(manifest) !== id) throw new FleetError('STORAGE_FAILED', `dataset manifest ${id} does not hash to its id`, { details: { id } });
    return manifest;
  }

  /** Every dataset version, oldest first. */
  listDatasets(): DatasetSummary[] {
    return this.repo.list().map(toSummary);
  }

  /** One dataset's summary. Throws `FLEET_DATASET_NOT_FOUND`. */
  summary(id: string): DatasetSummary {
    const row = this.repo.find(id);
    if (!row) throw new FleetError('DATASET_NOT_FOUND', `dataset ${id} does not exist`, { details: { id } });
    return toSummary(row);
  }
}
