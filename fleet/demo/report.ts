import { accuracyOf, type Camera, type ResultLine } from './cameras.js';

/** Accuracy of a site in each phase of the loop (null: no frame scored in that phase). */
export interface SiteAccuracy {
  before_drift: number | null;
  during_drift: number | null;
  after_new_model: number | null;
  frames: { before_drift: number; during_drift: number; after_new_model: number };
}

/** What the learning loop's retrain produced, as the demo reports it. */
export interface RetrainOutcome {
  ref: { name: string; version: string };
  run: string;
  status: string;
  /** Clean and field holdout accuracy of the candidate and of the production model, measured by the loop's evaluation. */
  clean: number | null;
  cleanBefore: number | null;
  /** Clean-holdout change against production, in points. */
  cleanDelta: number | null;
  field: number | null;
  fieldBefore: number | null;
  datasetVersion: string | null;
  trainer: string;
  trainS: number | null;
  /** Labeled field samples in the dataset version (train and field holdout). */
  labelsUsed: number;
  gate: unknown;
}

export interface PhaseRecord {
  name: string;
  start_s: number;
  end_s: number | null;
}

export interface DemoReport {
  ok: boolean;
  /** Why the loop did not close, when it did not. */
  problems: string[];
  duration_s: number;
  console: string;
  base_model: { name: string; version: string; cached: boolean; clean_accuracy: number | null; trainer: string | null };
  new_model: {
    name: string;
    version: string;
    training_run: string;
    status: string;
    clean_accuracy: number | null;
    /** Clean-holdout change against the base model (same holdout, same evaluation), in points. */
    clean_delta_points: number | null;
    field_accuracy: number | null;
    base_field_accuracy: number | null;
    dataset_version: string | null;
    trainer: string | null;
    train_s: number | null;
  } | null;
  sites: Record<string, SiteAccuracy>;
  samples: { captured: number; forwarded: number; received: number; duplicates: number; evicted: number; lost: number; backlog: number };
  outage: { site: string; start_s: number | null; duration_s: number; captured_during: number; received_from_window: number; lost: number; refused_connections: number } | null;
  labels: { used: number; by: string; simulated: boolean };
  gate: unknown;
  rollouts: Array<{ id: string; model: string; status: string; stages: string[] }>;
  drift: { onset_s: number | null; psi_peak: Record<string, number | null> };
  /** Drift onset to the new model answering on every pit-3 camera. */
  recovery_s: number | null;
  phases: PhaseRecord[];
}

/** Which phase a result belongs to: fed before the onset on the base model, after it on the base model, or answered by the new model. */
export function siteAccuracy(cams: readonly Camera[], o: { onset: number | null; baseVersion: string; newVersion: string | null }): SiteAccuracy {
  const bucket = { before_drift: [] as Array<[Camera, ResultLine]>, during_drift: [] as Array<[Camera, ResultLine]>, after_new_model: [] as Array<[Camera, ResultLine]> };
  for (const c of cams) {
    for (const r of c.results) {
      const t = c.truth.get(r.file);
      if (!t || r.label === undefined) continue;
      if (o.newVersion && r.model_version === o.newVersion) bucket.after_new_model.push([c, r]);
      else if (r.model_version === o.baseVersion) (o.onset !== null && t.fedAt >= o.onset ? bucket.during_drift : bucket.before_drift).push([c, r]);
    }
  }
  const acc = (rows: Array<[Camera, ResultLine]>): number | null => {
    let ok = 0;
    for (const [c, r] of rows) if (Number(r.label) === c.truth.get(r.file)!.label) ok++;
    return rows.length ? ok / rows.length : null;
  };
  return {
    before_drift: acc(bucket.before_drift),
    during_drift: acc(bucket.during_drift),
    after_new_model: acc(bucket.after_new_model),
    frames: { before_drift: bucket.before_drift.length, during_drift: bucket.during_drift.length, after_new_model: bucket.after_new_model.length },
  };
}

/** Accuracy over a camera set's most recent `n` results each (the terminal's rolling figure). */
export function recentAccuracy(cams: readonly Camera[], n: number): number | null {
  let ok = 0;
  let total = 0;
  for (const c of cams) {
    const a = accuracyOf(c, c.results.slice(-n));
    if (a.accuracy === null) continue;
    ok += a.accuracy * a.n;
    total += a.n;
  }
  return total ? ok / total : null;
}

export const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '  -  ' : `${(x * 100).toFixed(1)}%`);
