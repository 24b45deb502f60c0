/**
 * Rule sets from the fleet: the signed document the fleet stores and delivers, the retained
 * per-device message that carries it, and what a device reports about the rule set it runs.
 * The rules themselves are an {@link alertRuleSet}, kept raw here (as pushed) because the
 * signature covers the bytes before any default is applied; the agent validates them with the
 * same schema it reads its config file with.
 */
import { z } from 'zod';
import { idString, isoTime, schemaVersion, sha256Hex } from './common.js';
import { signature as manifestSignature } from './manifest.js';

/**
 * Largest rule set (canonical JSON of its rules) the fleet accepts: it travels inline in one
 * retained MQTT message, and AWS IoT Core refuses messages over 128 KB.
 */
export const RULE_SET_MAX_BYTES = 96 * 1024;

/** A rule set version as stored and delivered: `sha256` is of the canonical JSON of `rules`; the signature covers every other field. */
export const signedRuleSet = z.object({
  name: idString,
  version: z.number().int().positive(),
  sha256: sha256Hex,
  /** The rule set as pushed (an `alertRuleSet`: `rules`, `actions`, `camera_states`). */
  rules: z.record(z.string(), z.unknown()),
  created_at: isoTime,
  signature: manifestSignature.optional(),
});
export type SignedRuleSet = z.infer<typeof signedRuleSet>;

/**
 * Fleet -> device, retained on `topics.rules(device)`: the rule set the device should run
 * (null: none from the fleet, the config's rules apply). A device ignores a revision not newer
 * than the one it applied.
 */
export const ruleSetMessage = z.object({
  type: z.literal('rule_set'),
  v: schemaVersion,
  device_id: idString,
  revision: z.number().int().nonnegative(),
  issued_at: isoTime,
  rule_set: signedRuleSet.nullable(),
});
export type RuleSetMessage = z.infer<typeof ruleSetMessage>;

/** In device status: which rule set the device runs, and the last one it refused (the running one stayed). */
export const deviceRules = z.object({
  /** `fleet`: a delivered rule set (it replaces the config's); `config`: the agent config's rules; `none`: no rules. */
  source: z.enum(['fleet', 'config', 'none']),
  name: idString.optional(),
  version: z.number().int().positive().optional(),
  sha256: sha256Hex.optional(),
  refused: z
    .object({ name: z.string().max(128).optional(), version: z.number().int().optional(), revision: z.number().int().optional(), code: z.string().max(64), message: z.string().max(1024) })
    .optional(),
});
export type DeviceRules = z.infer<typeof deviceRules>;
