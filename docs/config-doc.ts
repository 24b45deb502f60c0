/**
 * docs/configuration.md from the zod schemas of every configuration file: each key with its
 * type, default, allowed values and description, read from the schema's JSON Schema
 * (`z.toJSONSchema`, input side: what a user writes).
 *
 * Schema metadata the walk reads besides the JSON Schema keywords (set with `.meta()`):
 * - `description` (or `.describe()`): the key's meaning;
 * - `defaultText`: the default in words, where the schema's default is computed (the host
 *   name) or applied later (a path under another key);
 * - `keysDefaultText`: on an object, the default of each of its keys in words (the agent's
 *   `outlier` keys default to the model manifest's values).
 */
import { z } from 'zod';
import { agentConfigSchema } from '../agent/config.js';
import { awsFleetConfig } from '../fleet/adapters/aws/aws-config.js';
import { fleetLimitsConfig } from '../fleet/boot/limits-config.js';
import { trainingFileConfig } from '../fleet/boot/training-config.js';
import { alertRuleSet, componentConfiguration, TEMPLATE_FIELDS } from '../shared/schemas/index.js';
import { code, GENERATED_NOTE, table } from './markdown.js';

type Json = { [k: string]: unknown };

export interface ConfigRow {
  key: string;
  type: string;
  default: string;
  allowed: string;
  description: string;
}

interface Section {
  title: string;
  source: string;
  schema: z.ZodType;
  intro: string;
  /** Keys documented as one row, not expanded (a schema documented elsewhere). */
  collapse?: readonly string[];
}

const SECTIONS: readonly Section[] = [
  {
    title: 'Agent (`edgeloop-agent run --config FILE`)',
    source: 'agent/config.ts',
    schema: agentConfigSchema,
    intro: [
      'A JSON file, every key optional, validated once at start: every bad key is named in one error (`AGENT_CONFIG_INVALID`) and the agent does not start; the result is frozen.',
      'Environment variables override the file: `EDGELOOP_AGENT_<KEY>__<SUBKEY>` (e.g. `EDGELOOP_AGENT_UPLINK__URL=mqtts://...`, `EDGELOOP_AGENT_QUEUE__QUOTA_BYTES=1073741824`); values parse as JSON when they can, else they are strings.',
      "Relative paths resolve against the config file's directory.",
    ].join('\n'),
  },
  {
    title: 'Greengrass component configuration',
    source: 'shared/schemas/greengrass.ts',
    schema: componentConfiguration,
    intro: [
      "In Greengrass mode the agent's settings come from the component configuration (the recipe's `DefaultConfiguration` merged with the deployment's `configurationUpdate`), validated once; a deployment whose configuration does not validate is answered REJECTED with every bad key named (`AGENT_GREENGRASS_CONFIG_INVALID`).",
      "Precedence: the `--config` file (if any) < the `agent` key < `EDGELOOP_AGENT_*` environment overrides. Defaults that differ from plain mode: `device_id` is the thing name, `data_dir` is `data` under the component's work directory (kept across component updates).",
    ].join('\n'),
    collapse: ['desired'],
  },
  {
    title: 'Learning loop (`edgeloop serve --training FILE`)',
    source: 'fleet/boot/training-config.ts',
    schema: trainingFileConfig,
    intro: [
      'A JSON file, validated once at start: every bad key is named in one `FLEET_TRAINING_CONFIG_INVALID` error, then the configuration is frozen.',
      'Beyond the schema, each `models[].trainer` must be one the mode provides (`local`; `command` when `trainers.command` is set; `sagemaker` in AWS mode with a `sagemaker` section), model names must be unique, and each `base[]` entry must be `mnist` with `offset` and `count`, or `artifacts` with `items`.',
    ].join('\n'),
    collapse: ['models[].auto_promote.plan'],
  },
  {
    title: 'Fleet limits (`edgeloop serve --limits FILE`)',
    source: 'fleet/boot/limits-config.ts',
    schema: fleetLimitsConfig,
    intro: [
      'A JSON file, every key optional, validated once at start: every bad key is named in one `FLEET_LIMITS_CONFIG_INVALID` error, then it is frozen. Without the flag the defaults below apply.',
      'Every device is held to its own budget: a device over its rate or daily bytes gets a `sample_nack` on its acks topic and pauses (its samples stay queued); a device over its unfinished-sample budget loses only its own stalest set, which it resends.',
    ].join('\n'),
  },
  {
    title: 'Alert rule set (`alerts` in the agent configuration, or `alerts.rules_file`)',
    source: 'shared/schemas/alerts.ts',
    schema: alertRuleSet,
    intro: [
      'Validated once at start: every bad key, duplicate rule id and unknown action name is named in one `AGENT_ALERT_RULES_INVALID` error and the agent does not start. How rules fire and what happens offline: `docs/alerts.md`.',
      'Templates (`payload`, `body`, `args[]`) replace `{{name}}` with a field of the alert: ' + TEMPLATE_FIELDS.map((f) => `\`${f}\``).join(', ') + ' (`json`: the whole alert record as JSON, `detections`: its objects as JSON); any other name is refused at load.',
    ].join('\n'),
  },
  {
    title: 'AWS mode (`edgeloop serve --backend aws --aws-config FILE`)',
    source: 'fleet/adapters/aws/aws-config.ts',
    schema: awsFleetConfig,
    intro: 'A JSON file, validated once at start: every bad key is named in one `FLEET_AWS_CONFIG_INVALID` error, before any AWS call; then it is frozen. Limits are the documented ones for Greengrass v2 deployments over IoT Jobs.',
  },
];

