/**
 * Alert rules and the alert record: one schema source for the agent's rule set (config or
 * `alerts.rules_file`), the alert a rule raises (local actions, the uplink sample's metadata)
 * and the fleet's stored alert.
 */
import { z } from 'zod';
import { detection, idString, isoTime, modelName, modelRef } from './common.js';


export const alertSeverity = z.enum(['info', 'warning', 'critical']);
export type AlertSeverity = z.infer<typeof alertSeverity>;

/** Placeholders a payload, body or argument template may use (`{{rule}}`); any other name is refused at load. */
export const TEMPLATE_FIELDS = ['alert_id', 'rule', 'severity', 'device_id', 'camera', 'model', 'time', 'label', 'score', 'count', 'detections', 'json'] as const;

const template = z
  .string()
  .max(16 * 1024)
  .superRefine((s, ctx) => {
    for (const m of s.matchAll(/\{\{\s*([^}]*?)\s*\}\}/g)) {
      if (!(TEMPLATE_FIELDS as readonly string[]).includes(m[1]!)) ctx.addIssue({ code: 'custom', message: `unknown placeholder {{${m[1]}}}; known: ${TEMPLATE_FIELDS.join(', ')}` });
    }
  });

const runnerLimits = {
  timeout_ms: z.number().int().positive().max(600_000).default(5000).describe('Longest one attempt may take (ms); then `AGENT_ALERT_ACTION_TIMEOUT`.'),
  retries: z.number().int().nonnegative().max(10).default(0).describe('Attempts after the first failure (with 0.5 s, 1 s, 2 s... backoff).'),
  max_queue: z.number().int().positive().max(10_000).default(100).describe('Alerts waiting for this action; more are refused with `AGENT_ALERT_ACTION_OVERLOADED` (a dead endpoint never piles up memory).'),
  concurrency: z.number().int().positive().max(32).default(2).describe('Alerts this action handles at once.'),
};

const mqttAction = z.strictObject({
  kind: z.literal('mqtt'),
  url: z.string().min(1).describe('Site broker URL (`mqtt://plc-bridge.local:1883`).'),
  topic: template.min(1).describe('Topic published to (a template: `site/alarms/{{rule}}`).'),
  qos: z.union([z.literal(0), z.literal(1)]).default(1),
  retain: z.boolean().default(false),
  username: z.string().optional(),
  password: z.string().optional(),
  payload: template.default('{{json}}').describe('Payload template; `{{json}}` is the whole alert record as JSON.'),
  ...runnerLimits,
});

const webhookAction = z.strictObject({
  kind: z.literal('webhook'),
  url: z.string().url(),
  method: z.enum(['POST', 'PUT']).default('POST'),
  headers: z.record(z.string(), z.string()).default({}),
  body: template.default('{{json}}'),
  ...runnerLimits,
  retries: runnerLimits.retries.default(2),
});

const commandAction = z.strictObject({
  kind: z.literal('command'),
  /** Run with execFile: no shell, so a label or camera name can never become a command. */
  file: z.string().min(1),
  args: z.array(template).default([]),
  ...runnerLimits,
});

const greengrassAction = z.strictObject({
  kind: z.literal('greengrass'),
  topic: template.min(1).describe('Greengrass local pub/sub topic (allowed by the recipe\'s `aws.greengrass.ipc.pubsub` policy).'),
  payload: template.default('{{json}}'),
  ...runnerLimits,
});

export const alertAction = z.discriminatedUnion('kind', [mqttAction, webhookAction, commandAction, greengrassAction]);
export type AlertAction = z.infer<typeof alertAction>;

const point = z.tuple([z.number().min(0).max(1), z.number().min(0).max(1)]);

export const alertRule = z.strictObject({
  id: idString.describe('Rule name, in alerts and topics.'),
  model: modelName.describe('The model whose results this rule reads.'),
  camera: z.string().min(1).optional().describe('Only results from this camera; absent = any input.'),
  labels: z.array(z.string().min(1)).min(1).optional().describe('Labels that match; absent = any label.'),
  min_score: z.number().min(0).max(1).default(0.5).describe('Lowest score of a matching object (or classification label).'),
  zone: z
    .strictObject({
      /** Polygon vertices relative to the frame: x and y in 0..1, (0,0) top left. */
      polygon: z.array(point).min(3).max(256).describe('Vertices `[x, y]` relative to the frame (0..1, top left is `[0, 0]`).'),
      /** Which point of a box must lie inside: its centre, or its bottom centre (where a person stands). */
      anchor: z.enum(['center', 'bottom_center']).default('bottom_center').describe('The point of a box that must lie inside: its centre, or its bottom centre (where a person stands).'),
    })
    .optional()
    .describe('Only objects inside this polygon (detections only: a classification has no box).'),
  min_count: z.number().int().positive().max(10_000).default(1).describe('Objects matching at once (each held `hold_s`) before the rule fires.'),
  hold_s: z.number().nonnegative().max(86_400).default(0).describe('Seconds the same object must keep matching (identity kept by an IoU tracker).'),
  gap_s: z.number().nonnegative().max(600).default(1).describe('A matching object may be missed this long (a frame the detector dropped) without its hold restarting.'),
  cooldown_s: z.number().nonnegative().max(86_400).default(60).describe('Seconds after an alert before this rule (per camera) may fire again.'),
  severity: alertSeverity.default('warning').describe('Carried by the alert; the console filters by it.'),
  actions: z.array(idString).default([]).describe('Names of actions (`alerts.actions`) run when the rule fires.'),
});
export type AlertRule = z.infer<typeof alertRule>;

