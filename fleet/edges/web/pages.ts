import type { IncomingMessage, ServerResponse } from 'node:http';
import type { EdgeloopError } from '../../../shared/errors.js';
import type { Principal } from './auth.js';

/**
 * Pages served beside the API on the same port (the web console). The API server asks
 * `owns` first; the composition (edges/server.ts) plugs the console in, so neither the API
 * nor the console imports the other.
 */
export interface PageApp {
  owns(pathname: string): boolean;
  handle(req: IncomingMessage, res: ServerResponse, url: URL, who: { principal: Principal }): Promise<void>;
  /** How the pages show a failure: the login page for 401, an error page otherwise. */
  sendError(req: IncomingMessage, res: ServerResponse, url: URL, err: EdgeloopError): void;
}
