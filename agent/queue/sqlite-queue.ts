import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import type { Logger } from 'pino';
import { AgentError } from '../errors.js';
import { admitItem, COUNTER_NAMES, DEFAULT_ACKED_MEMORY, DEFAULT_DROPPED_MEMORY, zeroCounters } from './admission.js';
import type { AdmissionLedger, AdmissionStore, QueueCounters } from './admission.js';
import { EnqueueFront } from './enqueue-front.js';
import { GroupCommitter } from './group-commit.js';
import type { GroupCommitOptions } from './group-commit.js';
import { checkLeaseArgs, queueClosedError, toQueueItem } from './item.js';
import type { PreparedItem } from './item.js';
import { AckedMemory } from './acked-memory.js';
import { LeaseBook } from './lease-book.js';
import { migrate, PRIORITY_SPAN } from './sqlite-schema.js';
import { prepareStatements } from './sqlite-statements.js';
import type { ItemRow, Statements } from './sqlite-statements.js';
import { statsFromRows } from './sqlite-stats.js';
import { toStorageError, withStorage } from './storage-error.js';
import { MAX_PRIORITY, MIN_PRIORITY } from './types.js';
import type { Clock, DroppedItem, EnqueueResult, LeaseOptions, QueueItem, QueueStats, SampleQueue } from './types.js';

/** Drops recorded between two prunes of the record (a prune is one range delete). */
const DROPPED_PRUNE_EVERY = 256;

/** Per priority lane, where a lease scan ended; -1 for a lane it did not reach. */
const SCAN_NONE: readonly number[] = new Array<number>(MAX_PRIORITY + 1).fill(-1);

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
  /** How many dropped samples to keep on record, id by id (see DroppedItem). Default 50,000. */
  droppedMemory?: number;
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
 * Leases are kept in memory, so none survive the previous run: after a crash, everything
 * unacked is eligible again; resending is harmless because the fleet is idempotent on sample ids.
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
    // A new file reclaims space page by page (see reclaim()); must be set before any table.
    if ((db.pragma('page_count', { simple: true }) as number) === 0) db.pragma('auto_vacuum = INCREMENTAL');
    db.pragma('journal_mode = WAL');
    // A WAL that grew during a burst is cut back to this when it resets, so its disk comes back too.
    db.pragma(`journal_size_limit = ${4 * 1024 * 1024}`);
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

class SqliteQueue extends EnqueueFront implements SampleQueue {
  private readonly stmts: Statements;
  private readonly log: Logger | undefined;
  protected readonly quotaBytes: number;
  protected readonly clock: Clock;
  /** Recently acked ids, for duplicate checks. */
  private readonly acked: AckedMemory;
  private readonly droppedMemory: number;
  protected readonly groupCommit: GroupCommitter<PreparedItem, EnqueueResult>;
  private readonly store: AdmissionStore;
  /** Leases live in memory only: see {@link LeaseBook}. */
  private readonly leases = new LeaseBook();
  /** Last seq handed out, read from `sequence` at the start of each enqueue transaction and written back by it. */
  private lastSeq = 0;
  private closed = false;

