/**
 * The training configuration of one model, as the learning loop and the training file take it:
 * one schema source for both (fleet/boot/training-config.ts embeds it).
 */
import { z } from 'zod';
import { modelName } from '../../../shared/schemas/index.js';
import { baseRef } from '../../core/labels/dataset-schema.js';
import { DEFAULT_HOLDOUT_RULE, holdoutRule } from '../../core/labels/split.js';
import { rolloutPlan } from '../../core/rollouts/plan-schema.js';
import { gateConfig } from '../../core/training/gate.js';
import { triggerPolicy } from '../../core/training/triggers.js';

/** The training configuration of one model. */
export const loopModelConfig = z.strictObject({
  name: modelName.describe('The model name in the registry.'),
  labels: z.array(z.string().min(1)).min(2).optional().describe("Class labels when the model has no registered version yet (else the production model's)."),
  trainer: z.string().min(1).default('local').describe('Trainer of its runs: `local`, `command` or `sagemaker`, one the mode provides.'),
  params: z.record(z.string(), z.unknown()).default({}).describe("Trainer parameters, passed as they are (the local trainer's recipe: `epochs`, `batchSize`, `lr`, `augment`...; a key it does not know is `INPUT_INVALID`)."),
  seed: z.number().int().nonnegative().default(1).describe('Seed of every run: with the local trainer the same examples, params and seed give a bit-identical `model.onnx`.'),
  base: z.array(baseRef).default([]).describe('The base set by reference: `train` slices and the `clean_holdout` slice(s).'),
  holdout: holdoutRule
    .default(DEFAULT_HOLDOUT_RULE)
    .describe("How field samples are split into `train` and `field_holdout`: a rule fixed before training and recorded in the dataset manifest. A sample keeps the split the model's previous dataset version gave it; the holdouts never reach a trainer."),
  triggers: triggerPolicy.default(triggerPolicy.parse({})).describe('When a run starts by itself (a person can always start one); a condition set to null is off.'),
  gate: gateConfig
    .default(gateConfig.parse({}))
    .describe('The evaluation gate a candidate must pass against the production model, on the clean and field holdouts. Boundaries count as passing; with no production model only the field-holdout check applies.'),
  auto_promote: z
    .strictObject({ selector: z.record(z.string(), z.string()).describe('Device tags the rollout targets.'), plan: rolloutPlan.describe('The rollout plan (shadow, canary, waves, gates), as the rollouts API takes it.') })
    .nullable()
    .default(null)
    .describe('Opt-in: a candidate that passes the gate starts a rollout to `selector` with `plan` (null: off). A rollout that cannot start leaves the run accepted with the error recorded.'),
  evaluation: z
    .strictObject({
      warmup: z.number().int().nonnegative().default(5).describe('Runs per model before latency is measured.'),
      intra_op_threads: z.number().int().positive().default(1).describe('ONNX Runtime intra-op threads of the evaluation sessions.'),
    })
    .default({ warmup: 5, intra_op_threads: 1 })
    .describe('How candidate and production models are evaluated: both run on the same examples in turn with ONNX Runtime on the fleet host.'),
});
export type LoopModelConfig = z.output<typeof loopModelConfig>;
export type LoopModelConfigInput = z.input<typeof loopModelConfig>;
