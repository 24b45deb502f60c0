import { z } from 'zod';
import { modelName, schemaVersion } from './common.js';
import { desiredState, type DesiredState } from './messages.js';
import { ruleSetMessage, type RuleSetMessage } from './rule-sets.js';

/**
 * The desired model as it travels in the Greengrass component configuration (key `desired`):
 * the MQTT desired-state message without the per-device fields. A Greengrass deployment
 * targets a thing group, so the device id is the device's own thing name, filled in on the
 * device by {@link desiredFromComponent}. Same artifact fields as the MQTT message (one
 * schema source): `active`/`shadow` with `model`, `base_url`, `manifest_sha256` and the
 * optional per-file `urls` (S3 presigned GETs).
 */
export const componentDesired = desiredState.omit({ type: true, device_id: true, issued_at: true, v: true }).extend({
  v: schemaVersion.default(1),
  issued_at: desiredState.shape.issued_at.optional(),
});
export type ComponentDesired = z.infer<typeof componentDesired>;

/**
 * The alert rule set as it travels in the component configuration (key `rule_set`): the MQTT
 * rule-set message without its per-device fields, `{ revision, rule_set }`; the device fills in
 * its thing name. Checked on the device exactly like the retained MQTT message (signature,
 * sha256, rule schema, newer revision).
 */
export const componentRuleSet = z.object({
  v: schemaVersion.default(1).describe('Message version (1).'),
  revision: ruleSetMessage.shape.revision.describe('Must increase with every change across the fleet; a device ignores one not newer than the one it applied.'),
  issued_at: ruleSetMessage.shape.issued_at.optional().describe('When the fleet issued it (ISO time); default the time it arrives.'),
  // Checked on the device with the signed document's own schema (shared/schemas/rule-sets.ts):
  // a bad one is refused there, reported in device status, and the running set stays.
  rule_set: z.record(z.string(), z.unknown()).nullable().describe('The signed rule set document (`GET /v1/rule-sets/:name/:version`), or null for the rules of the `agent` settings.'),
});
export type ComponentRuleSet = z.infer<typeof componentRuleSet>;

/** The MQTT rule-set message a component configuration's `rule_set` stands for, on this device (the document checked by the agent). */
export function ruleSetFromComponent(r: ComponentRuleSet, deviceId: string, now: Date): RuleSetMessage {
  return { type: 'rule_set', v: 1, device_id: deviceId, revision: r.revision, issued_at: r.issued_at ?? now.toISOString(), rule_set: r.rule_set as RuleSetMessage['rule_set'] };
}

/**
 * The agent component's configuration (the recipe's `DefaultConfiguration` merged with the
 * deployment's `configurationUpdate`). `agent` holds the agent's own settings with the same
 * keys as the agent's JSON config file; it is validated on the device by the agent's config
 * schema. `desired` is absent or null until the fleet deploys a model.
 */
export const componentConfiguration = z.looseObject({
  agent: z.record(z.string(), z.unknown()).default({}).describe("The agent's settings: the keys of the agent configuration above, validated on the device by the agent's schema."),
  desired: componentDesired
    .nullable()
    .optional()
    .describe('The model to run: the MQTT desired-state message without `type` and `device_id` (`v` defaults to 1, `issued_at` is optional). Absent or null until the fleet deploys a model; the fleet writes it (`reset ["/desired"]` + `merge`), not a person.'),
  desired_by_model: z
    .record(modelName, componentDesired.nullable())
    .optional()
    .describe(
      'Every model slot\'s desired state by model name (each value as `desired`; null: nothing for that slot), on a device serving several models; `desired` stays for agents older than model slots (the fleet writes the same state to both, and a slot applies a revision once). The fleet writes one key per deployment (`reset ["/desired_by_model/NAME"]` + `merge`), so other models\' keys stay.',
    ),
  rule_set: componentRuleSet
    .nullable()
    .optional()
    .describe('The alert rule set: the MQTT rule-set message without `type` and `device_id` (`{ revision, rule_set }`, `rule_set` the signed document `edgeloop rules push` stores, or null for the config\'s rules). Verified like the MQTT one; a fleet rule set replaces the agent config\'s rules. Written with `reset ["/rule_set"]` + `merge`.'),
});
export type ComponentConfiguration = z.infer<typeof componentConfiguration>;

/** The MQTT desired-state message a component configuration stands for, on this device. */
export function desiredFromComponent(d: ComponentDesired, deviceId: string, now: Date): DesiredState {
  return { ...d, type: 'desired_state', v: 1, device_id: deviceId, issued_at: d.issued_at ?? now.toISOString() };
}
