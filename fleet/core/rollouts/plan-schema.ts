/** The rollout plan an ML engineer writes: stages, allowances, gates and what a failed gate does. */
import { z } from 'zod';

const fraction = z.number().min(0).max(1);

/** How many devices of the target a stage may hold: an absolute count or a percent (rounded up). */
export const allowance = z.union([
  z.object({ count: z.number().int().positive() }).strict(),
  z.object({ percent: z.number().gt(0).max(100) }).strict(),
]);
export type Allowance = z.infer<typeof allowance>;

export const gateAction = z.enum(['pause', 'abort']);
export type GateAction = z.infer<typeof gateAction>;

/** Gates that can fail (`devices_reporting` only ever makes a gate wait). */
export const gateName = z.enum([
  'failures',
  'failure_ratio',
  'error_rate_increase',
  'latency_p95_ratio',
  'confidence_drop',
  'outlier_rate_increase',
  'shadow_agreement',
]);
export type GateName = z.infer<typeof gateName>;

/** Gate thresholds without defaults: the shape of a per-stage override. `null` disables a gate. */
const gateShape = {
  /** Devices with enough samples before a gate may pass; 0 lets an empty stage pass (opt-in). */
  min_devices_reporting: z.number().int().nonnegative(),
  /** ...and at least this fraction of the stage's devices that did not fail. */
  min_reporting_ratio: fraction,
  /** Inferences (successes + errors) a device must report, on each version, to count. */
  min_samples_per_device: z.number().int().positive(),
  /** Install/smoke-test failures tolerated (unacknowledged, cumulative over the rollout). */
  max_failures: z.number().int().nonnegative().nullable(),
  /** Failed / finished installs; judged once `min_devices_reporting` installs finished. */
  max_failure_ratio: fraction.nullable(),
  /** Candidate error fraction minus the previous version's, on the same devices. */
  max_error_rate_increase: z.number().nonnegative().nullable(),
  /** Candidate latency p95 over the previous version's, on the same devices. */
  max_latency_p95_ratio: z.number().positive().nullable(),
  /**
   * Latencies below this (ms) count as this in the latency ratio: a sub-millisecond model's p95
   * is scheduler noise, and 0.3 ms against 0.1 ms is not a regression anyone would stop for.
   */
  latency_floor_ms: z.number().nonnegative(),
  /** Previous mean confidence minus the candidate's, on the same devices. */
  max_confidence_drop: z.number().nonnegative().nullable(),
  /** Candidate outlier rate minus the previous version's, on the same devices. */
  max_outlier_rate_increase: z.number().nonnegative().nullable(),
  /** Shadow stage only: fraction of sampled inputs where candidate and active agree. */
  min_shadow_agreement: fraction.nullable(),
  /** Per-gate override of the plan's `on_gate_failure`. */
  on_failure: z.partialRecord(gateName, gateAction),
};

/** Defaults chosen to be conservative: any smoke-test failure pauses until someone looks. */
export const GATE_DEFAULTS = {
  min_devices_reporting: 1,
  min_reporting_ratio: 0.5,
  min_samples_per_device: 20,
  max_failures: 0,
  max_failure_ratio: null,
  max_error_rate_increase: 0.01,
  max_latency_p95_ratio: 1.5,
  latency_floor_ms: 2,
  max_confidence_drop: 0.05,
  max_outlier_rate_increase: 0.05,
  min_shadow_agreement: 0.9,
  on_failure: {},
} as const satisfies { [K in keyof typeof gateShape]: z.output<(typeof gateShape)[K]> };

type Defaulted<S extends Record<string, z.ZodType>> = { [K in keyof S]: z.ZodDefault<S[K]> };
function withDefaults<S extends Record<string, z.ZodType>>(shape: S, defaults: { [K in keyof S]: z.output<S[K]> }): Defaulted<S> {
  // One table of fields, two schemas: full gates (defaults filled) and overrides (no defaults,
  // because zod 4 fills inner defaults even under .partial() and would mask the plan's values).
  return Object.fromEntries(Object.entries(shape).map(([k, s]) => [k, s.default(defaults[k] as never)])) as Defaulted<S>;
}

export const gates = z.object(withDefaults(gateShape, GATE_DEFAULTS));
export type Gates = z.infer<typeof gates>;
export const gatesOverride = z.object(gateShape).partial();
export type GatesOverride = z.infer<typeof gatesOverride>;

const bakeS = z.number().nonnegative().default(3600);

export const shadowStage = z.object({
  /** Devices that run the candidate in shadow; default: the canary's allowance (the same devices). */
  devices: allowance.optional(),
  /** Fraction of inputs the shadow model also sees. */
  sample_rate: z.number().gt(0).max(1).default(0.1),
  bake_s: bakeS,
  gates: gatesOverride.optional(),
});
export const activeStage = z.object({ devices: allowance, bake_s: bakeS, gates: gatesOverride.optional() });

/**
 * The canary, which may prefer the devices the change is for (`prefer: { tag: { site: 'pit-3' } }`):
 * devices holding every tag given come first in the selection order of every stage, so the
 * canary lands on them (the drifted site a retrained model is for) and the waves take the rest.
 */
export const canaryStage = activeStage.extend({
  prefer: z
    .object({ tag: z.record(z.string().min(1), z.string()).refine((t) => Object.keys(t).length > 0, 'name at least one tag') })
    .optional()
    .describe('Devices holding every tag in `tag` are picked first (the canary lands on them).'),
});

export const rolloutPlan = z
  .object({
    shadow: shadowStage.optional(),
    canary: canaryStage.prefault({ devices: { percent: 5 } }),
    /** Cumulative: each wave names the share of the whole target; the last one is 100%. */
    waves: z
      .array(activeStage)
      .min(1)
      .prefault([{ devices: { percent: 25 } }, { devices: { percent: 50 } }, { devices: { percent: 100 } }]),
    gates: gates.prefault({}),
    on_gate_failure: gateAction.default('pause'),
  })
  .superRefine((plan, ctx) => {
    const last = plan.waves[plan.waves.length - 1];
    if (!last || !('percent' in last.devices) || last.devices.percent !== 100) {
      ctx.addIssue({ code: 'custom', path: ['waves', plan.waves.length - 1, 'devices'], message: 'the last wave must be { percent: 100 }' });
    }
  });
export type RolloutPlan = z.output<typeof rolloutPlan>;
export type RolloutPlanInput = z.input<typeof rolloutPlan>;

