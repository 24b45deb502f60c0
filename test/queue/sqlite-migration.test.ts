import path from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { migrate, MIGRATIONS } from '../../agent/queue/sqlite-schema.js';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { readQueueStats } from '../../agent/queue/sqlite-stats.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { fakeClock, makeTempDir } from './helpers.js';

const LEASE_MS = 60_000;

interface OldRow {
  seq: number;
  id: string;
  priority: number;
  attempts: number;
  leaseUntil: number | null;
  createdAt: number;
}

/** Rows of a schema-2 file: priorities interleaved, seq gaps (acked items), some leased. */
const OLD_ROWS: OldRow[] = [
  { seq: 1, id: 'p3-a', priority: 3, attempts: 0, leaseUntil: null, createdAt: 100 },
  { seq: 2, id: 'p9-a', priority: 9, attempts: 2, leaseUntil: 1_700_000_090_000, createdAt: 110 },
  { seq: 4, id: 'p3-b', priority: 3, attempts: 1, leaseUntil: 1_700_000_090_000, createdAt: 120 },
  { seq: 5, id: 'p0-a', priority: 0, attempts: 0, leaseUntil: null, createdAt: 130 },
  { seq: 7, id: 'p9-b', priority: 9, attempts: 0, leaseUntil: null, createdAt: 140 },
  { seq: 8, id: 'p3-c', priority: 3, attempts: 0, leaseUntil: null, createdAt: 150 },
];
/** The last seq the old AUTOINCREMENT handed out: its item (9) was acked. */
const OLD_LAST_SEQ = 9;
const OLD_ACKED = ['gone-1', 'gone-2', 'gone-3'];

function metaOf(row: OldRow): Record<string, unknown> {
  return { sample_id: row.id, note: `ünïcode ${row.seq}`, nested: { seq: row.seq } };
}

function blobOf(row: OldRow): Buffer {
  return Buffer.alloc(100 + row.seq, row.seq);
}

/** A queue file as an agent at schema 2 left it. */
function writeSchema2File(file: string): void {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.exec(MIGRATIONS[0] as string);
  db.exec(MIGRATIONS[1] as string);
  db.pragma('user_version = 2');
  const insert = db.prepare(
    'INSERT INTO items (seq, id, kind, priority, meta, bytes, created_at, attempts, lease_until, blob) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  for (const row of OLD_ROWS) {
    const meta = JSON.stringify(metaOf(row));
    const blob = blobOf(row);
    insert.run(row.seq, row.id, 'image', row.priority, meta, blob.length + Buffer.byteLength(meta), row.createdAt, row.attempts, row.leaseUntil, blob);
  }
  db.prepare("UPDATE sqlite_sequence SET seq = ? WHERE name = 'items'").run(OLD_LAST_SEQ);
  const remember = db.prepare('INSERT INTO acked (id) VALUES (?)');
  for (const id of OLD_ACKED) remember.run(id);
  const counter = db.prepare('INSERT INTO counters (name, value) VALUES (?, ?)');
  counter.run('enqueuedTotal', 9);
  counter.run('ackedTotal', 3);
  counter.run('duplicatesTotal', 4);
  db.close();
}

