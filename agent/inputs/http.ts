import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { isEdgeloopError } from '../../shared/errors.js';
import { inferRequest, type InferResult } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import { AgentError } from '../errors.js';
import type { ModelInput } from '../model/runtime.js';
import type { InferContext } from '../service.js';

export interface HttpDeps {
  infer(input: ModelInput, ctx: InferContext): Promise<InferResult[]>;
  health(): { ok: boolean; [k: string]: unknown };
  metrics(): string;
  log: Logger;
  maxBodyBytes: number;
}

const IMAGE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/webp', 'application/octet-stream']);

async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new AgentError('PAYLOAD_TOO_LARGE', `body of ${declared} bytes exceeds the ${limit}-byte limit`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new AgentError('PAYLOAD_TOO_LARGE', `body exceeds the ${limit}-byte limit`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function send(res: ServerResponse, status: number, body: unknown, type = 'application/json'): void {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Body -> model input: raw image bytes, or JSON `{ image_b64 }` / `{ tensor, shape? }`. */
export function bodyToInput(contentType: string, body: Buffer): { input: ModelInput; requestId?: string | undefined } {
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  if (IMAGE_TYPES.has(type)) return { input: { kind: 'image', bytes: body } };
  if (type === 'application/json') {
    const r = parseJsonWith(inferRequest, body, 'INPUT_INVALID', 'inference request');
    const input: ModelInput = r.image_b64 !== undefined ? { kind: 'image', bytes: Buffer.from(r.image_b64, 'base64') } : { kind: 'tensor', tensor: r.tensor!, shape: r.shape };
    return { input, requestId: r.request_id };
  }
  throw new AgentError('UNSUPPORTED_MEDIA_TYPE', `content-type ${type || '(none)'} is not supported; send image/jpeg, image/png, image/webp or application/json`);
}

/**
 * The local HTTP API: `POST /v1/infer`, `GET /healthz`, `GET /metrics` (Prometheus text).
 * Errors are `{ error: { code, message } }` with the catalogue's HTTP status.
 */
export function createHttpApi(deps: HttpDeps): Server {
  const log = deps.log.child({ component: 'http' });
  return createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://local');
    const route = `${req.method} ${url.pathname}`;
    const handle = async (): Promise<void> => {
      if (route === 'GET /healthz') {
        const h = deps.health();
        return send(res, h.ok ? 200 : 503, h);
      }
      if (route === 'GET /metrics') return send(res, 200, deps.metrics(), 'text/plain; version=0.0.4; charset=utf-8');
      if (route === 'POST /v1/infer') {
        const body = await readBody(req, deps.maxBodyBytes);
        const { input, requestId } = bodyToInput(String(req.headers['content-type'] ?? ''), body);
        const results = await deps.infer(input, { source: 'http', requestId, origin: String(req.headers['x-origin'] ?? '') || undefined });
        return send(res, 200, results.length === 1 ? results[0] : { results });
      }
      if (['/healthz', '/metrics', '/v1/infer'].includes(url.pathname)) throw new AgentError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${url.pathname}`);
      throw new AgentError('NOT_FOUND', `no route ${route}`);
    };
    handle().catch((err: unknown) => {
      const e = isEdgeloopError(err) ? err : new AgentError('INFERENCE_FAILED', (err as Error).message, { cause: err });
      if (e.status >= 500) log.error({ err, code: e.code, route }, 'request failed');
      else log.warn({ code: e.code, route, reason: e.message }, 'request rejected');
      if (!res.headersSent) send(res, e.status, { error: e.toJSON() });
      // Drain what the client still sends so the connection can answer cleanly.
      req.resume();
    });
  });
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
