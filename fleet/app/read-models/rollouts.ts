/**
 * Read models of rollouts: the shapes the HTTP API answers with and the console renders, built
 * from the manager's records. Both edges read them here, so neither imports the other.
 */
import { z } from 'zod';
import { idString, isoTime, modelRef } from '../../../shared/schemas/index.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetErrors } from '../../errors.js';
import { commandAllowed, currentGates } from '../../core/rollouts/index.js';
import { stagesOf } from '../../core/rollouts/stages.js';
import { slotActive } from '../../core/devices/state.js';
import { allowance, decision, gateAction, gateName, rolloutCommand, rolloutState, rolloutStatus, signal } from '../../core/rollouts/types.js';
import type { FleetContext } from '../context.js';
import type { RolloutRecord } from '../rollouts/manager.js';

const tagMap = z.record(z.string(), z.string());

export const rolloutSummary = z.object({
  id: idString,
  model: modelRef,
  status: rolloutStatus,
  stage: z.number().int().nonnegative(),
  stage_name: z.string().nullable(),
  selector: tagMap,
  created_by: z.string(),
  created_at: isoTime,
  updated_at: isoTime.nullable(),
  devices: z.object({
    target: z.number().int(),
    assigned: z.number().int(),
    installed: z.number().int(),
    failed: z.number().int(),
    excluded: z.number().int(),
    /** Managed devices told to run the candidate that have not confirmed it (and did not fail). */
    outstanding: z.number().int(),
  }),
  /**
   * What a person should read as the status: `converging` while the machine's status is
   * `completed` (every stage passed) but some targeted device has not confirmed the candidate.
   */
  display_status: z.enum(['pending', 'running', 'paused', 'converging', 'completed', 'aborted', 'rolled_back']),
});

const outstandingDevice = z.object({
  device_id: z.string(),
  stage: z.string().nullable(),
  /** The device's last report to this rollout, or null. */
  reported: z.object({ phase: z.string(), model: z.string(), at: isoTime, reason: z.string().nullable() }).nullable(),
  state: z.enum(['online', 'offline', 'unknown']),
  last_seen: isoTime.nullable(),
  /** Why it has not confirmed, in words. */
  why: z.string(),
});

export const gateResult = z.object({
  status: z.enum(['pass', 'fail', 'waiting']),
  action: gateAction.nullable(),
  failed: z.array(gateName),
  reason: z.string(),
  signals: z.array(signal),
});

export const stageInfo = z.object({
  index: z.number().int(),
  kind: z.enum(['shadow', 'canary', 'wave']),
  name: z.string(),
  bake_s: z.number(),
  devices: allowance.nullable(),
});

export const rolloutDetail = z.object({
  rollout: rolloutSummary,
  state: rolloutState,
  stages: z.array(stageInfo),
  /** The current stage's gates as they stand now; null before start. */
  gates: gateResult.nullable(),
  /** Commands that apply in the current status. */
  commands: z.array(rolloutCommand),
  /** The decision log, newest first (the latest 200). */
  decisions: z.array(decision),
  /** Targeted devices that have not confirmed the candidate, with why. */
  outstanding: z.array(outstandingDevice),
});

type Summary = z.output<typeof rolloutSummary>;
type Detail = z.output<typeof rolloutDetail>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** Where the device registry says a device is: what it runs (null when unknown). */
type Registry = Pick<FleetContext, 'devices'>;

/** Whether a device runs the rollout's candidate by its own status in the fleet (false without the registry). */
function candidateRunner(s: RolloutRecord['state'], reg?: Registry): (id: string) => boolean {
  return (id) => {
    const dev = reg?.devices.find(id);
    const a = dev ? slotActive(dev, s.candidate.name) : null;
    return a?.name === s.candidate.name && a.version === s.candidate.version;
  };
}

/**
 * Managed, not failed, told to run the candidate, and not confirmed: neither by a report to the
 * rollout (`installed_at`) nor, when the registry is given, by the device's own status (a
 * completed rollout no longer hears reports, the registry still does).
 */
