import { detailOf, outstandingIds, summaryOf } from '../../../app/read-models/rollouts.js';
import { FleetError } from '../../../errors.js';
import { commandAllowed } from '../../../core/rollouts/index.js';
import { rolloutCommand } from '../../../core/rollouts/types.js';
import type { RolloutCommand } from '../../../core/rollouts/types.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { commandBody, createRolloutBody, rolloutDetail, rolloutList, rolloutParams } from '../schemas.js';

function commandRoute(command: RolloutCommand): Route {
  return route({
    method: 'POST',
    path: `/v1/rollouts/:id/${command}`,
    tag: 'rollouts',
    summary: `${command[0]?.toUpperCase()}${command.slice(1)} a rollout`,
    description:
      command === 'promote'
        ? 'Skip the rest of the current stage when its gates pass; `{ "force": true }` promotes although they do not. 409 when the rollout is not running or paused, or when the gates do not pass and force is not set.'
        : command === 'exclude'
          ? 'Take unconfirmed devices (`{ "devices": [...] }`) out of the rollout: they stop counting as outstanding, so a rollout whose other devices confirmed reads completed. 409 when none of them is an unconfirmed device of the rollout.'
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
      let devices: string[] | undefined;
      if (command === 'exclude') {
        // Only devices the rollout still waits for; a completed rollout learns of confirmations from the registry, not from reports.
        const waiting = new Set(outstandingIds(current.state, ctx));
        const asked = body.devices ?? [];
        devices = asked.filter((d) => waiting.has(d));
        if (devices.length === 0) throw new FleetError('CONFLICT', `cannot exclude from rollout ${params.id}: none of ${asked.join(', ') || '(no devices named)'} is an unconfirmed device of this rollout`, { details: { rollout: params.id, status: current.state.status, command } });
      }
      const r = ctx.rollouts.command(params.id, command, actor, body.force ?? false, devices);
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
    handler: ({ ctx }) => ({ json: { items: ctx.rollouts.list().map((r) => summaryOf(r, ctx)) } }),
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
