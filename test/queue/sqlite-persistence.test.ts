import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../agent/queue/sqlite-schema.js';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { readDropped, readQueueStats } from '../../agent/queue/sqlite-stats.js';
import type { SqliteQueueOptions } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { agentCode, expectedBytes, fakeClock, makeTempDir, sample, thrownCode } from './helpers.js';
import type { FakeClock } from './helpers.js';

const LEASE_MS = 60_000;

describe('sqlite queue on a real file', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let file: string;
  let clock: FakeClock;
  let open: SampleQueue[];

  function reopen(extra: Partial<SqliteQueueOptions> = {}): SampleQueue {
    const q = openSqliteQueue({ path: file, quotaBytes: 10_000_000, clock, ...extra });
    open.push(q);
    return q;
  }

  beforeEach(() => {
    tmp = makeTempDir('sqlite-persist');
    file = path.join(tmp.dir, 'queue.db');
    clock = fakeClock();
    open = [];
  });
  afterEach(() => {
    for (const q of open) q.close();
    tmp.remove();
  });

  it('keeps items, their order and content across close and reopen', () => {
    const inputs = [sample('a', 1, { createdAt: 7 }), sample('b', 9, { meta: { reason: 'drift', z: [1, 2] } }), sample('c', 1)];
    const q1 = reopen();
    q1.enqueueMany(inputs);
    const before = q1.lease(10, LEASE_MS);
    q1.close();

    const after = reopen().lease(10, LEASE_MS);
    expect(after.map((i) => i.id)).toEqual(['b', 'a', 'c']);
    expect(after).toEqual(before);
  });

  it('keeps the record of drops across restarts, readable by the CLI view while the queue is open', () => {
    const unit = expectedBytes(sample('x', 0));
    const q1 = reopen({ quotaBytes: unit });
    q1.enqueue(sample('a', 0));
    q1.enqueue(sample('b', 0)); // evicts a
    q1.close();
    const q2 = reopen({ quotaBytes: unit });
    q2.enqueue(sample('c', 0)); // evicts b
    expect(q2.dropped().map((d) => [d.ord, d.id, d.reason])).toEqual([
      [1, 'a', 'evicted'],
      [2, 'b', 'evicted'],
    ]);
    expect(readDropped(file).map((d) => d.id)).toEqual(['a', 'b']);
    expect(readDropped(file, { afterOrd: 1 }).map((d) => d.id)).toEqual(['b']);
    expect(readQueueStats(file)).toMatchObject({ evictedTotal: 2, droppedOnRecord: 2 });
  });

  it('keeps counters across restarts', () => {
    const q1 = reopen({ quotaBytes: 2 * expectedBytes(sample('x', 0)) });
    q1.enqueueMany([sample('a', 1), sample('a', 1), sample('b', 1), sample('c', 1)]); // 1 duplicate, 1 eviction
    q1.ack(['b']);
    const counters = pickCounters(q1);
    q1.close();

    const q2 = reopen({ quotaBytes: 2 * expectedBytes(sample('x', 0)) });
    expect(pickCounters(q2)).toEqual(counters);
    expect(counters).toEqual({ enqueuedTotal: 3, duplicatesTotal: 1, evictedTotal: 1, ackedTotal: 1 });
    q2.enqueue(sample('d', 1));
    expect(q2.stats().enqueuedTotal).toBe(4);
  });

  it('clears every lease on open, keeping attempts', () => {
    const q1 = reopen();
    q1.enqueueMany([sample('a', 1), sample('b', 1)]);
    q1.lease(1, LEASE_MS);
    q1.release(['a']);
    expect(q1.lease(10, LEASE_MS).map((i) => i.id)).toEqual(['a', 'b']);
    q1.close(); // crash-equivalent: both still leased, clock has not moved

    const items = reopen().lease(10, LEASE_MS);
    expect(items.map((i) => [i.id, i.attempts])).toEqual([
      ['a', 1],
      ['b', 0],
    ]);
  });

  it('never reuses a seq, even after the newest item was acked and the file reopened', () => {
    const q1 = reopen();
    q1.enqueueMany([sample('a', 1), sample('b', 1)]);
    const lastSeq = q1.lease(10, LEASE_MS).at(-1)?.seq ?? 0;
    q1.ack(['b']);
    q1.close();
    const q2 = reopen();
    q2.enqueue(sample('c', 1));
    const c = q2.lease(10, LEASE_MS).find((i) => i.id === 'c');
    expect(c?.seq).toBeGreaterThan(lastSeq);
  });

  it('remembers recently acked ids across restarts, bounded by ackedMemory', () => {
    const q1 = reopen({ ackedMemory: 2 });
    q1.enqueueMany([sample('a', 1), sample('b', 1), sample('c', 1)]);
    q1.ack(['a']);
    q1.ack(['b', 'c']);
    q1.close();
    const q2 = reopen({ ackedMemory: 2 });
    expect(q2.enqueue(sample('c', 1)).duplicate).toBe(true);
    expect(q2.enqueue(sample('a', 1)).accepted).toBe(true); // pruned: oldest acked id forgotten
  });

  it('remembers exactly the last ackedMemory acked ids across restarts, whatever the ack batch sizes', () => {
    const all = Array.from({ length: 12 }, (_, i) => `s${i}`);
    const q1 = reopen({ ackedMemory: 5 });
    q1.enqueueMany(all.map((id) => sample(id, 1)));
    q1.lease(100, LEASE_MS);
    for (const batch of [all.slice(0, 3), all.slice(3, 7), all.slice(7, 8), all.slice(8, 12)]) q1.ack(batch);
    q1.close();

    const q2 = reopen({ ackedMemory: 5 });
    const duplicates = all.filter((id) => q2.enqueue(sample(id, 1)).duplicate);
    expect(duplicates).toEqual(all.slice(7));
  });

  it('with ackedMemory 0 remembers no acked id, and forgets what a run with a larger memory kept', () => {
    const q1 = reopen();
    q1.enqueueMany([sample('a', 1), sample('b', 1)]);
    q1.ack(['a']);
    q1.close();
    const q2 = reopen({ ackedMemory: 0 });
    q2.ack(['b']);
    expect(q2.enqueue(sample('b', 1)).accepted).toBe(true);
    q2.close();
    const q3 = reopen();
    expect(q3.enqueue(sample('a', 1)).accepted).toBe(true);
  });

  it('captures waiting in a group commit at close are on disk afterwards', async () => {
    const q1 = reopen();
    const pending = Array.from({ length: 20 }, (_, i) => q1.enqueueAsync(sample(`g${i}`, 2)));
    q1.close();
    await Promise.all(pending);
    expect(reopen().stats().depth).toBe(20);
  });

  it('sets up WAL, FULL sync by default, busy_timeout and the schema version', () => {
    let db: BetterSqlite3.Database | undefined;
    reopen({ onOpen: (d) => void (db = d), busyTimeoutMs: 1234 });
    expect(db?.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db?.pragma('synchronous', { simple: true })).toBe(2); // FULL
    expect(db?.pragma('busy_timeout', { simple: true })).toBe(1234);
    expect(db?.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);

    let normal: BetterSqlite3.Database | undefined;
    reopen({ path: path.join(tmp.dir, 'normal.db'), synchronous: 'NORMAL', onOpen: (d) => void (normal = d) });
    expect(normal?.pragma('synchronous', { simple: true })).toBe(1); // NORMAL
  });

  it('restores synchronous=FULL after release and ack (which commit relaxed on purpose)', () => {
    let db: BetterSqlite3.Database | undefined;
    const q = reopen({ onOpen: (d) => void (db = d) });
    q.enqueueMany([sample('a', 1), sample('b', 1)]);
    q.release(q.lease(1, LEASE_MS).map((i) => i.id));
    expect(db?.pragma('synchronous', { simple: true })).toBe(2);
    expect(q.ack(q.lease(2, LEASE_MS).map((i) => i.id))).toBe(2);
    expect(q.ack(['never-leased'])).toBe(0);
    expect(db?.pragma('synchronous', { simple: true })).toBe(2);
  });

  it('restores synchronous=FULL when a relaxed commit fails', () => {
    let db: BetterSqlite3.Database | undefined;
    const q = reopen({ onOpen: (d) => void (db = d) });
    q.enqueue(sample('a', 1));
    const [item] = q.lease(1, LEASE_MS);
    db?.pragma('query_only = ON');
    expect(thrownCode(() => q.ack([item?.id ?? '']))).toBe(agentCode('STORAGE_FAILED'));
    db?.pragma('query_only = OFF');
    expect(db?.pragma('synchronous', { simple: true })).toBe(2);
    expect(q.ack([item?.id ?? ''])).toBe(1);
  });

  it('serves leasing, eviction, acks and stats from the key order or a covering index, without a sort or a row scan', () => {
    let db: BetterSqlite3.Database | undefined;
    reopen({ onOpen: (d) => void (db = d) });
    const plan = (sql: string): string =>
      (db?.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail).join(' | ');
    const lease = plan('SELECT * FROM items WHERE key > 1 AND key < 2 ORDER BY key ASC LIMIT 10');
    const evict = plan('SELECT id, priority, bytes FROM items WHERE key < 3 ORDER BY key ASC');
    const ack = plan("DELETE FROM items WHERE key IN (SELECT value FROM json_each('[1,2]')) RETURNING key, bytes");
    const stats = plan('SELECT priority, count(*) AS depth, sum(bytes) AS bytes, min(created_at) AS oldest FROM items GROUP BY priority');
    expect(lease).toContain('USING INTEGER PRIMARY KEY (rowid>? AND rowid<?)');
    expect(evict).toContain('USING INTEGER PRIMARY KEY (rowid<?)');
    expect(ack).toContain('USING INTEGER PRIMARY KEY (rowid=?)');
    // stats() must not read every row (and its blob): a covering index answers it.
    expect(stats).toContain('COVERING INDEX items_stats');
    expect(`${lease} ${evict} ${ack} ${stats}`).not.toContain('TEMP B-TREE');
  });

  it('migrates a version-1 database in place, keeping its items', () => {
    const raw = new Database(file);
    raw.exec(MIGRATIONS[0] as string);
    raw.pragma('user_version = 1');
    raw.prepare("INSERT INTO items (id, kind, priority, meta, bytes, created_at) VALUES ('old', 'image', 3, '{}', 2, 5)").run();
    raw.close();

    let db: BetterSqlite3.Database | undefined;
    const q = reopen({ onOpen: (d) => void (db = d) });
    expect(db?.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    expect(q.stats()).toMatchObject({ depth: 1, bytes: 2, oldestCreatedAt: 5 });
    expect(q.lease(1, LEASE_MS)[0]).toMatchObject({ id: 'old', priority: 3, meta: {} });
  });

  it('refuses a database written by a newer schema, and leaves it untouched', () => {
    reopen().close();
    const raw = new Database(file);
    raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
    raw.close();
    const bytes = fs.readFileSync(file);
    expect(thrownCode(() => reopen())).toBe(agentCode('STORAGE_FAILED'));
    expect(fs.readFileSync(file).equals(bytes)).toBe(true);
  });

  it('refuses a file that is not a database with STORAGE_FAILED, and does not overwrite it', () => {
    const garbage = Buffer.alloc(8192, 0x5a);
    fs.writeFileSync(file, garbage);
    let err: unknown;
    try {
      reopen();
    } catch (e) {
      err = e;
    }
    expect(err).toMatchObject({ code: agentCode('STORAGE_FAILED'), details: { op: 'open', sqliteCode: 'SQLITE_NOTADB' } });
    expect(fs.readFileSync(file).equals(garbage)).toBe(true);
  });

  it('reports a missing directory as STORAGE_FAILED', () => {
    expect(thrownCode(() => reopen({ path: path.join(tmp.dir, 'missing', 'queue.db') }))).toBe(agentCode('STORAGE_FAILED'));
  });

  it('refuses a non-positive quota with CONFIG_INVALID', () => {
    expect(thrownCode(() => reopen({ quotaBytes: -1 }))).toBe(agentCode('CONFIG_INVALID'));
  });
});

function pickCounters(q: SampleQueue): Record<string, number> {
  const s = q.stats();
  return { enqueuedTotal: s.enqueuedTotal, duplicatesTotal: s.duplicatesTotal, evictedTotal: s.evictedTotal, ackedTotal: s.ackedTotal };
}
