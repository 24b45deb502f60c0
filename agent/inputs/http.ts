import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { isIP, type AddressInfo } from 'node:net';
import { timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { isEdgeloopError } from '../../shared/errors.js';
import type { InferResult } from '../../shared/schemas/index.js';
import { AgentError } from '../errors.js';
import type { TensorValues } from '../../shared/inference/preprocess.js';
import type { ModelInput } from '../model/runtime.js';
import { JsonBodyParser, type ParsedBody } from './json-body.js';
import type { InferContext } from '../service.js';

export interface HttpDeps {
  infer(input: ModelInput, ctx: InferContext): Promise<InferResult[]>;
  health(): { ok: boolean; [k: string]: unknown };
  metrics(): string;
  log: Logger;
  maxBodyBytes: number;
  /** Numbers a JSON tensor body may hold for the model asked for (null: no such model yet); a longer body is refused while it is read, before parsing, and once parsed. */
  maxTensorValues?(model?: string): number | null;
  /** The most numbers a JSON tensor body may hold for any model served (null: none yet): the bound while a body that may name its model is read. */
  largestTensorValues?(): number | null;
  /** Bearer token required on `/v1/infer` and `/metrics`. */
  token?: string;
  /** Host names answered besides `localhost` and IP literals (DNS rebinding defence). */
  allowedHosts?: readonly string[];
}

/** Numbers a JSON tensor body may carry beyond the model's own (a shape, a request id's digits). */
const TENSOR_VALUES_SLACK = 64;
const COMMA = 0x2c;

const tooManyValues = (maxValues: number, what: string): AgentError =>
  new AgentError('PAYLOAD_TOO_LARGE', `JSON body holds more than the ${maxValues} values a tensor for ${what} can`, { details: { max_values: maxValues } });

/** How many numbers a parsed tensor holds (rows may be ragged: the shape check refuses them later). */
const valueCount = (t: TensorValues): number => (t instanceof Float64Array || !Array.isArray(t[0]) ? t.length : (t as number[][]).reduce((n, row) => n + row.length, 0));

function countCommas(chunk: Buffer): number {
  let n = 0;
  for (let i = chunk.indexOf(COMMA); i !== -1; i = chunk.indexOf(COMMA, i + 1)) n++;
  return n;
}

/**
 * Whether the Host header names this API: `localhost`, an IP literal (no DNS name, so no
 * rebinding), or a configured name. A web page that rebinds its own domain to 127.0.0.1 sends
 * its own domain here and is refused.
 */
function hostAllowed(host: string | undefined, allowed: readonly string[]): boolean {
  if (!host) return false;
  const name = (host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '')).toLowerCase();
  return name === 'localhost' || isIP(name) !== 0 || allowed.some((a) => a.toLowerCase() === name);
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

const IMAGE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/webp', 'application/octet-stream']);

/**
 * The request body, bounded by `limit` bytes; with `maxValues`, a JSON body is also refused
 * as soon as it holds more comma-separated values than a tensor for the model can (an
 * `image_b64` body has none), so a huge tensor never reaches `JSON.parse` and never holds
 * the event loop that answers `/healthz`.
 */
async function readBody(req: IncomingMessage, limit: number, maxValues: { max: number; what: string } | null): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new AgentError('PAYLOAD_TOO_LARGE', `body of ${declared} bytes exceeds the ${limit}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  let commas = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AgentError('PAYLOAD_TOO_LARGE', `body exceeds the ${limit}-byte limit`);
    if (maxValues !== null) {
      commas += countCommas(chunk as Buffer);
      if (commas > maxValues.max + TENSOR_VALUES_SLACK) throw tooManyValues(maxValues.max, maxValues.what);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Body -> model input: raw image bytes, or JSON `{ image_b64 }` / `{ tensor, shape? }` (large ones parsed off the event loop). */
export async function bodyToInput(contentType: string, body: Buffer, json: JsonBodyParser): Promise<ParsedBody> {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (IMAGE_TYPES.has(type)) return { input: { kind: 'image', bytes: body } };
  if (type === 'application/json') return json.parse(body);
  throw new AgentError('UNSUPPORTED_MEDIA_TYPE', `content-type ${type || '(none)'} is not supported; send image/jpeg, image/png, image/webp or application/json`);
}

/**
 * The local HTTP API: `POST /v1/infer`, `GET /healthz`, `GET /metrics` (Prometheus text).
 * Errors are `{ error: { code, message } }` with the catalogue's HTTP status.
 */
export function createHttpApi(deps: HttpDeps): Server {
  const log = deps.log.child({ component: 'http' });
  const jsonBodies = new JsonBodyParser();
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const route = `${req.method} ${url.pathname}`;
    const handle = async (): Promise<void> => {
      if (!hostAllowed(req.headers.host, deps.allowedHosts ?? [])) throw new AgentError('HOST_NOT_ALLOWED', `this API does not answer to host ${String(req.headers.host ?? '(none)').slice(0, 128)}; add it to http.allowed_hosts`);
      if (route === 'GET /healthz') {
        const h = deps.health();
        return send(res, h.ok ? 200 : 503, h);
      }
      if (deps.token !== undefined && !bearerMatches(req.headers.authorization, deps.token)) throw new AgentError('UNAUTHORIZED', `${url.pathname} needs Authorization: Bearer <http.token>`);
      if (route === 'GET /metrics') return send(res, 200, deps.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
      if (route === 'POST /v1/infer') {
        // `?model=NAME` (or a JSON body's `model`): the model slot to ask on an agent serving
        // several (absent: the first). While the body is read, the tensor size bound is the
        // query's model's; without a query the body may name any model, so it is the largest any
        // served model takes, and the model the body names (or the first) is held to its own once parsed.
        const asked = url.searchParams.get('model') ?? undefined;
        const json = String(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json');
        const readBound = json ? ((asked !== undefined ? deps.maxTensorValues?.(asked) : deps.largestTensorValues?.()) ?? null) : null;
        const body = await readBody(req, deps.maxBodyBytes, readBound !== null ? { max: readBound, what: asked !== undefined ? `model ${asked.slice(0, 64)}` : 'any model served here' } : null);
        const { input, requestId, model: named } = await bodyToInput(String(req.headers['content-type'] ?? ''), body, jsonBodies);
        if (asked !== undefined && named !== undefined && asked !== named) throw new AgentError('INPUT_INVALID', `the query asks model ${asked.slice(0, 64)} and the body model ${named}: name one`);
        const model = asked ?? named;
        if (input.kind === 'tensor') {
          const max = deps.maxTensorValues?.(model) ?? null;
          if (max !== null && valueCount(input.tensor) > max) throw tooManyValues(max, model !== undefined ? `model ${model}` : 'the default model');
        }
        const results = await deps.infer(input, { source: 'http', requestId, origin: String(req.headers['x-origin'] ?? '') || undefined, model });
        return send(res, 200, results.length === 1 ? results[0] : { results });
      }
      if (['/healthz', '/metrics', '/v1/infer'].includes(url.pathname)) throw new AgentError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`);
      throw new AgentError('NOT_FOUND', `no route ${route}`);
    };
    handle().catch((err: unknown) => {
      const e = isEdgeloopError(err) ? err : new AgentError('INFERENCE_FAILED', (err as Error).message, { cause: err });
      // A stack only for what nobody expected (uncoded, or 500); a coded 503 (no model yet, busy) is a state, not a bug.
      if (!isEdgeloopError(err) || e.status === 500) log.error({ err, code: e.code, route }, 'request failed');
      else log.warn({ code: e.code, status: e.status, route, reason: e.message }, 'request rejected');
      if (!res.headersSent) send(res, e.status, { error: e.toJSON() });
      // Drain what the client still sends so the connection can answer cleanly.
      req.resume();
    });
  });
  server.on('close', () => void jsonBodies.close());
  return server;
}

export async function listen(server: Server, port: number, host: string): Promise<{ port: number; url: string }> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return { port: addr.port, url: `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}` };
}
