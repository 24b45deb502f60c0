import { z } from 'zod';
import { parseWith } from '../../../shared/validate.js';
import type { FleetContext } from '../../context.js';
import { FleetError, FleetErrors } from '../../errors.js';
import { commandAllowed, currentGates } from '../../rollouts/index.js';
import type { RolloutRecord } from '../../rollouts/manager.js';
import { stagesOf } from '../../rollouts/stages.js';
import { decision, rolloutCommand } from '../../rollouts/types.js';
import type { RolloutCommand } from '../../rollouts/types.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { commandBody, createRolloutBody, rolloutDetail, rolloutList, rolloutParams } from '../schemas.js';
import type { rolloutSummary } from '../schemas.js';

type Summary = z.output<typeof rolloutSummary>;
type Detail = z.output<typeof rolloutDetail>;

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

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

function commandRoute(command: RolloutCommand): Route {
  return route({
    method: 'POST',
    path: `/v1/rollouts/:id/${command}`,
    tag: 'rollouts',
    summary: `${command[0]?.toUpperCase()}${command.slice(1)} a rollout`,
    description:
      command === 'promote'
        ? 'Skip the rest of the current stage when its gates pass; `{ "force": true }` promotes although they do not. 409 when the rollout is not running or paused, or when the gates do not pass and force is not set.'
        : `409 (\`FLEET_CONFLICT\`) when the rollout's status does not allow ${command}.`,
    access: { kind: 'user', permission: 'rollouts' },
    params: rolloutParams,
    body: commandBody,
    response: rolloutDetail,
    handler: ({ ctx, params, body, actor }) => {
      const current = ctx.rollouts.get(params.id);
      const why = commandAllowed(current.state.status, command);
      if (why !== null) throw new FleetError('CONFLICT', `cannot ${command} rollout ${params.id}: ${why}`, { details: { rollout: params.id, status: current.state.status, command } });
      const before = current.state.decisions.length;
      const r = ctx.rollouts.command(params.id, command, actor, body.force ?? false);
      // The machine never throws on a command; a promote whose gates do not pass is logged as rejected.
      const rejected = r.state.decisions.slice(before).find((d) => d.kind === 'command_rejected');
      if (rejected) throw new FleetError('CONFLICT', rejected.reason, { details: { rollout: params.id, status: r.state.status, command } });
      return { json: detailOf(ctx, r) };
    },
  });
}

export const rolloutRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/rollouts',
    tag: 'rollouts',
    summary: 'Rollouts, newest first',
    access: { kind: 'user', permission: 'read' },
    response: rolloutList,
    handler: ({ ctx }) => ({ json: { items: ctx.rollouts.list().map(summaryOf) } }),
  }),
  route({
    method: 'GET',
    path: '/v1/rollouts/:id',
    tag: 'rollouts',
    summary: 'One rollout: state, stages, current gates with their signals and thresholds, decision log',
    access: { kind: 'user', permission: 'read' },
    params: rolloutParams,
    response: rolloutDetail,
    handler: ({ ctx, params }) => ({ json: detailOf(ctx, ctx.rollouts.get(params.id)) }),
  }),
  route({
    method: 'POST',
    path: '/v1/rollouts',
    tag: 'rollouts',
    summary: 'Start a rollout of a registered model version to the devices matching a tag selector',
    access: { kind: 'user', permission: 'rollouts' },
    body: createRolloutBody,
    success: 201,
    response: rolloutDetail,
    handler: ({ ctx, body, actor }) => {
      const model = ctx.registry.get(body.model.name, body.model.version);
      if (model.status !== 'registered') {
        throw new FleetError('CONFLICT', `${model.ref} is ${model.status}: ${model.status_reasons.join('; ') || 'no reason given'}`, { details: { model: model.ref, status: model.status } });
      }
      const r = ctx.rollouts.create({ model: body.model, selector: body.selector, plan: body.plan ?? {}, actor, ...(body.id ? { id: body.id } : {}) });
      return { status: 201, json: detailOf(ctx, r) };
    },
  }),
  ...rolloutCommand.options.map(commandRoute),
];
