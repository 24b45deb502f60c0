import { z } from 'zod';
import { allowed, ROLES } from '../../app/users.js';
import type { Route } from './router.js';
import { isBinary } from './router.js';
import { requestNames, responseNames } from './schemas.js';

type Json = Record<string, unknown>;

const REF = (name: string): string => `#/components/schemas/${name}`;

/** JSON Schema of every named schema, with `$ref`s between them; `$schema`/`$id` dropped (OpenAPI 3.1 embeds 2020-12). */
function components(names: Map<z.ZodType, string>, io: 'input' | 'output'): { schemas: Record<string, Json>; refOf: (s: z.ZodType) => Json } {
  const registry = z.registry<{ id: string }>();
  for (const [schema, name] of names) registry.add(schema, { id: name });
  const out = z.toJSONSchema(registry, { io, unrepresentable: 'any', uri: REF }) as { schemas: Record<string, Json> };
  const schemas: Record<string, Json> = {};
  for (const [id, s] of Object.entries(out.schemas)) {
    const { $schema: _s, $id: _i, ...rest } = s;
    schemas[id] = rest;
  }
  return {
    schemas,
    refOf: (s) => {
      const name = names.get(s);
      if (name !== undefined) return { $ref: REF(name) };
      const { $schema: _s, ...inline } = z.toJSONSchema(s, { io, unrepresentable: 'any' }) as Json;
      return inline;
    },
  };
}

/** Query or path parameters from an object schema: one parameter per property. */
function parameters(schema: z.ZodType | undefined, where: 'query' | 'path'): Json[] {
  if (!schema) return [];
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as { properties?: Record<string, Json>; required?: string[] };
  const required = new Set(json.required ?? []);
  return Object.entries(json.properties ?? {}).map(([name, s]) => {
    const { description, ...rest } = s;
    return {
      name,
      in: where,
      required: where === 'path' || required.has(name),
      schema: rest,
      ...(typeof description === 'string' ? { description } : {}),
      // Repeated keys (`tag=a:1&tag=b:2`) for list parameters.
      ...(rest.type === 'array' ? { style: 'form', explode: true } : {}),
    };
  });
}

/** `/v1/devices/:id` → `/v1/devices/{id}`; `*path` → `{path}` (may contain `/`). */
const openApiPath = (path: string): string => path.replace(/[:*]([A-Za-z_]+)/g, '{$1}');

/** Roles allowed to call a route, for `x-roles`. */
function rolesOf(r: Route): string[] {
  if (r.access.kind === 'public') return [];
  const p = r.access.kind === 'user' ? r.access.permission : 'read';
  const roles: string[] = ROLES.filter((role) => allowed(role, p));
  return r.access.kind === 'device_or_user' ? ['device', ...roles] : roles;
}

const ERRORS: Record<string, string> = {
  '400': 'Invalid input (`INPUT_INVALID`, with every bad field listed)',
  '401': 'No or invalid token (`FLEET_AUTH_FAILED`)',
  '403': 'The role does not allow this (`FLEET_FORBIDDEN`)',
  '404': 'Not found',
  '409': 'Conflicts with the current state',
  '413': 'Past a size cap (`PAYLOAD_TOO_LARGE`)',
  '415': 'Wrong content type (`UNSUPPORTED_MEDIA_TYPE`)',
};

/**
 * The OpenAPI 3.1 document of the API, generated from the route table and the zod schemas
 * (request bodies as inputs, responses as outputs): nothing in it is written by hand but the
 * summaries.
 */
export function buildOpenApi(routes: readonly Route[]): Json {
  const req = components(requestNames, 'input');
  const res = components(responseNames, 'output');
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of routes) {
    const p = (paths[openApiPath(r.path)] ??= {});
    const roles = rolesOf(r);
    const ok = String(r.success ?? 200);
    const responses: Record<string, Json> = {
      [ok]: isBinary(r.response)
        ? { description: r.response.description, content: { [r.response.binary]: { schema: { type: 'string', format: 'binary' } } } }
        : { description: r.summary, content: { 'application/json': { schema: res.refOf(r.response) } } },
    };
    const errors = ['400', '404', ...(r.access.kind === 'public' ? [] : ['401']), ...(r.access.kind === 'user' && r.access.permission !== 'read' ? ['403'] : []), ...(r.method === 'POST' ? ['409'] : []), ...(r.upload ? ['413', '415'] : [])];
    if (r.access.kind === 'device_or_user') responses['403'] = { description: 'A device asked for a package its desired state does not name (`FLEET_PACKAGE_NOT_ASSIGNED`)', content: { 'application/json': { schema: { $ref: REF('Error') } } } };
    if (isBinary(r.response)) responses['416'] = { description: 'Range not satisfiable (`Content-Range: bytes */<size>`)', content: { 'application/json': { schema: { $ref: REF('Error') } } } };
    for (const code of errors) responses[code] = { description: ERRORS[code], content: { 'application/json': { schema: { $ref: REF('Error') } } } };
    p[r.method.toLowerCase()] = {
      operationId: `${r.method.toLowerCase()}${openApiPath(r.path).replace(/^\/v1/, '').replace(/[{}]/g, '').split(/[/._-]/).filter(Boolean).map((s) => s[0]?.toUpperCase() + s.slice(1)).join('')}`,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      tags: [r.tag],
      security: r.access.kind === 'public' ? [] : [{ bearer: [] }],
      'x-roles': roles,
      parameters: [...parameters(r.params, 'path'), ...parameters(r.query, 'query')],
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: req.refOf(r.body) } } } } : {}),
      ...(r.upload ? { requestBody: { required: true, description: r.upload.description, content: { [r.upload.contentType]: { schema: { type: 'string', format: 'binary' } } } } } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'edgeloop fleet API',
      version: '1',
      description:
        'Users send `Authorization: Bearer <token>` (roles admin, operator, labeler, viewer; `x-roles` lists who may call each operation); tokens may expire and are revoked with their user. ' +
        'The web console uses a session cookie instead, and sends writes with the session\'s `x-edgeloop-csrf` header. ' +
        'Agents download model packages with their device token `<device id>.<secret>`, and only the packages their desired state names. Errors are `{ error: { code, message } }` with a stable code.',
    },
    components: {
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'A user token (`elt_...`) or, for package downloads, a device token (`<device id>.<secret>`)' } },
      schemas: { ...req.schemas, ...res.schemas },
    },
    paths,
  };
}
