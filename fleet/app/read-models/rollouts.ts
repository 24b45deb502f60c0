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
  }),
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
});

type Summary = z.output<typeof rolloutSummary>;
type Detail = z.output<typeof rolloutDetail>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A rollout in one line: its model, status, stage and device counts. */
export function summaryOf(r: RolloutRecord): Summary {
  const s = r.state;
  const devices = Object.values(s.devices);
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
      installed: devices.filter((d) => d.installed_at !== null).length,
      failed: devices.filter((d) => d.failure !== null).length,
      excluded: devices.filter((d) => d.excluded_reason !== null).length,
    },
  };
}

const decisionLog = z.array(decision);

/** A rollout with its stages, its gates as they stand now, the commands that apply and its decision log. */
export function detailOf(ctx: FleetContext, r: RolloutRecord): Detail {
  const decisions = parseWith(decisionLog, ctx.rolloutDecisions(r.state.id, 200), FleetErrors.STORAGE_FAILED, `decision log of ${r.state.id}`);
  return {
    rollout: summaryOf(r),
    state: r.state,
    stages: stagesOf(r.state.plan).map((s) => ({ index: s.index, kind: s.kind, name: s.name, bake_s: s.bake_ms / 1000, devices: s.devices ?? s.shadow?.devices ?? null })),
    gates: currentGates(r.state),
    commands: rolloutCommand.options.filter((c) => commandAllowed(r.state.status, c) === null),
    decisions,
  };
}

