import { access, writeFile } from 'node:fs/promises';
import type { Device } from '../client/api-client.js';
import { parseTags } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, fields, ref, table, tags } from './format.js';

export const DEVICES_HELP = `Usage: edgeloop devices COMMAND

  register NAME --tags k=v,k2=v2 [--out FILE]   register a device; prints its secret once and
                                                writes its agent config to FILE
  list [--tag k=v] [--state online|offline]     devices, filtered by tags and state
  show ID                                       one device: tags, models, deployment, health

Run 'edgeloop devices COMMAND --help' for a command's options.`;

const REGISTER_HELP = `Usage: edgeloop devices register NAME [--tags k=v,k2=v2] [--out FILE] [--http-port N] [--force]

Registers a device under NAME (its id and MQTT username), prints its secret once (only a
hash is stored) and writes an agent config that starts as written, mode 0600:
  edgeloop-agent run --config FILE
It holds what the fleet knows (device id, tags, fleet public key, HTTP token for model
downloads, MQTT uplink to this fleet) and the device's own settings: its data directory
(.data/agents/NAME, beside FILE: queue and installed models, one per device) and its local
HTTP API (127.0.0.1, port --http-port). The model comes from the fleet: the agent starts
without one (/v1/infer answers 503 AGENT_MODEL_NOT_LOADED) and installs what a rollout sends
it. Every other key keeps its default (docs/configuration.md).

  --tags k=v,...   device tags (rollouts select devices by tag)
  --out FILE       agent config file (default NAME.agent.json); an existing file is kept
                   unless --force
  --http-port N    port of the agent's local HTTP API (default 8080; 0 picks a free one)`;

const LIST_HELP = `Usage: edgeloop devices list [--tag k=v]... [--state online|offline]

  --tag k=v     only devices with this tag (repeatable, or k=v,k2=v2; all must match)
  --state S     online or offline`;

const SHOW_HELP = `Usage: edgeloop devices show ID`;

const exists = (path: string): Promise<boolean> =>
  access(path).then(
    () => true,
    () => false,
  );

/**
 * The device's own settings, beside what the fleet knows: a data directory of its own (two
 * agents started from configs in one folder must not share a queue or a model store; relative
 * paths resolve against the config file's folder) and its local API's address.
 */
function deviceLocalConfig(deviceId: string, httpPort: number): { data_dir: string; http: { host: string; port: number } } {
  return { data_dir: `.data/agents/${deviceId}`, http: { host: '127.0.0.1', port: httpPort } };
}

const register = apiCommand(REGISTER_HELP, { tags: { type: 'string', multiple: true }, out: { type: 'string', short: 'o' }, 'http-port': { type: 'string' }, force: { type: 'boolean' } }, async (c) => {
  const [name] = positionalsOf(c.positionals, ['NAME'], REGISTER_HELP) as [string];
  const out = c.values.out ?? `${name}.agent.json`;
  const port = c.values['http-port'] === undefined ? 8080 : Number(c.values['http-port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usage(`--http-port must be a port number 0-65535, got ${c.values['http-port']}`, REGISTER_HELP);
  // Checked before registering: the secret is shown once, so the file must be writable.
  if (!c.values.force && (await exists(out))) throw usage(`${out} exists; pass --out FILE or --force`, REGISTER_HELP);
  const t = parseTags(c.values.tags, 'tags');
  const r = await (await c.client()).registerDevice(name, t);
  const config = { ...r.agent_config, ...deviceLocalConfig(r.device.id, port) };
  await writeFile(out, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  c.emit({ ...r, agent_config: config, config_file: out }, () => {
    c.io.out(`registered ${r.device.id}  tags ${tags(r.device.tags)}`);
    for (const l of fields([
      ['secret', `${r.secret}   (shown once; only its hash is stored)`],
      ['config', `${out}   (mode 0600: it holds the secret)`],
      ['data', `${config.data_dir}   (beside the config: queue and installed models)`],
      ['local API', `http://${config.http.host}:${port === 0 ? '<printed at start>' : port}/v1/infer`],
      ['model', 'from the fleet: the agent installs what a rollout sends it (until then /v1/infer answers 503)'],
      ['start', `edgeloop-agent run --config ${out}`],
    ], '  '))
      c.io.out(l);
  });
});

function deploymentOf(d: Device): string {
  const dep = d.deployment;
  if (!dep) return '-';
  return `${dep.phase} ${ref(dep.target)}`;
}

const list = apiCommand(LIST_HELP, { tag: { type: 'string', multiple: true }, state: { type: 'string' } }, async (c) => {
  positionalsOf(c.positionals, [], LIST_HELP);
  const state = c.values.state;
  if (state !== undefined && state !== 'online' && state !== 'offline') throw usage(`--state is online or offline, not ${state}`, LIST_HELP);
  const items = await (await c.client()).listDevices({ tags: parseTags(c.values.tag, 'tag'), ...(state ? { state } : {}) });
  c.emit({ items }, () => {
    if (!items.length) {
      c.io.out('no devices');
      return;
    }
    const now = Date.now();
    for (const l of table(
      ['ID', 'STATE', 'MODEL', 'DEPLOYMENT', 'LAST SEEN', 'TAGS'],
      items.map((d) => [d.id, d.state, ref(d.models.active), deploymentOf(d), ago(d.last_seen, now), tags(d.tags)]),
    ))
      c.io.out(l);
    c.io.out(`${items.length} device${items.length === 1 ? '' : 's'}, ${items.filter((d) => d.state === 'online').length} online`);
  });
});

const show = apiCommand(SHOW_HELP, {}, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], SHOW_HELP) as [string];
  const d = await (await c.client()).getDevice(id);
  c.emit(d, () => {
    const now = Date.now();
    const h = d.health;
    for (const l of fields([
      ['id', d.id],
      ['state', `${d.state} (last seen ${ago(d.last_seen, now)})`],
      ['tags', tags(d.tags)],
      ['agent', d.agent_version ?? '-'],
      ['active', ref(d.models.active)],
      ['previous', ref(d.models.previous)],
      ['installed', d.models.installed.map(ref).join(', ') || '-'],
      ['deployment', d.deployment ? `${deploymentOf(d)} (revision ${d.deployment.revision}${d.deployment.reason ? `: ${d.deployment.reason}` : ''})` : '-'],
      ['health', h ? `${h.inference_rate_per_s.toFixed(1)}/s, p95 ${h.latency_p95_ms.toFixed(1)} ms, outliers ${(h.outlier_rate * 100).toFixed(1)}%, queue ${h.queue.depth}` : '-'],
      ['registered', d.created_at],
    ]))
      c.io.out(l);
  });
});

export const devicesCmd = group(DEVICES_HELP, { register, list, show });
