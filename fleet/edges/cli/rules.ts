import { readFile } from 'node:fs/promises';
import { FleetError } from '../../errors.js';
import { parseRuleSetRef } from '../../app/rules/rule-sets.js';
import type { FILTER_OPTIONS} from './args.js';
import { filterFromFlags, parseTags } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, table } from './format.js';

export const RULES_HELP = `Usage: edgeloop rules COMMAND

  push FILE --name NAME                       store FILE (JSON) as the next version of NAME, signed
  list                                        stored rule set versions
  deploy NAME@VERSION --selector k=v[,k=v]    send a version to the devices holding those tags
  withdraw --selector k=v[,k=v]               those devices drop the fleet rule set (config rules again)
  test FILE [--samples QUERY] [--max N]       what FILE would have raised on stored samples

Run 'edgeloop rules COMMAND --help' for a command's options.`;

const PUSH_HELP = `Usage: edgeloop rules push FILE --name NAME

FILE is an alert rule set as the agent reads it ({ "rules": [...], "actions": {...},
"camera_states": {...} }); it is checked with the agent's own schema (every bad key named),
signed with the fleet key and stored as version N+1 of NAME.`;

const DEPLOY_HELP = `Usage: edgeloop rules deploy NAME@VERSION --selector k=v[,k=v]

Sends the rule set to every device holding all the tags (site=north, camera=haul-road); each
gets it as a retained message, verifies the signature and swaps it in; a fleet rule set
replaces the rules of the device's config file.`;

const QUERY_KEYS: Record<string, keyof typeof FILTER_OPTIONS> = {
  device: 'device',
  site: 'site',
  model: 'model',
  version: 'version',
  label: 'label',
  reason: 'reason',
  since: 'from',
  from: 'from',
  until: 'to',
  to: 'to',
  'min-confidence': 'min-confidence',
  'max-confidence': 'max-confidence',
};

const TEST_HELP = `Usage: edgeloop rules test FILE [--samples QUERY] [--max N] [--json]

Replays FILE over the stored samples QUERY picks, oldest first per device and camera, through
the engine the agent runs, and prints each alert that would have fired and a count per rule.

  --samples QUERY   k=v pairs, comma-separated: ${Object.keys(QUERY_KEYS).join(', ')}
                    (since/until: ISO time or epoch ms), e.g. site=north,since=2026-12-01T00:00:00Z
  --max N           samples replayed at most (default 10000)`;

const LIST_HELP = `Usage: edgeloop rules list`;

