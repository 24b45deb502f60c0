import type { SampleMeta } from '../../../shared/schemas/index.js';
import type { DatasetEntry } from '../../core/labels/dataset-schema.js';
import type { BoxAnnotation } from '../../core/labels/boxes.js';
import type { LabelAction, LabelEvent } from '../labels/labels.js';
import type { ParsedSampleFilter, ParsedSampleQuery } from './filter.js';
import type { SamplePage, SampleRecord } from './types.js';

/** A sample to store: its meta as the device sent it, the device's site then, and when it arrived. */
export interface NewSample {
  meta: SampleMeta;
  site: string | null;
  receivedAt: number;
}

/** A labeled sample as a dataset version records it, and when it was captured (ms). */
export interface LabeledSample {
  entry: DatasetEntry;
  capturedAt: number;
}

/**
 * Where samples and their labels live: every read and write of the `samples` table (and of
 * `label_events`, whose latest live event is the sample's current label) goes through here,
 * for ingest, labeling, datasets, the learning loop and the console alike. Filters are the
 * validated {@link ParsedSampleFilter}; the repository compiles them. Writes are atomic; a
 * failure throws `FLEET_STORAGE_FAILED`.
 */
export interface SamplesRepo {
  /** Store samples in one transaction. Idempotent by sample id: false for one already stored. */
  insertMany(samples: readonly NewSample[]): boolean[];
  find(sampleId: string): SampleRecord | null;
  count(): number;
  /** Samples stored per device, by device id. */
  countByDevice(): Array<{ device_id: string; stored: number }>;
  /** One page in arrival order (the cursor is this repository's; `INPUT_INVALID` for a foreign one). */
  page(q: ParsedSampleQuery): SamplePage;
  /** How many samples the filter selects, and how many of them are labeled or skipped. */
  progress(filter: ParsedSampleFilter): { total: number; labeled: number; skipped: number };
  /** Up to `limit` samples the filter selects, never-labeled ones first, then skipped ones, each in arrival order. */
  labelingQueue(filter: ParsedSampleFilter, limit: number): SampleRecord[];
  /** Dataset entries of the samples the filter selects, by sample id; the filter must select labeled samples only. */
  labeledEntries(filter: ParsedSampleFilter): DatasetEntry[];
  /** Every labeled sample a model (by name) classified, by sample id. */
  labeledOfModel(model: string): LabeledSample[];
  /** Samples of a model whose current label was given after `since` (ms). */
  countLabeledSince(model: string, since: number): number;
  /** Samples whose current label `actor` gave. */
  countLabeledBy(actor: string): number;
  /** Class-labeled samples and how many of them the model predicted right, per device and model version (box labels have no single right answer: left out). */
  labelAgreement(): Array<{ device_id: string; model: string; version: string; labeled: number; correct: number }>;
  /**
   * Record a labeling action on a sample and make it the sample's current label, atomically.
   * `labelOf` gets the predicted label; with `boxes` (a detection sample's box label) the label is null.
   * False when no sample has this id (nothing written).
   */
  addLabelEvent(sampleId: string, e: { action: LabelAction; labelOf: (predicted: string) => string | null; actor: string; at: number; boxes?: BoxAnnotation }): boolean;
  /** Mark `actor`'s latest live event undone at `at` and refresh its sample's label, atomically; null when none is left. */
  undoLast(actor: string, at: number): LabelEvent | null;
  /** Every event of a sample, oldest first; null when no sample has this id. */
  history(sampleId: string): LabelEvent[] | null;
}
