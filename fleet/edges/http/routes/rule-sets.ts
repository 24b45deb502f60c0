import { z } from 'zod';
import { idString, isoTime, sha256Hex, signedRuleSet } from '../../../../shared/schemas/index.js';
import { sampleFilterSchema } from '../../../app/samples/filter.js';
import { route } from '../router.js';
import type { Route } from '../router.js';

const ruleSetName = z.string().min(1).max(64);

const ruleSetInfo = z.object({
  name: z.string(),
  version: z.number().int(),
  sha256: sha256Hex,
  rules: z.number().int().describe('rules in the set'),
  created_at: isoTime,
  created_by: z.string(),
  devices: z.number().int().describe('devices this version was last sent to'),
});
export const ruleSetList = z.object({ items: z.array(ruleSetInfo) });

export const pushRuleSetBody = z.strictObject({
  name: ruleSetName.describe('lowercase letters, digits and . _ -'),
  rules: z.record(z.string(), z.unknown()).describe('the rule set (`rules`, `actions`, `camera_states`), checked with the agent\'s schema: every bad key named'),
});

export const deployRuleSetBody = z.strictObject({
  selector: z.record(z.string(), z.string()).describe('devices holding every one of these tags (`site`, `camera`...)'),
});
export const deployRuleSetResponse = z.object({
  rule_set: z.object({ name: z.string(), version: z.number().int(), sha256: sha256Hex }),
  devices: z.array(idString),
});

export const testRuleSetBody = z.strictObject({
  rules: z.record(z.string(), z.unknown()),
  samples: sampleFilterSchema.default({}).describe('which stored samples to replay (the sample filters)'),
  max_samples: z.number().int().min(1).max(100_000).optional().describe('samples replayed at most (default 10000)'),
});
export const testRuleSetResponse = z.object({
  samples: z.number().int(),
  truncated: z.boolean().describe('more samples matched than were replayed'),
  firings: z.array(
    z.object({ rule: z.string(), severity: z.string(), device_id: z.string(), camera: z.string().nullable(), ts: isoTime, sample_id: z.string(), label: z.string(), count: z.number().int() }),
  ),
  firings_omitted: z.number().int().describe('firings past the first 1000, counted in per_rule but not listed'),
  per_rule: z.record(z.string(), z.number().int()),
});

export const withdrawResponse = z.object({ devices: z.array(idString) });

const refParams = z.strictObject({ name: ruleSetName, version: z.coerce.number().int().positive() });

export const ruleSetRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/rule-sets',
    tag: 'rules',
    summary: 'Every stored alert rule set version, with the devices each was last sent to',
    access: { kind: 'user', permission: 'read' },
    response: ruleSetList,
    handler: ({ ctx }) => ({ json: { items: ctx.ruleSets.list() } }),
  }),
  route({
    method: 'POST',
    path: '/v1/rule-sets',
    tag: 'rules',
    summary: 'Store a rule set as the next version of its name, validated with the agent\'s rule schema and signed with the fleet key',
    access: { kind: 'user', permission: 'models' },
    body: pushRuleSetBody,
    success: 201,
    response: signedRuleSet,
    handler: ({ ctx, body, actor }) => ({ status: 201, json: ctx.ruleSets.push(body.name, body.rules, { actor }) }),
  }),
  route({
    method: 'POST',
    path: '/v1/rule-sets/test',
    tag: 'rules',
    summary: 'Replay a rule set over stored samples through the agent\'s engine: what would have fired, and a count per rule',
    access: { kind: 'user', permission: 'read' },
    body: testRuleSetBody,
    response: testRuleSetResponse,
    handler: ({ ctx, body }) => ({ json: ctx.ruleSets.test(body.rules, body.samples, body.max_samples !== undefined ? { maxSamples: body.max_samples } : {}) }),
  }),
  route({
    method: 'POST',
    path: '/v1/rule-sets/withdraw',
    tag: 'rules',
    summary: 'Tell the devices matching a tag selector to drop the fleet rule set and run their config\'s rules again',
    access: { kind: 'user', permission: 'rollouts' },
    body: deployRuleSetBody,
    response: withdrawResponse,
    handler: async ({ ctx, body, actor }) => ({ json: await ctx.ruleSets.withdraw(body.selector, { actor }) }),
  }),
  route({
    method: 'GET',
    path: '/v1/rule-sets/:name/:version',
    tag: 'rules',
    summary: 'One signed rule set version, as devices get it',
    access: { kind: 'user', permission: 'read' },
    params: refParams,
    response: signedRuleSet,
    handler: ({ ctx, params }) => ({ json: ctx.ruleSets.get(params.name, params.version) }),
  }),
  route({
    method: 'POST',
    path: '/v1/rule-sets/:name/:version/deploy',
    tag: 'rules',
    summary: 'Send a rule set version to every device matching a tag selector (retained, one revision per device)',
    access: { kind: 'user', permission: 'rollouts' },
    params: refParams,
    body: deployRuleSetBody,
    response: deployRuleSetResponse,
    handler: async ({ ctx, params, body, actor }) => ({ json: await ctx.ruleSets.deploy(params.name, params.version, body.selector, { actor }) }),
  }),
];
