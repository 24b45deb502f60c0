import { buildOpenApi } from '../openapi.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { healthResponse, openApiResponse, whoami } from '../schemas.js';
import { alertRoutes } from './alerts.js';
import { datasetRoutes } from './datasets.js';
import { deviceRoutes } from './devices.js';
import { modelRoutes } from './models.js';
import { rolloutRoutes } from './rollouts.js';
import { ruleSetRoutes } from './rule-sets.js';
import { sampleRoutes } from './samples.js';
import { siteRoutes } from './sites.js';
import { trainingRoutes } from './training.js';
import { userRoutes } from './users.js';

const metaRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/healthz',
    tag: 'meta',
    summary: 'Liveness: the service answers and its database reads',
    access: { kind: 'public' },
    response: healthResponse,
    handler: ({ ctx }) => {
      ctx.storage.ping();
      return { json: { status: 'ok' as const, time: new Date(ctx.clock.now()).toISOString() } };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/me',
    tag: 'meta',
    summary: 'The user a token belongs to, and its role',
    access: { kind: 'user', permission: 'read' },
    response: whoami,
    handler: ({ principal }) => {
      if (principal.kind !== 'user') throw new Error('unreachable: user access yields a user');
      return { json: principal.user };
    },
  }),
];

const domainRoutes: Route[] = [...metaRoutes, ...deviceRoutes, ...siteRoutes, ...modelRoutes, ...rolloutRoutes, ...sampleRoutes, ...datasetRoutes, ...trainingRoutes, ...userRoutes, ...alertRoutes, ...ruleSetRoutes];

let openApi: Record<string, unknown> | null = null;

/** Every route of the API, the OpenAPI document included (which lists them all, itself too). */
export const apiRoutes: readonly Route[] = [
  ...domainRoutes,
  route({
    method: 'GET',
    path: '/v1/openapi.json',
    tag: 'meta',
    summary: 'This API as an OpenAPI 3.1 document, generated from the route table and its zod schemas',
    access: { kind: 'public' },
    response: openApiResponse,
    handler: () => ({ json: (openApi ??= buildOpenApi(apiRoutes)) }),
  }),
];
