import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from 'pino';
import { AgentError } from '../errors.js';
import { admitItem, COUNTER_NAMES, DEFAULT_ACKED_MEMORY, zeroCounters } from './admission.js';
import type { AdmissionLedger, AdmissionStore, QueueCounters } from './admission.js';
import { GroupCommitter } from './group-commit.js';
import type { GroupCommitOptions } from './group-commit.js';
import { checkLeaseArgs, prepareItem, queueClosedError, takeWithinBytes, toQueueItem } from './item.js';
import type { PreparedItem } from './item.js';
import { migrate } from './sqlite-schema.js';
import { prepareStatements } from './sqlite-statements.js';
import type { ItemRow, Statements } from './sqlite-statements.js';
import { statsFromRows } from './sqlite-stats.js';
import { toStorageError, withStorage } from './storage-error.js';
import type { Clock, EnqueueResult, LeaseOptions, QueueItem, QueueItemInput, QueueStats, SampleQueue } from './types.js';

/** Options for {@link openSqliteQueue}. */
export interface SqliteQueueOptions {
  /** Database file. One process owns it: the byte total is cached in memory. */
  path: string;
  /** Upper bound on queued payload bytes (see `bytes` in types.ts). */
  quotaBytes: number;
  /**
   * `FULL` (default): the WAL is fsynced at every commit, so an enqueue that returned
   * survives power loss and OS crashes - the promise the product makes for kept samples.
   * `NORMAL`: commits are only written to the OS, so they survive an application crash but
   * the last ones may roll back on power loss (the WAL stays consistent either way). Only
   * for devices where losing a few seconds of samples to a power cut is acceptable and the
   * fsync cost (large on SD cards) is not.
   */
  synchronous?: 'FULL' | 'NORMAL';
  clock: Clock;
  logger?: Logger;
  /** How long to wait for a lock held by another connection (a backup, the CLI). Default 5000. */
  busyTimeoutMs?: number;
  /** How many recently acked ids to remember for duplicate detection. Default 10,000. */
  ackedMemory?: number;
  /** Coalescing of `enqueueAsync` calls into one transaction. */
  groupCommit?: GroupCommitOptions;
  /**
   * Runs on the open connection after migrations, for extra per-connection pragmas
   * (`mmap_size`, `cache_size`); tests use it to shrink `max_page_count` and simulate a full disk.
   */
  onOpen?: (db: BetterSqlite3.Database) => void;
}

/**
 * Open (creating or migrating) a SQLite-backed {@link SampleQueue}.
 * Every lease left by a previous run is cleared: after a crash, everything unacked is eligible
 * again; resending is harmless because the fleet is idempotent on sample ids.
 * Throws `STORAGE_FAILED` when the file cannot be opened or is not a queue database.
 */
export function openSqliteQueue(opts: SqliteQueueOptions): SampleQueue {
  if (!(Number.isFinite(opts.quotaBytes) && opts.quotaBytes > 0)) {
    throw new AgentError('CONFIG_INVALID', 'queue quotaBytes must be a positive number', { details: { quotaBytes: opts.quotaBytes } });
  }
  const synchronous = opts.synchronous ?? 'FULL';
  let db: BetterSqlite3.Database | undefined;
  try {
    db = new Database(opts.path);
    db.pragma('journal_mode = WAL');
    db.pragma(`synchronous = ${synchronous}`);
    db.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    migrate(db);
    opts.onOpen?.(db);
    return new SqliteQueue(db, opts, synchronous);
  } catch (err) {
    db?.close();
    throw toStorageError('open', err, true);
  }
}

class SqliteQueue implements SampleQueue {
  private readonly stmts: Statements;
  private readonly log: Logger | undefined;
  private readonly quotaBytes: number;
  private readonly clock: Clock;
  private readonly ackedMemory: number;
  private readonly groupCommit: GroupCommitter<PreparedItem, EnqueueResult>;
  private readonly store: AdmissionStore;
  /** Cached so admission does not sum the table on every enqueue; recomputed at open. */
  private usedBytes: number;
  private closed = false;

  constructor(
    private readonly db: BetterSqlite3.Database,
    opts: SqliteQueueOptions,
    private readonly synchronous: 'FULL' | 'NORMAL',
  ) {
    this.stmts = prepareStatements(db);
    this.log = opts.logger?.child({ component: 'queue' });
    this.quotaBytes = opts.quotaBytes;
    this.clock = opts.clock;
    this.ackedMemory = Math.max(0, opts.ackedMemory ?? DEFAULT_ACKED_MEMORY);
    this.groupCommit = new GroupCommitter((items) => this.admitPrepared(items), opts.groupCommit);
    const s = this.stmts;
    this.store = {
      isKnown: (id) => s.isKnown.get({ id }) === 1,
      // A generator so the cursor opens only if eviction actually needs candidates: an
      // iterate() left unconsumed keeps the connection busy. yield* forwards the early
      // return() of decideEviction's loop, which closes the cursor.
      *evictionCandidates(maxPriority) {
        yield* s.evictionCandidates.iterate(maxPriority);
      },
      remove: (id) => void s.remove.run(id),
      insert: (item) =>
        void s.insert.run({
          id: item.id,
          kind: item.kind,
          priority: item.priority,
          meta: item.metaJson,
          bytes: item.bytes,
          createdAt: item.createdAt,
          blob: item.blob ?? null,
        }),
    };
    const cleared = s.clearLeases.run().changes;
    const totals = s.totals.get() ?? { depth: 0, bytes: 0 };
    this.usedBytes = totals.bytes;
    this.log?.info({ depth: totals.depth, bytes: this.usedBytes, quotaBytes: this.quotaBytes, leasesCleared: cleared, synchronous }, 'sample queue opened');
  }

