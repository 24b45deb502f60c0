import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { fakeClock, makeTempDir, sample } from './helpers.js';

const onDisk = (file: string): number => statSync(file).size + (existsSync(`${file}-wal`) ? statSync(`${file}-wal`).size : 0);

/** Fill to about `bytes` with 64 KB samples in batches, as a long offline spell does; then drain it all. */
function fillAndDrain(q: SampleQueue, bytes: number): void {
  const n = Math.ceil(bytes / 65_536);
  for (let i = 0; i < n; i += 16) q.enqueueMany(Array.from({ length: Math.min(16, n - i) }, (_, k) => sample(`s-${i + k}`, (i + k) % 10, { blobBytes: 65_536 })));
  for (;;) {
    const items = q.lease(256, 60_000);
    if (items.length === 0) break;
    q.ack(items.map((it) => it.id));
  }
  expect(q.stats().depth).toBe(0);
}

function reclaimAll(q: SampleQueue): number {
  let steps = 0;
  while ((q.reclaim?.(256).reclaimableBytes ?? 0) >= 1024 * 1024) steps++;
  return steps;
}

describe('SQLite queue disk reclaim', () => {
  it('gives the space of a drained backlog back to the file system, in bounded steps', () => {
    const t = makeTempDir('edgeloop-reclaim-');
    const file = join(t.dir, 'queue.db');
    const q = openSqliteQueue({ path: file, quotaBytes: 64 * 1024 * 1024, clock: fakeClock() });
    try {
      fillAndDrain(q, 40 * 1024 * 1024);
      q.checkpoint?.();
      const peak = onDisk(file);
      expect(peak).toBeGreaterThan(35 * 1024 * 1024);
      const steps = reclaimAll(q);
      // 1 MiB per step: ~40 steps, none of them a whole-file rewrite.
      expect(steps).toBeGreaterThan(20);
      const after = onDisk(file);
      expect(after).toBeLessThan(8 * 1024 * 1024);
      // Still a working queue.
      q.enqueue(sample('after', 5, { blobBytes: 1000 }));
      expect(q.stats().depth).toBe(1);
    } finally {
      q.close();
      t.remove();
    }
  });

  it('converts a file made before incremental vacuum once the backlog is small, then shrinks it', () => {
    const t = makeTempDir('edgeloop-reclaim-legacy-');
    const file = join(t.dir, 'queue.db');
    // A file created by an older agent: auto_vacuum off (a table exists before the queue opens it).
    const legacy = new Database(file);
    legacy.exec('CREATE TABLE leftover (x INTEGER)');
    legacy.close();
    const q = openSqliteQueue({ path: file, quotaBytes: 64 * 1024 * 1024, clock: fakeClock() });
    try {
      fillAndDrain(q, 20 * 1024 * 1024);
      q.checkpoint?.();
      expect(onDisk(file)).toBeGreaterThan(15 * 1024 * 1024);
      reclaimAll(q);
      expect(onDisk(file)).toBeLessThan(8 * 1024 * 1024);
    } finally {
      q.close();
      t.remove();
    }
  });
});
