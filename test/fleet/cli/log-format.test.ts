/**
 * Logs for people and machines (issue 16): `edgeloop serve` and `edgeloop-agent run` write
 * readable, coloured log lines when their stderr is a terminal and one JSON object a line
 * otherwise, `--log-format` forces either, stdout carries only what the command reports (the
 * banner or the ready line), and no JSON line repeats a key. Real processes: piped, and on a
 * real pseudo-terminal through util-linux `script`.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { missingBinary } from '../../helpers/optional-binary.js';
import { tempDir } from '../../helpers/packages.js';
import { waitUntil } from '../../helpers/wait.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TSX = join(ROOT, 'node_modules/tsx/dist/loader.mjs');
const FLEET = [process.execPath, '--import', TSX, join(ROOT, 'fleet/main.ts')];
const AGENT = [process.execPath, '--import', TSX, join(ROOT, 'agent/cli/entry.ts')];
const SCRIPT = '/usr/bin/script';
const noScript = missingBinary(SCRIPT, 'util-linux script runs a command on a pseudo-terminal');
const tmp = tempDir('edgeloop-log-format-');
afterAll(() => tmp.cleanup());

const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('EDGELOOP_')));
const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;

/**
 * Runs `argv` until `done(output)` holds, then stops it with SIGTERM (the whole process group)
 * and returns what it wrote. `tty`: on a pseudo-terminal (stdout and stderr both; the terminal
 * merges them, as a person sees them); otherwise piped, stdout and stderr apart.
 */
async function runUntil(argv: string[], tty: boolean, done: (all: string) => boolean): Promise<{ out: string; err: string; all: string }> {
  const [cmd, ...args] = tty ? [SCRIPT, '-qfec', argv.map(quote).join(' '), '/dev/null'] : argv;
  const c = spawn(cmd!, args, { cwd: tmp.dir, env: { ...env, TERM: 'xterm' }, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  let err = '';
  c.stdout.on('data', (b: Buffer) => (out += b.toString()));
  c.stderr.on('data', (b: Buffer) => (err += b.toString()));
  const exited = new Promise((r) => c.once('exit', r));
  try {
    await waitUntil(() => done(out + err) || c.exitCode !== null, 60_000, `${argv.slice(3).join(' ')} to log its start`);
  } finally {
    try {
      process.kill(-c.pid!, 'SIGTERM');
    } catch {
      /* gone already */
    }
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
  }
  return { out, err, all: out + err };
}

/** Top-level keys of one JSON object line, in order, duplicates kept (JSON.parse would hide them). */
function topLevelKeys(line: string): string[] {
  const keys: string[] = [];
  let depth = 0;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === '"') {
      let j = i + 1;
      while (line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
      if (depth === 1 && line[j + 1] === ':') keys.push(JSON.parse(line.slice(i, j + 1)) as string);
      i = j;
    } else if (ch === '{' || ch === '[') depth++;
    else if (ch === '}' || ch === ']') depth--;
  }
  return keys;
}

const ESC = '\u001b[';
const jsonLogLines = (text: string): string[] => text.split(/\r?\n/).filter((l) => l.startsWith('{"level":'));

describe.skipIf(noScript !== null)('log format follows the terminal', () => {
  const serve = (...extra: string[]) => [...FLEET, 'serve', '--data', join(tmp.dir, `fleet-${extra.join('') || 'auto'}-${Math.random().toString(36).slice(2, 8)}`), '--http-port', '0', '--mqtt-port', '0', ...extra];
  const started = (all: string): boolean => /admin token/.test(all) && /fleet service started/.test(all);

  it('serve piped: stdout is the banner only, stderr one JSON object a line with no repeated key', { timeout: 90_000 }, async () => {
    const r = await runUntil(serve(), false, started);
    expect(r.out).toMatch(/^fleet service ready\n {2}console {2}http:/);
    expect(r.out).not.toMatch(/\{/);
    const lines = r.err.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThanOrEqual(2);
    for (const l of lines) {
      const keys = topLevelKeys(l);
      expect(new Set(keys).size, l).toBe(keys.length);
      expect(() => JSON.parse(l) as unknown, l).not.toThrow();
    }
    expect(lines.some((l) => (JSON.parse(l) as { msg: string }).msg === 'fleet service started')).toBe(true);
    expect(r.err).not.toContain(ESC);
  });

  it('serve on a terminal: readable coloured lines, no JSON; --log-format json forces JSON there', { timeout: 90_000 }, async () => {
    const pretty = await runUntil(serve(), true, started);
    expect(pretty.all).toMatch(/fleet service ready/);
    expect(pretty.all).toMatch(/\[\d\d:\d\d:\d\d\.\d{3}\] /);
    expect(pretty.all).toContain(`${ESC}32mINFO${ESC}39m: ${ESC}36mfleet service started`);
    expect(jsonLogLines(pretty.all)).toEqual([]);

    const forced = await runUntil(serve('--log-format', 'json'), true, started);
    const lines = jsonLogLines(forced.all);
    expect(lines.some((l) => l.includes('"msg":"fleet service started"'))).toBe(true);
    expect(forced.all).not.toContain(`INFO${ESC}`);
  });

  it('serve piped with --log-format pretty: readable lines without colour codes', { timeout: 90_000 }, async () => {
    const r = await runUntil(serve('--log-format', 'pretty'), false, started);
    expect(r.err).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: fleet service started/m);
    expect(r.err).not.toContain(ESC);
    expect(jsonLogLines(r.err)).toEqual([]);
  });

  it('serve refuses an unknown --log-format, naming the choices', { timeout: 60_000 }, async () => {
    const r = await runUntil(serve('--log-format', 'xml'), false, () => false);
    expect(r.err).toMatch(/^FLEET_USAGE: --log-format must be one of auto, json, pretty, got xml/);
  });

  it('agent: a sentence and readable logs on a terminal; the JSON ready line and JSON logs when piped', { timeout: 90_000 }, async () => {
    const file = join(tmp.dir, 'agent.json');
    writeFileSync(file, JSON.stringify({ device_id: 'log-1', data_dir: 'agent-data', http: { port: 0 } }));
    const ready = (all: string): boolean => /ready/.test(all) && /agent started|started/.test(all);
    const tty = await runUntil([...AGENT, 'run', '--config', file], true, ready);
    expect(tty.all).toMatch(/agent log-1 ready: POST http:\/\/127\.0\.0\.1:\d+\/v1\/infer, model none yet/);
    expect(tty.all).toContain(`${ESC}32mINFO${ESC}39m`);
    expect(jsonLogLines(tty.all)).toEqual([]);

    const piped = await runUntil([...AGENT, 'run', '--config', file], false, ready);
    expect(JSON.parse(piped.out.split('\n')[0]!)).toMatchObject({ event: 'ready', device_id: 'log-1', model: null });
    const lines = piped.err.split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(0);
    for (const l of lines) {
      const keys = topLevelKeys(l);
      expect(new Set(keys).size, l).toBe(keys.length);
    }
    expect(piped.err).not.toContain(ESC);
  });
});