const SAFE = Number.MAX_SAFE_INTEGER;

const fmt = (v: unknown): string => code(JSON.stringify(v));

function typeOf(s: Json): string {
  if (Array.isArray(s.anyOf) || Array.isArray(s.oneOf)) return ((s.anyOf ?? s.oneOf) as Json[]).map(typeOf).join(' | ');
  if (s.const !== undefined) return typeof s.const;
  if (s.type === 'array') return `${typeOf((s.items as Json | undefined) ?? {})}[]`;
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !(s.additionalProperties as Json).properties) return `object of ${typeOf(s.additionalProperties as Json)}`;
  return typeof s.type === 'string' ? s.type : 'any';
}

/** `a..b`, `>= a`, `> a`...; an exclusive bound of an integer becomes the inclusive one next to it. */
function bounds(min: unknown, xmin: unknown, max: unknown, xmax: unknown, integer = false): string[] {
  let lo = typeof min === 'number' && min > -SAFE ? min : undefined;
  let hi = typeof max === 'number' && max < SAFE ? max : undefined;
  let xlo = typeof xmin === 'number' ? xmin : undefined;
  let xhi = typeof xmax === 'number' ? xmax : undefined;
  if (integer && xlo !== undefined && Number.isInteger(xlo)) [lo, xlo] = [Math.max(lo ?? -Infinity, xlo + 1), undefined];
  if (integer && xhi !== undefined && Number.isInteger(xhi)) [hi, xhi] = [Math.min(hi ?? Infinity, xhi - 1), undefined];
  if (lo !== undefined && hi !== undefined) return [`${lo}..${hi}`];
  const out: string[] = [];
  if (lo !== undefined) out.push(`>= ${lo}`);
  if (xlo !== undefined) out.push(`> ${xlo}`);
  if (hi !== undefined) out.push(`<= ${hi}`);
  if (xhi !== undefined) out.push(`< ${xhi}`);
  return out;
}

function allowedOf(s: Json): string {
  if (Array.isArray(s.anyOf) || Array.isArray(s.oneOf)) return ((s.anyOf ?? s.oneOf) as Json[]).map(allowedOf).filter(Boolean).join('; ');
  const parts: string[] = [];
  if (Array.isArray(s.enum)) parts.push(s.enum.map((v) => code(String(v))).join(', '));
  if (s.const !== undefined) parts.push(fmt(s.const));
  parts.push(bounds(s.minimum, s.exclusiveMinimum, s.maximum, s.exclusiveMaximum, s.type === 'integer').join(', '));
  if (s.type === 'string') {
    const len = bounds(s.minLength, undefined, s.maxLength, undefined);
    if (len.length && !(s.minLength === 1 && s.maxLength === undefined)) parts.push(`length ${len.join(', ')}`);
    else if (s.minLength === 1) parts.push('not empty');
    if (typeof s.pattern === 'string') parts.push(`matches ${code(s.pattern)}`);
    if (typeof s.format === 'string') parts.push(`a ${s.format}`);
  }
  if (s.type === 'array') {
    const n = bounds(s.minItems, undefined, s.maxItems, undefined);
    if (n.length) parts.push(`${n.join(', ')} items`);
    const items = s.items as Json | undefined;
    if (items && !items.properties) {
      const each = allowedOf(items);
      if (each) parts.push(`each ${each}`);
    }
  }
  if (s.type === 'object' && s.propertyNames && typeof s.propertyNames === 'object') {
    const keys = allowedOf(s.propertyNames as Json);
    if (keys) parts.push(`keys ${keys}`);
  }
  if (s.type === 'object' && s.additionalProperties && typeof s.additionalProperties === 'object' && !(s.additionalProperties as Json).properties) {
    const values = allowedOf(s.additionalProperties as Json);
    if (values) parts.push(`values ${values}`);
  }
  return parts.filter(Boolean).join('; ');
}

/** The non-null variant of `X | null`, else undefined. */
function nullableOf(s: Json): Json | undefined {
  const v = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  if (!v || v.length !== 2) return undefined;
  const rest = v.filter((x) => x.type !== 'null');
  return rest.length === 1 ? rest[0] : undefined;
}