  enqueue(item: QueueItemInput): EnqueueResult {
    return this.enqueueMany([item])[0] as EnqueueResult;
  }

  enqueueMany(items: QueueItemInput[]): EnqueueResult[] {
    this.assertOpen();
    const now = this.clock.now();
    // Validate everything before writing anything: one bad item must not half-apply a batch.
    const prepared = items.map((item) => prepareItem(item, now, this.quotaBytes));
    return this.admitPrepared(prepared);
  }

  enqueueAsync(item: QueueItemInput): Promise<EnqueueResult> {
    try {
      this.assertOpen();
      return this.groupCommit.submit(prepareItem(item, this.clock.now(), this.quotaBytes));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  lease(max: number, leaseMs: number, opts: LeaseOptions = {}): QueueItem[] {
    this.assertOpen();
    checkLeaseArgs(max, leaseMs, opts.maxBytes);
    if (max === 0) return [];
    const now = this.clock.now();
    return this.volatileWrite('lease', () => {
      const rows = takeWithinBytes(this.stmts.leaseCandidates.all(now, max), max, opts.maxBytes);
      for (const row of rows) this.stmts.setLease.run(now + leaseMs, row.seq);
      return rows.map(rowToItem);
    });
  }

  release(ids: string[]): void {
    this.assertOpen();
    if (ids.length === 0) return;
    this.volatileWrite('release', () => {
      for (const id of ids) this.stmts.release.run(id);
    });
  }

  ack(ids: string[]): number {
    this.assertOpen();
    if (ids.length === 0) return 0;
    const { count, freed } = withStorage('ack', () =>
      this.db
        .transaction(() => {
          let n = 0;
          let bytes = 0;
          for (const id of new Set(ids)) {
            const row = this.stmts.ackDelete.get(id);
            if (!row) continue;
            n += 1;
            bytes += row.bytes;
            this.stmts.ackRemember.run(id);
          }
          if (n > 0) {
            this.stmts.ackPrune.run(this.ackedMemory);
            this.writeCounters({ ...zeroCounters(), ackedTotal: n });
          }
          return { count: n, freed: bytes };
        })
        .immediate(),
    );
    this.usedBytes -= freed;
    return count;
  }

  stats(): QueueStats {
    this.assertOpen();
    return withStorage('stats', () => statsFromRows(this.stmts.byPriority.all(), this.stmts.counters.all(), this.quotaBytes));
  }

  close(): void {
    if (this.closed) return;
    // Pending group-commit captures were promised durability: write them before closing.
    this.groupCommit.flush();
    this.closed = true;
    this.db.close();
  }

  /** Admit prepared items in one IMMEDIATE transaction (takes the write lock up front, so no lock upgrade can fail mid-way). */
  private admitPrepared(items: PreparedItem[]): EnqueueResult[] {
    if (items.length === 0) return [];
    const ledger: AdmissionLedger = { usedBytes: this.usedBytes, delta: zeroCounters() };
    const results = withStorage('enqueue', () =>
      this.db
        .transaction(() => {
          const out = items.map((item) => admitItem(this.store, item, this.quotaBytes, ledger, this.log));
          this.writeCounters(ledger.delta);
          return out;
        })
        .immediate(),
    );
    // Only after the commit: a failed transaction leaves the cache matching the database.
    this.usedBytes = ledger.usedBytes;
    return results;
  }

  private writeCounters(delta: QueueCounters): void {
    for (const name of COUNTER_NAMES) {
      if (delta[name] !== 0) this.stmts.bumpCounter.run(name, delta[name]);
    }
  }

  /**
   * Lease state is deliberately thrown away at open, so lease/release commits need no fsync:
   * they run at synchronous=NORMAL even when the queue is FULL. Losing one to a power cut only
   * means an item is sent again (or an attempt goes uncounted).
   */
  private volatileWrite<T>(op: string, fn: () => T): T {
    return withStorage(op, () => {
      const relax = this.synchronous === 'FULL';
      if (relax) this.db.pragma('synchronous = NORMAL');
      try {
        return this.db.transaction(fn).immediate();
      } finally {
        if (relax) this.db.pragma('synchronous = FULL');
      }
    });
  }

  private assertOpen(): void {
    if (this.closed) throw queueClosedError();
  }
}

function rowToItem(row: ItemRow): QueueItem {
  return toQueueItem({
    seq: row.seq,
    id: row.id,
    kind: row.kind,
    priority: row.priority,
    metaJson: row.meta,
    blob: row.blob ?? undefined,
    bytes: row.bytes,
    createdAt: row.createdAt,
    attempts: row.attempts,
  });
}
