import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { fakeClock, makeTempDir } from './helpers.js';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const writer = fileURLToPath(new URL('./fixtures/crash-writer.ts', import.meta.url));

/**
 * Run the writer until it has reported `killAfter` ids, then SIGKILL it (no exit handlers,
 * no close: the moment of death falls inside or between transactions). Returns the ids it
 * reported as durably enqueued.
 */
function runAndKill(dbPath: string, mode: 'sync' | 'async', prefix: string, killAfter: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', writer, dbPath, mode, prefix], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let killed = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (!killed && out.split('\n').length - 1 >= killAfter) {
        killed = true;
        child.kill('SIGKILL');
      }
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (err += chunk));
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') return reject(new Error(`writer exited with ${code ?? signal}: ${err}`));
      // Only complete lines count: a line cut by the kill was never fully reported.
      const lines = out.split('\n');
      lines.pop();
      resolve(lines);
    });
  });
}

describe('sqlite queue survives SIGKILL of the writing process', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  beforeEach(() => void (tmp = makeTempDir('sqlite-crash')));
  afterEach(() => tmp.remove());

  for (const mode of ['sync', 'async'] as const) {
    it(`every id reported after ${mode === 'sync' ? 'enqueue returned' : 'enqueueAsync resolved'} is present, and the file is intact`, async () => {
      const dbPath = path.join(tmp.dir, 'queue.db');
      const reported: string[] = [];
      // Several kills on the same file, at different depths, each followed by a recovery.
      for (const [round, killAfter] of [150, 40, 400].entries()) {
        reported.push(...(await runAndKill(dbPath, mode, `r${round}`, killAfter)));

        const raw = new Database(dbPath);
        expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
        raw.close();

        const queue = openSqliteQueue({ path: dbPath, quotaBytes: 1 << 30, clock: fakeClock() });
        const stats = queue.stats();
        const present = new Set(queue.lease(stats.depth + 1, 1000).map((i) => i.id));
        queue.close();
        const missing = reported.filter((id) => !present.has(id));
        expect(missing).toEqual([]);
        expect(present.size).toBeGreaterThanOrEqual(reported.length);
        expect(stats.enqueuedTotal).toBe(present.size);
      }
    });
  }
});
