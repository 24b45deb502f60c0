import { route } from '../router.js';
import type { Route } from '../router.js';
import { FleetError } from '../../../errors.js';
import type { FleetContext } from '../../../app/context.js';
import { createDeviceBody, createDeviceResponse, device, deviceList, deviceParams, deviceQuery, issueCertificateBody, issuedCertificate } from '../schemas.js';

/** A certificate is only useful with the broker's TLS listener: say so before registering anything. */
function requireTlsListener(ctx: FleetContext): string {
  if (!ctx.urls.mqtts) throw new FleetError('CONFLICT', 'the broker has no TLS listener for certificate logins: start the fleet with edgeloop serve --mqtts-port N');
  return ctx.urls.mqtts;
}

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
    handler: async ({ ctx, body, actor }) => {
      const mqttsUrl = body.public_key !== undefined ? requireTlsListener(ctx) : undefined;
      const { device: registered, secret } = await ctx.devices.register(body.name, { tags: body.tags });
      let certificate;
      if (body.public_key !== undefined) {
        try {
          certificate = ctx.certificates.issue(registered.id, body.public_key, { actor, ...(body.cert_days ? { days: body.cert_days } : {}) });
        } catch (err) {
          // A key the CA will not certify: leave no half-registered device behind.
          ctx.devices.remove(registered.id);
          throw err;
        }
      }
      // A rule-set deployment stands for its selector: a device registered later gets it too.
      // Best effort: the device is registered either way, and a later deploy reaches it.
      await ctx.ruleSets.follow(registered.id, registered.tags).catch((err: unknown) => ctx.log.warn({ device_id: registered.id, reason: (err as Error).message }, 'rule set not sent to the new device'));
      const agent_config = ctx.devices.agentConfigFor(registered.id, secret, { mqttUrl: ctx.urls.mqtt, publicKeyPem: ctx.publicKeyPem, httpUrl: ctx.urls.http, ...(mqttsUrl ? { mqttsUrl } : {}) });
      return { status: 201, json: { device: ctx.devices.get(registered.id), secret, agent_config, ...(certificate ? { certificate } : {}) } };
    },
  }),
  route({
    method: 'POST',
    path: '/v1/devices/:id/certificate',
    tag: 'devices',
    summary: 'Certify a device key with the fleet CA (a new device certificate, or a rotation): the previous certificate is refused from then on',
    description: 'Send the public key only; the private key stays where it was made. The answer holds the certificate and the CA certificate; the fleet stores the sha256, serial and expiry.',
    access: { kind: 'user', permission: 'devices' },
    params: deviceParams,
    body: issueCertificateBody,
    success: 201,
    response: issuedCertificate,
    handler: ({ ctx, params, body, actor }) => {
      requireTlsListener(ctx);
      return { status: 201, json: ctx.certificates.issue(params.id, body.public_key, { actor, ...(body.days ? { days: body.days } : {}) }) };
    },
  }),
  route({
    method: 'POST',
    path: '/v1/devices/:id/certificate/revoke',
    tag: 'devices',
    summary: "Revoke a device's certificate: the broker refuses it at the next connect (a connected device is disconnected)",
    access: { kind: 'user', permission: 'devices' },
    params: deviceParams,
    response: device,
    handler: ({ ctx, params, actor }) => {
      ctx.certificates.revoke(params.id, { actor });
      return { json: ctx.devices.get(params.id) };
    },
  }),
];
