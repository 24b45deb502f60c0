import type { FleetContext } from '../../../app/context.js';
import { FleetError } from '../../../errors.js';
import { artifactReply, packageContentType } from '../artifacts.js';
import { route } from '../router.js';
import type { Principal, Route } from '../router.js';
import { lineageResponse, modelList, modelParams, modelQuery, modelVersion, packageFileParams, pushModelQuery, pushModelResponse } from '../schemas.js';

/**
 * Least privilege for devices: a device token downloads only the packages its desired state
 * names (active, shadow, and the version a rollback returns it to); users with `read` may
 * download any. Refused with `FLEET_PACKAGE_NOT_ASSIGNED` (403), logged by the error handler
 * with the device as actor.
 */
function mayDownload(ctx: FleetContext, principal: Principal, name: string, version: string): void {
  if (principal.kind !== 'device') return;
  const assigned = ctx.rollouts.desiredModels(principal.deviceId);
  if (assigned.some((m) => m.name === name && m.version === version)) return;
  throw new FleetError('PACKAGE_NOT_ASSIGNED', `device ${principal.deviceId} may download only the packages its desired state names, not ${name}@${version}`, {
    details: { device_id: principal.deviceId, model: `${name}@${version}`, assigned: assigned.map((m) => `${m.name}@${m.version}`) },
  });
}

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
    summary: 'Upload and register a model package',
    description:
      'The body is a tar stream of the package directory (manifest.json plus the files it lists, names relative to it), as `edgeloop models push DIR` sends it. ' +
      'The fleet unpacks it into a fresh directory inside its data directory (size caps on the whole and on each file answer 413; a name leaving the package, a link or another non-file entry `FLEET_UPLOAD_INVALID`), ' +
      'checks every file against its sha256 and size in the manifest, signs the manifest with its key and stores everything content-addressed. Pushing the same content again answers 200 with `created: false`; ' +
      'different content under an existing name@version is refused (`FLEET_MODEL_VERSION_EXISTS`, 409); a package without golden inputs is refused (`FLEET_GOLDEN_MISSING`, 422) unless `?force=true`. The API never reads a path on the fleet host.',
    access: { kind: 'user', permission: 'models' },
    query: pushModelQuery,
    upload: { contentType: 'application/x-tar', description: 'a tar (ustar, pax or GNU long names) of the package directory: regular files and directories only' },
    success: 201,
    response: pushModelResponse,
    handler: async ({ ctx, req, actor, query }) => {
      const r = await ctx.registry.pushUpload(req, { actor, force: query.force });
      return { status: r.created ? 201 : 200, json: r };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/package/manifest.json',
    tag: 'packages',
    summary: 'The fleet-signed manifest of a version (what a desired state pins by sha256)',
    description: 'Agents fetch `<base_url>/manifest.json` with their device token, for a version their desired state names (else 403 `FLEET_PACKAGE_NOT_ASSIGNED`). Supports `Range`.',
    access: { kind: 'device_or_user' },
    params: modelParams,
    response: { binary: 'application/json', description: 'manifest.json bytes, exactly as signed' },
    handler: ({ ctx, params, req, principal }) => {
      mayDownload(ctx, principal, params.name, params.version);
      const v = ctx.registry.get(params.name, params.version);
      return artifactReply(ctx.artifacts, v.manifest_sha256, req.headers.range, 'application/json');
    },
  }),
  route({
    method: 'GET',
    path: '/v1/models/:name/:version/package/files/*path',
    tag: 'packages',
    summary: 'One file of a version, by its path in the package (may contain `/`)',
    description: 'Agents fetch `<base_url>/files/<path>` with their device token, for a version their desired state names (else 403 `FLEET_PACKAGE_NOT_ASSIGNED`). `Range: bytes=<from>-` resumes a broken download (206); a range past the end answers 416.',
    access: { kind: 'device_or_user' },
    params: packageFileParams,
    response: { binary: 'application/octet-stream', description: 'the file bytes (or the requested range)' },
    handler: ({ ctx, params, req, principal }) => {
      mayDownload(ctx, principal, params.name, params.version);
      const sha = ctx.registry.fileSha(params.name, params.version, params.path);
      return artifactReply(ctx.artifacts, sha, req.headers.range, packageContentType(params.path));
    },
  }),
];
