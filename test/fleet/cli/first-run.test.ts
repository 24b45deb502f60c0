/**
 * A first run that cannot go wrong (issue 16): the checks that stop a newcomer from deploying a
 * model nobody checked. `pack` warns when a package has no golden inputs and refuses a golden
 * input whose label the model does not give (or that is not a label at all), naming the file;
 * `models push` refuses a package without golden inputs unless `--force`; `rollouts create`
 * refuses a shadow stage when no target device runs a model it could shadow. Real CLI, real
 * service on port 0, real ONNX Runtime.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import { startFleetService, type FleetService } from '../../../fleet/boot/service.js';
import { smallCnnModel } from '../../helpers/models.js';
import { patternImage, tempDir } from '../../helpers/packages.js';
import { waitUntil } from '../../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const children: ChildProcess[] = [];

let tmp: ReturnType<typeof tempDir>;
let svc: FleetService;
let data: string;

const cli = (...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli(argv);

beforeAll(async () => {
  delete process.env.EDGELOOP_TOKEN;
  tmp = tempDir('edgeloop-first-run-');
  data = join(tmp.dir, 'fleet');
  svc = await startFleetService({ dataDir: data, httpPort: 0, mqttPort: 0, log: pino({ level: 'silent' }), http: createFleetHttp, tickMs: 50 });
  writeFileSync(join(tmp.dir, 'model.onnx'), smallCnnModel({ channels: 1, height: 28, width: 28, classes: 4, seed: 5, layout: 'NCHW', inputType: 'float32' }).bytes);
  writeFileSync(join(tmp.dir, 'labels.txt'), 'cat\ndog\nbird\nfish\n');
  writeFileSync(join(tmp.dir, 'frame.png'), await patternImage(3));
});

afterAll(async () => {
  for (const c of children) {
    if (c.exitCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  await svc.stop();
  tmp.cleanup();
});

describe('a first run that cannot go wrong', () => {
  const at = (f: string): string => join(tmp.dir, f);
  const pack = (...extra: string[]) => cli('pack', at('model.onnx'), '--labels', at('labels.txt'), '--name', 'pets', ...extra);

  it('pack warns when the package has no golden inputs, and models push refuses it unless --force', async () => {
    const packed = await pack('--out', at('bare'), '--version', '1.0.0');
    expect(packed.code).toBe(0);
    expect(packed.out).toContain('0 golden inputs');
    expect(packed.err).toMatch(/^warning: no golden inputs: a device cannot smoke-test this package .* add --golden FILE=LABEL/m);

    const refused = await cli('models', 'push', at('bare'), '--data', data);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^FLEET_GOLDEN_MISSING: .*bare has no golden inputs.*--golden FILE=LABEL.*--force/);
    // Refused before anything was sent: the registry never saw it.
    expect(svc.ctx.registry.list().map((m) => `${m.name}@${m.version}`)).not.toContain('pets@1.0.0');

    const forced = await cli('models', 'push', at('bare'), '--force', '--data', data);
    expect(forced.err).not.toMatch(/FLEET_/);
    expect(forced.code).toBe(0);
    expect(forced.out).toMatch(/^registered pets@1\.0\.0/);
  });

  it('pack refuses a golden input whose label the model does not give, naming the file and the flags to check', async () => {
    // Without =LABEL the model's own answer is recorded, with a warning to check it.
    const recorded = await pack('--out', at('rec'), '--golden', at('frame.png'));
    expect(recorded.code).toBe(0);
    const predicted = /recorded the model's own prediction "(\w+)"/.exec(recorded.err)?.[1];
    expect(['cat', 'dog', 'bird', 'fish']).toContain(predicted);

    const other = ['cat', 'dog', 'bird', 'fish'].find((l) => l !== predicted)!;
    const wrong = await pack('--out', at('wrong'), '--golden', `${at('frame.png')}=${other}`);
    expect(wrong.code).toBe(1);
    expect(wrong.err).toContain(`FLEET_GOLDEN_MISMATCH: golden ${at('frame.png')}: expected ${other}, the model predicts ${predicted}`);
    expect(wrong.err).toMatch(/--invert/);

    const right = await pack('--out', at('right'), '--golden', `${at('frame.png')}=${predicted}`);
    expect(right.code).toBe(0);
    expect(right.err).toBe('');
    expect(right.out).toContain('1 golden inputs');
  });

  it('pack refuses a golden label that is not one of the labels', async () => {
    const r = await pack('--out', at('unknown'), '--golden', `${at('frame.png')}=horse`);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^FLEET_GOLDEN_MISMATCH: golden \S+frame\.png: expected label "horse" is not one of the labels \(cat, dog, bird, fish\)/);
  });

  it('rollouts create refuses a shadow stage when no target device runs a model yet, and says what to do', async () => {
    expect((await cli('devices', 'register', 'fresh-1', '--tags', 'site=new', '--out', at('fresh-1.agent.json'), '--data', data)).code).toBe(0);
    const r = await cli('rollouts', 'create', 'pets@1.0.0', '--target', 'site=new', '--shadow', '10%', '--canary', '50%', '--waves', '100%', '--bake', '1s', '--data', data);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^FLEET_ROLLOUT_SHADOW_EMPTY: none of the 1 devices matching site=new runs a model yet, so a shadow stage has nothing to run pets@1\.0\.0 beside: create the rollout without --shadow/);
    expect(svc.ctx.rollouts.list()).toEqual([]);
    // The same plan without the shadow stage is a first deploy.
    const ok = await cli('rollouts', 'create', 'pets@1.0.0', '--target', 'site=new', '--canary', '50%', '--waves', '100%', '--bake', '1s', '--data', data);
    expect(ok.err).not.toMatch(/FLEET_/);
    expect(ok.code).toBe(0);
  });

  it('devices register writes an agent config that starts as written: own data directory, local API, uplink to this fleet', { timeout: 60_000 }, async () => {
    const file = at('gw-run.agent.json');
    const reg = await cli('devices', 'register', 'gw-run', '--tags', 'site=run', '--out', file, '--http-port', '0', '--data', data);
    expect(reg.code).toBe(0);
    expect(reg.out).toMatch(/data\s+\.data\/agents\/gw-run/);
    expect(reg.out).toMatch(/model\s+from the fleet/);
    const written = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
    expect(written).toMatchObject({ device_id: 'gw-run', data_dir: '.data/agents/gw-run', http: { host: '127.0.0.1', port: 0 }, uplink: { kind: 'mqtt', url: svc.urls.mqtt } });

    // The file as written, nothing added: no EDGELOOP_AGENT_* override reaches the agent.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EDGELOOP_AGENT_')));
    const agent = spawn(process.execPath, ['--import', join(ROOT, 'node_modules/tsx/dist/loader.mjs'), join(ROOT, 'agent/cli/entry.ts'), 'run', '--config', file, '--log-format', 'json'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(agent);
    let out = '';
    let err = '';
    agent.stdout.on('data', (b: Buffer) => (out += b.toString()));
    agent.stderr.on('data', (b: Buffer) => (err += b.toString()));
    await waitUntil(() => out.includes('\n') || agent.exitCode !== null, 30_000, 'the agent\'s ready line');
    expect(agent.exitCode, err).toBeNull();
    const ready = JSON.parse(out.split('\n')[0]!) as { event: string; http: string; data_dir: string; model: unknown };
    // Relative to the config file's folder, whatever the agent's working directory.
    expect(ready).toMatchObject({ event: 'ready', data_dir: join(tmp.dir, '.data/agents/gw-run'), model: null });
    expect(existsSync(join(tmp.dir, '.data/agents/gw-run/queue.db'))).toBe(true);
    // Not healthy without a model (503), but answering and saying why.
    const health = (await (await fetch(`${ready.http}/healthz`)).json()) as { ok: boolean; model: unknown };
    expect(health).toMatchObject({ ok: false, model: null });
    // No model yet: the documented answer until a rollout delivers one.
    const infer = await fetch(`${ready.http}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(at('frame.png')) });
    expect(infer.status).toBe(503);
    // ...and the answer names the way out.
    expect(((await infer.json()) as { error: { code: string; message: string } }).error).toMatchObject({ code: 'AGENT_MODEL_NOT_LOADED', message: expect.stringMatching(/edgeloop rollouts create NAME@VERSION .*models\.initial/) });
    // The uplink in the file reaches this fleet with the device's credentials.
    await waitUntil(() => svc.ctx.devices.list({ tags: { site: 'run' } }).some((d) => d.state === 'online'), 20_000, 'gw-run online at the fleet');
  });
});
