/**
 * The record a training run carries through the learning loop's steps (pipeline.ts): what it
 * starts from, then what each step adds. Each step takes the record as the steps before it left
 * it and returns it with its own part, so a step's type says what it needs and what it gives.
 */
import type { Logger } from 'pino';
import type { Clock } from '../../../shared/ids.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import type { DatasetManifest } from '../../core/labels/dataset-schema.js';
import type { GateVerdict } from '../../core/training/gate.js';
import type { ArtifactStore } from '../artifacts.js';
import type { Datasets } from '../labels/datasets.js';
import type { ModelRegistry, ModelVersion } from '../models/registry.js';
import type { RolloutManager } from '../rollouts/manager.js';
import type { BaseSetSource } from './base-source.js';
import type { LoopModelConfig } from './config.js';
import type { EvalExample, ModelReport } from './evaluate.js';
import type { DetectionModelReport } from './evaluate-detection.js';
import type { Emit } from './progress.js';
import type { TrainingRun, TrainingRuns } from './runs.js';
import type { Trainer, TrainingExample, TrainResult } from './trainer.js';

/** What the steps work with: the fleet's parts, and this run's progress lines. */
export interface StepDeps {
  registry: ModelRegistry;
  artifacts: ArtifactStore;
  datasets: Datasets;
  base: BaseSetSource;
  runs: TrainingRuns;
  rollouts: Pick<RolloutManager, 'create'>;
  clock: Clock;
  log: Logger;
  /** Passed to trainers that sign; the registry re-signs on push anyway. */
  signKeyPem?: string;
  emit: Emit;
}

/** A run as it is launched. */
export interface RunStart {
  /** The run as recorded when it started. */
  run: TrainingRun;
  config: LoopModelConfig;
  trainer: Trainer;
  /** The production model the candidate is measured against (and fine-tuned from), or null. */
  parent: ModelVersion | null;
  /** This run's scratch directory (emptied first, removed after the run). */
  workDir: string;
  signal: AbortSignal;
}

/** After `prepareStep`: the parent's package on disk and the classes the candidate must have. */
export interface Prepared extends RunStart {
  parentDir: string | null;
  labels: string[];
}

/** The three sets of a dataset version; the holdouts never reach a trainer. */
export interface RunSplit {
  /** Base `train` slices and field samples placed in train. */
  train: TrainingExample[];
  /** Base `clean_holdout` slices. */
  clean: EvalExample[];
  /** Field samples placed in the field holdout (with their boxes for a detector). */
  field: TrainingExample[];
}

/** After `datasetStep`. */
export interface DatasetReady extends Prepared {
  dataset: DatasetManifest;
  split: RunSplit;
}

/** After `trainStep`: the candidate's name@version and what the trainer wrote. */
export interface Trained extends DatasetReady {
  candidate: ModelRef;
  trained: TrainResult;
}

/** After `pushStep`: the candidate in the registry, with the loop's lineage. */
export interface Pushed extends Trained {
  pushed: ModelVersion;
}

/** After `evaluateStep`: candidate and production on the same holdouts, on this host. */
export interface Evaluated extends Pushed {
  /** A classifier's accuracy reports, or a detector's mAP reports (`task: 'detection'`). */
  reports: { candidate: ModelReport | DetectionModelReport; production: ModelReport | DetectionModelReport | null };
}

/** After `gateStep`: the verdict, the stored report and the run's metrics. */
export interface Judged extends Evaluated {
  verdict: GateVerdict;
  reportSha: string;
  metrics: Record<string, number>;
}

/** After `promoteStep`: why the automatic rollout did not start, when it did not. */
export interface Promoted extends Judged {
  rolloutError: { code: string; message: string } | null;
}
