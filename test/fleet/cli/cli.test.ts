import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceStatus } from '../../../shared/schemas/index.js';
import { agentConfigSchema } from '../../../agent/config.js';
import { main } from '../../../fleet/edges/cli/main.js';
import { FleetClient } from '../../../fleet/edges/client/api-client.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import { startFleetService, type FleetService } from '../../../fleet/boot/service.js';
import { sha256Hex } from '../../../shared/ids.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { registerDetector, seedDetectSamples } from '../../helpers/detect-samples.js';
import { seedSamples } from '../http/context.js';

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let data: string;

interface Run {
  code: number;
  out: string;
  err: string;
  json<T = Record<string, unknown>>(): T;
}

/** The CLI as a user runs it, against the service in `data` (fleet.json + admin.token). */
async function cli(...argv: string[]): Promise<Run> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await main([...argv, '--data', data], { out: (l) => out.push(l), err: (l) => err.push(l) });
  const text = out.join('\n');
  return { code, out: text, err: err.join('\n'), json: <T>() => JSON.parse(text) as T };
}

beforeAll(async () => {
  // The token comes from the data directory, as on a fresh install.
  delete process.env.EDGELOOP_TOKEN;
  tmp = tempDir('edgeloop-cli-');
  data = join(tmp.dir, 'fleet');
  svc = await startFleetService({ dataDir: data, httpPort: 0, mqttPort: 0, log: pino({ level: 'silent' }), http: createFleetHttp, tickMs: 50 });
  await imagePackage(join(tmp.dir, 'v1'), { version: '1.0.0', seed: 1 });
  await imagePackage(join(tmp.dir, 'v2'), { version: '2.0.0', seed: 2 });
});

afterAll(async () => {
  await svc.stop();
  tmp.cleanup();
});

