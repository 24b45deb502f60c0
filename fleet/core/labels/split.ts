/**
 * The split of a training dataset version, as pure functions.
 *
 * - The **base set** (e.g. the `mnist` digits) is split by reference: each base reference says
 *   whether its slice is `train` or `clean_holdout`; nothing of it is copied into the manifest.
 * - **Field samples** (labeled outliers the devices sent back) go to `train` or to the
 *   **field holdout** by a rule fixed before training: by a hash of the sample id, or by the
 *   time it was captured. A field-holdout sample is never trained on.
 * - **Stability**: a sample that an earlier dataset version of the model already placed keeps
 *   its place, whatever the rule says now. So a sample never moves from the holdout into train
 *   (that would evaluate a model on what it has seen), nor from train into the holdout (the
 *   parent model trained on it, which would favour the parent in the gate). The rule only
 *   places samples no earlier version held.
 */
import { z } from 'zod';
import { sha256Hex } from '../../../shared/ids.js';

export const FIELD_SPLITS = ['train', 'field_holdout'] as const;
export type FieldSplit = (typeof FIELD_SPLITS)[number];

/**
 * How field samples are set aside.
 * - `hash`: holdout when sha256(`salt` NUL sample_id), read as a number in [0, 1), is below
 *   `fraction`. Independent of arrival order and of every other sample.
 * - `time`: holdout when the capture time falls in the first `holdout_ms` of each `period_ms`
 *   window (counted from `offset_ms`), e.g. the first 12 minutes of every hour: a whole slice
 *   of time the model never sees, which catches leakage between near-duplicate frames.
 */
export const holdoutRule = z.discriminatedUnion('kind', [
  z.strictObject({
    kind: z.literal('hash'),
    fraction: z.number().min(0).max(1).describe('Share of field samples held out: those whose sha256(`salt` NUL sample id), read as a number in [0, 1), is below it.'),
    salt: z.string().default('').describe('Salt of the hash.'),
  }),
  z.strictObject({
    kind: z.literal('time'),
    period_ms: z.number().int().positive().describe('Length of each time window (ms).'),
    holdout_ms: z.number().int().nonnegative().describe('Samples captured in the first `holdout_ms` of each window are held out (e.g. the first 12 minutes of every hour).'),
    offset_ms: z.number().int().default(0).describe('Where the windows are counted from (ms).'),
  }),
]);
export type HoldoutRule = z.output<typeof holdoutRule>;

/** The default: a fifth of the field samples, by hash of the id. */
export const DEFAULT_HOLDOUT_RULE: HoldoutRule = { kind: 'hash', fraction: 0.2, salt: 'field-holdout-v1' };

/** A number in [0, 1) from the id alone: the first 52 bits of sha256(salt NUL id). */
export function hashUnit(id: string, salt: string): number {
  const hex = sha256Hex(`${salt}\u0000${id}`).slice(0, 13);
  return Number.parseInt(hex, 16) / 2 ** 52;
}

/** What the rule says for one sample (ignoring earlier placements). */
export function ruleSays(s: { sample_id: string; captured_at_ms: number }, rule: HoldoutRule): FieldSplit {
  if (rule.kind === 'hash') return hashUnit(s.sample_id, rule.salt) < rule.fraction ? 'field_holdout' : 'train';
  const phase = (((s.captured_at_ms - rule.offset_ms) % rule.period_ms) + rule.period_ms) % rule.period_ms;
  return phase < rule.holdout_ms ? 'field_holdout' : 'train';
}

/**
 * Place every field sample: an earlier placement (`previous`, from the model's last dataset
 * version) wins, otherwise the rule decides. Deterministic, order-independent, and each
 * sample's split depends only on itself, the rule and its earlier placement.
 */
export function splitField<S extends { sample_id: string; captured_at_ms: number }>(samples: readonly S[], rule: HoldoutRule, previous: ReadonlyMap<string, FieldSplit> = new Map()): Map<string, FieldSplit> {
  const out = new Map<string, FieldSplit>();
  for (const s of samples) out.set(s.sample_id, previous.get(s.sample_id) ?? ruleSays(s, rule));
  return out;
}
