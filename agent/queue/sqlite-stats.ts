import Database from 'better-sqlite3';
import { AgentError } from '../errors.js';
import { COUNTER_NAMES, zeroCounters } from './admission.js';
import type { QueueCounters } from './admission.js';
import { droppedStatements } from './sqlite-statements.js';
import type { DroppedItem, QueueStats } from './types.js';

type PriorityRow = { priority: number; depth: number; bytes: number; oldest: number };
type CounterRow = { name: string; value: number };

/** Queue statistics from the per-priority aggregate and the persistent counters. */
export function statsFromRows(rows: PriorityRow[], counterRows: CounterRow[], quotaBytes: number, droppedOnRecord: number): QueueStats {
  const byPriority: QueueStats['byPriority'] = {};
  let depth = 0;
  let bytes = 0;
  let oldestCreatedAt: number | null = null;
  for (const row of rows) {
    byPriority[row.priority] = { depth: row.depth, bytes: row.bytes };
    depth += row.depth;
    bytes += row.bytes;
    if (oldestCreatedAt === null || row.oldest < oldestCreatedAt) oldestCreatedAt = row.oldest;
  }
  const counters = zeroCounters();
  for (const { name, value } of counterRows) if ((COUNTER_NAMES as readonly string[]).includes(name)) counters[name as keyof QueueCounters] = value;
  return { depth, bytes, quotaBytes, byPriority, ...counters, oldestCreatedAt, droppedOnRecord };
}

/**
 * Statistics of a queue file without opening it for writing: safe while the agent runs
 * (opening a queue clears leases, which the running agent owns). The quota is a setting of
 * the agent, not stored in the file, so it is reported as 0 here.
 */
export function readQueueStats(path: string): QueueStats {
  return readOnly(path, (db) => {
    const rows = db.prepare('SELECT priority, count(*) AS depth, sum(bytes) AS bytes, min(created_at) AS oldest FROM items GROUP BY priority').all() as PriorityRow[];
    const counters = db.prepare('SELECT name, value FROM counters').all() as CounterRow[];
    return statsFromRows(rows, counters, 0, hasDropRecord(db) ? (droppedStatements(db).droppedOnRecord.get() ?? 0) : 0);
  });
}

/** The queue's record of drops (oldest first), read the same safe way as {@link readQueueStats}. */
export function readDropped(path: string, opts: { afterOrd?: number; limit?: number } = {}): DroppedItem[] {
  return readOnly(path, (db) => (hasDropRecord(db) ? droppedStatements(db).droppedAfter.all(opts.afterOrd ?? 0, opts.limit ?? -1) : []));
}

/** A file the agent has not opened since an upgrade has no record of drops yet (schema 5). */
function hasDropRecord(db: Database.Database): boolean {
  return db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'dropped'").get() !== undefined;
}

function readOnly<T>(path: string, read: (db: Database.Database) => T): T {
  let db: Database.Database;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
  } catch (err) {
    throw new AgentError('STORAGE_FAILED', `cannot open queue ${path}: ${(err as Error).message}`, { cause: err });
  }
  try {
    db.pragma('busy_timeout = 5000');
    return read(db);
  } catch (err) {
    throw new AgentError('STORAGE_FAILED', `${path} is not a readable queue database: ${(err as Error).message}`, { cause: err });
  } finally {
    db.close();
  }
}