  constructor(
    private readonly db: BetterSqlite3.Database,
    opts: SqliteQueueOptions,
    private readonly synchronous: 'FULL' | 'NORMAL',
  ) {
    super();
    this.stmts = prepareStatements(db);
    this.log = opts.logger?.child({ component: 'queue' });
    this.quotaBytes = opts.quotaBytes;
    this.clock = opts.clock;
    this.groupCommit = new GroupCommitter((items) => this.admitPrepared(items), opts.groupCommit);
    this.droppedMemory = Math.max(0, Math.trunc(opts.droppedMemory ?? DEFAULT_DROPPED_MEMORY));
    const s = this.stmts;
    this.store = {
      isKnown: (id) => this.acked.has(id) || s.isQueued.get(id) === 1,
      // A generator so the cursor opens only if eviction actually needs candidates: an
      // iterate() left unconsumed keeps the connection busy. yield* forwards the early
      // return() of decideEviction's loop, which closes the cursor.
      *evictionCandidates(maxPriority) {
        yield* s.evictionCandidates.iterate((maxPriority + 1) * PRIORITY_SPAN);
      },
      remove: (id) => void s.remove.run(id),
      insert: (item) =>
        void s.insert.run({
          key: item.priority * PRIORITY_SPAN + ++this.lastSeq,
          id: item.id,
          kind: item.kind,
          priority: item.priority,
          meta: item.metaJson,
          bytes: item.bytes,
          createdAt: item.createdAt,
          blob: item.blob ?? null,
        }),
      recordDrop: (drop, reason) => {
        if (this.droppedMemory === 0) return;
        const ord = Number(s.recordDrop.run(drop.id, drop.priority, drop.bytes, reason, this.clock.now()).lastInsertRowid);
        if (ord % DROPPED_PRUNE_EVERY === 0) s.pruneDropped.run(ord - this.droppedMemory);
      },
    };
    this.acked = new AckedMemory(Math.max(0, opts.ackedMemory ?? DEFAULT_ACKED_MEMORY));
    this.acked.load(s.ackedBatches.all(), () => s.ackedNewestFirst.iterate());
    if (this.log) this.log.info({ depth: s.depth.get() ?? 0, bytes: s.sequence.get()?.[1] ?? 0, quotaBytes: this.quotaBytes, synchronous }, 'sample queue opened');
  }

  lease(max: number, leaseMs: number, opts: LeaseOptions = {}): QueueItem[] {
    this.assertOpen();
    checkLeaseArgs(max, leaseMs, opts.maxBytes);
    if (max === 0) return [];
    const now = this.clock.now();
    const until = now + leaseMs;
    const maxBytes = opts.maxBytes;
    const picked: ItemRow[] = [];
    // Where each lane's scan ended (-1: not scanned). Floors move only after the reads
    // succeeded: a failed read must not strand items below a floor.
    const scannedTo = SCAN_NONE.slice();
    let total = 0;
    withStorage('lease', () => {
      lanes: for (let p = MAX_PRIORITY; p >= MIN_PRIORITY; p--) {
        const base = p * PRIORITY_SPAN;
        const end = base + PRIORITY_SPAN;
        let from = base + this.leases.floor(p, now);
        for (;;) {
          const want = max - picked.length;
          const batch = this.stmts.leaseRange.all(from, end, want);
          for (const row of batch) {
            if (!this.leases.isHeld(row[0] - base, now)) {
              if (maxBytes !== undefined && picked.length > 0 && total + row[6] > maxBytes) break lanes;
              picked.push(row);
              total += row[6];
            }
            from = row[0];
            scannedTo[p] = from - base;
            if (picked.length >= max) break lanes;
          }
          if (batch.length < want) break;
        }
      }
    });
    for (let p = MIN_PRIORITY; p <= MAX_PRIORITY; p++) {
      const seq = scannedTo[p] as number;
      if (seq >= 0) this.leases.raiseFloor(p, seq);
    }
    const items = new Array<QueueItem>(picked.length);
    for (let i = 0; i < picked.length; i++) {
      const row = picked[i] as ItemRow;
      const seq = row[0] - row[3] * PRIORITY_SPAN;
      this.leases.grant(row[1], seq, row[3], row[6], until);
      items[i] = rowToItem(row, seq);
    }
    return items;
  }

  release(ids: string[]): void {
    this.assertOpen();
    if (ids.length === 0) return;
    const keys: number[] = [];
    for (const id of ids) {
      const lease = this.leases.giveBack(id);
      if (lease) keys.push(lease.priority * PRIORITY_SPAN + lease.seq);
    }
    if (keys.length === 0) return;
    // Attempts are kept across restarts; the lease itself is already gone (memory only).
    this.relaxedWrite('release', () => {
      for (const key of keys) this.stmts.release.run(key);
    });
  }

