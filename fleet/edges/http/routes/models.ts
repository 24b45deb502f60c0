import { artifactReply, packageContentType } from '../artifacts.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { lineageResponse, modelList, modelParams, modelQuery, modelVersion, packageFileParams, pushModelBody, pushModelResponse } from '../schemas.js';

export const modelRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/models',
    tag: 'models',
    summary: 'Registered model versions, by name then push order',
    access: { kind: 'user', permission: 'read' },
    query: modelQuery,
    response: modelList,
    handler: ({ ctx, query }) => ({ json: { items: ctx.registry.list({ ...(query.name ? { name: query.name } : {}), ...(query.status ? { status: query.status } : {}) }) } }),
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version',
    tag: 'models',
    summary: 'One model version: files, evaluation, lineage, status',
    access: { kind: 'user', permission: 'read' },
    params: modelParams,
    response: modelVersion,
    handler: ({ ctx, params }) => ({ json: ctx.registry.get(params.name, params.version) }),
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/lineage',
    tag: 'models',
    summary: 'The chain of parents of a version, newest first',
    access: { kind: 'user', permission: 'read' },
    params: modelParams,
    response: lineageResponse,
    handler: ({ ctx, params }) => ({ json: { items: ctx.registry.lineage(params.name, params.version) } }),
  }),
  route({
    method: 'POST',
    path: '/v1/models',
    tag: 'models',
    summary: 'Register the model package in a directory on the fleet host',
    description:
      'The body names a package directory (manifest.json plus the files it lists) on the host the fleet runs on: the CLI runs there too, so nothing is uploaded. ' +
      'The fleet checks every file hash, signs the manifest with its key and stores everything content-addressed. Pushing the same content again answers 200 with `created: false`; ' +
      'different content under an existing name@version is refused (`FLEET_MODEL_VERSION_EXISTS`, 409).',
    access: { kind: 'user', permission: 'models' },
    body: pushModelBody,
    success: 201,
    response: pushModelResponse,
    handler: async ({ ctx, body, actor }) => {
      const r = await ctx.registry.push(body.dir, { actor });
      return { status: r.created ? 201 : 200, json: r };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/package/manifest.json',
    tag: 'packages',
    summary: 'The fleet-signed manifest of a version (what a desired state pins by sha256)',
    description: 'Agents fetch `<base_url>/manifest.json` with their device token. Supports `Range`.',
    access: { kind: 'device_or_user' },
    params: modelParams,
    response: { binary: 'application/json', description: 'manifest.json bytes, exactly as signed' },
    handler: ({ ctx, params, req }) => {
      const v = ctx.registry.get(params.name, params.version);
      return artifactReply(ctx.artifacts, v.manifest_sha256, req.headers.range, 'application/json');
    },
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/package/files/*path',
    tag: 'packages',
    summary: 'One file of a version, by its path in the package (may contain `/`)',
    description: 'Agents fetch `<base_url>/files/<path>` with their device token. `Range: bytes=<from>-` resumes a broken download (206); a range past the end answers 416.',
    access: { kind: 'device_or_user' },
    params: packageFileParams,
    response: { binary: 'application/octet-stream', description: 'the file bytes (or the requested range)' },
    handler: ({ ctx, params, req }) => {
      const sha = ctx.registry.fileSha(params.name, params.version, params.path);
      return artifactReply(ctx.artifacts, sha, req.headers.range, packageContentType(params.path));
    },
  }),
];
