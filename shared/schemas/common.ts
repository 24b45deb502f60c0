import { z } from 'zod';
import { SEMVER_PATTERN } from '../semver.js';

/**
 * Wire schema version carried by every message as `v`. Bump it when a message changes
 * incompatibly; receivers reject versions they do not know with a clear error.
 */
export const SCHEMA_VERSION = 1 as const;

export const schemaVersion = z.literal(SCHEMA_VERSION);

/** Ids are printable, URL- and topic-safe (no `/`, `+`, `#`). */
export const idString = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'only letters, digits and . _ : - are allowed');

export const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected a lowercase hex sha256');

/** Model names are slugs; versions are semantic versions (pre-release allowed). */
export const modelName = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lowercase letters, digits and -');
export const semver = z.string().regex(SEMVER_PATTERN, 'expected a semantic version such as 1.2.0');

export const modelRef = z.object({ name: modelName, version: semver });
export type ModelRef = z.infer<typeof modelRef>;

export const isoTime = z.string().datetime({ offset: true });

export const dtype = z.enum(['float32', 'uint8']);
export type DType = z.infer<typeof dtype>;

/** A tensor dimension: a fixed size, or a symbolic name (batch) that accepts any size. */
export const dim = z.union([z.number().int().nonnegative(), z.string().min(1)]);

export const topkEntry = z.object({ label: z.string(), index: z.number().int().nonnegative(), score: z.number() });
export type TopkEntry = z.infer<typeof topkEntry>;

/** Append-only: the fleet stores reasons as bits by position (fleet/adapters/sqlite/sample-rows.ts). `uncertain_box`, `count_change` and `nothing_found` are a detector's; `alert` marks an alert's frame. */
export const outlierReason = z.enum(['low_confidence', 'low_margin', 'high_entropy', 'random', 'drift', 'shadow_disagreement', 'uncertain_box', 'count_change', 'nothing_found', 'alert']);

/** One detected object: label, score and box [x1, y1, x2, y2] in original-image pixels. */
export const detection = z.object({
  label: z.string(),
  score: z.number(),
  box: z.tuple([z.number(), z.number(), z.number(), z.number()]),
  /** A pipeline's classifier answer for this box's crop (agent config `pipelines`). */
  classification: z.object({ model: z.string(), version: z.string(), label: z.string(), score: z.number() }).optional(),
});
export type Detection = z.infer<typeof detection>;
export type OutlierReason = z.infer<typeof outlierReason>;
export const OUTLIER_REASONS = outlierReason.options;

export const modelRefString = (ref: ModelRef): string => `${ref.name}@${ref.version}`;
