import { route } from '../router.js';
import type { Route } from '../router.js';
import { createDeviceBody, createDeviceResponse, device, deviceList, deviceParams, deviceQuery } from '../schemas.js';

/** `key:value` filters to a tag map; the key ends at the first `:` (values may contain `:`). */
function tagFilter(tags: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) {
    const i = t.indexOf(':');
    out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

export const deviceRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/devices',
    tag: 'devices',
    summary: 'List devices, filtered by tags (`tag=site:pit-1`, repeatable, all must match) and state',
    access: { kind: 'user', permission: 'read' },
    query: deviceQuery,
    response: deviceList,
    handler: ({ ctx, query }) => ({ json: { items: ctx.devices.list({ tags: tagFilter(query.tag), ...(query.state ? { state: query.state } : {}) }) } }),
  }),
  route({
    method: 'GET',
    path: '/v1/devices/:id',
    tag: 'devices',
    summary: 'One device: tags, state, models, deployment, health',
    access: { kind: 'user', permission: 'read' },
    params: deviceParams,
    response: device,
    handler: ({ ctx, params }) => ({ json: ctx.devices.get(params.id) }),
  }),
  route({
    method: 'POST',
    path: '/v1/devices',
    tag: 'devices',
    summary: 'Register a device; answers its secret (once) and a ready-to-use agent config',
    description: 'The `agent_config` holds the keys of the agent configuration the fleet knows: device id, tags, fleet public key, HTTP token and the MQTT uplink.',
    access: { kind: 'user', permission: 'devices' },
    body: createDeviceBody,
    success: 201,
    response: createDeviceResponse,
    handler: async ({ ctx, body }) => {
      const { device: d, secret } = await ctx.devices.register(body.name, { tags: body.tags });
      const agent_config = ctx.devices.agentConfigFor(d.id, secret, { mqttUrl: ctx.urls.mqtt, publicKeyPem: ctx.publicKeyPem, httpUrl: ctx.urls.http });
      return { status: 201, json: { device: d, secret, agent_config } };
    },
  }),
];
