import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { isEdgeloopError, sharedError, type EdgeloopError } from '../../../shared/errors.js';
import { parseWith } from '../../../shared/validate.js';
import type { FleetContext } from '../../app/context.js';
import type { PageApp } from '../web/pages.js';
import { FleetError } from '../../errors.js';
import { RangeNotSatisfiable } from './artifacts.js';
import { actorOf, authorize } from '../web/auth.js';
import { queryCoercer } from '../web/query.js';
import { apiRoutes } from './routes/index.js';
import { Router } from './router.js';
import type { JsonReply, Principal, RawReply, Route } from './router.js';

export interface FleetHttpOptions {
  /** Largest JSON body accepted. Default 1 MiB (bodies are small: names, plans, labels). */
  maxBodyBytes?: number;
  /** Pages served beside the API (the console, plugged in by edges/server.ts). */
  pages?: PageApp;
}

/**
 * The fleet's HTTP API (`/v1/...`, documented at `/v1/openapi.json`) and the pages given in
 * `opts.pages` (the web console at `/console/...`) on node:http. Not listening yet: the caller listens (port 0 in tests)
 * and then sets `ctx.urls.http`.
 *
 * One pipeline for every API request: route from the dispatch table, authenticate and
 * authorise, validate params, query and body with the route's zod schemas, run the
 * handler, answer. One error handler turns every failure into `{ error: { code, message } }`
 * with the status from the error catalogue, and logs one line with the code and reason.
 */
export function createApiServer(ctx: FleetContext, opts: FleetHttpOptions = {}): Server {
  const log = ctx.log.child({ component: 'http' });
  const maxBody = opts.maxBodyBytes ?? 1024 * 1024;
  const router = new Router(apiRoutes);
  const coercers = new Map<Route, (p: URLSearchParams) => Record<string, unknown>>();
  for (const r of apiRoutes) if (r.query) coercers.set(r, queryCoercer(r.query));
  const pages = opts.pages;

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL, who: { principal: Principal }): Promise<void> {
    const method = req.method ?? 'GET';
    const m = router.match(method, url.pathname);
    if (!m) {
      const others = router.methodsFor(url.pathname);
      throw new FleetError('NOT_FOUND', others.length ? `${method} is not served on ${url.pathname} (${others.join(', ')} is)` : `no route ${url.pathname}`);
    }
    const r = m.route;
    who.principal = await authorize(ctx, req, r.access);
    const params = r.params ? parseWith(r.params, m.params, 'INPUT_INVALID', 'path') : m.params;
    const coerce = coercers.get(r);
    const query = r.query && coerce ? parseWith(r.query, coerce(url.searchParams), 'INPUT_INVALID', 'query') : {};
    const body = r.upload ? expectType(req, r.upload.contentType) : r.body ? parseWith(r.body, await readJson(req, maxBody), 'INPUT_INVALID', 'request body') : discard(req);
    const reply = await r.handler({ ctx, req, params, query, body, principal: who.principal, actor: actorOf(who.principal) });
    if ('json' in reply) sendJson(res, reply);
    else await sendRaw(res, reply);
  }

  function fail(req: IncomingMessage, res: ServerResponse, url: URL, principal: Principal, err: unknown): void {
    const e = asEdgeloop(err);
    const line = { method: req.method, path: url.pathname, status: e.status, code: e.code, reason: e.message, actor: actorOf(principal) };
    // A stack only for what nobody expected (uncoded, or 500); a coded 503 (storage busy, a backend down) is a state, not a bug.
    if (!isEdgeloopError(err) || e.status === 500) log.error({ ...line, err }, 'request failed');
    else log.warn(line, 'request rejected');
    if (res.headersSent) {
      // Failed half-way through a streamed body: the client sees a truncated transfer and retries.
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    // Refused before the body was read (an upload past its cap, a bad token): close the
    // connection after the answer instead of reading whatever is still coming.
    if (!req.complete) headers.connection = 'close';
    if (e.status === 401) headers['www-authenticate'] = 'Bearer realm="edgeloop"';
    if (err instanceof RangeNotSatisfiable) headers['content-range'] = `bytes */${err.size}`;
    if (pages?.owns(url.pathname)) {
      pages.sendError(req, res, url, e);
      return;
    }
    const body = { error: { code: e.code, message: e.message, ...(e.details && e.status < 500 ? { details: e.details } : {}) } };
    sendJson(res, { status: e.status, json: body }, headers);
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fleet.invalid');
    const who: { principal: Principal } = { principal: { kind: 'anonymous' } };
    const run = async (): Promise<void> => {
      if (url.pathname === '/' || url.pathname === '/console') {
        res.writeHead(303, { location: '/console/' }).end();
        return;
      }
      if (pages?.owns(url.pathname)) await pages.handle(req, res, url, who);
      else await handleApi(req, res, url, who);
    };
    run().catch((err: unknown) => fail(req, res, url, who.principal, err));
  });
  return server;
}

/** Anything thrown becomes a catalogued error; a bug is a 500 whose details stay in the log. */
function asEdgeloop(err: unknown): EdgeloopError {
  if (isEdgeloopError(err)) return err;
  return sharedError('INTERNAL', 'internal error', { cause: err });
}

function sendJson(res: ServerResponse, reply: JsonReply<unknown>, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(reply.json);
  res.writeHead(reply.status ?? 200, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(text);
}

async function sendRaw(res: ServerResponse, reply: RawReply): Promise<void> {
  res.writeHead(reply.status ?? 200, reply.headers);
  if (Buffer.isBuffer(reply.body)) {
    res.end(reply.body);
    return;
  }
  await pipeline(reply.body, res);
}

/** The request body as JSON (`{}` when empty). 413 over `limit`, 415 when it is not JSON. */
async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') throw sharedError('UNSUPPORTED_MEDIA_TYPE', `request bodies are JSON (Content-Type: application/json), not ${type || 'untyped'}`);
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `request body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

const tooLarge = (limit: number): EdgeloopError => sharedError('PAYLOAD_TOO_LARGE', `request bodies are limited to ${limit} bytes`);

/** An upload route's body stays unread for the handler; only its content type is checked here (415). */
function expectType(req: IncomingMessage, want: string): Record<string, never> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== want) throw sharedError('UNSUPPORTED_MEDIA_TYPE', `this route takes ${want}, not ${type || 'untyped'}`);
  return {};
}

/** A route without a body: whatever was sent is read and dropped, so the connection can be reused. */
function discard(req: IncomingMessage): Record<string, never> {
  req.resume();
  return {};
}
