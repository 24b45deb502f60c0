import type { IncomingMessage } from 'node:http';
import type { Readable } from 'node:stream';
import type { z } from 'zod';
import type { FleetContext } from '../../app/context.js';
import { FleetError } from '../../errors.js';
import type { Access, Principal } from '../web/auth.js';

export type { Access, Principal } from '../web/auth.js';

/** A JSON answer; `json` is checked against the route's response schema at compile time. */
export interface JsonReply<T> {
  status?: number;
  json: T;
}

/** Bytes or a stream with their own headers (artifacts, sample blobs). */
export interface RawReply {
  status?: number;
  headers: Record<string, string | number>;
  body: Buffer | Readable;
}

/** A binary response, documented by its content type. */
export interface BinarySpec {
  binary: string;
  description: string;
}

export type ResponseSpec = z.ZodType | BinarySpec;

/**
 * A route whose request body is a byte stream, not JSON: the server checks the content type
 * and hands the handler the request (`req`) unread, to stream it with its own caps.
 */
export interface UploadSpec {
  contentType: string;
  description: string;
}

type ReplyFor<R extends ResponseSpec> = R extends z.ZodType ? JsonReply<z.input<R>> : RawReply;

/** What a handler gets: validated params, query and body, and the caller. */
export interface Call<P, Q, B> {
  ctx: FleetContext;
  req: IncomingMessage;
  params: P;
  query: Q;
  body: B;
  principal: Principal;
  /** Name of the acting user, or `device:<id>`: goes into label events, rollouts, pushes. */
  actor: string;
}

type Method = 'GET' | 'POST';

/** The default for routes that declare no schema for a part of the request. */
type None = z.ZodType<Record<string, never>>;

export interface RouteDef<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, R extends ResponseSpec> {
  method: Method;
  /** `/v1/devices/:id`; a last segment `*name` takes the rest of the path (file paths with `/`). */
  path: string;
  summary: string;
  /** Longer text for the OpenAPI description. */
  description?: string;
  tag: string;
  access: Access;
  params?: P;
  query?: Q;
  body?: B;
  /** A streamed (non-JSON) body instead of `body`. */
  upload?: UploadSpec;
  /** Status of a successful answer, for the documentation (handlers may answer 200 or 201). */
  success?: number;
  response: R;
  handler: (c: Call<z.output<P>, z.output<Q>, z.output<B>>) => Promise<ReplyFor<R>> | ReplyFor<R>;
}

/** A route with its types erased, as the dispatch table and the OpenAPI builder hold it. */
export interface Route {
  method: Method;
  path: string;
  summary: string;
  description?: string;
  tag: string;
  access: Access;
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  upload?: UploadSpec;
  success?: number;
  response: ResponseSpec;
  handler: (c: Call<unknown, unknown, unknown>) => Promise<JsonReply<unknown> | RawReply> | JsonReply<unknown> | RawReply;
}

/** Declare a route; the handler's parameter and return types follow from its schemas. */
export function route<P extends z.ZodType = None, Q extends z.ZodType = None, B extends z.ZodType = None, R extends ResponseSpec = ResponseSpec>(def: RouteDef<P, Q, B, R>): Route {
  return def as unknown as Route;
}

export const isBinary = (r: ResponseSpec): r is BinarySpec => typeof (r as BinarySpec).binary === 'string';

type Segment = { kind: 'literal'; value: string } | { kind: 'param'; name: string } | { kind: 'rest'; name: string };

interface Compiled {
  route: Route;
  segments: Segment[];
}

export interface Match {
  route: Route;
  params: Record<string, string>;
}

function compile(path: string): Segment[] {
  const parts = path.split('/').slice(1);
  return parts.map((p, i) => {
    if (p.startsWith(':')) return { kind: 'param', name: p.slice(1) };
    if (p.startsWith('*')) {
      if (i !== parts.length - 1) throw new Error(`route ${path}: *${p.slice(1)} must be the last segment`);
      return { kind: 'rest', name: p.slice(1) };
    }
    return { kind: 'literal', value: p };
  });
}

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `the path segment ${segment} is not valid percent-encoding`, { cause: err });
  }
}

/**
 * The dispatch table: routes by method, matched segment by segment. Literal segments must
 * match exactly; `:name` takes one decoded segment; `*name` takes the decoded rest joined
 * by `/`. The first route that matches wins (the table has no overlapping paths).
 */
export class Router {
  private readonly byMethod = new Map<string, Compiled[]>();
  readonly routes: readonly Route[];

  constructor(routes: readonly Route[]) {
    this.routes = routes;
    for (const r of routes) {
      const list = this.byMethod.get(r.method) ?? [];
      list.push({ route: r, segments: compile(r.path) });
      this.byMethod.set(r.method, list);
    }
  }

  /** The route for a method and path, or null. Throws `INPUT_INVALID` for bad percent-encoding. */
  match(method: string, pathname: string): Match | null {
    const list = this.byMethod.get(method);
    if (!list) return null;
    const parts = pathname.split('/').slice(1);
    for (const c of list) {
      const params = matchSegments(c.segments, parts);
      if (params) return { route: c.route, params };
    }
    return null;
  }

  /** Whether any method serves this path (for a 404 that says so). */
  methodsFor(pathname: string): string[] {
    const parts = pathname.split('/').slice(1);
    return [...this.byMethod.entries()].filter(([, list]) => list.some((c) => matchSegments(c.segments, parts) !== null)).map(([m]) => m);
  }
}

function matchSegments(segments: Segment[], parts: string[]): Record<string, string> | null {
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i] as Segment;
    const part = parts[i];
    if (s.kind === 'rest') {
      const rest = parts.slice(i);
      if (rest.length === 0 || rest.some((p) => p === '')) return null;
      params[s.name] = rest.map(decode).join('/');
      return params;
    }
    if (part === undefined) return null;
    if (s.kind === 'literal') {
      if (part !== s.value) return null;
    } else {
      if (part === '') return null;
      params[s.name] = decode(part);
    }
  }
  return parts.length === segments.length ? params : null;
}