/** Variants of a union of objects told apart by one `const` property, with that property's name. */
function taggedUnion(s: Json): { tag: string; variants: Json[] } | undefined {
  const v = (s.anyOf ?? s.oneOf) as Json[] | undefined;
  if (!v || !v.every((x) => x.type === 'object' && x.properties)) return undefined;
  const first = v[0]!.properties as Record<string, Json>;
  const tag = Object.keys(first).find((k) => v.every((x) => ((x.properties as Record<string, Json>)[k] ?? {}).const !== undefined));
  return tag ? { tag, variants: v } : undefined;
}

interface Walk {
  rows: ConfigRow[];
  collapse: ReadonlySet<string>;
}

function walk(s: Json, key: string, w: Walk, o: { required: boolean; inherited?: { defaultText?: string | undefined; condition?: string | undefined } }): void {
  const description = [o.inherited?.condition, typeof s.description === 'string' ? s.description : ''].filter(Boolean).join(' ');
  const defaultText = typeof s.defaultText === 'string' ? s.defaultText : o.inherited?.defaultText;
  const dflt = defaultText ?? ('default' in s ? fmt(s.default) : o.required ? 'required' : '-');
  const row = (type: string, allowed: string): void => void w.rows.push({ key, type, default: dflt, allowed, description });
  const inner = nullableOf(s);
  const node = inner ?? s;
  const nullable = inner ? ' | null' : '';
  const union = taggedUnion(node);
  const props = node.properties as Record<string, Json> | undefined;
  const childDefault = typeof s.keysDefaultText === 'string' ? s.keysDefaultText : undefined;
  if (w.collapse.has(key)) return row(`${node.type === 'object' ? 'object' : typeOf(node)}${nullable}`, '');
  if (union) {
    row(`object${nullable}`, `${code(union.tag)}: ${union.variants.map((v) => fmt((v.properties as Record<string, Json>)[union.tag]!.const)).join(', ')}`);
    for (const v of union.variants) {
      const condition = `(${code(union.tag)} ${fmt((v.properties as Record<string, Json>)[union.tag]!.const)})`;
      const req = new Set((v.required as string[] | undefined) ?? []);
      for (const [k, p] of Object.entries(v.properties as Record<string, Json>)) if (k !== union.tag) walk(p, `${key}.${k}`, w, { required: req.has(k), inherited: { condition } });
    }
    return;
  }
  if (node.type === 'object' && props) {
    if (key && (description || nullable || !('default' in s) || JSON.stringify(s.default) !== '{}')) row(`object${nullable}`, '');
    const req = new Set((node.required as string[] | undefined) ?? []);
    for (const [k, p] of Object.entries(props)) walk(p, key ? `${key}.${k}` : k, w, { required: req.has(k), inherited: { defaultText: childDefault } });
    return;
  }
  const values = node.additionalProperties as Json | undefined;
  if (node.type === 'object' && values && typeof values === 'object' && values.properties) {
    row(`object${nullable}`, allowedOf(node));
    const req = new Set((values.required as string[] | undefined) ?? []);
    for (const [k, p] of Object.entries(values.properties as Record<string, Json>)) walk(p, `${key}.<key>.${k}`, w, { required: req.has(k), inherited: { defaultText: childDefault } });
    return;
  }
  const items = node.items as Json | undefined;
  if (node.type === 'array' && items?.properties) {
    row(`object[]${nullable}`, allowedOf(node));
    const req = new Set((items.required as string[] | undefined) ?? []);
    for (const [k, p] of Object.entries(items.properties as Record<string, Json>)) walk(p, `${key}[].${k}`, w, { required: req.has(k) });
    return;
  }
  row(`${typeOf(node)}${nullable}`, allowedOf(node));
}

/** Every key of a configuration schema, in schema order. */
export function configRows(schema: z.ZodType, collapse: readonly string[] = []): ConfigRow[] {
  const w: Walk = { rows: [], collapse: new Set(collapse) };
  walk(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json, '', w, { required: true });
  return w.rows;
}

/** The text of docs/configuration.md. */
export function renderConfiguration(): string {
  return [
    '# Configuration reference',
    '',
    GENERATED_NOTE(`the zod schemas (${SECTIONS.map((s) => code(s.source)).join(', ')})`),
    '',
    'Every configuration is validated once, at start, against the schema this page is generated from. Defaults are what an absent key becomes; `required` keys have none; `-` means optional without a default.',
    '',
    ...SECTIONS.flatMap((s) => [
      `## ${s.title}`,
      '',
      `${s.intro}`,
      '',
      `Schema: \`${s.source}\`.`,
      '',
      table(
        ['key', 'type', 'default', 'allowed', 'description'],
        configRows(s.schema, s.collapse).map((r) => [code(r.key), r.type, r.default, r.allowed, r.description]),
      ),
      '',
    ]),
  ].join('\n');
}

/** The sections, for tests that check every key is described. */
export const CONFIG_SECTIONS = SECTIONS;
