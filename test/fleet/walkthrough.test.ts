/**
 * The newcomer's path through the README's "The fleet service" section, run as a newcomer runs
 * it: every `edgeloop` / `edgeloop-agent` line of that section's shell block, in order, as a
 * child process in a fresh working directory, with the README's own arguments. So the README
 * cannot drift from the CLI without this test failing.
 *
 * What differs from a person at a terminal, and why:
 * - ports: `--http-port 8600 --mqtt-port 1883` run as `0` (the printed URLs are parsed), and the
 *   agent's HTTP input takes port 0 (`EDGELOOP_AGENT_HTTP__PORT=0`), so parallel CI jobs never collide;
 * - time: `--bake 10m` runs as `--bake 1s`, and the agent reports telemetry every second
 *   (`EDGELOOP_AGENT_UPLINK__TELEMETRY_INTERVAL_S=1`) instead of every 10 s;
 * - the entry points: `node --import tsx fleet/main.ts` (and agent/cli/entry.ts), the
 *   files `bin/edgeloop.js` and `bin/edgeloop-agent.js` load compiled from dist/. A stale or
 *   missing dist/ in a checkout must not decide this test; the build itself is covered by
 *   test/fleet/console/dist-assets.test.ts.
 * The newcomer's own inputs: model.onnx (a small CNN the project generates) and labels.txt, and
 * images posted to the agent's `POST /v1/infer` as a camera would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { smallCnnModel } from '../helpers/models.js';
import { patternImage, tempDir } from '../helpers/packages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ENTRY: Record<string, string> = { edgeloop: join(ROOT, 'fleet/main.ts'), 'edgeloop-agent': join(ROOT, 'agent/cli/entry.ts') };
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');

/** The `edgeloop...` lines of the README's fleet section, comments stripped. */
function readmeCommands(): string[][] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## The fleet service'));
  const block = /```sh\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => /^edgeloop(-agent)? /.test(l))
    .map((l) => l.split(/\s+/));
}

const children: ChildProcess[] = [];
const tmp = tempDir('edgeloop-walkthrough-');
const env = { ...process.env, EDGELOOP_TOKEN: '', EDGELOOP_LOG_LEVEL: 'warn', EDGELOOP_AGENT_HTTP__PORT: '0', EDGELOOP_AGENT_UPLINK__TELEMETRY_INTERVAL_S: '1' };
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

/** Run a command to completion in the working directory; fails the test on a non-zero exit. */
function run(argv: string[]): Promise<{ out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, args(argv), { cwd: tmp.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr.on('data', (b: Buffer) => (err += b.toString()));
    c.on('error', reject);
    c.on('exit', (code) => (code === 0 ? resolve({ out, err }) : reject(new Error(`${argv.join(' ')} exited with ${code}\n${out}\n${err}`))));
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
  it('serve, register, run an agent, push, roll out, watch, label, export', { timeout: 240_000 }, async () => {
    const cmds = readmeCommands();
    const find = (prefix: string): string[] => {
      const c = cmds.find((x) => x.join(' ').startsWith(prefix));
      if (!c) throw new Error(`the README's fleet section has no "${prefix} ..." line`);
      return c;
    };
    // What the newcomer brings: an ONNX classifier and its labels.
    writeFileSync(join(tmp.dir, 'model.onnx'), smallCnnModel({ channels: 1, height: 28, width: 28, classes: 4, seed: 5, layout: 'NCHW', inputType: 'float32' }).bytes);
    writeFileSync(join(tmp.dir, 'labels.txt'), 'cat\ndog\nbird\nfish\n');

    // 1. Serve (ports 0: the chosen ones are printed).
    const serveCmd = find('edgeloop serve').map((a, i, all) => (all[i - 1] === '--http-port' || all[i - 1] === '--mqtt-port' ? '0' : a));
    const serve = await start(serveCmd, /admin token[^\n]*: \S+\n/);
    const consoleUrl = /console\s+(http:\S+)/.exec(serve.out())?.[1] as string;
    const adminToken = /admin token[^:]*: (\S+)/.exec(serve.out())?.[1] as string;
    expect(consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/console\/$/);
    expect(adminToken.length).toBeGreaterThan(20);

    // 2. Register the device: its agent config is written where the README says.
    const register = find('edgeloop devices register');
    await run(register);
    const configFile = `${register[3]}.agent.json`;
    expect(existsSync(join(tmp.dir, configFile))).toBe(true);

    // 3. Start the agent with that config, exactly as printed.
    const agentCmd = find('edgeloop-agent run');
    expect(agentCmd).toEqual(['edgeloop-agent', 'run', '--config', configFile]);
    const agent = await start(agentCmd, /"event":"ready"[^\n]*\n/);
    const agentUrl = (JSON.parse(agent.out().split('\n')[0] as string) as { http: string }).http;

    // 4. Pack and push the model.
    await run(find('edgeloop pack'));
    await run(find('edgeloop models push'));
    // The rollout names the model as the README's pack line registered it.
    const create = find('edgeloop rollouts create').map((a, i, all) => (all[i - 1] === '--bake' ? '1s' : a));
    const target = create[3] as string;

    // 5. Roll it out; a camera keeps sending images to the agent meanwhile.
    let feeding = true;
    const images = await Promise.all([1, 2, 3, 4].map((s) => patternImage(s)));
    const feeder = (async () => {
      for (let i = 0; feeding; i++) {
        await fetch(`${agentUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: images[i % images.length] }).catch(() => undefined);
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
      const final = json<{ rollout: { status: string }; decisions: Array<{ kind: string }> }>(await run([...status, created.rollout.id, '--watch', '--interval', '0.5s', '--json']));
      expect(final.rollout.status).toBe('completed');
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

      // 6. Watch it in the browser: the console answers, its assets load.
      expect((await fetch(`${consoleUrl}login`)).status).toBe(200);
      expect((await fetch(`${consoleUrl}static/console.js`)).status).toBe(200);

      // 7. Samples come back from the device (low-confidence captures of the new model).
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

    // 8. Label what came back, then export a dataset version (README's last line).
    const picked = json<{ items: Array<{ sample_id: string }> }>(await run(['edgeloop', 'samples', 'list', '--device', register[3] as string, '--limit', '2', '--json'])).items.map((x) => x.sample_id);
    await run(['edgeloop', 'labels', 'set', picked[0] as string, 'cat']);
    await run(['edgeloop', 'labels', 'set', picked[1] as string, 'fish']);
    const exported = json<{ created: boolean; dataset: { id: string; name: string | null; entries: Array<{ sample_id: string; label: string }> } }>(await run([...find('edgeloop datasets export'), '--json']));
    expect(exported.created).toBe(true);
    expect(exported.dataset.name).toBe('relabel-1');
    expect(exported.dataset.entries.map((e) => [e.sample_id, e.label]).sort()).toEqual(
      [
        [picked[0], 'cat'],
        [picked[1], 'fish'],
      ].sort(),
    );
  });
});
