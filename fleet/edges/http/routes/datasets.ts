import { datasetManifest } from '../../../core/labels/dataset-schema.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { datasetList, datasetParams, exportDatasetBody, exportDatasetResponse } from '../schemas.js';

export const datasetRoutes: Route[] = [
  route({
    method: 'POST',
    path: '/v1/datasets',
    tag: 'datasets',
    summary: 'Freeze the labeled samples a filter selects into an immutable dataset version',
    description: 'The id is the sha256 of the entries: exporting the same labeled set again answers 200 with the existing version (`created: false`). Skipped and unlabeled samples are left out; no labeled match is `INPUT_INVALID`.',
    access: { kind: 'user', permission: 'label' },
    body: exportDatasetBody,
    success: 201,
    response: exportDatasetResponse,
    handler: async ({ ctx, body, actor }) => {
      const r = await ctx.datasets.exportDataset({ actor, ...(body.filters ? { filters: body.filters } : {}), ...(body.name !== undefined ? { name: body.name } : {}) });
      return { status: r.created ? 201 : 200, json: r };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/datasets',
    tag: 'datasets',
    summary: 'Dataset versions, oldest first',
    access: { kind: 'user', permission: 'read' },
    response: datasetList,
    handler: ({ ctx }) => ({ json: { items: ctx.datasets.listDatasets() } }),
  }),
  route({
    method: 'GET',
    path: '/v1/datasets/:id',
    tag: 'datasets',
    summary: 'One dataset version with every entry, checked against its id',
    access: { kind: 'user', permission: 'read' },
    params: datasetParams,
    response: datasetManifest,
    handler: async ({ ctx, params }) => ({ json: await ctx.datasets.getDataset(params.id) }),
  }),
];
