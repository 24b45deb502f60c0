import type { Logger } from 'pino';
import { AgentError } from '../errors.js';
import { addCounters, admitItem, DEFAULT_ACKED_MEMORY, DEFAULT_DROPPED_MEMORY, zeroCounters } from './admission.js';
import type { AdmissionLedger, AdmissionStore, QueueCounters } from './admission.js';
import type { EvictionCandidate } from './eviction.js';
import { EnqueueFront } from './enqueue-front.js';
import { GroupCommitter } from './group-commit.js';
import type { GroupCommitOptions } from './group-commit.js';
import { checkLeaseArgs, queueClosedError, takeWithinBytes, toQueueItem } from './item.js';
import type { PreparedItem, StoredItem } from './item.js';
import { MAX_PRIORITY } from './types.js';
import type { Clock, DroppedItem, EnqueueResult, LeaseOptions, QueueItem, QueueStats, SampleQueue } from './types.js';

/** Options for {@link createMemoryQueue}. */
export interface MemoryQueueOptions {
  quotaBytes: number;
  clock: Clock;
  logger?: Logger;
  /** How many recently acked ids to remember for duplicate detection. Default 10,000. */
  ackedMemory?: number;
  /** How many dropped samples to keep on record. Default 50,000. */
  droppedMemory?: number;
  groupCommit?: GroupCommitOptions;
}

interface Entry extends StoredItem {
  leaseUntil: number | null;
}

/**
 * The {@link SampleQueue} contract in memory, for tests and for devices with no writable
 * disk. Same admission and eviction rules as the SQLite queue; nothing survives a restart.
 */
export function createMemoryQueue(opts: MemoryQueueOptions): SampleQueue {
  if (!(Number.isFinite(opts.quotaBytes) && opts.quotaBytes > 0)) {
    throw new AgentError('CONFIG_INVALID', 'queue quotaBytes must be a positive number', { details: { quotaBytes: opts.quotaBytes } });
  }
  return new MemoryQueue(opts);
}

class MemoryQueue extends EnqueueFront implements SampleQueue {
  /** One FIFO lane per priority: a Map iterates in insertion order, which is seq order. */
  private readonly lanes: Array<Map<string, Entry>> = Array.from({ length: MAX_PRIORITY + 1 }, () => new Map());
  private readonly entries = new Map<string, Entry>();
  /** Recently acked ids; a Set iterates oldest first, so pruning drops the oldest. */
  private readonly acked = new Set<string>();
  private readonly counters: QueueCounters = zeroCounters();
  private readonly log: Logger | undefined;
  protected readonly quotaBytes: number;
  protected readonly clock: Clock;
  private readonly ackedMemory: number;
  /** The record of drops, oldest first: the last `droppedMemory` at least, up to half as many more. */
  private dropRecord: DroppedItem[] = [];
  private readonly droppedMemory: number;
  private lastDropOrd = 0;
  protected readonly groupCommit: GroupCommitter<PreparedItem, EnqueueResult>;
  private readonly store: AdmissionStore;
  private usedBytes = 0;
  private nextSeq = 1;
  private closed = false;

  constructor(opts: MemoryQueueOptions) {
    super();
    this.log = opts.logger?.child({ component: 'queue' });
    this.quotaBytes = opts.quotaBytes;
    this.clock = opts.clock;
    this.ackedMemory = Math.max(0, opts.ackedMemory ?? DEFAULT_ACKED_MEMORY);
    this.droppedMemory = Math.max(0, Math.trunc(opts.droppedMemory ?? DEFAULT_DROPPED_MEMORY));
    this.groupCommit = new GroupCommitter((items) => this.admitPrepared(items), opts.groupCommit);
    this.store = {
      isKnown: (id) => this.entries.has(id) || this.acked.has(id),
      evictionCandidates: (maxPriority) => this.candidates(maxPriority),
      remove: (id) => this.remove(id),
      insert: (item) => this.insert(item),
      recordDrop: (drop, reason) => {
        if (this.droppedMemory === 0) return;
        this.dropRecord.push({ ord: ++this.lastDropOrd, ...drop, reason, at: this.clock.now() });
        // Trimmed in steps of half the bound, so a full record costs no copy per drop.
        if (this.dropRecord.length >= this.droppedMemory + Math.ceil(this.droppedMemory / 2)) this.dropRecord = this.dropRecord.slice(-this.droppedMemory);
      },
    };
  }

