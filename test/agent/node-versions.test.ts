/**
 * The project on each supported Node.js line, not only the one that runs the tests: the
 * official Node 22 and 24 binaries from npm (greengrass-recipes/node-runtimes.ts) run the
 * fleet and agent CLIs from their TypeScript sources, as a developer on that Node would after
 * `npm ci`. That checkout is a copy of the sources whose node_modules are the repository's,
 * except better-sqlite3, compiled for that Node's ABI (its `.node` loads only in the Node it
 * was built for; the other native modules are N-API). Each line: keygen, serve, register a
 * device, pack a model, infer on it (the right answer), run the agent against the fleet's
 * broker, capture an outlier into the SQLite queue.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildBetterSqlite3 } from '../../greengrass-recipes/native-build.js';
import { fetchNode, NODE_RUNTIMES, type NodeCpu, type NodeRuntimePin } from '../../greengrass-recipes/node-runtimes.js';
import { BUILD_TIMEOUT_MS, CACHE_DIR, COLOURS, runToEnd, stop } from '../greengrass/packaged.js';
import { channelMeanModel, COLOUR_LABELS, colourAnswer } from '../helpers/models.js';
import { waitUntil } from '../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A checkout of the sources for `pin`: node_modules linked to the repository's, better-sqlite3 built for that Node. */
async function checkoutFor(pin: NodeRuntimePin, dir: string): Promise<string> {
  const cpu = process.arch as NodeCpu;
  const { dir: nodeDir, node } = await fetchNode(pin, cpu, CACHE_DIR);
  const addon = await buildBetterSqlite3({ root: ROOT, runtime: pin, cpu, nodeDir, cacheDir: CACHE_DIR, onProgress: (s) => console.info(`[node ${pin.version}] ${s}`) });
  for (const part of ['agent', 'shared', 'fleet', 'package.json', 'tsconfig.json']) cpSync(join(ROOT, part), join(dir, part), { recursive: true });
  mkdirSync(join(dir, 'node_modules'));
  for (const e of readdirSync(join(ROOT, 'node_modules'))) if (e !== 'better-sqlite3' && e !== '.bin') symlinkSync(join(ROOT, 'node_modules', e), join(dir, 'node_modules', e));
  const bs3 = join(dir, 'node_modules', 'better-sqlite3');
  for (const part of ['package.json', 'lib']) cpSync(join(ROOT, 'node_modules', 'better-sqlite3', part), join(bs3, part), { recursive: true });
  mkdirSync(join(bs3, 'build', 'Release'), { recursive: true });
  cpSync(addon, join(bs3, 'build', 'Release', 'better_sqlite3.node'));
  return node;
}

