/**
 * The rollout's state and decision log: plain JSON (no Dates, Maps or undefined), so the
 * integrator stores it as one row and validates it with `rolloutState` when loading.
 */
import { z } from 'zod';
import { idString, modelRef } from '../../../shared/schemas/common.js';
import { deploymentPhase } from '../../../shared/schemas/messages.js';
import { epochMs } from './event-schema.js';
import { rolloutPlan } from './plan-schema.js';

/** Format version of a serialized `RolloutState`; bump with a migration when it changes. */
export const ROLLOUT_STATE_VERSION = 1 as const;

/**
 * Running sums over telemetry windows of one model on one device. Means are weighted by
 * successful inferences; p95 is a count-weighted mean of window p95s (percentiles do not
 * merge exactly, and a per-device ratio of these means is what the latency gate compares).
 */
const metricsAgg = z.object({
  windows: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  latency_sum: z.number(),
  latency_weight: z.number().nonnegative(),
  confidence_sum: z.number(),
  confidence_weight: z.number().nonnegative(),
  outlier_sum: z.number(),
  outlier_weight: z.number().nonnegative(),
});
export type MetricsAgg = z.infer<typeof metricsAgg>;

/** Running sums of the shadow model's side of telemetry windows. */
const shadowAgg = z.object({
  windows: z.number().int().nonnegative(),
  count: z.number().int().nonnegative(),
  agreement_sum: z.number(),
  agreement_weight: z.number().nonnegative(),
  confidence_sum: z.number(),
  confidence_weight: z.number().nonnegative(),
  latency_sum: z.number(),
  latency_weight: z.number().nonnegative(),
});
export type ShadowAgg = z.infer<typeof shadowAgg>;

/** What the rollout wants a device to run: a full desired state, never a patch. */
const desiredSlot = z.object({
  active: modelRef.nullable(),
  shadow: z.object({ model: modelRef, sample_rate: z.number().gt(0).max(1) }).nullable(),
});
export type DesiredSlot = z.infer<typeof desiredSlot>;

const deviceRecord = z.object({
  /** Selection order: hash of rollout id + device id (see selection.ts). */
  rank: z.string(),
  /** What the device ran before the rollout touched it; abort and rollback return it here. */
  last_known_good: modelRef.nullable(),
  /** `null` while untouched: the rollout has never set this device's desired state. */
  desired: desiredSlot.nullable(),
  /** Stage index at which the device was picked to shadow / to run the candidate. */
  shadow_stage: z.number().int().nonnegative().nullable(),
  assigned_stage: z.number().int().nonnegative().nullable(),
  reported: z.object({ at: epochMs, phase: deploymentPhase, model: modelRef, reason: z.string().nullable() }).nullable(),
  /** First proof the candidate runs (active report or candidate metrics) / runs in shadow. */
  installed_at: epochMs.nullable(),
  shadow_installed_at: epochMs.nullable(),
  baseline: metricsAgg,
  candidate: metricsAgg,
  shadow: shadowAgg,
  /** Install/smoke-test failure; `acknowledged` once an operator resumed past it. */
  failure: z.object({ at: epochMs, stage: z.number().int().nonnegative(), reason: z.string(), acknowledged: z.boolean() }).nullable(),
  /** Reverted off the candidate; cleared (with a decision) when the device confirms. */
  revert_pending: z.boolean(),
  /** Left the target: no longer managed (reverted on the way out unless the rollout completed). */
  removed: z.boolean(),
  /** Never managed, e.g. it already ran the candidate when the rollout started. */
  excluded_reason: z.string().nullable(),
});
export type DeviceRecord = z.infer<typeof deviceRecord>;

export const rolloutStatus = z.enum(['pending', 'running', 'paused', 'completed', 'aborted', 'rolled_back']);
export type RolloutStatus = z.infer<typeof rolloutStatus>;

const decisionKind = z.enum([
  'started',
  'stage_started',
  'gate_passed',
  'gate_failed',
  'gate_overridden',
  'paused',
  'resumed',
  'aborted',
  'rolled_back',
  'completed',
  'device_failed',
  'device_rolled_back',
  'devices_changed',
  'devices_excluded',
  'command_rejected',
  'event_ignored',
]);
export type DecisionKind = z.infer<typeof decisionKind>;

/** One value a decision was based on; gate signals carry their threshold and verdict. */
export const signal = z.object({
  name: z.string(),
  value: z.union([z.number(), z.string()]).nullable(),
  threshold: z.number().nullable().optional(),
  /** `null`: not evaluable yet (no paired data); the gate does not fail on it. */
  ok: z.boolean().nullable().optional(),
  /** Devices the value was computed over. */
  devices: z.number().int().nonnegative().optional(),
});
export type Signal = z.infer<typeof signal>;

/** A line of the rollout's log, written for the ML engineer reading the console. */
export const decision = z.object({
  at: epochMs,
  kind: decisionKind,
  stage: z.number().int().nonnegative().optional(),
  stage_name: z.string().optional(),
  device_id: idString.optional(),
  actor: z.string().optional(),
  reason: z.string(),
  signals: z.array(signal).optional(),
});
export type Decision = z.infer<typeof decision>;

export const rolloutState = z.object({
  v: z.literal(ROLLOUT_STATE_VERSION),
  id: idString,
  candidate: modelRef,
  plan: rolloutPlan,
  status: rolloutStatus,
  /** Index into `stagesOf(plan)`: shadow (when planned), canary, then the waves. */
  stage: z.number().int().nonnegative(),
  stage_started_at: epochMs.nullable(),
  started_at: epochMs.nullable(),
  /** Latest `at` seen: the machine's clock, monotonic even when events arrive out of order. */
  updated_at: epochMs.nullable(),
  pause: z.object({ at: epochMs, by: z.enum(['gate', 'manual']), actor: z.string().nullable(), reason: z.string() }).nullable(),
  devices: z.record(idString, deviceRecord),
  decisions: z.array(decision),
});
export type RolloutState = z.infer<typeof rolloutState>;

/** A device whose desired state changed in this step: publish it (retained) as a whole. */
export interface DesiredChange {
  device_id: string;
  /**
   * The model slot it is for (a device may serve several models): the rollout's candidate
   * name, set by the manager on the way to the backend (the machine knows one model only).
   */
  model_name?: string;
  active: DesiredSlot['active'];
  shadow: DesiredSlot['shadow'];
}

/** What `step` returns: the next state, what to publish, and what to log. */
export interface StepResult {
  state: RolloutState;
  desired: DesiredChange[];
  decisions: Decision[];
}