  ack(ids: string[]): number {
    this.assertOpen();
    if (ids.length === 0) return 0;
    const unique = new Set(ids);
    // Leased ids are deleted by key in one statement; others (sent by a previous run) one by one.
    const byKey = new Map<number, string>();
    const unleased: string[] = [];
    for (const id of unique) {
      const lease = this.leases.get(id);
      if (lease) byKey.set(lease.priority * PRIORITY_SPAN + lease.seq, id);
      else unleased.push(id);
    }
    const { deleted, plan, ord } = this.relaxedWrite('ack', () => {
      // Batches another connection stored: pruning must count them.
      this.absorbAcked();
      const deleted: string[] = [];
      let bytes = 0;
      if (byKey.size > 0) {
        for (const [key, rowBytes] of this.stmts.ackKeys.all(JSON.stringify([...byKey.keys()]))) {
          deleted.push(byKey.get(key) as string);
          bytes += rowBytes;
        }
      }
      for (const id of unleased) {
        const rowBytes = this.stmts.ackId.get(id);
        if (rowBytes === undefined) continue;
        deleted.push(id);
        bytes += rowBytes;
      }
      if (deleted.length === 0) return { deleted, plan: undefined, ord: undefined };
      this.stmts.freeBytes.run(bytes);
      const plan = this.acked.plan(deleted);
      const ord = plan.batchJson === undefined ? undefined : Number(this.stmts.ackRemember.run(plan.batchJson).lastInsertRowid);
      if (plan.pruneUpTo !== undefined) this.stmts.ackPrune.run(plan.pruneUpTo);
      this.writeCounters({ ...zeroCounters(), ackedTotal: deleted.length });
      return { deleted, plan, ord };
    });
    // Only after the commit: a failed transaction leaves memory matching the database.
    for (const id of unique) this.leases.drop(id);
    if (plan) this.acked.committed(deleted, plan, ord);
    return deleted.length;
  }

  stats(): QueueStats {
    this.assertOpen();
    return withStorage('stats', () => statsFromRows(this.stmts.byPriority.all(), this.stmts.counters.all(), this.quotaBytes, this.stmts.droppedOnRecord.get() ?? 0));
  }

  dropped(opts: { afterOrd?: number; limit?: number } = {}): DroppedItem[] {
    this.assertOpen();
    return withStorage('dropped', () => this.stmts.droppedAfter.all(opts.afterOrd ?? 0, opts.limit ?? -1));
  }

  checkpoint(): void {
    this.assertOpen();
    this.groupCommit.flush();
    // TRUNCATE: copy every WAL frame into the database and empty the WAL file.
    withStorage('checkpoint', () => this.db.pragma('wal_checkpoint(TRUNCATE)'));
  }

  reclaim(maxPages: number): { reclaimableBytes: number; fileBytes: number } {
    this.assertOpen();
    return withStorage('reclaim', () => {
      const pageSize = this.db.pragma('page_size', { simple: true }) as number;
      const free = this.db.pragma('freelist_count', { simple: true }) as number;
      if (free > 0) {
        if ((this.db.pragma('auto_vacuum', { simple: true }) as number) === 2) {
          this.db.pragma(`incremental_vacuum(${Math.max(1, Math.trunc(maxPages))})`);
        } else {
          // A file made before incremental vacuum: converted by one VACUUM, and only when what is
          // left is small, so the rewrite is quick and needs little room (it copies live pages only).
          const live = (this.db.pragma('page_count', { simple: true }) as number) - free;
          if (live <= maxPages * 16) {
            this.groupCommit.flush();
            this.db.pragma('auto_vacuum = INCREMENTAL');
            this.db.exec('VACUUM');
          }
        }
      }
      // In WAL mode the file shrinks when the pages are checkpointed. PASSIVE: never waits for
      // the drain worker's readers, so a step may leave part of it; every later call finishes
      // the job (cheap when there is nothing to copy). The WAL itself is cut back to
      // journal_size_limit when it resets.
      this.db.pragma('wal_checkpoint(PASSIVE)');
      const pages = this.db.pragma('page_count', { simple: true }) as number;
      return { reclaimableBytes: (this.db.pragma('freelist_count', { simple: true }) as number) * pageSize, fileBytes: pages * pageSize };
    });
  }

