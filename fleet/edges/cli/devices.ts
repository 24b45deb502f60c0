import { generateKeyPairSync } from 'node:crypto';
import { access, mkdir, rename, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { numberFlag } from '../../../shared/cli.js';
import { CERT_FILES } from '../../app/devices/agent-config.js';
import type { Device, IssuedCertificate } from '../client/api-client.js';
import { parseTags } from './args.js';
import { apiCommand, group, positionalsOf, usage, type ApiCall } from './common.js';
import { ago, fields, ref, table, tags } from './format.js';

export const DEVICES_HELP = `Usage: edgeloop devices COMMAND

  register NAME --tags k=v,k2=v2 [--out FILE]   register a device; prints its secret once and
                                                writes its agent config to FILE
  register NAME --cert [--dir DIR]              the same, with a device key made here and a
                                                certificate from the fleet CA (login over TLS)
  cert ID --dir DIR                             a new key and certificate (rotation)
  revoke ID                                     revoke the device's certificate
  list [--tag k=v] [--state online|offline]     devices, filtered by tags and state
  show ID                                       one device: tags, models, deployment, health

Run 'edgeloop devices COMMAND --help' for a command's options.`;

const REGISTER_HELP = `Usage: edgeloop devices register NAME [--tags k=v,k2=v2] [--out FILE] [--http-port N] [--force]
       edgeloop devices register NAME --cert [--dir DIR] [--days N] [--tags k=v] [--http-port N] [--force]

Registers a device under NAME (its id and MQTT username), prints its secret once (only a
hash is stored) and writes an agent config that starts as written, mode 0600:
  edgeloop-agent run --config FILE
It holds what the fleet knows (device id, tags, fleet public key, HTTP token for model
downloads, MQTT uplink to this fleet) and the device's own settings: its data directory
(.data/agents/NAME, beside FILE: queue and installed models, one per device) and its local
HTTP API (127.0.0.1, port --http-port). The model comes from the fleet: the agent starts
without one (/v1/infer answers 503 AGENT_MODEL_NOT_LOADED) and installs what a rollout sends
it. Every other key keeps its default (docs/configuration.md).

With --cert the device logs in to the broker with an X.509 certificate instead of its secret
(the fleet must run with --mqtts-port): an ECDSA P-256 key is made here and only its public
half goes to the fleet, whose CA certifies it (CN=NAME, SAN URI urn:edgeloop:device:NAME).
DIR gets ${CERT_FILES.key} (mode 0600), ${CERT_FILES.cert}, ${CERT_FILES.ca} and agent.json,
which uses them; copy DIR to the device. The secret stays as the HTTP token (model downloads).

  --tags k=v,...   device tags (rollouts select devices by tag)
  --out FILE       agent config file (default NAME.agent.json, or DIR/agent.json with --cert);
                   an existing file is kept unless --force
  --http-port N    port of the agent's local HTTP API (default 8080; 0 picks a free one)
  --cert           log in with a certificate from the fleet CA
  --dir DIR        with --cert: where the key, certificates and config go (default NAME)
  --days N         with --cert: certificate validity in days (default 365, at most 3650)`;

const CERT_HELP = `Usage: edgeloop devices cert ID --dir DIR [--days N]

Rotates the device's certificate: a new ECDSA P-256 key is made here, the fleet CA certifies
its public half, and ${CERT_FILES.key}, ${CERT_FILES.cert} and ${CERT_FILES.ca} in DIR are replaced
(the agent config there keeps pointing at them; restart the agent). The previous certificate
is refused from then on.

  --dir DIR    the device's directory (as written by register --cert)
  --days N     certificate validity in days (default 365, at most 3650)`;

const REVOKE_HELP = `Usage: edgeloop devices revoke ID

Revokes the device's certificate: the broker refuses it from now on and ends its session. Issue
a new one with edgeloop devices cert.`;

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

/** A device key pair made here: the private key never leaves this machine. */
function deviceKeyPair(): { publicPem: string; privatePem: string } {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { publicPem: k.publicKey.export({ type: 'spki', format: 'pem' }) as string, privatePem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

/**
 * Write the key and certificates into `dir`, each through a temporary name then renamed, so a
 * failure midway leaves the previous set whole rather than a key without its certificate.
 */
async function writeCertFiles(dir: string, privatePem: string, cert: IssuedCertificate): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: Array<[string, string, number]> = [
    [CERT_FILES.key, privatePem, 0o600],
    [CERT_FILES.cert, cert.pem, 0o644],
    [CERT_FILES.ca, cert.ca_pem, 0o644],
  ];
  for (const [name, text, mode] of files) await writeFile(join(dir, `${name}.new`), text, { mode });
  for (const [name] of files) await rename(join(dir, `${name}.new`), join(dir, name));
}

const days = (v: string | undefined, help: string): number | undefined => {
  const n = numberFlag(v, 'days');
  if (n !== undefined && !(Number.isInteger(n) && n >= 1 && n <= 3650)) throw usage(`--days is a whole number of days from 1 to 3650, not ${v}`, help);
  return n;
};

const registerOptions = {
  tags: { type: 'string', multiple: true },
  out: { type: 'string', short: 'o' },
  'http-port': { type: 'string' },
  force: { type: 'boolean' },
  cert: { type: 'boolean' },
  dir: { type: 'string' },
  days: { type: 'string' },
} as const;

const register = apiCommand(REGISTER_HELP, registerOptions, async (c) => {
  const [name] = positionalsOf(c.positionals, ['NAME'], REGISTER_HELP) as [string];
  if (!c.values.cert && (c.values.dir !== undefined || c.values.days !== undefined)) throw usage('--dir and --days go with --cert', REGISTER_HELP);
  const port = c.values['http-port'] === undefined ? 8080 : Number(c.values['http-port']);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw usage(`--http-port must be a port number 0-65535, got ${c.values['http-port']}`, REGISTER_HELP);
  if (c.values.cert) return registerWithCert(c, name, port);
  const out = c.values.out ?? `${name}.agent.json`;
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

async function registerWithCert(c: ApiCall<typeof registerOptions>, name: string, port: number): Promise<void> {
  const dir = c.values.dir ?? name;
  const out = c.values.out ?? join(dir, 'agent.json');
  const validity = days(c.values.days, REGISTER_HELP);
  if (!c.values.force) for (const f of [out, join(dir, CERT_FILES.key), join(dir, CERT_FILES.cert)]) if (await exists(f)) throw usage(`${f} exists; pass another --dir or --force`, REGISTER_HELP);
  const t = parseTags(c.values.tags, 'tags');
  const key = deviceKeyPair();
  const r = await (await c.client()).registerDevice(name, t, { publicKey: key.publicPem, ...(validity ? { days: validity } : {}) });
  if (!r.certificate) throw new Error('the fleet answered without a certificate');
  await writeCertFiles(dir, key.privatePem, r.certificate);
  // The config's TLS paths are relative to the config file: point them at DIR from wherever it is.
  const config = { ...r.agent_config, ...deviceLocalConfig(r.device.id, port), uplink: 'tls' in r.agent_config.uplink ? { ...r.agent_config.uplink, tls: relativeTls(out, dir) } : r.agent_config.uplink };
  await writeFile(out, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  const cert = r.certificate;
  c.emit({ device: r.device, secret: r.secret, agent_config: config, certificate: { sha256: cert.sha256, serial: cert.serial, not_after: cert.not_after }, dir, config_file: out }, () => {
    c.io.out(`registered ${r.device.id}  tags ${tags(r.device.tags)}`);
    for (const l of fields([
      ['certificate', `${join(dir, CERT_FILES.cert)}   (valid until ${cert.not_after}, sha256 ${cert.sha256.slice(0, 16)}...)`],
      ['key', `${join(dir, CERT_FILES.key)}   (mode 0600; made here, never sent)`],
      ['broker', `${config.uplink.url}`],
      ['secret', `${r.secret}   (HTTP token only; shown once)`],
      ['config', `${out}   (mode 0600)`],
      ['start', `edgeloop-agent run --config ${out}`],
    ], '  '))
      c.io.out(l);
  });
}

function relativeTls(configFile: string, dir: string): { ca: string; cert: string; key: string } {
  const rel = (f: string): string => {
    const r = relative(dirname(resolve(configFile)), resolve(dir, f));
    return r || f;
  };
  return { ca: rel(CERT_FILES.ca), cert: rel(CERT_FILES.cert), key: rel(CERT_FILES.key) };
}

const cert = apiCommand(CERT_HELP, { dir: { type: 'string' }, days: { type: 'string' } }, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], CERT_HELP) as [string];
  if (!c.values.dir) throw usage('--dir DIR is required: where the new key and certificate go', CERT_HELP);
  const dir = c.values.dir;
  const validity = days(c.values.days, CERT_HELP);
  const key = deviceKeyPair();
  const r = await (await c.client()).issueCertificate(id, key.publicPem, validity);
  await writeCertFiles(dir, key.privatePem, r);
  c.emit({ device_id: id, sha256: r.sha256, serial: r.serial, not_after: r.not_after, dir }, () => {
    c.io.out(`new certificate for ${id}: valid until ${r.not_after}, sha256 ${r.sha256.slice(0, 16)}...`);
    c.io.out(`  ${join(dir, CERT_FILES.key)}, ${join(dir, CERT_FILES.cert)}, ${join(dir, CERT_FILES.ca)} replaced; the previous certificate is refused from now on`);
  });
});

const revoke = apiCommand(REVOKE_HELP, {}, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], REVOKE_HELP) as [string];
  const d = await (await c.client()).revokeCertificate(id);
  c.emit(d, () => c.io.out(`revoked the certificate of ${id} (sha256 ${d.certificate?.sha256.slice(0, 16) ?? '-'}...); the broker refuses it from now on`));
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
      // A device serving several models: each slot with its own deployment phase.
      ...(d.slots && d.slots.length > 1 ? [['models', d.slots.map((s) => `${s.name} ${s.active ? s.active.version : '-'}${s.deployment ? ` (${s.deployment.phase} ${s.deployment.target.version})` : ''}`).join('; ')] as [string, string]] : []),
      ['deployment', d.deployment ? `${deploymentOf(d)} (revision ${d.deployment.revision}${d.deployment.reason ? `: ${d.deployment.reason}` : ''})` : '-'],
      ['rules', rulesOf(d)],
      ['login', loginOf(d)],
      ['health', h ? `${h.inference_rate_per_s.toFixed(1)}/s, p95 ${h.latency_p95_ms.toFixed(1)} ms, outliers ${(h.outlier_rate * 100).toFixed(1)}%, queue ${h.queue.depth}` : '-'],
      ['registered', d.created_at],
    ]))
      c.io.out(l);
  });
});

/** The alert rule set the device runs (and the last it refused), for `show`. */
function rulesOf(d: Device): string {
  const r = d.rules;
  if (!r) return '-';
  const runs = r.source === 'fleet' ? `${r.name}@${r.version} (sha256 ${r.sha256?.slice(0, 12)}...)` : r.source === 'config' ? 'from its config file' : 'none';
  return r.refused ? `${runs}; refused ${r.refused.name ?? '?'}@${r.refused.version ?? '?'}: ${r.refused.code} ${r.refused.message}` : runs;
}

/** How the device logs in to the broker, for `show`. */
function loginOf(d: Device): string {
  const c = d.certificate;
  if (!c) return 'secret';
  if (c.revoked_at) return `certificate revoked ${c.revoked_at} (sha256 ${c.sha256.slice(0, 16)}...)`;
  return `certificate until ${c.not_after} (serial ${c.serial}, sha256 ${c.sha256.slice(0, 16)}...)`;
}

export const devicesCmd = group(DEVICES_HELP, { register, cert, revoke, list, show });
