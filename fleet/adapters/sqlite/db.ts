import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { systemClock } from '../../../shared/ids.js';
import type { Clock } from '../../../shared/ids.js';
import type { StorageHealth } from '../../app/context.js';
import { FleetError } from '../../errors.js';
import { guarded } from './guard.js';
import { migrate } from './migrations.js';

/** Options of {@link openFleetDb}. */
export interface FleetDbOptions {
  /** Database file (`:memory:` works for throwaway use; tests use real files). */
  path: string;
  clock?: Clock;
  /** How long a writer waits for a lock held by another connection (the CLI, a backup). Default 5000. */
  busyTimeoutMs?: number;
}

/**
 * The fleet's SQLite database: one connection, migrated, with the injected clock. Only the
 * repositories of this folder use it; they prepare their statements once, when built, against
 * {@link FleetDb.sqlite}, and the services reach storage through them.
 */
export interface FleetDb {
  readonly sqlite: BetterSqlite3.Database;
  readonly clock: Clock;
  readonly path: string;
  close(): void;
}

/**
 * Open (creating or migrating) the fleet database.
 *
 * - WAL: readers (the HTTP API, the console) never block the ingest writer, and a commit
 *   is one sequential append.
 * - `synchronous = FULL`: the WAL is fsynced at every commit. better-sqlite3 builds WAL
 *   databases with NORMAL by default, which survives a process crash but may roll back
 *   the last commits on power loss or an OS crash. The fleet acks a sample once its row
 *   committed and the device then deletes its only copy (ack-then-delete), and registry
 *   and credential writes are answered as done: a power cut must not undo any of them.
 *   Ingest batches many samples per commit, so the fsync is paid per batch, not per sample.
 * - `busy_timeout`: the CLI and the server may open the same file; a writer waits for the
 *   other's transaction instead of failing at once with SQLITE_BUSY.
 * - `foreign_keys = ON`: SQLite leaves them off per connection unless asked; the schema
 *   relies on them (files of a version, tags and state of a device, label events).
 *
 * Throws `FLEET_STORAGE_FAILED` when the file cannot be opened or migrated.
 */
export function openFleetDb(opts: FleetDbOptions): FleetDb {
  let sqlite: BetterSqlite3.Database | undefined;
  try {
    sqlite = new Database(opts.path);
    sqlite.pragma('journal_mode = WAL');
    sqlite.pragma('synchronous = FULL');
    sqlite.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    sqlite.pragma('foreign_keys = ON');
    migrate(sqlite);
  } catch (err) {
    sqlite?.close();
    if (err instanceof FleetError) throw err;
    throw new FleetError('STORAGE_FAILED', `cannot open the fleet database ${opts.path}: ${(err as Error).message}`, { cause: err });
  }
  const db = sqlite;
  return {
    sqlite: db,
    clock: opts.clock ?? systemClock,
    path: opts.path,
    close: () => {
      if (db.open) db.close();
    },
  };
}

/** Whether the database answers a read (the statement prepared once). */
export function sqliteStorageHealth(db: FleetDb): StorageHealth {
  const one = db.sqlite.prepare('SELECT 1');
  return guarded('health', { ping: () => void one.get() } satisfies StorageHealth);
}
