/**
 * HTTP schemas of the learning loop: training runs, their progress, trigger firings, the
 * evaluation report and the full lineage chain. Handlers' return types are checked against
 * these at compile time (see `route()`), like every other route's.
 */
import { z } from 'zod';
import { isoTime, modelName, modelRef, sha256Hex } from '../../../shared/schemas/index.js';
import { baseRef, datasetEntry } from '../../core/labels/dataset-schema.js';
import { holdoutRule } from '../../core/labels/split.js';
import { TRIGGER_KINDS } from '../../core/training/triggers.js';

const triggerKind = z.enum(TRIGGER_KINDS);
const errorInfo = z.object({ code: z.string(), message: z.string() });

const gateCheck = z.object({
  name: z.enum(['field_holdout', 'field_gain', 'clean_drop', 'class_drop', 'latency']),
  passed: z.boolean(),
  value: z.number().nullable(),
  threshold: z.number(),
  detail: z.string(),
});

const gateVerdict = z.object({ passed: z.boolean(), reasons: z.array(z.string()), checks: z.array(gateCheck), baseline: z.literal('production').nullable() });

const trainingRun = z.object({
  id: z.string(),
  model: z.string(),
  status: z.enum(['running', 'accepted', 'rejected', 'failed']),
  trainer: z.string(),
  params: z.record(z.string(), z.unknown()),
  seed: z.number().int(),
  code_version: z.string().nullable(),
  trigger: z.object({ kind: triggerKind, reason: z.string() }),
  actor: z.string(),
  dataset_version: z.string().nullable(),
  parent: modelRef.nullable(),
  result: modelRef.nullable(),
  started_at: isoTime,
  finished_at: isoTime.nullable(),
  duration_ms: z.number().nullable(),
  metrics: z.record(z.string(), z.number()),
  gate: gateVerdict.nullable(),
  report_sha256: sha256Hex.nullable(),
  rollout_id: z.string().nullable(),
  error: errorInfo.nullable(),
});

const loopProgress = z.object({
  seq: z.number().int(),
  run: z.string(),
  model: z.string(),
  phase: z.enum(['queued', 'dataset', 'train', 'push', 'evaluate', 'gate', 'rollout', 'done', 'failed']),
  at: isoTime,
  message: z.string(),
  fraction: z.number().optional(),
  metrics: z.record(z.string(), z.number()).optional(),
});

export const trainBody = z.strictObject({
  /** Default: the only model configured for training. */
  model: modelName.optional(),
  /** Override the configured trainer (`local`, `command`, ...) for this run. */
  trainer: z.string().min(1).optional(),
  /** Why, recorded with the manual firing. */
  note: z.string().max(200).optional(),
});

export const trainResponse = z.object({ run: trainingRun, progress: z.array(loopProgress) });
export const runParams = z.strictObject({ id: z.string().min(1).max(64) });
export const runQuery = z.strictObject({ after: z.number().int().nonnegative().optional() });
export const runListQuery = z.strictObject({ model: modelName.optional(), limit: z.number().int().positive().max(1000).optional() });
export const runList = z.object({ items: z.array(trainingRun) });
export const reportResponse = z.record(z.string(), z.unknown());

const triggerFiring = z.object({ seq: z.number().int(), model: z.string(), at: isoTime, kind: triggerKind, reason: z.string(), details: z.record(z.string(), z.unknown()), run_id: z.string().nullable() });
export const firingList = z.object({ items: z.array(triggerFiring) });

export const trainingModels = z.object({
  items: z.array(z.object({ name: z.string(), trainer: z.string(), auto_promote: z.boolean(), triggers: z.record(z.string(), z.unknown()), gate: z.record(z.string(), z.unknown()), running: z.string().nullable() })),
});

export const lineageQuery = z.strictObject({ entries: z.boolean().optional() });

export const lineageChainResponse = z.object({
  ref: z.string(),
  steps: z.array(
    z.object({
      model: z.object({
        name: z.string(),
        version: z.string(),
        ref: z.string(),
        missing: z.boolean(),
        status: z.string().nullable(),
        status_reasons: z.array(z.string()),
        pushed_at: isoTime.nullable(),
        pushed_by: z.string().nullable(),
        manifest_sha256: z.string().nullable(),
      }),
      run: trainingRun.nullable(),
      dataset: z
        .object({
          id: z.string(),
          name: z.string().nullable(),
          created_at: isoTime,
          created_by: z.string(),
          base: z.array(baseRef),
          split_rule: holdoutRule.nullable(),
          splits: z.object({ train: z.number(), clean_holdout: z.number(), field_holdout: z.number() }).nullable(),
          counts: z.record(z.string(), z.number()),
          devices: z.record(z.string(), z.number()),
          labelers: z.record(z.string(), z.number()),
          entries: z.array(datasetEntry),
        })
        .nullable(),
      dataset_missing: z.string().nullable(),
    }),
  ),
});

/** Names in the OpenAPI document (merged into schemas.ts's maps). */
export const trainingResponseNames: Array<[z.ZodType, string]> = [
  [trainingRun, 'TrainingRun'],
  [trainResponse, 'TrainingRunProgress'],
  [runList, 'TrainingRunList'],
  [firingList, 'TriggerFiringList'],
  [trainingModels, 'TrainingModels'],
  [lineageChainResponse, 'LineageChain'],
  [gateVerdict, 'GateVerdict'],
];
export const trainingRequestNames: Array<[z.ZodType, string]> = [[trainBody, 'TrainRequest']];
