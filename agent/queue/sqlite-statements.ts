import type BetterSqlite3 from 'better-sqlite3';

/** A stored row as the lease query returns it. */
export interface ItemRow {
  seq: number;
  id: string;
  kind: string;
  priority: number;
  meta: string;
  blob: Buffer | null;
  bytes: number;
  createdAt: number;
  attempts: number;
}

/**
 * Every statement the queue runs, prepared once at open: preparing is parsing plus planning,
 * far more than the insert itself on the hot path.
 */
export function prepareStatements(db: BetterSqlite3.Database) {
  return {
    isKnown: db
      .prepare<{ id: string }, number>(
        'SELECT EXISTS (SELECT 1 FROM items WHERE id = @id) OR EXISTS (SELECT 1 FROM acked WHERE id = @id)',
      )
      .pluck(),
    evictionCandidates: db.prepare<[number], { id: string; priority: number; bytes: number }>(
      'SELECT id, priority, bytes FROM items WHERE priority <= ? ORDER BY priority ASC, seq ASC',
    ),
    remove: db.prepare<[string]>('DELETE FROM items WHERE id = ?'),
    insert: db.prepare<{ id: string; kind: string; priority: number; meta: string; bytes: number; createdAt: number; blob: Uint8Array | null }>(
      `INSERT INTO items (id, kind, priority, meta, bytes, created_at, blob)
       VALUES (@id, @kind, @priority, @meta, @bytes, @createdAt, @blob)
       ON CONFLICT (id) DO NOTHING`,
    ),
    bumpCounter: db.prepare<[string, number]>(
      'INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value',
    ),
    leaseCandidates: db.prepare<[number, number], ItemRow>(
      `SELECT seq, id, kind, priority, meta, blob, bytes, created_at AS createdAt, attempts FROM items
       WHERE lease_until IS NULL OR lease_until <= ?
       ORDER BY priority DESC, seq ASC LIMIT ?`,
    ),
    setLease: db.prepare<[number, number]>('UPDATE items SET lease_until = ? WHERE seq = ?'),
    release: db.prepare<[string]>('UPDATE items SET lease_until = NULL, attempts = attempts + 1 WHERE id = ? AND lease_until IS NOT NULL'),
    ackDelete: db.prepare<[string], { bytes: number }>('DELETE FROM items WHERE id = ? RETURNING bytes'),
    ackRemember: db.prepare<[string]>('INSERT INTO acked (id) VALUES (?) ON CONFLICT (id) DO NOTHING'),
    ackPrune: db.prepare<[number]>('DELETE FROM acked WHERE ord <= (SELECT max(ord) FROM acked) - ?'),
    clearLeases: db.prepare('UPDATE items SET lease_until = NULL WHERE lease_until IS NOT NULL'),
    totals: db.prepare<[], { depth: number; bytes: number }>('SELECT count(*) AS depth, coalesce(sum(bytes), 0) AS bytes FROM items'),
    // One pass over the covering index items_evict_order, never over the rows themselves.
    byPriority: db.prepare<[], { priority: number; depth: number; bytes: number; oldest: number }>(
      'SELECT priority, count(*) AS depth, sum(bytes) AS bytes, min(created_at) AS oldest FROM items GROUP BY priority',
    ),
    counters: db.prepare<[], { name: string; value: number }>('SELECT name, value FROM counters'),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;
