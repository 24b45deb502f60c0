/**
 * The newcomer's path through the README's "The fleet service" section, run as a newcomer runs
 * it: every `npx edgeloop` / `npx edgeloop-agent` line of that section's shell block, in order,
 * as a child process in a fresh working directory, with the README's own arguments, and the
 * block's `curl` frame. So the README cannot drift from the CLI without this test failing.
 *
 * What differs from a person at a terminal, and why:
 * - ports: `--http-port 8600 --mqtt-port 1883` (serve) and `--http-port 8080` (register) run as
 *   `0` (the printed URLs are parsed), so parallel CI jobs never collide; the agent otherwise
 *   starts from the config file `devices register` wrote, unchanged;
 * - time: `--bake 1m` runs as `--bake 1s`, and the agent reports telemetry every second
 *   (`EDGELOOP_AGENT_UPLINK__TELEMETRY_INTERVAL_S=1`) instead of every 10 s;
 * - the entry points: `npx edgeloop` runs as `node --import tsx fleet/main.ts` (and
 *   agent/cli/entry.ts), the files `bin/edgeloop.js` and `bin/edgeloop-agent.js` load compiled
 *   from dist/. A stale or missing dist/ in a checkout must not decide this test (the build is
 *   covered by test/fleet/console/dist-assets.test.ts), nor must npm's npx cache.
 * The newcomer brings nothing: the model is the one `edgeloop sample-model` trains (real mnist
 * digits), and the frames posted to the agent's `POST /v1/infer` are its held-out digits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { patternImage, tempDir } from '../helpers/packages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY: Record<string, string> = { edgeloop: join(ROOT, 'fleet/main.ts'), 'edgeloop-agent': join(ROOT, 'agent/cli/entry.ts') };
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');

/** The `npx edgeloop...` lines of the README's fleet section (without `npx`), comments stripped, and its `curl` line. */
function readmeBlock(): { commands: string[][]; curl: string } {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The fleet service'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  const lines = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim());
  return {
    commands: lines.filter((l) => /^npx edgeloop(-agent)? /.test(l)).map((l) => l.split(/\s+/).slice(1)),
    curl: lines.find((l) => l.startsWith('curl ')) ?? '',
  };
}

const children: ChildProcess[] = [];
const tmp = tempDir('edgeloop-walkthrough-');
const env = { ...process.env, EDGELOOP_TOKEN: '', EDGELOOP_LOG_LEVEL: 'warn', EDGELOOP_AGENT_UPLINK__TELEMETRY_INTERVAL_S: '1' };
delete (env as Record<string, string | undefined>).EDGELOOP_TOKEN;

afterAll(async () => {
  for (const c of children.reverse()) {
    if (c.exitCode !== null) continue;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
  }
  tmp.cleanup();
});

function args(argv: string[]): string[] {
  const [bin, ...rest] = argv as [string, ...string[]];
  const entry = ENTRY[bin];
  if (!entry) throw new Error(`not a CLI: ${bin}`);
  return ['--import', TSX, entry, ...rest];
}

/** Run a command to completion; fails the test on a non-zero exit. */
function run(argv: string[]): Promise<{ out: string; err: string }> {
  return exec(argv).then((r) => (r.code === 0 ? r : Promise.reject(new Error(`${argv.join(' ')} exited with ${r.code}\n${r.out}\n${r.err}`))));
}