describe('edgeloop CLI over the HTTP API', () => {
  it('registers a device and writes a valid agent config (mode 0600)', async () => {
    const file = join(tmp.dir, 'gw-1.agent.json');
    const r = await cli('devices', 'register', 'gw-1', '--tags', 'site=pit-3,line=2', '--out', file);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const cfg = agentConfigSchema.parse(JSON.parse(readFileSync(file, 'utf8')));
    expect(cfg.device_id).toBe('gw-1');
    expect(cfg.tags).toEqual({ site: 'pit-3', line: '2' });
    expect(cfg.uplink).toMatchObject({ kind: 'mqtt', url: svc.urls.mqtt, username: 'gw-1' });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // The secret is printed once, and it is the one in the config.
    expect(r.out).toContain(cfg.uplink.password as string);
    expect(await svc.ctx.devices.authenticate('gw-1', cfg.uplink.password as string)).toBe(true);

    // An existing config is never overwritten silently: the secret would be lost.
    const again = await cli('devices', 'register', 'gw-9', '--out', file);
    expect(again.code).toBe(2);
    expect(again.err).toMatch(/^FLEET_USAGE: .*exists/);
  });

  it('--json prints one document; list and show filter and format devices', async () => {
    const r = await cli('devices', 'register', 'gw-2', '--tags', 'site=pit-3', '--out', join(tmp.dir, 'gw-2.json'), '--json');
    expect(r.code).toBe(0);
    const doc = r.json<{ secret: string; config_file: string; device: { id: string } }>();
    expect(doc.device.id).toBe('gw-2');
    expect(doc.secret).toMatch(/\S{16,}/);
    await cli('devices', 'register', 'gw-3', '--tags', 'site=ridge-1', '--out', join(tmp.dir, 'gw-3.json'));

    const list = await cli('devices', 'list', '--tag', 'site=pit-3', '--json');
    expect(list.json<{ items: Array<{ id: string }> }>().items.map((d) => d.id)).toEqual(['gw-1', 'gw-2']);
    const human = await cli('devices', 'list');
    expect(human.out.split('\n')[0]).toMatch(/^ID\s+STATE\s+MODEL/);
    expect(human.out).toContain('3 devices, 0 online');
    expect((await cli('devices', 'list', '--state', 'online', '--json')).json<{ items: unknown[] }>().items).toEqual([]);

    const show = await cli('devices', 'show', 'gw-3');
    expect(show.code).toBe(0);
    expect(show.out).toMatch(/tags\s+site=ridge-1/);
    expect(show.out).not.toMatch(/^models/m);
    // A device serving two models: each slot with its deployment phase.
    const det = { name: 'detector', version: '1.0.0' };
    const ppe = { name: 'ppe-classifier', version: '1.0.0' };
    svc.ctx.devices.applyStatus(
      deviceStatus.parse({
        type: 'device_status', v: 1, device_id: 'gw-3', ts: new Date().toISOString(), online: true, agent_version: '0.1.0',
        models: { active: det, previous: null, installed: [det, ppe] },
        slots: [
          { name: 'detector', active: det, previous: null, installed: [det] },
          { name: 'ppe-classifier', active: ppe, previous: null, installed: [ppe], deployment: { revision: 3, target: { name: 'ppe-classifier', version: '2.0.0' }, phase: 'downloading' } },
        ],
      }),
    );
    expect((await cli('devices', 'show', 'gw-3')).out).toMatch(/^models\s+detector 1\.0\.0; ppe-classifier 1\.0\.0 \(downloading 2\.0\.0\)$/m);
    const missing = await cli('devices', 'show', 'nope');
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(/^FLEET_DEVICE_UNKNOWN: /);
  });

  it('pushes models and shows them', async () => {
    const r = await cli('models', 'push', join(tmp.dir, 'v1'));
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^registered pets@1\.0\.0: \d+ files/);
    expect(r.err).toMatch(/pushing/);
    const v2 = await cli('models', 'push', join(tmp.dir, 'v2'), '--json');
    expect(v2.json<{ created: boolean; version: { ref: string } }>()).toMatchObject({ created: true, version: { ref: 'pets@2.0.0' } });
    // Same content again: a no-op.
    expect((await cli('models', 'push', join(tmp.dir, 'v2'))).out).toMatch(/^already registered pets@2\.0\.0/);

    const list = await cli('models', 'list', '--json');
    expect(list.json<{ items: Array<{ ref: string }> }>().items.map((m) => m.ref)).toEqual(['pets@1.0.0', 'pets@2.0.0']);
    const show = await cli('models', 'show', 'pets@2.0.0');
    expect(show.out).toMatch(/status\s+registered/);
    expect(show.out).toContain('model.onnx');
    const lineage = await cli('models', 'lineage', 'pets@2.0.0', '--json');
    // The full chain (a pushed package has no training run or dataset: those steps are empty).
    expect(lineage.json<{ steps: Array<{ model: { version: string }; run: unknown }> }>().steps.map((x) => [x.model.version, x.run])).toEqual([['2.0.0', null]]);
    expect((await cli('models', 'show', 'pets')).code).toBe(2);
    expect((await cli('models', 'show', 'pets@9.9.9')).err).toMatch(/^FLEET_MODEL_NOT_FOUND: /);
  });

  it('creates a rollout from flags, shows its status, pauses and resumes it', async () => {
    const created = await cli('rollouts', 'create', 'pets@2.0.0', '--target', 'site=pit-3', '--canary', '50%', '--waves', '100%', '--bake', '10m', '--id', 'ro-cli-1', '--json');
    expect(created.err).toBe('');
    expect(created.code).toBe(0);
    const d = created.json<{ rollout: { id: string; status: string; devices: { target: number } }; state: { plan: { canary: { bake_s: number; devices: unknown }; waves: unknown[] } } }>();
    expect(d.rollout).toMatchObject({ id: 'ro-cli-1', status: 'running', devices: { target: 2 } });
    expect(d.state.plan.canary).toMatchObject({ bake_s: 600, devices: { percent: 50 } });
    expect(d.state.plan.waves).toEqual([expect.objectContaining({ devices: { percent: 100 }, bake_s: 600 })]);

    const all = await cli('rollouts', 'status');
    expect(all.out.split('\n')[0]).toMatch(/^ID\s+MODEL\s+STATUS/);
    expect(all.out).toContain('ro-cli-1');
    const one = await cli('rollouts', 'status', 'ro-cli-1');
    expect(one.code).toBe(0);
    expect(one.out).toMatch(/^ro-cli-1 {2}pets@2\.0\.0 {2}running/);
    expect(one.out).toMatch(/canary\s+50%\s+10m\s+1\s+0\s+current/);
    expect(one.out).toMatch(/^gates {2}waiting/m);
    expect(one.out).toMatch(/decisions \(latest/);

    const paused = await cli('rollouts', 'pause', 'ro-cli-1');
    expect(paused.code).toBe(0);
    expect(paused.out).toMatch(/^pause: ro-cli-1 paused/);
    expect((await cli('rollouts', 'status', 'ro-cli-1', '--json')).json<{ rollout: { status: string } }>().rollout.status).toBe('paused');
    // --watch stops at a pause and says where the rollout stands.
    const watched = await cli('rollouts', 'status', 'ro-cli-1', '--watch', '--interval', '0.05');
    expect(watched.code).toBe(0);
    expect(watched.out).toMatch(/ro-cli-1 paused canary: installed 0\/2/);
    const resumed = await cli('rollouts', 'resume', 'ro-cli-1', '--json');
    expect(resumed.json<{ rollout: { status: string } }>().rollout.status).toBe('running');
    const conflict = await cli('rollouts', 'resume', 'ro-cli-1');
    expect(conflict.code).toBe(1);
    expect(conflict.err).toMatch(/^FLEET_CONFLICT: cannot resume/);
  });

  it('creates a rollout from a plan file; the server names what is wrong in a bad one', async () => {
    const good = join(tmp.dir, 'plan.json');
    writeFileSync(good, JSON.stringify({ canary: { devices: { count: 1 }, bake_s: 30 }, waves: [{ devices: { percent: 100 } }], on_gate_failure: 'abort' }));
    const r = await cli('rollouts', 'create', 'pets@2.0.0', '--target', 'site=ridge-1', '--plan', good, '--json');
    expect(r.err).toBe('');
    const d = r.json<{ rollout: { selector: Record<string, string> }; state: { plan: { on_gate_failure: string; canary: { devices: unknown } } } }>();
    expect(d.rollout.selector).toEqual({ site: 'ridge-1' });
    expect(d.state.plan).toMatchObject({ on_gate_failure: 'abort', canary: { devices: { count: 1 } } });

    const bad = join(tmp.dir, 'bad-plan.json');
    writeFileSync(bad, JSON.stringify({ waves: [{ devices: { percent: 50 } }] }));
    const refused = await cli('rollouts', 'create', 'pets@1.0.0', '--all', '--plan', bad);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^INPUT_INVALID: .*plan\.waves\.0\.devices: the last wave must be \{ percent: 100 \}/);
    writeFileSync(bad, '{ not json');
    expect((await cli('rollouts', 'create', 'pets@1.0.0', '--all', '--plan', bad)).err).toMatch(/^INPUT_INVALID: the plan .* is not valid JSON/);
  });

  it('refuses a labeler: FLEET_FORBIDDEN, exit 1', async () => {
    const { token } = svc.ctx.users.issue('lab', 'labeler');
    const r = await cli('rollouts', 'create', 'pets@1.0.0', '--target', 'site=ridge-1', '--token', token);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^FLEET_FORBIDDEN: role labeler does not have the rollouts permission$/);
    expect(r.out).toBe('');
    // ...who may read.
    expect((await cli('rollouts', 'status', '--token', token)).code).toBe(0);
  });

  it('lists and fetches samples, labels them and exports a dataset', async () => {
    await seedSamples(svc.ctx, [
      { id: 's-1', device: 'gw-1', label: 'cat', score: 0.41 },
      { id: 's-2', device: 'gw-1', label: 'dog', score: 0.35 },
      { id: 's-3', device: 'gw-3', label: 'cat', score: 0.52 },
    ]);
    const list = await cli('samples', 'list', '--device', 'gw-1', '--json');
    expect(list.json<{ items: Array<{ sample_id: string }> }>().items.map((s) => s.sample_id)).toEqual(['s-1', 's-2']);
    const human = await cli('samples', 'list', '--limit', '2');
    expect(human.out).toMatch(/^ID\s+DEVICE\s+MODEL\s+PREDICTED/);
    expect(human.out).toMatch(/more: --cursor \S+/);

    const file = join(tmp.dir, 's-1.png');
    const got = await cli('samples', 'get', 's-1', '--out', file);
    expect(got.code).toBe(0);
    expect(sha256Hex(readFileSync(file))).toBe(svc.ctx.ingest.get('s-1').blob.sha256);

    expect((await cli('labels', 'set', 's-1', 'dog')).out).toMatch(/^s-1: dog \(the model said cat/);
    await cli('labels', 'set', 's-3', 'cat');
    const progress = await cli('labels', 'progress', '--json');
    expect(progress.json()).toEqual({ total: 3, labeled: 2, skipped: 0, unlabeled: 1 });
    expect((await cli('labels', 'progress', '--device', 'gw-1')).out).toBe('labeled 1 of 2 (50.0%), skipped 0, unlabeled 1');

    const exported = await cli('datasets', 'export', '--name', 'first', '--json');
    const ds = exported.json<{ created: boolean; dataset: { id: string; counts: Record<string, number> } }>();
    expect(ds).toMatchObject({ created: true, dataset: { counts: { dog: 1, cat: 1 } } });
    expect((await cli('datasets', 'list')).out).toContain(ds.dataset.id.slice(0, 12));
    const shown = await cli('datasets', 'show', ds.dataset.id.slice(0, 12));
    expect(shown.code).toBe(0);
    expect(shown.out).toContain(`dataset ${ds.dataset.id} (first)`);
  });

  it('adds, lists and revokes users, and shows the audit log (edgeloop users)', async () => {
    const added = await cli('users', 'add', 'viv', '--role', 'viewer', '--expires', '30d', '--json');
    expect(added.code).toBe(0);
    const a = added.json<{ token: string; user: { name: string; role: string; expires_at: string } }>();
    expect(a.user).toMatchObject({ name: 'viv', role: 'viewer' });
    expect(Date.parse(a.user.expires_at) - Date.now()).toBeGreaterThan(29 * 86400_000);
    expect((await cli('devices', 'list', '--token', a.token)).code).toBe(0);
    expect((await cli('users', 'list')).out).toMatch(/viv\s+viewer\s+active/);
    // A viewer may not manage users.
    expect((await cli('users', 'add', 'x', '--role', 'admin', '--token', a.token)).err).toMatch(/^FLEET_FORBIDDEN: /);
    expect((await cli('users', 'add', 'viv', '--role', 'viewer')).err).toMatch(/^FLEET_USER_EXISTS: /);
    expect((await cli('users', 'add', 'x', '--role', 'root')).code).toBe(2);
    const revoked = await cli('users', 'revoke', 'viv');
    expect(revoked.out).toMatch(/^revoked viv at /);
    expect((await cli('devices', 'list', '--token', a.token)).err).toMatch(/^FLEET_AUTH_FAILED: /);
    expect((await cli('users', 'revoke', 'nobody')).err).toMatch(/^FLEET_USER_NOT_FOUND: /);
    const audit = await cli('users', 'audit', '--actor', 'admin', '--json');
    const actions = audit.json<{ items: Array<{ action: string; target: string }> }>().items.map((e) => `${e.action} ${e.target}`);
    expect(actions.slice(0, 2)).toEqual(['user.revoke viv', 'user.add viv']);
    expect(actions).toContain('model.push pets@1.0.0');
  });

  it('answers --help on every command and exit 2 on usage errors', async () => {
    const commands = [
      ['devices', 'register'],
      ['devices', 'list'],
      ['devices', 'show'],
      ['models', 'push'],
      ['models', 'list'],
      ['models', 'show'],
      ['models', 'lineage'],
      ['rollouts', 'create'],
      ['rollouts', 'status'],
      ['rollouts', 'pause'],
      ['rollouts', 'promote'],
      ['samples', 'list'],
      ['samples', 'get'],
      ['labels', 'set'],
      ['labels', 'boxes'],
      ['labels', 'progress'],
      ['datasets', 'export'],
      ['datasets', 'list'],
      ['datasets', 'show'],
      ['users', 'add'],
      ['users', 'list'],
      ['users', 'revoke'],
      ['users', 'audit'],
    ];
    for (const c of commands) {
      const r = await cli(...c, '--help');
      expect(r.code, c.join(' ')).toBe(0);
      expect(r.out, c.join(' ')).toMatch(/^Usage: edgeloop /);
      expect(r.out, c.join(' ')).toContain('--json');
    }
    for (const g of ['devices', 'models', 'rollouts', 'samples', 'labels', 'datasets', 'users']) expect((await cli(g, '--help')).code).toBe(0);

    expect((await cli('frobnicate')).code).toBe(2);
    const sub = await cli('devices', 'frobnicate');
    expect(sub.code).toBe(2);
    expect(sub.err).toMatch(/^USAGE: unknown command 'frobnicate'/);
    expect((await cli('devices', 'list', '--bogus')).code).toBe(2);
    expect((await cli('rollouts', 'create', 'pets@2.0.0')).code).toBe(2);
    const badCanary = await cli('rollouts', 'create', 'pets@2.0.0', '--target', 'site=x', '--canary', 'ten');
    expect(badCanary.code).toBe(2);
    expect(badCanary.err).toMatch(/^FLEET_USAGE: --canary expects/);
    expect((await cli('rollouts', 'create', 'pets@2.0.0', '--target', 'site=x', '--plan', 'p.json', '--bake', '1m')).code).toBe(2);
    // serve checks its flags before it starts anything.
    expect((await cli('serve', '--help')).out).toContain('--notify-rate N');
    const fresh = join(tmp.dir, 'serve-unstarted');
    for (const [rate, says] of [['0', /^FLEET_USAGE: --notify-rate must be a positive number/], ['fast', /^USAGE: --notify-rate expects a number/]] as const) {
      const err: string[] = [];
      expect(await main(['serve', '--data', fresh, '--http-port', '0', '--mqtt-port', '0', '--notify-rate', rate], { out: () => undefined, err: (l) => err.push(l) }), rate).toBe(2);
      expect(err.join('\n'), rate).toMatch(says);
    }
    expect(existsSync(fresh)).toBe(false);
  });

  it('says when the service cannot be reached', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l) };
    expect(await main(['devices', 'list', '--data', join(tmp.dir, 'nowhere')], io)).toBe(1);
    expect(err.pop()).toMatch(/^FLEET_UNREACHABLE: no --url given and .*fleet\.json does not exist/);
    // A port that was free a moment ago: nothing listens there.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    expect(await main(['devices', 'list', '--url', `http://127.0.0.1:${port}`, '--token', 'x'], io)).toBe(1);
    expect(err.pop()).toBe(`FLEET_UNREACHABLE: cannot reach the fleet service at http://127.0.0.1:${port} (ECONNREFUSED); is it running (edgeloop serve)?`);
  });
});

