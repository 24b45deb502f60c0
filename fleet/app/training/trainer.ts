/**
 * The `Trainer` port: how the fleet turns a dataset version into a candidate model package.
 * Implementations: `local` (the built-in digit CNN, the embedded default), `command` (a user's
 * own training command with DATASET_DIR / PARENT_MODEL / OUTPUT_DIR), `sagemaker` (a SageMaker
 * training job). The learning loop (triggers, evaluation gate, registry, promotion) only ever
 * sees this interface: a new trainer is a new adapter, done when the contract suite
 * (test/fleet/training/trainer-contract.ts) passes against it.
 */
import type { ModelRef } from '../../../shared/schemas/index.js';
import type { FrameSize } from '../../core/labels/boxes.js';

/** A true box of a detection example, in the image's original pixels: x1, y1, x2, y2. */
export interface BoxLabel {
  label: string;
  box: readonly [number, number, number, number];
}

/** One labeled example as a trainer receives it: the raw input bytes (a PNG for images) and its label. */
export interface TrainingExample {
  /** Sample id for field samples; a stable synthetic id (`mnist-<n>`, `artifact-<sha256>`) for the base training set. */
  id: string;
  /**
   * `base` for the base training set, `field` (or absent) for samples the fleet sent back.
   * Trainers may weigh them apart (the local trainer draws a fraction of the base set per epoch
   * when fine-tuning); base sources set it, so no trainer guesses from ids.
   */
  origin?: 'base' | 'field';
  /** The class label; '' for a detection example (its labels are `boxes`). */
  label: string;
  /** The input bytes as a device captured them (image file bytes), content-addressed by sha256 elsewhere. */
  bytes: Uint8Array;
  /** Detection examples: the labeled boxes `[x1, y1, x2, y2]` in `frame`'s pixels (empty: nothing in the image); absent for a classifier's examples. */
  boxes?: readonly BoxLabel[];
  /** Detection examples: width and height of the image the boxes are in. */
  frame?: FrameSize;
}

/** Everything a trainer needs, already exported from the fleet's stores. */
export interface TrainRequest {
  /** Name and version the candidate package must carry. */
  model: ModelRef;
  /** The dataset version id (sha256) this run trains on; recorded in the package's lineage. */
  datasetVersion: string;
  /** The training-run id, when the caller has one: recorded as `lineage.training_run` in the package. */
  runId?: string;
  /** The training split. */
  train: readonly TrainingExample[];
  /**
   * The field holdout, for trainers whose dataset layout has a validation split (the command
   * trainer's `yolo` and `coco` layouts write it as `val`). The clean holdout never reaches a
   * trainer; a trainer that picks checkpoints on `val` makes the gate's field-holdout check
   * optimistic, so the local and SageMaker trainers ignore it.
   */
  val?: readonly TrainingExample[];
  /** Class labels in output order. */
  labels: readonly string[];
  /**
   * The parent model's package directory (fine-tuning starts from its weights when the
   * trainer can), or null to train from scratch.
   */
  parent: { ref: ModelRef; dir: string } | null;
  /** Trainer-specific parameters (epochs, learning rate, image, instance type...). Recorded in lineage. */
  params: Readonly<Record<string, unknown>>;
  seed: number;
  /** An empty directory the trainer writes the candidate package into. */
  outputDir: string;
  /** PEM of the fleet signing key, when the trainer signs (the registry re-signs on push anyway). */
  signKeyPem?: string;
  /** Progress lines (epoch, loss, accuracy, job status) for the terminal and the console. */
  onProgress?(p: TrainProgress): void;
  /**
   * Aborts a long run (Ctrl-C, a service shutdown): the run stops promptly and rejects with
   * `FLEET_TRAINING_ABORTED`; an already aborted signal starts nothing.
   */
  signal?: AbortSignal;
}

export interface TrainProgress {
  /** 0..1 when known. */
  fraction?: number;
  message: string;
  metrics?: Record<string, number>;
}

/** What a finished run produced: a model package directory, not yet registered. */
export interface TrainResult {
  /** The package directory (== request.outputDir), validated as a model package. */
  packageDir: string;
  /** Metrics the trainer measured itself (training loss, training accuracy...). */
  metrics: Record<string, number>;
  /** Wall time of the run. */
  durationMs: number;
  /** Trainer name, parameters as actually used, code version: goes into the training-run record. */
  run: { trainer: string; params: Record<string, unknown>; seed: number; code_version: string };
}

export interface Trainer {
  /** `local`, `command`, `sagemaker`. */
  readonly name: string;
  train(req: TrainRequest): Promise<TrainResult>;
  /**
   * Optional work ahead of a run on examples a later run will get (the local trainer decodes
   * the images into its cache), so the run itself starts training sooner. Never required.
   */
  prepare?(examples: readonly TrainingExample[]): Promise<void>;
}