describe.each([22, 24] as const)('the project on Node %i (official binary from npm)', (line) => {
  const pin = NODE_RUNTIMES[line];
  let tmp: string;
  let work: string;
  let node: string;
  const children: ChildProcess[] = [];
  const env = { ...process.env, ORT_DISABLE_TELEMETRY: '1', EDGELOOP_LOG_LEVEL: 'warn', EDGELOOP_AGENT_HTTP__PORT: '0', EDGELOOP_AGENT_LOG__LEVEL: 'warn' } as Record<string, string>;
  delete env.EDGELOOP_TOKEN;
  const cli = (bin: 'edgeloop' | 'edgeloop-agent', args: string[]): string[] => ['--import', join(tmp, 'node_modules/tsx/dist/loader.mjs'), join(tmp, bin === 'edgeloop' ? 'fleet/main.ts' : 'agent/cli/entry.ts'), ...args];
  const run = async (bin: 'edgeloop' | 'edgeloop-agent', args: string[]): Promise<string> => {
    const r = await runToEnd(node, cli(bin, args), { cwd: work, env });
    if (r.code !== 0) throw new Error(`${bin} ${args.join(' ')} exited with ${r.code}\n${r.out}\n${r.err}`);
    return r.out;
  };
  /** Starts a long-running command; resolves once its stdout matches `ready`. */
  const start = (bin: 'edgeloop' | 'edgeloop-agent', args: string[], ready: RegExp): Promise<{ child: ChildProcess; out: string }> =>
    new Promise((resolve, reject) => {
      const c = spawn(node, cli(bin, args), { cwd: work, env, stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(c);
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`${bin} ${args.join(' ')} not ready in 60 s\n${out}\n${err}`)), 60_000);
      c.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve({ child: c, out });
        }
      });
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('exit', (code) => reject(new Error(`${bin} ${args.join(' ')} exited with ${code}\n${out}\n${err}`)));
    });

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), `edgeloop-node${line}-`));
    node = await checkoutFor(pin, tmp);
    work = join(tmp, 'work');
    mkdirSync(work);
    writeFileSync(join(work, 'colours.onnx'), channelMeanModel().bytes);
    writeFileSync(join(work, 'labels.txt'), `${COLOUR_LABELS.join('\n')}\n`);
    for (const c of COLOURS) await sharp({ create: { width: 24, height: 20, channels: 3, background: { r: c.rgb[0], g: c.rgb[1], b: c.rgb[2] } } }).png().toFile(join(work, `${c.name}.png`));
  }, BUILD_TIMEOUT_MS);

  afterAll(async () => {
    for (const c of children.reverse()) await stop(c);
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it(`runs on Node ${pin.version} itself`, async () => {
    const r = await runToEnd(node, ['-p', 'JSON.stringify([process.version, process.versions.modules, process.release.lts])']);
    expect(JSON.parse(r.out)).toEqual([`v${pin.version}`, pin.modules, pin.lts]);
    expect(await run('edgeloop-agent', ['check'])).toMatch(/ok +better-sqlite3/);
  });

  it('serve, register a device, pack, infer (the right answer), run the agent against the fleet, capture an outlier', async () => {
    const serve = await start('edgeloop', ['serve', '--http-port', '0', '--mqtt-port', '0'], /admin token[^\n]*: \S+\n/);
    expect(serve.out).toMatch(/console\s+http:\/\/127\.0\.0\.1:\d+\/console\//);
    await run('edgeloop', ['devices', 'register', 'gw-1', '--tags', 'site=a']);
    await run('edgeloop', ['pack', 'colours.onnx', '--labels', 'labels.txt', '--out', 'pkg', '--name', 'colours', '--version', '1.0.0', '--softmax', '--sign-key', '.data/fleet/keys/fleet-signing.key']);

    const lines = (await run('edgeloop-agent', ['infer', '--model', 'pkg', '--public-key', '.data/fleet/keys/fleet-signing.pub', '--json', ...COLOURS.map((c) => `${c.name}.png`)]))
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { label: string; score: number });
    lines.forEach((l, i) => {
      const want = colourAnswer(COLOURS[i]!.rgb);
      expect(l.label).toBe(want.label);
      expect(l.score).toBeCloseTo(want.score, 4);
    });

    const agentConfig = JSON.parse(readFileSync(join(work, 'gw-1.agent.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(work, 'gw-1.agent.json'), JSON.stringify({ ...agentConfig, models: { initial: join(work, 'pkg') }, data_dir: join(work, 'agent-data') }));
    const agent = await start('edgeloop-agent', ['run', '--config', 'gw-1.agent.json'], /"event":"ready"[^\n]*\n/);
    const url = (JSON.parse(agent.out.split('\n').find((l) => l.includes('"ready"'))!) as { http: string }).http;
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: readFileSync(join(work, 'moss.png')) });
    expect(((await res.json()) as { label: string }).label).toBe('green');
    // The low-confidence outlier goes through the SQLite queue and the uplink to the fleet's broker.
    await waitUntil(async () => {
      const h = (await (await fetch(`${url}/healthz`)).json()) as { uplink: { connected: boolean; forwarder?: { acked: number } }; queue: { depth: number } };
      return h.uplink.connected && (h.uplink.forwarder?.acked ?? 0) >= 1 && h.queue.depth === 0;
    }, 30_000, 'the outlier sent to the fleet and acknowledged');
    expect(await stop(agent.child)).toBe(0);
  }, 180_000);
});