export function outstandingIds(s: RolloutRecord['state'], reg?: Registry): string[] {
  const runsCandidate = candidateRunner(s, reg);
  return Object.entries(s.devices)
    .filter(([id, d]) => !d.removed && d.excluded_reason === null && d.failure === null && d.installed_at === null && d.desired?.active?.name === s.candidate.name && d.desired.active.version === s.candidate.version && !runsCandidate(id))
    .map(([id]) => id)
    .sort();
}

/** A rollout in one line. Give the fleet (`reg`) so devices that confirmed by their own status count. */
export function summaryOf(r: RolloutRecord, reg?: Registry): Summary {
  const s = r.state;
  const devices = Object.values(s.devices);
  const outstanding = outstandingIds(s, reg).length;
  const runsCandidate = candidateRunner(s, reg);
  return {
    id: s.id,
    model: s.candidate,
    status: s.status,
    stage: s.stage,
    stage_name: stagesOf(s.plan)[s.stage]?.name ?? null,
    selector: r.selector,
    created_by: r.created_by,
    created_at: new Date(r.created_at).toISOString(),
    updated_at: iso(s.updated_at),
    devices: {
      target: devices.filter((d) => !d.removed && d.excluded_reason === null).length,
      assigned: devices.filter((d) => d.assigned_stage !== null).length,
      // Confirmed either way, as `outstanding` counts: a device that switched after the rollout
      // completed is known from its own status only (the console showed 3 of 6 on a rollout
      // every device had finished).
      installed: Object.entries(s.devices).filter(([id, d]) => d.installed_at !== null || (d.assigned_stage !== null && d.failure === null && runsCandidate(id))).length,
      failed: devices.filter((d) => d.failure !== null).length,
      excluded: devices.filter((d) => d.excluded_reason !== null).length,
      outstanding,
    },
    display_status: s.status === 'completed' && outstanding > 0 ? 'converging' : s.status,
  };
}

/** Why each outstanding device has not confirmed: what it last reported, or that it is offline or silent. */
function outstandingOf(ctx: FleetContext, r: RolloutRecord): Array<z.output<typeof outstandingDevice>> {
  const s = r.state;
  const stages = stagesOf(s.plan);
  const cand = `${s.candidate.name}@${s.candidate.version}`;
  return outstandingIds(s, ctx).map((id) => {
    const x = s.devices[id] as (typeof s.devices)[string];
    const dev = ctx.devices.find(id);
    const reported = x.reported ? { phase: x.reported.phase, model: `${x.reported.model.name}@${x.reported.model.version}`, at: new Date(x.reported.at).toISOString(), reason: x.reported.reason } : null;
    let why: string;
    if (!dev) why = 'no longer registered';
    else if (dev.state === 'offline') why = dev.last_seen ? `offline since ${dev.offline_at ?? dev.last_seen}: gets ${cand} when it reconnects` : 'never connected: gets it when it first connects';
    else if (reported && reported.model === cand) why = `on its way: last reported ${reported.phase}${reported.reason ? ` (${reported.reason})` : ''}`;
    else {
      const runs = slotActive(dev, s.candidate.name);
      why = `online, but has not reported ${cand} yet${runs ? ` (runs ${runs.name}@${runs.version})` : ''}`;
    }
    return { device_id: id, stage: x.assigned_stage !== null ? (stages[x.assigned_stage]?.name ?? null) : null, reported, state: dev?.state ?? 'unknown', last_seen: dev?.last_seen ?? null, why };
  });
}

const decisionLog = z.array(decision);

/** A rollout with its stages, its gates as they stand now, the commands that apply and its decision log. */
export function detailOf(ctx: FleetContext, r: RolloutRecord): Detail {
  const decisions = parseWith(decisionLog, ctx.rolloutDecisions(r.state.id, 200), FleetErrors.STORAGE_FAILED, `decision log of ${r.state.id}`);
  return {
    rollout: summaryOf(r, ctx),
    state: r.state,
    stages: stagesOf(r.state.plan).map((s) => ({ index: s.index, kind: s.kind, name: s.name, bake_s: s.bake_ms / 1000, devices: s.devices ?? s.shadow?.devices ?? null })),
    gates: currentGates(r.state),
    commands: rolloutCommand.options.filter((c) => commandAllowed(r.state.status, c) === null),
    decisions,
    outstanding: outstandingOf(ctx, r),
  };
}

