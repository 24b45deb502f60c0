import { z } from 'zod';
import { fleetOverview, fleetOverviewOf } from '../../../app/read-models/sites.js';
import { route } from '../router.js';
import type { Route } from '../router.js';

const sitesQuery = z.object({
  tag: z.string().min(1).max(128).optional().describe('The device tag that makes a site (default `site`).'),
});

export const siteRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/sites',
    tag: 'devices',
    summary: 'The fleet by site: each device judged against its model’s thresholds (ok, attention, trouble), rolled up per site, and what needs attention first',
    access: { kind: 'user', permission: 'read' },
    query: sitesQuery,
    response: fleetOverview,
    handler: async ({ ctx, query }) => ({ json: await fleetOverviewOf(ctx, query.tag ? { tag: query.tag } : {}) }),
  }),
];
