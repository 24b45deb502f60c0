import { OUTLIER_REASONS } from '../../../shared/schemas/index.js';
import type { OutlierReason, SampleMeta } from '../../../shared/schemas/index.js';
import type { SampleRecord } from '../../app/samples/types.js';
import type { BoxAnnotation } from '../../core/labels/boxes.js';

/** Bit of a reason in `samples.reason_mask` (bit i = OUTLIER_REASONS[i]; the enum is append-only). */
export function reasonBit(reason: OutlierReason): number {
  return 1 << OUTLIER_REASONS.indexOf(reason);
}

/** The index row of one sample: what {@link INSERT_SAMPLE_SQL} binds. */
export interface SampleRow {
  sample_id: string;
  device_id: string;
  site: string | null;
  reasons: string;
  reason_mask: number;
  model_name: string;
  model_version: string;
  predicted: string;
  confidence: number;
  captured_at: number;
  received_at: number;
  blob_sha256: string;
  blob_bytes: number;
  content_type: string | null;
  brightness: number | null;
  contrast: number | null;
  shadow_model: string | null;
  shadow_label: string | null;
  shadow_score: number | null;
  meta: string;
}

/** Idempotent on sample_id: a resend inserts nothing (changes = 0) and is counted as a duplicate. */
export const INSERT_SAMPLE_SQL = `
  INSERT INTO samples (sample_id, device_id, site, reasons, reason_mask, model_name, model_version, predicted, confidence,
    captured_at, received_at, blob_sha256, blob_bytes, content_type, brightness, contrast, shadow_model, shadow_label, shadow_score, meta)
  VALUES (@sample_id, @device_id, @site, @reasons, @reason_mask, @model_name, @model_version, @predicted, @confidence,
    @captured_at, @received_at, @blob_sha256, @blob_bytes, @content_type, @brightness, @contrast, @shadow_model, @shadow_label, @shadow_score, @meta)
  ON CONFLICT (sample_id) DO NOTHING`;

export function sampleRow(meta: SampleMeta, site: string | null, receivedAt: number): SampleRow {
  let mask = 0;
  for (const r of meta.reasons) mask |= reasonBit(r);
  return {
    sample_id: meta.sample_id,
    device_id: meta.device_id,
    site,
    reasons: JSON.stringify(meta.reasons),
    reason_mask: mask,
    model_name: meta.model.name,
    model_version: meta.model.version,
    predicted: meta.prediction.label,
    confidence: meta.prediction.score,
    captured_at: Date.parse(meta.captured_at),
    received_at: receivedAt,
    blob_sha256: meta.input.sha256,
    blob_bytes: meta.input.bytes,
    content_type: meta.input.kind === 'image' ? meta.input.content_type : null,
    brightness: meta.input_stats?.brightness ?? null,
    contrast: meta.input_stats?.contrast ?? null,
    shadow_model: meta.shadow ? `${meta.shadow.model.name}@${meta.shadow.model.version}` : null,
    shadow_label: meta.shadow?.label ?? null,
    shadow_score: meta.shadow?.score ?? null,
    meta: JSON.stringify(meta),
  };
}

/** Columns read back for a {@link SampleRecord}. */
export interface StoredSampleRow {
  seq: number;
  sample_id: string;
  device_id: string;
  site: string | null;
  received_at: number;
  blob_sha256: string;
  blob_bytes: number;
  content_type: string | null;
  meta: string;
  label: string | null;
  /** The current box label (JSON of a BoxAnnotation); null for class labels. */
  boxes: string | null;
  label_state: 'labeled' | 'skipped' | null;
  labeled_by: string | null;
  labeled_at: number | null;
}

export const SAMPLE_COLUMNS = 'seq, sample_id, device_id, site, received_at, blob_sha256, blob_bytes, content_type, meta, label, boxes, label_state, labeled_by, labeled_at';

export function toSampleRecord(r: StoredSampleRow): SampleRecord {
  const meta = JSON.parse(r.meta) as SampleMeta;
  return {
    sample_id: r.sample_id,
    device_id: r.device_id,
    site: r.site,
    reasons: meta.reasons,
    model: meta.model,
    prediction: meta.prediction,
    confidence: meta.prediction.score,
    captured_at: meta.captured_at,
    received_at: new Date(r.received_at).toISOString(),
    blob: { sha256: r.blob_sha256, bytes: r.blob_bytes, content_type: r.content_type },
    input_stats: meta.input_stats ?? null,
    shadow: meta.shadow ?? null,
    label:
      r.label_state === null || r.labeled_by === null || r.labeled_at === null
        ? null
        : { state: r.label_state, value: r.label, by: r.labeled_by, at: new Date(r.labeled_at).toISOString(), ...(r.boxes !== null ? { boxes: JSON.parse(r.boxes) as BoxAnnotation } : {}) },
    meta,
  };
}
