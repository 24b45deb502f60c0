import { z } from 'zod';
import { alertQuery } from '../../../app/alerts/alerts.js';
import { alertRecord, alertSeverity, idString, isoTime } from '../../../../shared/schemas/index.js';
import { route } from '../router.js';
import type { Route } from '../router.js';

const by = z.object({ by: z.string(), at: isoTime }).nullable();

export const storedAlert = z.object({
  alert_id: idString,
  device_id: idString,
  site: z.string().nullable(),
  camera: z.string().nullable(),
  rule: z.string(),
  severity: alertSeverity,
  label: z.string(),
  score: z.number(),
  count: z.number().int(),
  model: z.object({ name: z.string(), version: z.string() }),
  sample_id: idString.describe('the sample with the frame: `GET /v1/samples/{id}/blob`'),
  raised_at: isoTime,
  received_at: isoTime,
  detections: alertRecord.shape.detections,
  frame: alertRecord.shape.frame.unwrap().nullable(),
  acknowledged: by,
  resolved: by,
});

export const alertPage = z.object({ items: z.array(storedAlert), next_before: z.string().nullable() });
const alertParams = z.strictObject({ id: idString });

export const alertRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/alerts',
    tag: 'alerts',
    summary: 'Alerts raised by device rules, newest first, with filters; pass `next_before` back as `before`',
    access: { kind: 'user', permission: 'read' },
    query: alertQuery,
    response: alertPage,
    handler: ({ ctx, query }) => ({ json: ctx.alerts.list(query) }),
  }),
  route({
    method: 'GET',
    path: '/v1/alerts/:id',
    tag: 'alerts',
    summary: 'One alert',
    access: { kind: 'user', permission: 'read' },
    params: alertParams,
    response: storedAlert,
    handler: ({ ctx, params }) => ({ json: ctx.alerts.get(params.id) }),
  }),
  route({
    method: 'POST',
    path: '/v1/alerts/:id/ack',
    tag: 'alerts',
    summary: 'Acknowledge an alert (someone is on it); a second acknowledgement keeps the first',
    access: { kind: 'user', permission: 'alerts' },
    params: alertParams,
    response: storedAlert,
    handler: ({ ctx, params, actor }) => ({ json: ctx.alerts.acknowledge(params.id, { actor }) }),
  }),
  route({
    method: 'POST',
    path: '/v1/alerts/:id/resolve',
    tag: 'alerts',
    summary: 'Resolve an alert (dealt with; acknowledges it too when nobody had)',
    access: { kind: 'user', permission: 'alerts' },
    params: alertParams,
    response: storedAlert,
    handler: ({ ctx, params, actor }) => ({ json: ctx.alerts.resolve(params.id, { actor }) }),
  }),
];
