import type BetterSqlite3 from 'better-sqlite3';
import type { DroppedItem } from './types.js';

/**
 * A stored row as the lease query returns it, in raw (array) mode: naming every column of
 * every row costs more than reading it.
 */
export type ItemRow = [key: number, id: string, kind: string, priority: number, meta: string, blob: Buffer | null, bytes: number, createdAt: number, attempts: number];

/**
 * Every statement the queue runs, prepared once at open: preparing is parsing plus planning,
 * far more than the insert itself on the hot path.
 *
 * Rows are keyed by `priority * PRIORITY_SPAN + seq` (sqlite-schema.ts), so a range of keys
 * is one priority lane in FIFO order: leasing and eviction read the table itself.
 */
export function prepareStatements(db: BetterSqlite3.Database) {
  return {
    isQueued: db.prepare<[string], number>('SELECT EXISTS (SELECT 1 FROM items WHERE id = ?)').pluck(),
    // Lowest priority first, oldest first: ascending keys below the first key of maxPriority + 1.
    evictionCandidates: db.prepare<[number], { id: string; priority: number; bytes: number }>(
      'SELECT id, priority, bytes FROM items WHERE key < ? ORDER BY key ASC',
    ),
    remove: db.prepare<[string]>('DELETE FROM items WHERE id = ?'),
    insert: db.prepare<{ key: number; id: string; kind: string; priority: number; meta: string; bytes: number; createdAt: number; blob: Uint8Array | null }>(
      `INSERT INTO items (key, id, kind, priority, meta, bytes, created_at, blob)
       VALUES (@key, @id, @kind, @priority, @meta, @bytes, @createdAt, @blob)
       ON CONFLICT (id) DO NOTHING`,
    ),
    // The last seq handed out and the byte total, read under the write lock (another
    // connection, the drain worker's, may have acked since).
    sequence: db.prepare<[], [lastSeq: number, usedBytes: number]>('SELECT last_seq, used_bytes FROM sequence WHERE one = 1').raw(),
    setSequence: db.prepare<[number, number]>('UPDATE sequence SET last_seq = ?, used_bytes = ? WHERE one = 1'),
    freeBytes: db.prepare<[number]>('UPDATE sequence SET used_bytes = used_bytes - ? WHERE one = 1'),
    bumpCounter: db.prepare<[string, number]>(
      'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value',
    ),
    // One priority lane, from a key on (exclusive), below the next lane's first key.
    leaseRange: db
      .prepare<[number, number, number], ItemRow>(
        'SELECT key, id, kind, priority, meta, blob, bytes, created_at, attempts FROM items WHERE key > ? AND key < ? ORDER BY key ASC LIMIT ?',
      )
      .raw(),
    release: db.prepare<[number]>('UPDATE items SET attempts = attempts + 1 WHERE key = ?'),
    // Acks of leased items, by key, in one statement per batch: `keys` is a JSON array.
    ackKeys: db.prepare<[string], [key: number, bytes: number]>('DELETE FROM items WHERE key IN (SELECT value FROM json_each(?)) RETURNING key, bytes').raw(),
    // Acks of ids this process holds no lease for (sent by a previous run).
    ackId: db.prepare<[string], number>('DELETE FROM items WHERE id = ? RETURNING bytes').pluck(),
    // Recently acked ids: one row (a JSON array) per ack transaction.
    ackedBatches: db.prepare<[], { ord: number; count: number }>('SELECT ord, json_array_length(ids) AS count FROM acked_batches ORDER BY ord ASC'),
    ackedNewestFirst: db.prepare<[], string>('SELECT ids FROM acked_batches ORDER BY ord DESC').pluck(),
    // Batches another connection stored since this one last looked (ord only grows: the newest
    // batch is never pruned while the memory has room).
    ackedSince: db.prepare<[number], { ord: number; ids: string }>('SELECT ord, ids FROM acked_batches WHERE ord > ? ORDER BY ord ASC'),
    ackRemember: db.prepare<[string]>('INSERT INTO acked_batches (ids) VALUES (?)'),
    ackPrune: db.prepare<[number]>('DELETE FROM acked_batches WHERE ord <= ?'),
    // One pass over the covering index items_stats, never over the rows themselves.
    depth: db.prepare<[], number>('SELECT count(*) FROM items').pluck(),
    byPriority: db.prepare<[], { priority: number; depth: number; bytes: number; oldest: number }>(
      'SELECT priority, count(*) AS depth, sum(bytes) AS bytes, min(created_at) AS oldest FROM items GROUP BY priority',
    ),
    counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
    ...droppedStatements(db),
    recordDrop: db.prepare<[string, number, number, string, number]>('INSERT INTO dropped (id, priority, bytes, reason, at) VALUES (?, ?, ?, ?, ?)'),
    pruneDropped: db.prepare<[number]>('DELETE FROM dropped WHERE ord <= ?'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/** The reads of the drop record, shared with the read-only view the CLI opens (sqlite-stats.ts). */
export function droppedStatements(db: BetterSqlite3.Database) {
  return {
    // ord is contiguous (pruned from the bottom only), so this is the count without a scan.
    droppedOnRecord: db.prepare<[], number>('SELECT coalesce(max(ord) - min(ord) + 1, 0) FROM dropped').pluck(),
    droppedAfter: db.prepare<[number, number], DroppedItem>('SELECT ord, id, priority, bytes, reason, at FROM dropped WHERE ord > ? ORDER BY ord ASC LIMIT ?'),
  };
}
