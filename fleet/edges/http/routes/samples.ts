import { sampleFilterSchema, sampleQuerySchema } from '../../../app/samples/filter.js';
import { artifactReply, safeContentType } from '../artifacts.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { boxesBody, historyResponse, labelBody, labelProgress, nextQuery, sampleList, samplePage, sampleParams, sampleRecord, sampleStats, undoResponse } from '../schemas.js';

export const sampleRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/samples',
    tag: 'samples',
    summary: 'A page of stored samples matching a filter, in arrival order; pass `next_cursor` back as `cursor`',
    access: { kind: 'user', permission: 'read' },
    query: sampleQuerySchema,
    response: samplePage,
    handler: ({ ctx, query }) => ({ json: ctx.ingest.query(query) }),
  }),
  route({
    method: 'GET',
    path: '/v1/samples/stats',
    tag: 'samples',
    summary: 'Per-device accounting: samples stored, resends seen, refusals and rate-limited messages',
    description: '`stored` is all time (from the database); the other counts are since the fleet started. A device that delivered every capture once has as many stored as it captured.',
    access: { kind: 'user', permission: 'read' },
    response: sampleStats,
    handler: ({ ctx }) => {
      const s = ctx.ingest.stats();
      return {
        json: {
          devices: ctx.ingest.deviceStats(),
          totals: { stored: ctx.ingest.count(), received: s.received, duplicates: s.duplicates, rejected: s.rejected, rate_limited: s.rate_limited, pending_chunk_sets: s.assembler.pending, pending_chunk_bytes: s.assembler.pending_bytes },
        },
      };
    },
  }),
  route({
    method: 'GET',
    path: '/v1/samples/:id',
    tag: 'samples',
    summary: 'One sample: prediction, reasons, device, current label',
    access: { kind: 'user', permission: 'read' },
    params: sampleParams,
    response: sampleRecord,
    handler: ({ ctx, params }) => ({ json: ctx.ingest.get(params.id) }),
  }),
  route({
    method: 'GET',
    path: '/v1/samples/:id/blob',
    tag: 'samples',
    summary: 'The sample input bytes (the captured image) with its content type',
    description: 'Only image types are served as such; anything else is `application/octet-stream`. Supports `Range`.',
    access: { kind: 'user', permission: 'read' },
    params: sampleParams,
    response: { binary: 'image/*', description: 'the captured input' },
    handler: ({ ctx, params, req }) => {
      const s = ctx.ingest.get(params.id);
      return artifactReply(ctx.artifacts, s.blob.sha256, req.headers.range, safeContentType(s.blob.content_type));
    },
  }),
  route({
    method: 'GET',
    path: '/v1/samples/:id/history',
    tag: 'labels',
    summary: 'Every labeling action on a sample, oldest first, undone ones included',
    access: { kind: 'user', permission: 'read' },
    params: sampleParams,
    response: historyResponse,
    handler: ({ ctx, params }) => ({ json: { items: ctx.labels.history(params.id) } }),
  }),
  route({
    method: 'POST',
    path: '/v1/samples/:id/label',
    tag: 'labels',
    summary: 'Give a sample a label',
    access: { kind: 'user', permission: 'label' },
    params: sampleParams,
    body: labelBody,
    response: sampleRecord,
    handler: ({ ctx, params, body, actor }) => ({ json: ctx.labels.assign(params.id, body.label, { actor }) }),
  }),
  route({
    method: 'POST',
    path: '/v1/samples/:id/boxes',
    tag: 'labels',
    summary: "Label a detection sample with boxes in its image's pixels (`[]`: nothing in the image)",
    description: 'Each box is `{ label, box: [x1, y1, x2, y2] }` inside the image, x1 < x2, y1 < y2, its label one of the model\'s classes; at most 300. History and undo as for class labels. A box that does not fit answers `FLEET_BOXES_INVALID` with every problem listed.',
    access: { kind: 'user', permission: 'label' },
    params: sampleParams,
    body: boxesBody,
    response: sampleRecord,
    handler: async ({ ctx, params, body, actor }) => ({ json: await ctx.labels.assignBoxes(params.id, body.boxes, { actor }) }),
  }),
  route({
    method: 'POST',
    path: '/v1/samples/:id/confirm',
    tag: 'labels',
    summary: "Agree with the model: the label becomes the predicted label (a detector's sample: its predicted boxes)",
    access: { kind: 'user', permission: 'label' },
    params: sampleParams,
    response: sampleRecord,
    handler: async ({ ctx, params, actor }) => ({ json: await ctx.labels.confirmPrediction(params.id, actor) }),
  }),
  route({
    method: 'POST',
    path: '/v1/samples/:id/skip',
    tag: 'labels',
    summary: 'Pass on a sample; it leaves the labeled set and goes to the back of the queue',
    access: { kind: 'user', permission: 'label' },
    params: sampleParams,
    response: sampleRecord,
    handler: ({ ctx, params, actor }) => ({ json: ctx.labels.skip(params.id, actor) }),
  }),
  route({
    method: 'POST',
    path: '/v1/labels/undo',
    tag: 'labels',
    summary: "Revert the caller's most recent labeling action; again walks further back",
    access: { kind: 'user', permission: 'label' },
    response: undoResponse,
    handler: ({ ctx, actor }) => ({ json: ctx.labels.undo(actor) ?? { undone: null, sample: null } }),
  }),
  route({
    method: 'GET',
    path: '/v1/labels/progress',
    tag: 'labels',
    summary: 'Labeled, skipped and unlabeled counts over the samples a filter selects',
    access: { kind: 'user', permission: 'read' },
    query: sampleFilterSchema,
    response: labelProgress,
    handler: ({ ctx, query }) => ({ json: ctx.labels.progress(query) }),
  }),
  route({
    method: 'GET',
    path: '/v1/labels/next',
    tag: 'labels',
    summary: 'The labeling queue: up to `n` samples without a label, never-seen first, then skipped ones',
    access: { kind: 'user', permission: 'read' },
    query: nextQuery,
    response: sampleList,
    handler: ({ ctx, query }) => {
      const { n, ...filter } = query;
      return { json: { items: ctx.labels.next(filter, n) } };
    },
  }),
];