describe('sqlite queue schema 3 migration (rows clustered by priority, leases in memory)', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let file: string;
  let open: SampleQueue[];

  const reopen = (onOpen?: (db: BetterSqlite3.Database) => void): SampleQueue => {
    const q = openSqliteQueue({ path: file, quotaBytes: 10_000_000, clock: fakeClock(), ...(onOpen ? { onOpen } : {}) });
    open.push(q);
    return q;
  };

  beforeEach(() => {
    tmp = makeTempDir('sqlite-migrate');
    file = path.join(tmp.dir, 'queue.db');
    open = [];
  });
  afterEach(() => {
    for (const q of open) q.close();
    tmp.remove();
  });

  it('upgrades a schema-2 file with every item, seq, attempt, counter and acked id intact', () => {
    writeSchema2File(file);
    const before = readQueueStats(file);

    let db: BetterSqlite3.Database | undefined;
    const q = reopen((d) => void (db = d));
    expect(db?.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
    const tables = (db?.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[]).filter((t) => !t.startsWith('sqlite_'));
    expect(tables).toEqual(['acked_batches', 'counters', 'dropped', 'items', 'sequence']);

    const stats = q.stats();
    expect(stats).toEqual({ ...before, quotaBytes: 10_000_000 });
    expect(stats).toMatchObject({ depth: OLD_ROWS.length, enqueuedTotal: 9, ackedTotal: 3, duplicatesTotal: 4, oldestCreatedAt: 100 });

    // Leases of the old run are gone; order is priority, then seq; everything else as stored.
    const leased = q.lease(100, LEASE_MS);
    expect(leased.map((i) => i.id)).toEqual(['p9-a', 'p9-b', 'p3-a', 'p3-b', 'p3-c', 'p0-a']);
    for (const item of leased) {
      const row = OLD_ROWS.find((r) => r.id === item.id) as OldRow;
      expect(item).toMatchObject({ seq: row.seq, priority: row.priority, attempts: row.attempts, createdAt: row.createdAt, kind: 'image', meta: metaOf(row) });
      expect(Buffer.from(item.blob ?? []).equals(blobOf(row))).toBe(true);
    }

    // Recently acked ids are still duplicates; a new item never reuses a seq.
    for (const id of OLD_ACKED) expect(q.enqueue({ id, kind: 'image', priority: 1, meta: {} }).duplicate).toBe(true);
    expect(q.enqueue({ id: 'new', kind: 'image', priority: 9, meta: {} }).accepted).toBe(true);
    const fresh = q.lease(10, LEASE_MS);
    expect(fresh.map((i) => i.id)).toEqual(['new']);
    expect(fresh[0]?.seq).toBe(OLD_LAST_SEQ + 1);
  });

  it('resumes a migration cut off between chunks, losing and duplicating nothing', () => {
    writeSchema2File(file);
    const raw = new Database(file);
    let chunks = 0;
    expect(() =>
      migrate(raw, {
        chunkRows: 2,
        onChunk: () => {
          chunks++;
          if (chunks === 2) throw new Error('power cut');
        },
      }),
    ).toThrow('power cut');
    // Half-way: still schema 2, every row in exactly one of the two tables.
    expect(raw.pragma('user_version', { simple: true })).toBe(2);
    const inOld = raw.prepare('SELECT count(*) FROM items').pluck().get() as number;
    const inNew = raw.prepare('SELECT count(*) FROM items_v3').pluck().get() as number;
    expect([inOld, inNew]).toEqual([OLD_ROWS.length - 4, 4]);
    raw.close();

    const q = reopen();
    expect(q.stats().depth).toBe(OLD_ROWS.length);
    expect(q.lease(100, LEASE_MS).map((i) => [i.id, i.seq])).toEqual([
      ['p9-a', 2],
      ['p9-b', 7],
      ['p3-a', 1],
      ['p3-b', 4],
      ['p3-c', 8],
      ['p0-a', 5],
    ]);
    expect(q.enqueue({ id: 'gone-2', kind: 'image', priority: 1, meta: {} }).duplicate).toBe(true);
  });

  it('migrates an empty schema-2 file and starts seqs after the old counter', () => {
    const db = new Database(file);
    db.exec(MIGRATIONS[0] as string);
    db.exec(MIGRATIONS[1] as string);
    db.pragma('user_version = 2');
    db.prepare("INSERT INTO items (id, kind, priority, meta, bytes, created_at) VALUES ('x', 'image', 1, '{}', 2, 1)").run();
    db.prepare("DELETE FROM items WHERE id = 'x'").run();
    db.close();
    const q = reopen();
    expect(q.stats().depth).toBe(0);
    q.enqueue({ id: 'y', kind: 'image', priority: 1, meta: {} });
    expect(q.lease(1, LEASE_MS)[0]?.seq).toBe(2);
  });
});