/** An alert raised when a camera input goes offline or its picture freezes (rule id `camera_offline` / `camera_frozen`). */
const cameraStateAlert = z.strictObject({
  severity: alertSeverity.default('warning').describe('Carried by the alert.'),
  cooldown_s: z.number().nonnegative().max(86_400).default(300).describe('Seconds after an alert before this camera may raise the same one again (a flapping link is one alert, not one per reconnect).'),
  actions: z.array(idString).default([]).describe('Names of actions (`alerts.actions`) run when it is raised (and when it is resolved).'),
  cameras: z.array(z.string().min(1)).min(1).optional().describe('Only these cameras (`inputs.cameras` names); absent = every camera.'),
  resolved: z.boolean().default(true).describe('Also raise a `resolved` alert (severity info, label `resolved`) when the camera is back.'),
});
export type CameraStateAlert = z.infer<typeof cameraStateAlert>;

/** A rule set: what `alerts` in the agent config or an `alerts.rules_file` holds (cross-references: `ruleSetProblems`). */
export const alertRuleSet = z.strictObject({
  rules: z.array(alertRule).max(1000).default([]).describe('The rules, each evaluated on every result of its model.'),
  camera_states: z
    .strictObject({ offline: cameraStateAlert.optional().describe('The camera cannot be read (`AGENT_CAMERA_UNREACHABLE`).'), frozen: cameraStateAlert.optional().describe('Identical frames for `frozen_after_s` (`AGENT_CAMERA_FROZEN`).') })
    .default({})
    .describe('Alerts for camera states: `offline` and `frozen`, each with `severity`, `cooldown_s`, `actions`, `cameras`, `resolved`; absent = no such alert.'),
  actions: z.record(idString, alertAction).default({}).describe('Actions by name: `mqtt` (site broker), `webhook`, `command` (execFile, no shell), `greengrass` (local pub/sub); keys in `docs/alerts.md`.'),
});
export type AlertRuleSet = z.infer<typeof alertRuleSet>;

/**
 * What the schema cannot say, read from the raw data so they are named together with the
 * schema's issues: duplicate rule ids and actions a rule names that do not exist.
 */
export function ruleSetProblems(data: unknown): string[] {
  if (!data || typeof data !== 'object') return [];
  const { rules, actions } = data as { rules?: unknown; actions?: unknown };
  const names = actions && typeof actions === 'object' ? new Set(Object.keys(actions)) : new Set<string>();
  const out: string[] = [];
  const seen = new Set<unknown>();
  const states = (data as { camera_states?: unknown }).camera_states;
  if (states && typeof states === 'object') {
    for (const [kind, v] of Object.entries(states as Record<string, unknown>)) {
      const used = v && typeof v === 'object' ? (v as { actions?: unknown }).actions : undefined;
      if (Array.isArray(used)) used.forEach((a: unknown, j) => typeof a === 'string' && !names.has(a) && out.push(`camera_states.${kind}.actions.${j}: no action named ${a} in actions`));
    }
  }
  if (!Array.isArray(rules)) return out;
  rules.forEach((r: unknown, i) => {
    if (!r || typeof r !== 'object') return;
    const { id, actions: used } = r as { id?: unknown; actions?: unknown };
    if (typeof id === 'string' && seen.has(id)) out.push(`rules.${i}.id: duplicate rule id ${id}`);
    seen.add(id);
    if (Array.isArray(used)) used.forEach((a: unknown, j) => typeof a === 'string' && !names.has(a) && out.push(`rules.${i}.actions.${j}: no action named ${a} in actions`));
  });
  return out;
}

/** What a rule raised: sent to actions, carried in the uplink sample's `meta.alert`, stored by the fleet. */
export const alertRecord = z.object({
  alert_id: idString,
  rule: idString,
  severity: alertSeverity,
  device_id: idString,
  camera: z.string().max(128).optional(),
  model: modelRef,
  ts: isoTime,
  /** The label that matched (the first matching object's). */
  label: z.string().max(256),
  score: z.number(),
  count: z.number().int().nonnegative(),
  /** Matching objects; classification results have no box. */
  detections: z.array(detection.extend({ box: detection.shape.box.optional(), track: z.number().int().optional() })).max(1000),
  frame: z.object({ width: z.number().int().positive(), height: z.number().int().positive() }).optional(),
});
export type AlertRecord = z.infer<typeof alertRecord>;