  close(): void {
    if (this.closed) return;
    // Pending group-commit captures were promised durability: write them before closing.
    this.groupCommit.flush();
    this.closed = true;
    this.db.close();
  }

  /** Admit prepared items in one IMMEDIATE transaction (takes the write lock up front, so no lock upgrade can fail mid-way). */
  protected admitPrepared(items: PreparedItem[]): EnqueueResult[] {
    if (items.length === 0) return [];
    const ledger: AdmissionLedger = { usedBytes: 0, delta: zeroCounters() };
    const results = withStorage('enqueue', () =>
      this.db
        .transaction(() => {
          // Read under the write lock rather than trusted from memory: cheap next to the commit,
          // and right while another connection (the drain worker's, a repair tool) acks or
          // enqueues on the same file.
          const [lastSeq, usedBytes] = this.stmts.sequence.get() ?? [0, 0];
          this.lastSeq = lastSeq;
          ledger.usedBytes = usedBytes;
          this.absorbAcked();
          const out = items.map((item) => admitItem(this.store, item, this.quotaBytes, ledger, this.log));
          if (this.lastSeq !== lastSeq || ledger.usedBytes !== usedBytes) this.stmts.setSequence.run(this.lastSeq, ledger.usedBytes);
          this.writeCounters(ledger.delta);
          return out;
        })
        .immediate(),
    );
    // Only after the commit: a failed transaction leaves memory matching the database.
    for (const result of results) for (const victim of result.evicted) this.leases.drop(victim.id);
    return results;
  }

  /** Ids acked on another connection since this one last looked join the duplicate memory. */
  private absorbAcked(): void {
    this.acked.absorb(this.stmts.ackedSince.iterate(this.acked.lastSeenOrd));
  }

  private writeCounters(delta: QueueCounters): void {
    for (const name of COUNTER_NAMES) {
      if (delta[name] !== 0) this.stmts.bumpCounter.run(name, delta[name]);
    }
  }

  /**
   * Run a write transaction whose loss on power cut is harmless at synchronous=NORMAL (no
   * fsync at commit) even when the queue is FULL: ack deletes (a lost delete only brings the
   * item back, it is sent again and the fleet is idempotent on sample ids) and release
   * (an attempt goes uncounted).
   *
   * Why this cannot weaken an enqueue: `synchronous` is a per-connection setting that SQLite
   * reads when a transaction commits, and it is back to FULL before this returns, so every
   * enqueue still commits with an fsync of the WAL. The WAL is append-only with checksummed
   * frames: a power cut can only cut off its tail, and an enqueue's fsync also makes every
   * relaxed commit before it durable. Checked with strace: an ack commit issues no fsync, an
   * enqueue commit one. The pragma is run afresh each time on purpose: SQLite applies
   * `synchronous` when the statement is prepared, so a statement prepared once and re-run
   * does not reliably switch it (measured: a re-run left FULL in place).
   */
  private relaxedWrite<T>(op: string, fn: () => T): T {
    return withStorage(op, () => {
      const relax = this.synchronous === 'FULL';
      if (relax) this.db.exec('PRAGMA synchronous = NORMAL');
      try {
        return this.db.transaction(fn).immediate();
      } finally {
        if (relax) this.db.exec('PRAGMA synchronous = FULL');
      }
    });
  }

  protected assertOpen(): void {
    if (this.closed) throw queueClosedError();
  }
}

function rowToItem(row: ItemRow, seq: number): QueueItem {
  return toQueueItem({
    seq,
    id: row[1],
    kind: row[2],
    priority: row[3],
    metaJson: row[4],
    blob: row[5] ?? undefined,
    bytes: row[6],
    createdAt: row[7],
    attempts: row[8],
  });
}
