import { z } from 'zod';
import { idString, isoTime, modelName, sha256Hex } from '../../../shared/schemas/index.js';
import { boxLabels, frameSize } from './boxes.js';
import { FIELD_SPLITS, holdoutRule } from './split.js';

export const DATASET_SCHEMA = 'edgeloop.dataset' as const;

/**
 * One labeled sample of a dataset version: a class label (`label`), or for a detection sample
 * its boxes in the image's pixels and that image's size (`boxes` + `frame`; an empty list is
 * "nothing in the image"). Class-label entries carry no `boxes` key, so they hash as before.
 */
export const datasetEntry = z
  .strictObject({
    sample_id: idString,
    label: z.string().min(1).optional(),
    boxes: boxLabels.optional(),
    frame: frameSize.optional(),
    /** The input bytes, an artifact: a trainer fetches it by this sha256. */
    blob_sha256: sha256Hex,
    device_id: idString,
    labeled_by: z.string().min(1),
    labeled_at: isoTime,
    /** Training versions only: when the device captured it (the time holdout rule reads it). */
    captured_at: isoTime.optional(),
    /** Training versions only: `train`, or `field_holdout` (never trained on). */
    split: z.enum(FIELD_SPLITS).optional(),
  })
  .refine((e) => (e.label !== undefined) !== (e.boxes !== undefined), { message: 'an entry has either a label or boxes' })
  .refine((e) => (e.boxes !== undefined) === (e.frame !== undefined), { message: 'boxes come with their frame (width, height)' });
export type DatasetEntry = z.infer<typeof datasetEntry>;

/**
 * A slice of a base training set, by reference (never copied): `offset`/`count` into a named
 * source (`mnist`: the package's digits in their fixed order), or a list of content hashes of
 * artifacts. `content_sha256` fingerprints what the reference resolved to when the version was
 * made (sha256 over the examples' ids, labels and byte hashes): a source that changed since is
 * refused, not silently trained on.
 */
export const baseRef = z.strictObject({
  source: z.string().min(1).describe('Where the slice comes from: `mnist` (with `offset` and `count`) or `artifacts` (with `items`).'),
  offset: z.number().int().nonnegative().optional().describe("First example of the slice (`mnist`: the package's digits in their fixed order)."),
  count: z.number().int().positive().optional().describe('Number of examples in the slice.'),
  items: z
    .array(z.strictObject({ sha256: sha256Hex.describe("The sha256 of the example's bytes in the artifact store."), label: z.string().min(1).describe('Its label.') }))
    .optional()
    .describe("For `source: 'artifacts'`: the examples as `{ sha256, label }`."),
  split: z.enum(['train', 'clean_holdout']).describe('`train`, or `clean_holdout` (only evaluated on, never trained on).'),
  content_sha256: sha256Hex.optional().describe('What the reference resolved to, as recorded in a dataset version: a source that no longer matches is refused (`FLEET_BASE_SET_INVALID`).'),
});
export type BaseRef = z.infer<typeof baseRef>;

/**
 * An immutable dataset version. `id` is the sha256 of canonicalJson(entries), entries
 * sorted by sample_id: the same labeled set always has the same id, any change of a label
 * (or of who gave it, when) makes a new one. Everything else (name, creator, filter) is
 * description, not identity. A training version (with `base` and `split_rule`) hashes
 * `{ entries, base, split_rule }` instead: the same labels with another base set or another
 * holdout rule are another dataset (see `datasetIdOf`).
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
  /** At least one for exports (checked there); a training version may be base set only. */
  entries: z.array(datasetEntry),
  /** Entries per label (box entries: boxes per class). */
  counts: z.record(z.string(), z.number().int().nonnegative()),
  /** Training versions: the model it was cut for. */
  model: modelName.optional(),
  /** Training versions: the base set slices, by reference. */
  base: z.array(baseRef).optional(),
  /** Training versions: the field-holdout rule, fixed before training. */
  split_rule: holdoutRule.optional(),
  /** Training versions: the dataset version whose placements this one kept. */
  previous: sha256Hex.optional(),
  /** Training versions: example counts per split (base slices counted by their `count`). */
  splits: z.strictObject({ train: z.number().int().nonnegative(), clean_holdout: z.number().int().nonnegative(), field_holdout: z.number().int().nonnegative() }).optional(),
});
export type DatasetManifest = z.infer<typeof datasetManifest>;
