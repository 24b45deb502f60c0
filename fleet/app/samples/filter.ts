import { z } from 'zod';
import { outlierReason } from '../../../shared/schemas/index.js';
import { parseWith } from '../../../shared/validate.js';

const time = z.union([z.number().finite(), z.string().datetime({ offset: true })]);

/**
 * Which samples: every given field must hold. One schema for the API, the CLI, the labeling
 * queue and dataset export.
 */
export const sampleFilterSchema = z.strictObject({
  device: z.string().min(1).optional(),
  site: z.string().min(1).optional(),
  reason: outlierReason.optional(),
  /** Model name the device ran. */
  model: z.string().min(1).optional(),
  /** Model version the device ran. */
  version: z.string().min(1).optional(),
  /** Predicted (top-1) label. */
  label: z.string().optional(),
  /** Current human label. */
  labeledAs: z.string().optional(),
  minConfidence: z.number().finite().optional(),
  maxConfidence: z.number().finite().optional(),
  /** captured_at >= from (ISO time or epoch ms). */
  from: time.optional(),
  /** captured_at < to (ISO time or epoch ms). */
  to: time.optional(),
  /** true: has a human label; false: has none (never labeled, or skipped). */
  labeled: z.boolean().optional(),
});
export type SampleFilter = z.input<typeof sampleFilterSchema>;

const MAX_PAGE = 1000;

export const sampleQuerySchema = sampleFilterSchema.extend({
  limit: z.number().int().positive().max(MAX_PAGE).default(50),
  cursor: z.string().min(1).optional(),
  /** Arrival order; `desc` lists the newest first. */
  order: z.enum(['asc', 'desc']).default('asc'),
});
export type SampleQuery = z.input<typeof sampleQuerySchema>;
/** A filter after validation (times, defaults applied): what the samples repository compiles. */
export type ParsedSampleFilter = z.output<typeof sampleFilterSchema>;
/** A page query after validation. */
export type ParsedSampleQuery = z.output<typeof sampleQuerySchema>;

/** Validate a filter; throws `INPUT_INVALID` naming every bad field. */
export function parseFilter(f: unknown): ParsedSampleFilter {
  return parseWith(sampleFilterSchema, f ?? {}, 'INPUT_INVALID', 'sample filter');
}

export function parseQuery(q: unknown): ParsedSampleQuery {
  return parseWith(sampleQuerySchema, q ?? {}, 'INPUT_INVALID', 'sample query');
}