  lease(max: number, leaseMs: number, opts: LeaseOptions = {}): QueueItem[] {
    this.assertOpen();
    checkLeaseArgs(max, leaseMs, opts.maxBytes);
    const now = this.clock.now();
    const taken = takeWithinBytes(this.eligible(now), max, opts.maxBytes);
    for (const entry of taken) entry.leaseUntil = now + leaseMs;
    return taken.map((entry) => toQueueItem({ ...entry, blob: entry.blob && new Uint8Array(entry.blob) }));
  }

  release(ids: string[]): void {
    this.assertOpen();
    for (const id of ids) {
      const entry = this.entries.get(id);
      if (!entry || entry.leaseUntil === null) continue;
      entry.leaseUntil = null;
      entry.attempts += 1;
    }
  }

  ack(ids: string[]): number {
    this.assertOpen();
    let count = 0;
    for (const id of new Set(ids)) {
      const entry = this.entries.get(id);
      if (!entry) continue;
      this.remove(id);
      this.usedBytes -= entry.bytes;
      this.rememberAcked(id);
      count += 1;
    }
    this.counters.ackedTotal += count;
    return count;
  }

  stats(): QueueStats {
    this.assertOpen();
    const byPriority: QueueStats['byPriority'] = {};
    let oldestCreatedAt: number | null = null;
    for (const entry of this.entries.values()) {
      const slot = (byPriority[entry.priority] ??= { depth: 0, bytes: 0 });
      slot.depth += 1;
      slot.bytes += entry.bytes;
      if (oldestCreatedAt === null || entry.createdAt < oldestCreatedAt) oldestCreatedAt = entry.createdAt;
    }
    return { depth: this.entries.size, bytes: this.usedBytes, quotaBytes: this.quotaBytes, byPriority, ...this.counters, oldestCreatedAt, droppedOnRecord: this.dropRecord.length };
  }

  dropped(opts: { afterOrd?: number; limit?: number } = {}): DroppedItem[] {
    this.assertOpen();
    const after = opts.afterOrd ?? 0;
    const from = this.dropRecord.findIndex((d) => d.ord > after);
    if (from < 0) return [];
    return this.dropRecord.slice(from, opts.limit === undefined || opts.limit < 0 ? undefined : from + opts.limit).map((d) => ({ ...d }));
  }

  close(): void {
    if (this.closed) return;
    this.groupCommit.flush();
    this.closed = true;
  }

  protected admitPrepared(items: PreparedItem[]): EnqueueResult[] {
    const ledger: AdmissionLedger = { usedBytes: this.usedBytes, delta: zeroCounters() };
    const results = items.map((item) => admitItem(this.store, item, this.quotaBytes, ledger, this.log));
    this.usedBytes = ledger.usedBytes;
    addCounters(this.counters, ledger.delta);
    return results;
  }

  private *candidates(maxPriority: number): Generator<EvictionCandidate> {
    for (let p = 0; p <= maxPriority; p++) yield* this.lanes[p]?.values() ?? [];
  }

  private *eligible(now: number): Generator<Entry> {
    for (let p = MAX_PRIORITY; p >= 0; p--) {
      for (const entry of this.lanes[p]?.values() ?? []) {
        if (entry.leaseUntil === null || entry.leaseUntil <= now) yield entry;
      }
    }
  }

  private insert(item: PreparedItem): void {
    // Copy the blob: the producer may reuse its buffer for the next frame.
    const entry: Entry = { ...item, blob: item.blob && new Uint8Array(item.blob), seq: this.nextSeq++, attempts: 0, leaseUntil: null };
    this.entries.set(entry.id, entry);
    this.lanes[entry.priority]?.set(entry.id, entry);
  }

  private remove(id: string): void {
    const entry = this.entries.get(id);
    if (!entry) return;
    this.entries.delete(id);
    this.lanes[entry.priority]?.delete(id);
  }

  private rememberAcked(id: string): void {
    this.acked.add(id);
    for (const oldest of this.acked) {
      if (this.acked.size <= this.ackedMemory) break;
      this.acked.delete(oldest);
    }
  }

  protected assertOpen(): void {
    if (this.closed) throw queueClosedError();
  }
}
