import type BetterSqlite3 from 'better-sqlite3';
import { AgentError } from '../errors.js';

/**
 * Rows of `items` are keyed by `priority * PRIORITY_SPAN + seq` (schema 3): the b-tree holds
 * each priority lane's rows together, in FIFO order. 2^40 seqs per lane is more than any
 * device will ever enqueue, and the largest key (< 2^44) is a safe JavaScript integer.
 */
export const PRIORITY_SPAN = 2 ** 40;

/** Rows moved per transaction by the schema-3 migration. */
const MIGRATION_CHUNK_ROWS = 512;

/** A migration step: SQL run in one transaction, or a function that manages its own transactions. */
export type Migration = string | ((db: BetterSqlite3.Database, opts: MigrateOptions, toVersion: number) => void);

export interface MigrateOptions {
  /** Rows per transaction for steps that copy data (tests make it small). */
  chunkRows?: number;
  /** Called after each committed chunk of a copying step; tests throw from it to simulate a crash. */
  onChunk?: (movedSoFar: number) => void;
}

/**
 * Schema migrations, applied in order; `PRAGMA user_version` records how many ran.
 * Append only: never edit a shipped step, devices in the field are at every version.
 */
export const MIGRATIONS: readonly Migration[] = [
  // 1: items, recently-acked ids, persistent counters.
  `
  CREATE TABLE items (
    -- AUTOINCREMENT: seq is never reused, even after the newest row is acked, so it is a
    -- stable FIFO key and a stable identifier in logs.
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT    NOT NULL UNIQUE,
    kind        TEXT    NOT NULL,
    priority    INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
    meta        TEXT    NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    -- Last, so reading the other columns never walks the blob's overflow pages.
    blob        BLOB
  );
  -- Leasing: ORDER BY priority DESC, seq ASC (a plain (priority, seq) index cannot serve
  -- mixed directions without a sort).
  CREATE INDEX items_lease_order ON items (priority DESC, seq ASC);
  -- Eviction: ORDER BY priority ASC, seq ASC, and GROUP BY priority for stats.
  CREATE INDEX items_evict_order ON items (priority ASC, seq ASC);

  -- Ids delivered recently, so a re-capture of a delivered sample is a duplicate, not a
  -- second upload. Bounded: the oldest rows (lowest ord) are pruned after each ack.
  CREATE TABLE acked (
    ord INTEGER PRIMARY KEY AUTOINCREMENT,
    id  TEXT NOT NULL UNIQUE
  );

  CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
  ) WITHOUT ROWID;
  `,
  // 2: keep whole-table work off the rows (each row's page holds its blob). Measured at 100k
  // samples of 2 KB: stats() 1.3 s -> 55 ms, reopen 730 ms -> 42 ms.
  // - The eviction index also covers bytes and created_at, so stats() and the byte total
  //   read at open scan only the index.
  // - A partial index of leased rows, so clearing leases at open touches only those rows.
  `
  DROP INDEX items_evict_order;
  CREATE INDEX items_evict_order ON items (priority ASC, seq ASC, bytes, created_at);
  CREATE INDEX items_leased ON items (lease_until) WHERE lease_until IS NOT NULL;
  `,
  // 3: rows clustered by (priority, seq), leases in memory. See migrateToClustered.
  migrateToClustered,
  // 4: the byte total kept in the database, written in the transaction that changes the rows.
  // Why: the drain worker (agent/uplink/drain-worker.ts) deletes acked rows on its own
  // connection while the main thread enqueues on another, so neither may trust a total
  // cached in its memory; admission reads this one under the write lock, as it reads last_seq.
  `
  ALTER TABLE sequence ADD COLUMN used_bytes INTEGER NOT NULL DEFAULT 0;
  UPDATE sequence SET used_bytes = (SELECT coalesce(sum(bytes), 0) FROM items) WHERE one = 1;
  `,
  // 5: a record of drops, id by id, written in the transaction that drops (see DroppedItem):
  // the counters said how many captures never left the device, not which. Bounded: the oldest
  // rows (lowest ord) are pruned; ord is contiguous, so max - min + 1 is the count on record.
  `
  CREATE TABLE dropped (
    ord      INTEGER PRIMARY KEY,
    id       TEXT    NOT NULL,
    priority INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    reason   TEXT    NOT NULL CHECK (reason IN ('evicted', 'rejected')),
    at       INTEGER NOT NULL
  );
  `,
];

