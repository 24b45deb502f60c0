/**
 * Crash safety end to end: a child process drains a real SQLite queue file to a real broker
 * and is SIGKILLed mid-drain; a second run finishes the job. Every sample must reach the
 * fleet (resends allowed, counted), and the queue must end empty.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { systemClock } from '../../shared/ids.js';
import { startAedes } from '../helpers/broker.js';
import type { AedesHandle } from '../helpers/broker.js';
import { TestFleet } from './fixtures/fleet.js';
import { sampleItem } from './fixtures/samples.js';
import { waitUntil } from './fixtures/wait.js';

const CHILD = fileURLToPath(new URL('./fixtures/drain-child.ts', import.meta.url));
const DEVICE = 'dev-crash';
const N = 1000;

interface Child {
  proc: ChildProcess;
  events: Array<Record<string, unknown>>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderr: () => string;
}

function runChild(dbPath: string, url: string, rate: number): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, dbPath, url, DEVICE, String(rate)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const events: Array<Record<string, unknown>> = [];
  let stderr = '';
  proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  if (proc.stdout) createInterface({ input: proc.stdout }).on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  return { proc, events, exited, stderr: () => stderr };
}

describe('SIGKILL mid-drain', () => {
  let broker: AedesHandle | undefined;
  let dir: string | undefined;
  const children: Child[] = [];
  afterEach(async () => {
    for (const c of children.splice(0)) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill('SIGKILL');
    await broker?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('delivers every one of 1,000 samples after the drainer is killed and restarted, and empties the queue', async () => {
    broker = await startAedes();
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-sigkill-'));
    const dbPath = join(dir, 'queue.db');
    const seed = openSqliteQueue({ path: dbPath, quotaBytes: 256 * 1024 * 1024, clock: systemClock });
    const ids = Array.from({ length: N }, (_, i) => `k-${String(i).padStart(4, '0')}`);
    seed.enqueueMany(ids.map((id, i) => sampleItem(id, 1024, i % 10, DEVICE)));
    seed.close();

    const fleet = new TestFleet({ url: broker.url, deviceId: DEVICE });
    await fleet.start();
    try {
      const first = runChild(dbPath, broker.url, 800);
      children.push(first);
      await waitUntil(() => fleet.distinct >= 300, 20_000, 'first run to deliver 300 samples').catch((err: unknown) => {
        throw new Error(`${String(err)}; child stderr: ${first.stderr()}`);
      });
      first.proc.kill('SIGKILL');
      const killed = await first.exited;
      expect(killed.signal).toBe('SIGKILL');
      const atKill = fleet.distinct;
      expect(atKill).toBeLessThan(N);

      const second = runChild(dbPath, broker.url, 2000);
      children.push(second);
      const done = await second.exited;
      expect(done, second.stderr()).toMatchObject({ code: 0 });
      expect(second.events.at(-1)).toMatchObject({ event: 'done' });

      // Every id arrived, as a distinct id; resends are allowed and counted.
      await waitUntil(() => fleet.distinct === N, 5000, 'all ids at the fleet');
      expect(new Set(fleet.order)).toEqual(new Set(ids));
      expect(fleet.order).toHaveLength(N);
      console.info(`[uplink] SIGKILL after ${atKill} samples; resends seen by the fleet: ${fleet.duplicates}`);

      const after = openSqliteQueue({ path: dbPath, quotaBytes: 256 * 1024 * 1024, clock: systemClock });
      try {
        expect(after.stats().depth).toBe(0);
      } finally {
        after.close();
      }
    } finally {
      await fleet.close();
    }
  });
});
