import type { Server } from 'node:http';
import type { FleetContext } from '../app/context.js';
import { createConsole } from './console/index.js';
import { createApiServer, type FleetHttpOptions } from './http/server.js';

/**
 * The fleet's web edge: the HTTP API (`/v1/...`) with the web console (`/console/...`) on one
 * server. Not listening yet: the caller listens (port 0 in tests) and then sets `ctx.urls.http`.
 */
export function createFleetHttp(ctx: FleetContext, opts: Omit<FleetHttpOptions, 'pages'> = {}): Server {
  return createApiServer(ctx, { ...opts, pages: createConsole(ctx) });
}
