import type { Camera, ResultLine } from './cameras.js';

/** A site's figure (the report's `metric`) in each phase of the loop (null: no frame scored in that phase). */
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
  /** Clean and field holdout figures (the scene's metric: accuracy, or mAP@0.5) of the candidate and of the production model, measured by the loop's evaluation. */
  clean: number | null;
  cleanBefore: number | null;
  /** Clean-holdout change against production, in points. */
  cleanDelta: number | null;
  field: number | null;
  fieldBefore: number | null;
  /** A detector's field mAP@0.5:0.95 (null for a classifier). */
  field5095: number | null;
  datasetVersion: string | null;
  trainer: string;
  trainS: number | null;
  /** Labeled field samples in the dataset version (train and field holdout). */
  labelsUsed: number;
  /** Box labels among them (a detector's dataset); null for a classifier. */
  boxesUsed: number | null;
  gate: unknown;
}

export interface PhaseRecord {
  name: string;
  start_s: number;
  end_s: number | null;
}

export interface DemoReport {
  /** Which edition ran, and the figure its site and model numbers are: accuracy, or mAP@0.5 for the detector. */
  scene: 'classification' | 'detection';
  metric: 'accuracy' | 'map50';
  ok: boolean;
  /** Why the loop did not close, when it did not. */
  problems: string[];
  duration_s: number;
  console: string;
  /** `clean`: the base model's clean-holdout figure (the report's `metric`). */
  base_model: { name: string; version: string; cached: boolean; clean: number | null; trainer: string | null };
  new_model: {
    name: string;
    version: string;
    training_run: string;
    status: string;
    /** Clean and field holdout figures (the report's `metric`) of the new model, and the base model's on the same field holdout. */
    clean: number | null;
    /** Clean-holdout change against the base model (same holdout, same evaluation), in points. */
    clean_delta_points: number | null;
    field: number | null;
    base_field: number | null;
    /** A detector's field mAP@0.5:0.95 (null for a classifier). */
    field_map50_95: number | null;
    dataset_version: string | null;
    trainer: string | null;
    train_s: number | null;
  } | null;
  sites: Record<string, SiteAccuracy>;
  samples: { captured: number; forwarded: number; received: number; duplicates: number; evicted: number; lost: number; backlog: number };
  outage: { site: string; start_s: number | null; duration_s: number; captured_during: number; received_from_window: number; lost: number; refused_connections: number } | null;
  /** Labeled field samples in the dataset version; `boxes`: the box labels among them (detection). */
  labels: { used: number; boxes: number | null; by: string; simulated: boolean };
  gate: unknown;
  rollouts: Array<{ id: string; model: string; status: string; stages: string[] }>;
  drift: { onset_s: number | null; psi_peak: Record<string, number | null> };
  /** Drift onset to the new model answering on every pit-3 camera. */
  recovery_s: number | null;
  phases: PhaseRecord[];
}

/** A frame the agent answered, with the truth the demo drew it from. */
export interface Scored<T> {
  truth: T;
  result: ResultLine;
}

/** The scene's figure over a set of answered frames (accuracy, mAP@0.5); null when there is nothing to score. */
export type ScoreFn<T> = (rows: ReadonlyArray<Scored<T>>) => number | null;

/** The frames a camera fed and the agent answered (an error or a frame the demo did not feed is not scored). */
function answered<T>(cam: Camera<T>, rows: readonly ResultLine[]): Array<Scored<T> & { fedAt: number }> {
  const out: Array<Scored<T> & { fedAt: number }> = [];
  for (const r of rows) {
    const t = cam.truth.get(r.file);
    if (!t || r.error || r.model_version === undefined) continue;
    out.push({ truth: t.truth, result: r, fedAt: t.fedAt });
  }
  return out;
}

/** A site's figure in each phase: fed before the onset on the base model, after it on the base model, or answered by the new model. */
export function siteAccuracy<T>(cams: ReadonlyArray<Camera<T>>, o: { onset: number | null; baseVersion: string; newVersion: string | null }, score: ScoreFn<T>): SiteAccuracy {
  const bucket = { before_drift: [] as Array<Scored<T>>, during_drift: [] as Array<Scored<T>>, after_new_model: [] as Array<Scored<T>> };
  for (const c of cams) {
    for (const row of answered(c, c.results)) {
      const v = row.result.model_version;
      if (o.newVersion && v === o.newVersion) bucket.after_new_model.push(row);
      else if (v === o.baseVersion) (o.onset !== null && row.fedAt >= o.onset ? bucket.during_drift : bucket.before_drift).push(row);
    }
  }
  return {
    before_drift: score(bucket.before_drift),
    during_drift: score(bucket.during_drift),
    after_new_model: score(bucket.after_new_model),
    frames: { before_drift: bucket.before_drift.length, during_drift: bucket.during_drift.length, after_new_model: bucket.after_new_model.length },
  };
}

/** The figure over a camera set's most recent `n` results each (the terminal's rolling figure). */
export function recentAccuracy<T>(cams: ReadonlyArray<Camera<T>>, n: number, score: ScoreFn<T>): number | null {
  return score(cams.flatMap((c) => answered(c, c.results.slice(-n))));
}

const pct = (x: number | null | undefined): string => (x === null || x === undefined ? '  -  ' : `${(x * 100).toFixed(1)}%`);

/** A figure as the terminal shows it: accuracy in percent, mAP@0.5 as a fraction. */
export const figure = (metric: DemoReport['metric'], x: number | null | undefined): string => (metric === 'accuracy' || x === null || x === undefined ? pct(x) : x.toFixed(3));

/** The metric's short name for the terminal. */
export const metricName = (metric: DemoReport['metric']): string => (metric === 'accuracy' ? 'accuracy' : 'mAP@0.5');
