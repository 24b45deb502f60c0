import { z } from 'zod';
import { idString, isoTime, sha256Hex } from '../../shared/schemas/index.js';

export const DATASET_SCHEMA = 'edgeloop.dataset' as const;

/** One labeled sample of a dataset version. */
export const datasetEntry = z.strictObject({
  sample_id: idString,
  label: z.string().min(1),
  /** The input bytes, an artifact: a trainer fetches it by this sha256. */
  blob_sha256: sha256Hex,
  device_id: idString,
  labeled_by: z.string().min(1),
  labeled_at: isoTime,
});
export type DatasetEntry = z.infer<typeof datasetEntry>;

/**
 * An immutable dataset version. `id` is the sha256 of canonicalJson(entries), entries
 * sorted by sample_id: the same labeled set always has the same id, any change of a label
 * (or of who gave it, when) makes a new one. Everything else (name, creator, filter) is
 * description, not identity.
 */
export const datasetManifest = z.strictObject({
  schema: z.literal(DATASET_SCHEMA),
  v: z.literal(1),
  id: sha256Hex,
  name: z.string().min(1).max(128).optional(),
  created_at: isoTime,
  created_by: z.string().min(1),
  /** The sample filter the export used, for the record. */
  filters: z.record(z.string(), z.unknown()),
  entries: z.array(datasetEntry).min(1),
  /** Entries per label. */
  counts: z.record(z.string(), z.number().int().nonnegative()),
});
export type DatasetManifest = z.infer<typeof datasetManifest>;
