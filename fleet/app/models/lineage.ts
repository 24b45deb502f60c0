/**
 * The full lineage of a model version: from the version back through the training run that
 * made it, the dataset version it trained on (its samples, their devices, their labels with
 * who and when) and its parent, to the first version. What `edgeloop models lineage` and the
 * console's model page show.
 */
import type { ModelRef } from '../../../shared/schemas/index.js';
import type { DatasetEntry, DatasetManifest } from '../../core/labels/dataset-schema.js';
import type { Datasets } from '../labels/datasets.js';
import type { ModelRegistry } from './registry.js';
import type { TrainingRun, TrainingRuns } from '../training/runs.js';

export interface LineageDataset {
  id: string;
  name: string | null;
  created_at: string;
  created_by: string;
  base: NonNullable<DatasetManifest['base']>;
  split_rule: NonNullable<DatasetManifest['split_rule']> | null;
  splits: NonNullable<DatasetManifest['splits']> | null;
  counts: Record<string, number>;
  /** Field samples per device, and labels per labeler. */
  devices: Record<string, number>;
  labelers: Record<string, number>;
  /** Every field sample with its label, device, labeler and split (empty when not asked for). */
  entries: DatasetEntry[];
}

export interface LineageStep {
  model: { name: string; version: string; ref: string; missing: boolean; status: string | null; status_reasons: string[]; pushed_at: string | null; pushed_by: string | null; manifest_sha256: string | null };
  run: TrainingRun | null;
  dataset: LineageDataset | null;
  /** The version names a dataset version this fleet does not hold. */
  dataset_missing: string | null;
}

export interface LineageChain {
  ref: string;
  /** Newest first: the version itself, then its parent, and so on. */
  steps: LineageStep[];
}

const tally = (xs: readonly string[]): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const x of xs) out[x] = (out[x] ?? 0) + 1;
  return out;
};

/** Build the chain. `entries: false` leaves the per-sample entries out (summaries only). Throws `FLEET_MODEL_NOT_FOUND`. */
export async function lineageChain(deps: { registry: ModelRegistry; datasets: Datasets; runs: TrainingRuns }, ref: ModelRef, o: { entries?: boolean } = {}): Promise<LineageChain> {
  const parents = deps.registry.lineage(ref.name, ref.version);
  const steps: LineageStep[] = [];
  for (const p of parents) {
    const r = `${p.name}@${p.version}`;
    if (p.missing) {
      steps.push({ model: { name: p.name, version: p.version, ref: r, missing: true, status: null, status_reasons: [], pushed_at: null, pushed_by: null, manifest_sha256: null }, run: null, dataset: null, dataset_missing: null });
      continue;
    }
    const v = deps.registry.get(p.name, p.version);
    let run = deps.runs.byResult({ name: p.name, version: p.version });
    if (!run && v.lineage.training_run) run = deps.runs.find(v.lineage.training_run);
    let dataset: LineageDataset | null = null;
    let missing: string | null = null;
    const dsId = v.lineage.dataset_version ?? run?.dataset_version ?? null;
    const m = dsId ? await deps.datasets.findDataset(dsId) : null;
    if (m) {
      dataset = {
        id: m.id,
        name: m.name ?? null,
        created_at: m.created_at,
        created_by: m.created_by,
        base: m.base ?? [],
        split_rule: m.split_rule ?? null,
        splits: m.splits ?? null,
        counts: m.counts,
        devices: tally(m.entries.map((e) => e.device_id)),
        labelers: tally(m.entries.map((e) => e.labeled_by)),
        entries: o.entries === false ? [] : m.entries,
      };
    } else if (dsId) {
      missing = dsId;
    }
    steps.push({
      model: { name: v.name, version: v.version, ref: v.ref, missing: false, status: v.status, status_reasons: v.status_reasons, pushed_at: v.pushed_at, pushed_by: v.pushed_by, manifest_sha256: v.manifest_sha256 },
      run,
      dataset,
      dataset_missing: missing,
    });
  }
  return { ref: `${ref.name}@${ref.version}`, steps };
}