describe('FleetClient', () => {
  it('validates answers with the server schemas and keeps the server error codes', async () => {
    const token = readFileSync(join(data, 'admin.token'), 'utf8').trim();
    const c = new FleetClient({ url: `${svc.urls.http}/`, token });
    expect(await c.me()).toEqual({ name: 'admin', role: 'admin' });
    expect((await c.health()).status).toBe('ok');
    await expect(new FleetClient({ url: svc.urls.http }).listDevices()).rejects.toMatchObject({ code: 'FLEET_AUTH_FAILED', status: 401 });
    await expect(c.createRollout({ model: { name: 'pets', version: '2.0.0' }, selector: {}, plan: { waves: [{ devices: { percent: 50 } }] } })).rejects.toMatchObject({ code: 'INPUT_INVALID', status: 400 });

    // A server that answers another shape (another version of the API) is caught, not trusted.
    const liar = new FleetClient({ url: 'http://fleet.invalid', token, fetch: () => Promise.resolve(new Response(JSON.stringify({ items: [{ id: 'x' }] }), { status: 200 })) });
    await expect(liar.listDevices()).rejects.toMatchObject({ code: 'FLEET_RESPONSE_INVALID' });
    const proxy = new FleetClient({ url: 'http://fleet.invalid', fetch: () => Promise.resolve(new Response('<html>bad gateway</html>', { status: 502 })) });
    await expect(proxy.health()).rejects.toMatchObject({ code: 'FLEET_RESPONSE_INVALID', details: { status: 502 } });
  });

  it('reads a URL and token from the data directory, the token from EDGELOOP_TOKEN first', async () => {
    const { resolveConnection } = await import('../../../fleet/edges/cli/common.js');
    const dir = join(tmp.dir, 'conn');
    await import('node:fs/promises').then((fs) => fs.mkdir(dir, { recursive: true }));
    writeFileSync(join(dir, 'fleet.json'), JSON.stringify({ http: 'http://127.0.0.1:9', mqtt: 'mqtt://x' }));
    writeFileSync(join(dir, 'admin.token'), 'elt_file\n');
    expect(await resolveConnection({ data: dir }, {})).toEqual({ url: 'http://127.0.0.1:9', token: 'elt_file' });
    expect(await resolveConnection({ data: dir }, { EDGELOOP_TOKEN: 'elt_env' })).toEqual({ url: 'http://127.0.0.1:9', token: 'elt_env' });
    expect(await resolveConnection({ data: dir, url: 'http://h', token: 'elt_flag' }, { EDGELOOP_TOKEN: 'elt_env' })).toEqual({ url: 'http://h', token: 'elt_flag' });
    expect(existsSync(join(dir, 'nothing'))).toBe(false);
  });
});