async function readRuleFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FleetError('RULE_SET_INVALID', `${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** `--samples device=cam-1,since=...` as a sample filter; an unknown key is a usage error naming it. */
export function sampleQueryOf(q: string | undefined): ReturnType<typeof filterFromFlags> {
  const pairs = parseTags(q, 'samples');
  const flags: Partial<Record<keyof typeof FILTER_OPTIONS, string>> = {};
  for (const [k, v] of Object.entries(pairs)) {
    const key = QUERY_KEYS[k];
    if (!key) throw usage(`--samples: unknown key ${k}; known: ${Object.keys(QUERY_KEYS).join(', ')}`, TEST_HELP);
    flags[key] = v;
  }
  return filterFromFlags(flags);
}

const push = apiCommand(PUSH_HELP, { name: { type: 'string' } }, async (c) => {
  const [file] = positionalsOf(c.positionals, ['FILE'], PUSH_HELP) as [string];
  if (!c.values.name) throw usage('--name NAME is required', PUSH_HELP);
  const doc = await (await c.client()).pushRuleSet(c.values.name, await readRuleFile(file));
  c.emit(doc, () => c.io.out(`stored ${doc.name}@${doc.version}  sha256 ${doc.sha256}  signed by ${doc.signature?.key_id.slice(0, 12) ?? '-'}...`));
});

const list = apiCommand(LIST_HELP, {}, async (c) => {
  positionalsOf(c.positionals, [], LIST_HELP);
  const items = await (await c.client()).listRuleSets();
  c.emit({ items }, () => {
    if (!items.length) return c.io.out('no rule sets');
    const now = Date.now();
    for (const l of table(
      ['RULE SET', 'RULES', 'SHA256', 'DEVICES', 'BY', 'CREATED'],
      items.map((r) => [`${r.name}@${r.version}`, String(r.rules), `${r.sha256.slice(0, 12)}...`, String(r.devices), r.created_by, ago(r.created_at, now)]),
    ))
      c.io.out(l);
  });
});

const deploy = apiCommand(DEPLOY_HELP, { selector: { type: 'string', multiple: true } }, async (c) => {
  const [refText] = positionalsOf(c.positionals, ['NAME@VERSION'], DEPLOY_HELP) as [string];
  const ref = parseRuleSetRef(refText);
  if (ref.version === null) throw usage('name the version: NAME@VERSION (see edgeloop rules list)', DEPLOY_HELP);
  const selector = parseTags(c.values.selector, 'selector');
  if (!Object.keys(selector).length) throw usage('name the devices with --selector k=v', DEPLOY_HELP);
  const r = await (await c.client()).deployRuleSet(ref.name, ref.version, selector);
  c.emit(r, () =>
    c.io.out(
      r.devices.length
        ? `${r.rule_set.name}@${r.rule_set.version} sent to ${r.devices.length} device(s): ${r.devices.join(', ')}`
        : `${r.rule_set.name}@${r.rule_set.version}: no device has these tags yet; devices registered with them will get it`,
    ),
  );
});

const WITHDRAW_HELP = `Usage: edgeloop rules withdraw --selector k=v[,k=v]

The devices holding all the tags drop the fleet's rule set and run the rules of their config
file again (a retained message with rule_set null, a new revision each).`;

const withdraw = apiCommand(WITHDRAW_HELP, { selector: { type: 'string', multiple: true } }, async (c) => {
  positionalsOf(c.positionals, [], WITHDRAW_HELP);
  const selector = parseTags(c.values.selector, 'selector');
  if (!Object.keys(selector).length) throw usage('name the devices with --selector k=v', WITHDRAW_HELP);
  const devices = await (await c.client()).withdrawRuleSet(selector);
  c.emit({ devices }, () => c.io.out(`fleet rule set withdrawn from ${devices.length} device(s): ${devices.join(', ')}`));
});

const test = apiCommand(TEST_HELP, { samples: { type: 'string' }, max: { type: 'string' } }, async (c) => {
  const [file] = positionalsOf(c.positionals, ['FILE'], TEST_HELP) as [string];
  const max = c.values.max === undefined ? undefined : Number(c.values.max);
  if (max !== undefined && !(Number.isInteger(max) && max > 0)) throw usage(`--max expects a count, got ${c.values.max}`, TEST_HELP);
  const filter = sampleQueryOf(c.values.samples);
  const r = await (await c.client()).testRuleSet(await readRuleFile(file), filter, max);
  c.emit(r, () => {
    c.io.out(`${r.samples} sample(s) replayed${r.truncated ? ' (more matched: raise --max)' : ''}; ${r.firings.length + r.firings_omitted} alert(s) would have fired${r.firings_omitted ? ` (the first ${r.firings.length} listed)` : ''}`);
    if (r.firings.length) {
      for (const l of table(
        ['RULE', 'SEVERITY', 'DEVICE', 'CAMERA', 'TIME', 'SAMPLE', 'LABEL', 'COUNT'],
        r.firings.map((f) => [f.rule, f.severity, f.device_id, f.camera ?? '-', f.ts, f.sample_id, f.label, String(f.count)]),
      ))
        c.io.out(l);
    }
    for (const l of table(['RULE', 'FIRED'], Object.entries(r.per_rule).map(([k, n]) => [k, String(n)]))) c.io.out(l);
  });
});

export const rulesCmd = group(RULES_HELP, { push, list, deploy, withdraw, test });
