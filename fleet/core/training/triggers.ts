/**
 * The retrain trigger policy, pure: a snapshot of what the fleet knows (label counts, drift
 * histories per device, the last training run, the time) goes in, a decision with its reason
 * comes out. The learning loop takes the snapshot, records every firing (SQLite
 * `trigger_firings`) and starts the run; nothing here reads a clock or a database.
 */
import { z } from 'zod';

export const TRIGGER_KINDS = ['manual', 'labels', 'drift', 'schedule'] as const;
export type TriggerKind = (typeof TRIGGER_KINDS)[number];

/** The policy of one model. A condition set to null is off. */
export const triggerPolicy = z.strictObject({
  labels: z
    .strictObject({ min_new: z.number().int().positive().describe('Labels needed.') })
    .nullable()
    .default({ min_new: 200 })
    .describe('Fire when at least `min_new` labels were given since the last training run.'),
  drift: z
    .strictObject({
      psi: z.number().nonnegative().describe("PSI threshold (a device's drift PSI is the largest of its class, brightness and contrast PSI)."),
      min_devices: z.number().int().positive().describe('Devices that must drift.'),
      for_ms: z.number().int().nonnegative().describe('How long the drift must last (ms).'),
    })
    .nullable()
    .default({ psi: 0.25, min_devices: 1, for_ms: 10 * 60_000 })
    .describe(
      "Fire when at least `min_devices` devices have had drift PSI above `psi` continuously for `for_ms`, counted from the later of the drift's start and the last training run (drift the last run already answered has to persist `for_ms` after it to fire again).",
    ),
  schedule: z
    .strictObject({ every_ms: z.number().int().positive().describe('The period (ms).') })
    .nullable()
    .default(null)
    .describe('Fire when `every_ms` passed since the last run (or since the loop started, before any run).'),
  min_interval_ms: z.number().int().nonnegative().default(5 * 60_000).describe('Automatic triggers wait this long after the last run started (ms); manual ones never wait.'),
});
export type TriggerPolicy = z.output<typeof triggerPolicy>;

/** One drift observation of a device: the PSI it reported and when the fleet heard it. */
export interface DriftPoint {
  at: number;
  psi: number;
}

export interface TriggerSnapshot {
  now: number;
  /** Start of the last training run of the model, or null when it never trained. */
  lastRunAt: number | null;
  /** When the loop began watching (the schedule counts from here before the first run). */
  startedAt: number;
  /** Labels given to the model's samples since the last run (all labels before the first). */
  newLabels: number;
  /** Per device, its drift observations in time order. */
  drift: ReadonlyArray<{ device: string; points: readonly DriftPoint[] }>;
  /** A person asked (`edgeloop train`, the API). */
  manual?: { actor: string; note?: string } | undefined;
}

export interface TriggerDecision {
  fire: boolean;
  /** The first condition that holds (manual, labels, drift, schedule), or null. */
  kind: TriggerKind | null;
  /** One line a person can read: why it fired, or why not. */
  reason: string;
  /** Every condition that holds, in the order above. */
  kinds: TriggerKind[];
  details: { newLabels: number; driftingDevices: string[]; sinceLastRunMs: number | null; waitMs?: number };
}

/**
 * When a device's current run of PSI above the threshold began: the earliest observation such
 * that it and every later one are above. Null when the latest observation is not above (or
 * there is none). Only observations up to `now` count.
 */
export function driftRunStart(points: readonly DriftPoint[], psi: number, now: number): number | null {
  let start: number | null = null;
  for (const p of points) {
    if (p.at > now) continue;
    if (p.psi > psi) start ??= p.at;
    else start = null;
  }
  return start;
}

/** Devices whose drift run, counted from max(run start, last run), lasted at least `for_ms`. */
function driftingDevices(s: TriggerSnapshot, d: NonNullable<TriggerPolicy['drift']>): string[] {
  const out: string[] = [];
  for (const dev of s.drift) {
    const start = driftRunStart(dev.points, d.psi, s.now);
    if (start === null) continue;
    const from = s.lastRunAt === null ? start : Math.max(start, s.lastRunAt);
    if (s.now - from >= d.for_ms) out.push(dev.device);
  }
  return out.sort();
}

const minutes = (ms: number): string => (ms % 60_000 === 0 ? `${ms / 60_000} min` : `${(ms / 1000).toFixed(0)} s`);

/** Decide whether to train now. */
export function decideTrigger(s: TriggerSnapshot, policy: TriggerPolicy): TriggerDecision {
  const sinceLastRunMs = s.lastRunAt === null ? null : s.now - s.lastRunAt;
  const drifting = policy.drift ? driftingDevices(s, policy.drift) : [];
  const details: TriggerDecision['details'] = { newLabels: s.newLabels, driftingDevices: drifting, sinceLastRunMs };
  const kinds: TriggerKind[] = [];
  const reasons: string[] = [];
  if (s.manual) {
    kinds.push('manual');
    reasons.push(`manual: requested by ${s.manual.actor}${s.manual.note ? ` (${s.manual.note})` : ''}`);
  }
  if (policy.labels && s.newLabels >= policy.labels.min_new) {
    kinds.push('labels');
    reasons.push(`labels: ${s.newLabels} new labels since the last run (threshold ${policy.labels.min_new})`);
  }
  if (policy.drift && drifting.length >= policy.drift.min_devices) {
    kinds.push('drift');
    reasons.push(`drift: PSI above ${policy.drift.psi} for ${minutes(policy.drift.for_ms)} on ${drifting.length} device(s) (${drifting.join(', ')}; threshold ${policy.drift.min_devices})`);
  }
  if (policy.schedule) {
    const since = s.now - (s.lastRunAt ?? s.startedAt);
    if (since >= policy.schedule.every_ms) {
      kinds.push('schedule');
      reasons.push(`schedule: ${minutes(since)} since the ${s.lastRunAt === null ? 'loop started' : 'last run'} (every ${minutes(policy.schedule.every_ms)})`);
    }
  }
  if (kinds.length === 0) return { fire: false, kind: null, reason: 'no trigger condition holds', kinds, details };
  // Automatic triggers respect the minimum interval; a person asking is always answered.
  if (kinds[0] !== 'manual' && sinceLastRunMs !== null && sinceLastRunMs < policy.min_interval_ms) {
    const waitMs = policy.min_interval_ms - sinceLastRunMs;
    return { fire: false, kind: null, reason: `${reasons[0] as string}, but the last run started ${minutes(sinceLastRunMs)} ago (minimum interval ${minutes(policy.min_interval_ms)})`, kinds, details: { ...details, waitMs } };
  }
  return { fire: true, kind: kinds[0] as TriggerKind, reason: reasons.join('; '), kinds, details };
}
