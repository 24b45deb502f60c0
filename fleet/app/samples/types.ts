import type { ModelRef, OutlierReason, SampleMeta, TopkEntry } from '../../../shared/schemas/index.js';
import type { BoxAnnotation } from '../../core/labels/boxes.js';

/** The current human label of a sample: the latest label event that was not undone. */
export interface CurrentLabel {
  /** `labeled`: `value` is the label (null for a box label). `skipped`: a labeler passed on it (no label). */
  state: 'labeled' | 'skipped';
  value: string | null;
  /** Detection samples: the labeled boxes (an empty list: nothing in the image). Absent for class labels. */
  boxes?: BoxAnnotation;
  by: string;
  at: string;
}

/** A stored sample as the API, the console and the labeling queue show it. Times are ISO strings. */
export interface SampleRecord {
  sample_id: string;
  device_id: string;
  /** The device's `site` tag when the sample arrived; null when it had none. */
  site: string | null;
  reasons: OutlierReason[];
  model: ModelRef;
  prediction: { label: string; index: number; score: number; topk: TopkEntry[] };
  /** The top-1 score (= prediction.score): the confidence filters compare against. */
  confidence: number;
  captured_at: string;
  received_at: string;
  blob: { sha256: string; bytes: number; content_type: string | null };
  input_stats: { brightness: number; contrast: number } | null;
  shadow: { model: ModelRef; label: string; score: number } | null;
  label: CurrentLabel | null;
  /** The meta exactly as the device sent it. */
  meta: SampleMeta;
}

/** A page of {@link SampleRecord}s; pass `next_cursor` back as `cursor` for the next one. */
export interface SamplePage {
  items: SampleRecord[];
  next_cursor: string | null;
}
