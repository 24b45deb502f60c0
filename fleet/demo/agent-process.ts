import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { runsFromSource, tsxNodeArgs } from '../../shared/ts-entry.js';

/** The repository (package) root, from sources or from dist/. */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'edgeloop') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('cannot find the edgeloop package root');
    dir = up;
  }
}

/**
 * How to start `edgeloop-agent`: the compiled bin when we run compiled (or `compiled` asks for
 * it: it starts faster than tsx, once `npm run build` made it), the TypeScript entry through tsx
 * when we run from sources (tests). The fleet starts agents as processes: it never imports agent code.
 */
function agentCommand(o: { compiled?: boolean } = {}): { cmd: string; args: string[] } {
  const root = packageRoot();
  if (runsFromSource(import.meta.url) && !o.compiled) return { cmd: process.execPath, args: [...tsxNodeArgs(import.meta.url), join(root, 'agent', 'cli', 'entry.ts')] };
  return { cmd: process.execPath, args: [join(root, 'bin', 'edgeloop-agent.js')] };
}

export interface AgentProcess {
  proc: ChildProcess;
  ready: Promise<{ http: string | null; device_id: string }>;
  /** The agent's JSON log lines (stderr), last 200. */
  logTail: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Start an agent with a config file; `ready` resolves on its 'ready' line. `ownGroup` puts it
 * in its own process group, so a Ctrl-C in the terminal reaches only the parent, which then
 * drains and stops the agent itself (it is killed when the parent exits, whatever the cause).
 */
export function startAgentProcess(configPath: string, env: NodeJS.ProcessEnv = {}, o: { ownGroup?: boolean; compiled?: boolean } = {}): AgentProcess {
  const { cmd, args } = agentCommand(o);
  // JSON on both streams whatever the environment says: the lines below are parsed.
  const proc = spawn(cmd, [...args, 'run', '--config', configPath, '--json', '--log-format', 'json'], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'], detached: o.ownGroup === true });
  if (o.ownGroup) {
    const reap = (): void => void (proc.exitCode === null && proc.signalCode === null && proc.kill('SIGKILL'));
    process.once('exit', reap);
    proc.once('exit', () => process.off('exit', reap));
  }
  const logTail: string[] = [];
  createInterface({ input: proc.stderr! }).on('line', (l) => {
    logTail.push(l);
    if (logTail.length > 200) logTail.shift();
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const ready = new Promise<{ http: string | null; device_id: string }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).on('line', (l) => {
      try {
        const msg = JSON.parse(l) as { event?: string; http: string | null; device_id: string };
        if (msg.event === 'ready') resolve(msg);
      } catch {
        /* not a status line */
      }
    });
    void exited.then((code) => reject(new Error(`agent exited with code ${code} before it was ready:\n${logTail.slice(-5).join('\n')}`)));
  });
  ready.catch(() => undefined);
  return {
    proc,
    ready,
    logTail,
    stop: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/** The device's own durable counters (`edgeloop-agent queue stats`): what it captured, what the fleet acknowledged, what still waits. */
export interface DeviceQueueCounts {
  depth: number;
  enqueuedTotal: number;
  ackedTotal: number;
  evictedTotal: number;
  /** Drops the queue has on record id by id (`edgeloop-agent queue dropped`); below `evictedTotal` only when the oldest were forgotten. */
  droppedOnRecord: number;
}

/** Read a stopped (or running) agent's queue counters through the agent's CLI: the fleet never opens agent files with agent code. */
export async function agentQueueStats(dataDir: string): Promise<DeviceQueueCounts> {
  return JSON.parse(await agentQueueCli(dataDir, 'stats')) as DeviceQueueCounts;
}

/** The ids of the samples a device's queue dropped for space, as it has them on record. */
export async function agentDroppedIds(dataDir: string): Promise<Set<string>> {
  const out = await agentQueueCli(dataDir, 'dropped');
  return new Set(out.split('\n').filter((l) => l.trim() !== '').map((l) => (JSON.parse(l) as { id: string }).id));
}

async function agentQueueCli(dataDir: string, sub: 'stats' | 'dropped'): Promise<string> {
  const { cmd, args } = agentCommand();
  const proc = spawn(cmd, [...args, 'queue', sub, '--data', dataDir, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')));
  proc.stderr!.on('data', (b: Buffer) => (err += b.toString('utf8')));
  const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
  if (code !== 0) throw new Error(`edgeloop-agent queue ${sub} exited with ${code}: ${err.trim().split('\n').pop() ?? ''}`);
  return out;
}
