import type { Logger } from 'pino';
import { decideEviction } from './eviction.js';
import type { EvictionCandidate } from './eviction.js';
import type { PreparedItem } from './item.js';
import type { DroppedItem, EnqueueResult, EvictedItem, QueueStats } from './types.js';

/** How many recently acked ids both queues remember by default for duplicate detection. */
export const DEFAULT_ACKED_MEMORY = 10_000;

/** How many dropped samples both queues keep on record by default (about 100 bytes each on disk). */
export const DEFAULT_DROPPED_MEMORY = 50_000;

/** The persistent counters of {@link QueueStats}. */
export type QueueCounters = Pick<QueueStats, 'evictedTotal' | 'evictedBytesTotal' | 'duplicatesTotal' | 'ackedTotal' | 'enqueuedTotal'>;

export const COUNTER_NAMES: ReadonlyArray<keyof QueueCounters> = [
  'evictedTotal',
  'evictedBytesTotal',
  'duplicatesTotal',
  'ackedTotal',
  'enqueuedTotal',
];

export function zeroCounters(): QueueCounters {
  return { evictedTotal: 0, evictedBytesTotal: 0, duplicatesTotal: 0, ackedTotal: 0, enqueuedTotal: 0 };
}

export function addCounters(into: QueueCounters, delta: QueueCounters): void {
  for (const name of COUNTER_NAMES) into[name] += delta[name];
}

/**
 * What the admission step needs from a store. For SQLite every call runs inside the one
 * write transaction of the enqueue, so eviction and insert commit (or fail) together.
 */
export interface AdmissionStore {
  /** True when the id is queued or was recently acked (a re-capture of a delivered sample). */
  isKnown(id: string): boolean;
  /** Queued items with priority <= `maxPriority`, lowest priority first, oldest first. */
  evictionCandidates(maxPriority: number): Iterable<EvictionCandidate>;
  remove(id: string): void;
  insert(item: PreparedItem): void;
  /** Put a drop on record (in the same transaction as the removal, for SQLite). */
  recordDrop(drop: EvictedItem, reason: DroppedItem['reason']): void;
}

/** Running totals of one enqueue call or batch; applied to the queue only once it committed. */
export interface AdmissionLedger {
  usedBytes: number;
  delta: QueueCounters;
}

/**
 * Admit one prepared item: duplicate check, eviction decision, evict, insert, count, log.
 * Shared by the SQLite and memory queues so both follow exactly the same rules.
 */
export function admitItem(store: AdmissionStore, item: PreparedItem, quotaBytes: number, ledger: AdmissionLedger, log: Logger | undefined): EnqueueResult {
  if (store.isKnown(item.id)) {
    ledger.delta.duplicatesTotal += 1;
    log?.debug({ id: item.id }, 'duplicate sample id ignored');
    return { accepted: false, duplicate: true, evicted: [] };
  }
  const decision = decideEviction({
    priority: item.priority,
    bytes: item.bytes,
    quotaBytes,
    usedBytes: ledger.usedBytes,
    candidates: store.evictionCandidates(item.priority),
  });
  if (decision.action === 'too_large') {
    // prepareItem already refuses these; reaching here means a caller skipped it.
    throw new Error(`queue invariant broken: item ${item.id} larger than quota reached admission`);
  }
  if (decision.action === 'reject') {
    ledger.delta.evictedTotal += 1;
    ledger.delta.evictedBytesTotal += item.bytes;
    store.recordDrop({ id: item.id, priority: item.priority, bytes: item.bytes }, 'rejected');
    log?.warn(
      { id: item.id, priority: item.priority, bytes: item.bytes, usedBytes: ledger.usedBytes, quotaBytes },
      'queue full: new sample dropped, only higher-priority samples could make room',
    );
    return { accepted: false, duplicate: false, evicted: [], rejected: decision.reason };
  }
  const evicted = decision.evict.map(({ id, priority, bytes }) => ({ id, priority, bytes }));
  for (const victim of evicted) {
    store.remove(victim.id);
    store.recordDrop(victim, 'evicted');
  }
  store.insert(item);
  ledger.usedBytes += item.bytes - decision.freedBytes;
  ledger.delta.enqueuedTotal += 1;
  ledger.delta.evictedTotal += evicted.length;
  ledger.delta.evictedBytesTotal += decision.freedBytes;
  if (evicted.length > 0) {
    log?.info(
      { id: item.id, priority: item.priority, bytes: item.bytes, evicted, freedBytes: decision.freedBytes, usedBytes: ledger.usedBytes, quotaBytes },
      'queue full: evicted lowest-priority oldest samples to admit a new one',
    );
  }
  return { accepted: true, duplicate: false, evicted };
}