/**
 * Schema 3. Why: the forwarder drains one priority lane at a time, but rows were stored in
 * seq order, so consecutive deletes hit rows of interleaved priorities on different pages and
 * every acked sample rewrote a whole 4 KB page into the WAL (and the checkpoint wrote it
 * again). Keyed by `priority * 2^40 + seq`, a lane's rows share pages, a batch of acks frees
 * whole pages, and leasing and eviction read the table in key order with no index at all.
 * Measured on the 2-core reference box (5,000 samples of 1 KB, priorities interleaved, batches
 * of 160 deletes): 40-60 -> ~9 µs per deleted sample.
 *
 * - `lease_until` and its index go: leases are kept in memory (see LeaseBook).
 * - `items_lease_order` / `items_evict_order` go: the key order serves both.
 * - `items_stats` (priority, created_at, bytes) covers stats() and the byte total at open;
 *   created_at grows with seq in practice, so a lane's entries also sit together.
 * - `sequence` keeps the last seq handed out (AUTOINCREMENT cannot apply to a computed key),
 *   so a seq is still never reused.
 * - `acked` becomes `acked_batches`: one row per ack transaction rather than two b-tree
 *   inserts and two deletes per acked id (~3 µs of the ack's cost per sample).
 *
 * The copy moves {@link MIGRATION_CHUNK_ROWS} rows per transaction (insert into the new table
 * and delete from the old one together), so the file and the WAL grow by one chunk, not by a
 * second copy of a queue that may fill most of the disk. Every row is in exactly one of the
 * two tables at every commit: a crash mid-way loses nothing, and the next open resumes.
 */
function migrateToClustered(db: BetterSqlite3.Database, opts: MigrateOptions, toVersion: number): void {
  const chunk = Math.max(1, opts.chunkRows ?? MIGRATION_CHUNK_ROWS);
  db.transaction(() => {
    db.exec(`
      CREATE TABLE IF NOT EXISTS items_v3 (
        -- priority * 2^40 + seq: each priority lane's rows together, FIFO within it.
        key         INTEGER PRIMARY KEY,
        id          TEXT    NOT NULL UNIQUE,
        kind        TEXT    NOT NULL,
        priority    INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 9),
        meta        TEXT    NOT NULL,
        bytes       INTEGER NOT NULL,
        created_at  INTEGER NOT NULL,
        attempts    INTEGER NOT NULL DEFAULT 0,
        -- Last, so reading the other columns never walks the blob's overflow pages.
        blob        BLOB,
        CHECK (key - priority * ${PRIORITY_SPAN} BETWEEN 1 AND ${PRIORITY_SPAN - 1})
      );
      CREATE TABLE IF NOT EXISTS sequence (
        one      INTEGER PRIMARY KEY CHECK (one = 1),
        last_seq INTEGER NOT NULL
      );
      -- sqlite_sequence still has the old table's counter (it goes with DROP TABLE items).
      INSERT OR IGNORE INTO sequence (one, last_seq)
        VALUES (1, coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'items'), 0));
    `);
  }).immediate();
  const bound = db.prepare<[number], number>('SELECT seq FROM items ORDER BY seq LIMIT 1 OFFSET ?').pluck();
  const last = db.prepare<[], number | null>('SELECT max(seq) FROM items').pluck();
  const copy = db.prepare<[number]>(
    `INSERT INTO items_v3 (key, id, kind, priority, meta, bytes, created_at, attempts, blob)
     SELECT priority * ${PRIORITY_SPAN} + seq, id, kind, priority, meta, bytes, created_at, attempts, blob
     FROM items WHERE seq <= ?`,
  );
  const remove = db.prepare<[number]>('DELETE FROM items WHERE seq <= ?');
  let moved = 0;
  for (;;) {
    const done = db
      .transaction(() => {
        const upTo = bound.get(chunk - 1) ?? last.get();
        if (upTo === null || upTo === undefined) return true;
        moved += copy.run(upTo).changes;
        remove.run(upTo);
        return false;
      })
      .immediate();
    if (done) break;
    opts.onChunk?.(moved);
  }
  db.transaction(() => {
    db.exec(`
      DROP TABLE items;
      ALTER TABLE items_v3 RENAME TO items;
      CREATE INDEX items_stats ON items (priority, created_at, bytes);

      -- Recently acked ids, one row per ack transaction (a JSON array, in ack order), instead of
      -- a row plus a unique-index entry per id and a prune per id: the queue keeps the last
      -- ackedMemory ids in memory for duplicate checks, loaded from here at open.
      CREATE TABLE acked_batches (
        ord INTEGER PRIMARY KEY,
        ids TEXT NOT NULL
      );
      INSERT INTO acked_batches (ids) SELECT json_group_array(id ORDER BY ord) FROM acked HAVING count(*) > 0;
      DROP TABLE acked;
    `);
    db.pragma(`user_version = ${toVersion}`);
  }).immediate();
}

/** Bring the database to the latest schema, one transaction per SQL step. */
export function migrate(db: BetterSqlite3.Database, opts: MigrateOptions = {}): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    // Written by a newer agent (after a rollback of the agent itself): refuse rather than
    // guess at a schema we do not know, and leave the file untouched.
    throw new AgentError('STORAGE_FAILED', `queue schema version ${current} is newer than this agent supports (${MIGRATIONS.length})`, {
      details: { schemaVersion: current, supported: MIGRATIONS.length },
    });
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    const step = MIGRATIONS[version] as Migration;
    if (typeof step === 'function') {
      // Sets user_version itself, in its last transaction.
      step(db, opts, version + 1);
      continue;
    }
    db.transaction(() => {
      db.exec(step);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}
