/**
 * Events the rollout machine folds. Times are epoch milliseconds (`at`), not ISO strings: the
 * machine does arithmetic on them (bake time) and callers hold a `Clock`; convert at the edge.
 */
import { z } from 'zod';
import { idString, modelRef } from '../../../shared/schemas/common.js';
import { deploymentPhase } from '../../../shared/schemas/messages.js';

export const epochMs = z.number().int().nonnegative();
const fraction = z.number().min(0).max(1);

/** One telemetry window of one model on one device (see `telemetry.ts` for the mapping). */
const metricsWindow = z.object({
  /** Successful inferences; `errors` are the failed ones, so error rate = errors / (count + errors). */
  count: z.number().int().nonnegative(),
  errors: z.number().int().nonnegative(),
  latency_p95_ms: z.number().nonnegative().nullable(),
  confidence_mean: fraction.nullable(),
  /** Captured outliers / inferences. */
  outlier_rate: fraction.nullable(),
});
export type MetricsWindow = z.infer<typeof metricsWindow>;

const shadowWindow = z.object({
  model: modelRef,
  count: z.number().int().nonnegative(),
  agreement: fraction.nullable(),
  confidence_mean: fraction.nullable(),
  latency_p95_ms: z.number().nonnegative().nullable(),
});
export type ShadowWindow = z.infer<typeof shadowWindow>;

/** A target device as the caller resolved it; `baseline` seeds the previous-version metrics. */
const targetDevice = z.object({
  id: idString,
  active: modelRef.nullable(),
  baseline: metricsWindow.optional(),
  /** The device's tags, for a plan's `canary.prefer`; absent = none. */
  tags: z.record(z.string(), z.string()).optional(),
});
export type TargetDevice = z.infer<typeof targetDevice>;

export const rolloutCommand = z.enum(['pause', 'resume', 'abort', 'rollback', 'promote', 'exclude']);
export type RolloutCommand = z.infer<typeof rolloutCommand>;

const startEvent = z.object({ type: z.literal('start'), at: epochMs, devices: z.array(targetDevice) });
const tickEvent = z.object({ type: z.literal('tick'), at: epochMs });
export const deviceReportEvent = z.object({
  type: z.literal('device_report'),
  at: epochMs,
  device_id: idString,
  phase: deploymentPhase,
  /** The version the phase is about (`deviceStatus.deployment.target`). */
  model: modelRef,
  reason: z.string().max(1000).optional(),
});
export const deviceMetricsEvent = z.object({
  type: z.literal('device_metrics'),
  at: epochMs,
  device_id: idString,
  model: modelRef,
  window: metricsWindow,
  shadow: shadowWindow.optional(),
});
/**
 * Several telemetry windows folded in one step (gates judged once, after all of them): what
 * the manager sends when windows arrive faster than it is worth judging each one. At 1,000
 * devices a step costs about a millisecond whatever it carries, so folding 100 windows/s one
 * by one would take a core's tenth; in batches it is noise.
 */
const deviceMetricsBatchEvent = z.object({
  type: z.literal('device_metrics_batch'),
  at: epochMs,
  items: z.array(deviceMetricsEvent),
});
const commandEvent = z.object({
  type: z.literal('command'),
  at: epochMs,
  command: rolloutCommand,
  actor: z.string().min(1).max(200),
  /** promote only: advance even when gates wait or fail. */
  force: z.boolean().optional(),
  /** exclude only: the devices to take out of the rollout (they stop counting as outstanding). */
  devices: z.array(idString).max(10_000).optional(),
  /** Free text from the operator, kept in the decision. */
  note: z.string().max(1000).optional(),
});
const devicesChangedEvent = z.object({
  type: z.literal('devices_changed'),
  at: epochMs,
  added: z.array(targetDevice).default([]),
  removed: z.array(idString).default([]),
});

export const rolloutEvent = z.discriminatedUnion('type', [startEvent, tickEvent, deviceReportEvent, deviceMetricsEvent, deviceMetricsBatchEvent, commandEvent, devicesChangedEvent]);
export type RolloutEvent = z.infer<typeof rolloutEvent>;
export type StartEvent = z.infer<typeof startEvent>;
export type TickEvent = z.infer<typeof tickEvent>;
export type DeviceReportEvent = z.infer<typeof deviceReportEvent>;
export type DeviceMetricsEvent = z.infer<typeof deviceMetricsEvent>;
export type DeviceMetricsBatchEvent = z.infer<typeof deviceMetricsBatchEvent>;
export type CommandEvent = z.infer<typeof commandEvent>;
export type DevicesChangedEvent = z.infer<typeof devicesChangedEvent>;

