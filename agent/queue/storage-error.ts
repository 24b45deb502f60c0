import Database from 'better-sqlite3';
import { AgentError } from '../errors.js';
import { isEdgeloopError } from '../../shared/errors.js';

/**
 * Run a storage operation, turning SQLite failures (SQLITE_FULL, SQLITE_IOERR_*,
 * SQLITE_CORRUPT, SQLITE_READONLY, SQLITE_BUSY, ...) into `STORAGE_FAILED` with the
 * original error as `cause` and its code in `details.sqliteCode`.
 *
 * Committed data is never touched on this path: the failing transaction is rolled back by
 * better-sqlite3 (or by SQLite itself), and the caller is told nothing was stored.
 */
export function withStorage<T>(op: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw toStorageError(op, err);
  }
}

/**
 * SQLite errors become STORAGE_FAILED; domain errors and programming errors pass through
 * unchanged (a TypeError in our own code is a bug, not a full disk). With `anyError`, every
 * non-domain error is wrapped: opening a file fails with plain errors too (missing directory).
 */
export function toStorageError(op: string, err: unknown, anyError = false): unknown {
  if (isEdgeloopError(err)) return err;
  if (!anyError && !(err instanceof Database.SqliteError)) return err;
  const sqliteCode = err instanceof Database.SqliteError ? err.code : undefined;
  const reason = err instanceof Error ? err.message : String(err);
  return new AgentError('STORAGE_FAILED', `sample queue ${op} failed: ${reason}`, {
    cause: err,
    details: sqliteCode === undefined ? { op } : { op, sqliteCode },
  });
}