/** Run a command to completion, whatever its exit code. */
function exec(argv: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args(argv), { cwd: tmp.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** Start a long-running command and wait for a line of its stdout to match. */
function start(argv: string[], ready: RegExp, timeoutMs = 30_000): Promise<{ child: ChildProcess; out: () => string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args(argv), { cwd: tmp.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(c);
    let out = '';
    let err = '';
    const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} not ready in time\n${out}\n${err}`)), timeoutMs);
    c.stdout.on('data', (b: Buffer) => {
      out += b.toString();
      if (ready.test(out)) {
        clearTimeout(timer);
        resolve({ child: c, out: () => out });
      }
    });
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('exit', (code) => reject(new Error(`${argv.join(' ')} exited with ${code}\n${out}\n${err}`)));
  });
}

const json = <T>(r: { out: string }): T => JSON.parse(r.out) as T;

describe('newcomer walk-through of the README fleet section (real CLI processes)', () => {
  it('sample model, serve, register, agent from its config, pack, push, first rollout, a right answer, label, export', { timeout: 420_000 }, async () => {
    const { commands: cmds, curl } = readmeBlock();
    const find = (prefix: string): string[] => {
      const c = cmds.find((x) => x.join(' ').startsWith(prefix));
      if (!c) throw new Error(`the README's fleet section has no "npx ${prefix} ..." line`);
      return c;
    };
    const portsZero = (argv: string[]): string[] => argv.map((a, i, all) => (all[i - 1] === '--http-port' || all[i - 1] === '--mqtt-port' ? '0' : a));
    // The block's order is the order that works: a model is deployed before frames are sent.
    const order = ['edgeloop serve', 'edgeloop devices register', 'edgeloop-agent run', 'edgeloop sample-model', 'edgeloop pack', 'edgeloop models push', 'edgeloop rollouts create', 'edgeloop rollouts status'].map((p) =>
      cmds.findIndex((x) => x.join(' ').startsWith(p)),
    );
    expect(order.every((i, k) => i >= 0 && (k === 0 || i > order[k - 1]!)), `README order ${order.join(',')}`).toBe(true);
    // The first rollout is a first deploy: no shadow stage with nothing to shadow.
    expect(find('edgeloop rollouts create')).not.toContain('--shadow');

    // 1. The sample model: real digits, with labels, golden inputs and held-out frames.
    const sample = await run(find('edgeloop sample-model'));
    expect(sample.out).toMatch(/accuracy on 500 held-out digits: (9\d|100)\.\d%/);
    const frames = readdirSync(join(tmp.dir, 'sample/frames')).sort();
    expect(frames.length).toBeGreaterThanOrEqual(10);

    // 2. Serve (ports 0: the chosen ones are printed).
    const serve = await start(portsZero(find('edgeloop serve')), /admin token[^\n]*: \S+\n/);
    const consoleUrl = /console\s+(http:\S+)/.exec(serve.out())?.[1] as string;
    const adminToken = /admin token[^:]*: (\S+)/.exec(serve.out())?.[1] as string;
    expect(consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/console\/$/);
    expect(adminToken.length).toBeGreaterThan(20);

    // 3. Register the device: its agent config is written where the README says.
    const register = find('edgeloop devices register');
    await run(portsZero(register));
    const configFile = `${register[3]}.agent.json`;
    expect(existsSync(join(tmp.dir, configFile))).toBe(true);

    // 4. Start the agent with that config, exactly as printed; it has no model yet.
    const agentCmd = find('edgeloop-agent run');
    expect(agentCmd).toEqual(['edgeloop-agent', 'run', '--config', configFile]);
    const agent = await start(agentCmd, /"event":"ready"[^\n]*\n/);
    const ready = JSON.parse(agent.out().split('\n')[0] as string) as { http: string; model: unknown };
    expect(ready.model).toBeNull();
    const agentUrl = ready.http;

    // 5. Pack: without --invert the golden inputs do not give their labels, and pack says so.
    const packCmd = find('edgeloop pack');
    const outAt = packCmd.indexOf('--out');
    const noInvert = packCmd.filter((a) => a !== '--invert').map((a, i, all) => (all[i - 1] === '--out' ? 'pkg-no-invert' : a));
    const refused = await exec(noInvert);
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/^FLEET_GOLDEN_MISMATCH: golden sample\/golden\/\d\.png: expected \d, the model predicts \d .*--invert/m);
    expect(existsSync(join(tmp.dir, 'pkg-no-invert/manifest.json'))).toBe(false);
    const packed = await run(packCmd);
    expect(packed.err).toBe('');
    expect(packed.out).toContain('2 golden inputs');
    const manifest = JSON.parse(readFileSync(join(tmp.dir, packCmd[outAt + 1]!, 'manifest.json'), 'utf8')) as { preprocessing: { invert: boolean } };
    expect(manifest.preprocessing.invert).toBe(true);
    await run(find('edgeloop models push'));

    // 6. Roll it out; a camera keeps sending frames to the agent meanwhile (digits and junk).
    const create = find('edgeloop rollouts create').map((a, i, all) => (all[i - 1] === '--bake' ? '1s' : a));
    const target = create[3] as string;
    let feeding = true;
    const digits = frames.map((f) => readFileSync(join(tmp.dir, 'sample/frames', f)));
    const junk = await Promise.all([1, 2].map((s) => patternImage(s)));
    const feed = [...digits, ...junk];
    const feeder = (async () => {
      for (let i = 0; feeding; i++) {
        await fetch(`${agentUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: feed[i % feed.length] }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    try {
      const created = json<{ rollout: { id: string; status: string } }>(await run([...create, '--json']));
      expect(created.rollout.status).toBe('running');
      // `rollouts status` lists it; `--watch` on its id follows it to the end (one process).
      const status = find('edgeloop rollouts status');
      const listed2 = json<{ items: Array<{ id: string }> }>(await run([...status, '--json'])).items;
      expect(listed2.map((r) => r.id)).toContain(created.rollout.id);
      const final = json<{ rollout: { status: string }; decisions: Array<{ kind: string; reason: string }> }>(await run([...status, created.rollout.id, '--watch', '--interval', '0.5s', '--json']));
      expect(final.rollout.status).toBe('completed');
      // A first install: the gates say they had nothing to compare with, not that quality passed.
      expect(final.decisions.map((d) => d.reason).join('\n')).toMatch(/no baseline to compare with/);
      // The agent reports the new version (through the fleet's device registry).
      const [name, version] = target.split('@') as [string, string];
      let active = null as { name: string; version: string } | null;
      for (let i = 0; i < 20 && active?.version !== version; i++) {
        const dev = json<{ models: { active: { name: string; version: string } | null } }>(await run(['edgeloop', 'devices', 'show', register[3] as string, '--json']));
        active = dev.models.active;
        if (active?.version !== version) await new Promise((r) => setTimeout(r, 500));
      }
      expect(active).toEqual({ name, version });
      const health = (await (await fetch(`${agentUrl}/healthz`)).json()) as Record<string, unknown>;
      expect(JSON.stringify(health)).toContain(version);

      // 7. The README's curl: a held-out 3 comes back as a 3 (the curl line's file and its label).
      const [, file, label] = /@(sample\/frames\/\d+-(\d)\.png)/.exec(curl) ?? [];
      expect(file, curl).toBeDefined();
      expect(curl).toMatch(/http:\/\/127\.0\.0\.1:8080\/v1\/infer/);
      const answer = (await (await fetch(`${agentUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(join(tmp.dir, file!)) })).json()) as { label: string; model_version: string };
      expect(answer).toMatchObject({ label, model_version: version });
      // And the other held-out digits: a correct model, not a lucky frame.
      let right = 0;
      for (const f of frames) {
        const r = (await (await fetch(`${agentUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(join(tmp.dir, 'sample/frames', f)) })).json()) as { label: string };
        if (r.label === /-(\d)\.png$/.exec(f)?.[1]) right++;
      }
      expect(right / frames.length).toBeGreaterThanOrEqual(0.85);

      // 8. Watch it in the browser: the console answers, its assets load.
      expect((await fetch(`${consoleUrl}login`)).status).toBe(200);
      expect((await fetch(`${consoleUrl}static/console.js`)).status).toBe(200);

      // 9. Samples come back from the device (low-confidence captures of the new model).
      let samples: Array<{ sample_id: string; device_id: string; model: { version: string } }> = [];
      for (let i = 0; i < 30 && samples.length < 2; i++) {
        samples = json<{ items: typeof samples }>(await run(['edgeloop', 'samples', 'list', '--device', register[3] as string, '--json'])).items;
        if (samples.length < 2) await new Promise((r) => setTimeout(r, 1000));
      }
      expect(samples.length).toBeGreaterThanOrEqual(2);
    } finally {
      feeding = false;
      await feeder;
    }

    // 10. Label what came back, then export a dataset version (README's line).
    const picked = json<{ items: Array<{ sample_id: string }> }>(await run(['edgeloop', 'samples', 'list', '--device', register[3] as string, '--limit', '2', '--json'])).items.map((x) => x.sample_id);
    await run(['edgeloop', 'labels', 'set', picked[0] as string, '4']);
    await run(['edgeloop', 'labels', 'set', picked[1] as string, '9']);
    const exported = json<{ created: boolean; dataset: { id: string; name: string | null; entries: Array<{ sample_id: string; label: string }> } }>(await run([...find('edgeloop datasets export'), '--json']));
    expect(exported.created).toBe(true);
    expect(exported.dataset.name).toBe('relabel-1');
    expect(exported.dataset.entries.map((e) => [e.sample_id, e.label]).sort()).toEqual(
      [
        [picked[0], '4'],
        [picked[1], '9'],
      ].sort(),
    );
  });
});