describe('edgeloop labels boxes', () => {
  it('labels a detection sample with boxes from JSON or @FILE, and names every box at fault', async () => {
    await registerDetector(svc.ctx, tmp.dir);
    await svc.ctx.devices.register('cam-b', { tags: { site: 'pit-9' } });
    await seedDetectSamples(svc.ctx, [{ id: 'b-1', device: 'cam-b', width: 120, height: 80, detections: [{ label: 'red', score: 0.4, box: [1, 2, 30, 40] }] }]);
    const r = await cli('labels', 'boxes', 'b-1', '[{"label":"red","box":[2,3,30,41]},{"label":"blue","box":[50,10,119,79]}]');
    expect(r.err).toBe('');
    expect(r.out).toBe('b-1: 2 boxes (red [2, 3, 30, 41]; blue [50, 10, 119, 79])');
    const file = join(tmp.dir, 'b-1.boxes.json');
    writeFileSync(file, '[]');
    expect((await cli('labels', 'boxes', 'b-1', `@${file}`)).out).toBe('b-1: nothing here (none)');
    expect(svc.ctx.ingest.get('b-1').label?.boxes).toEqual({ frame: { width: 120, height: 80 }, boxes: [] });
    const bad = await cli('labels', 'boxes', 'b-1', '[{"label":"red","box":[0,0,121,10]}]');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/^FLEET_BOXES_INVALID: .*outside the 120x80 image/);
    expect((await cli('labels', 'boxes', 'b-1', '{oops')).code).toBe(2);
  });
});
