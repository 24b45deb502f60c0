import type { FleetContext } from '../../../app/context.js';
import { FleetError } from '../../../errors.js';
import { lineageChain } from '../../../app/models/lineage.js';
import type { LearningLoop } from '../../../app/training/loop.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { modelParams } from '../schemas.js';
import { firingList, lineageChainResponse, lineageQuery, reportResponse, runList, runListQuery, runParams, runQuery, trainBody, trainingModels, trainResponse } from '../training-schemas.js';

/** The `model`/`limit` filter of the list routes, leaving out what the query does not set. */
function listFilter(query: { model?: string | undefined; limit?: number | undefined }): { model?: string; limit?: number } {
  return { ...(query.model ? { model: query.model } : {}), ...(query.limit ? { limit: query.limit } : {}) };
}

function loopOf(ctx: FleetContext): LearningLoop {
  if (!ctx.training) throw new FleetError('TRAINING_NOT_CONFIGURED', 'this fleet service runs no learning loop: start it with `edgeloop serve --training FILE` (docs/learning-loop.md)');
  return ctx.training;
}

export const trainingRoutes: Route[] = [
  route({
    method: 'POST',
    path: '/v1/training/runs',
    tag: 'training',
    summary: 'Train now (the manual trigger): starts a run and answers at once with it',
    description:
      'The run builds a dataset version, trains, registers the candidate with lineage, evaluates it against the production model on the clean and field holdouts, ' +
      'and marks it rejected (with reasons) or accepted (and, for a model that opted in, starts its rollout). Follow it with `GET /v1/training/runs/{id}?after=SEQ`. ' +
      'A second run of a model while one runs is `FLEET_TRAINING_IN_PROGRESS` (409).',
    access: { kind: 'user', permission: 'models' },
    body: trainBody,
    success: 202,
    response: trainResponse,
    handler: async ({ ctx, body, actor }) => {
      const loop = loopOf(ctx);
      const { run, done } = await loop.begin({ actor, ...(body.model ? { model: body.model } : {}), ...(body.trainer ? { trainer: body.trainer } : {}), ...(body.note ? { note: body.note } : {}) });
      // The run records its own failure; nothing to do with the promise here but keep it handled.
      done.catch((err: unknown) => ctx.log.error({ run: run.id, err }, 'training run crashed'));
      return { status: 202, json: { run, progress: loop.progress(run.id) } };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/training/runs',
    tag: 'training',
    summary: 'Training runs, newest first',
    access: { kind: 'user', permission: 'read' },
    query: runListQuery,
    response: runList,
    handler: ({ ctx, query }) => ({ json: { items: ctx.trainingRuns.list(listFilter(query)) } }),
  }),
  route({
    method: 'GET',
    path: '/v1/training/runs/:id',
    tag: 'training',
    summary: 'One training run with its progress lines after `after` (kept in memory while the service runs)',
    access: { kind: 'user', permission: 'read' },
    params: runParams,
    query: runQuery,
    response: trainResponse,
    handler: ({ ctx, params, query }) => ({ json: { run: ctx.trainingRuns.get(params.id), progress: ctx.training?.progress(params.id, query.after ?? 0) ?? [] } }),
  }),
  route({
    method: 'GET',
    path: '/v1/training/runs/:id/report',
    tag: 'training',
    summary: "A run's evaluation report: candidate and production metrics on both holdouts (confusion matrices, per class, latency), the gate's checks",
    access: { kind: 'user', permission: 'read' },
    params: runParams,
    response: reportResponse,
    handler: async ({ ctx, params }) => ({ json: await ctx.trainingRuns.report(params.id) }),
  }),
  route({
    method: 'GET',
    path: '/v1/training/triggers',
    tag: 'training',
    summary: 'Retrain trigger firings with their reasons, newest first',
    access: { kind: 'user', permission: 'read' },
    query: runListQuery,
    response: firingList,
    handler: ({ ctx, query }) => ({ json: { items: ctx.trainingRuns.firings(listFilter(query)) } }),
  }),
  route({
    method: 'GET',
    path: '/v1/training/models',
    tag: 'training',
    summary: 'Models configured for training: trainer, trigger policy, gate, automatic promotion, the run in progress',
    access: { kind: 'user', permission: 'read' },
    response: trainingModels,
    handler: ({ ctx }) => {
      const loop = ctx.training;
      if (!loop) return { json: { items: [] } };
      const running = new Map(loop.running().map((r) => [r.model, r.run]));
      return {
        json: {
          items: loop.models().map((name) => {
            const c = loop.config(name);
            return { name, trainer: c.trainer, auto_promote: c.auto_promote !== null, triggers: c.triggers, gate: c.gate, running: running.get(name) ?? null };
          }),
        },
      };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/lineage/full',
    tag: 'models',
    summary: 'The full lineage: each version back to the first, with its training run, its dataset version and that dataset\'s samples, devices and labels (who, when)',
    description: '`entries=false` leaves out the per-sample entries (the device and labeler counts stay).',
    access: { kind: 'user', permission: 'read' },
    params: modelParams,
    query: lineageQuery,
    response: lineageChainResponse,
    handler: async ({ ctx, params, query }) => ({
      json: await lineageChain({ registry: ctx.registry, datasets: ctx.datasets, runs: ctx.trainingRuns }, params, { entries: query.entries !== false }),
    }),
  }),
];
