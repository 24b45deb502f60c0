/** The store-and-forward sample queue: the port, its two implementations and the eviction rule. */
export type { Clock, EnqueueResult, EvictedItem, LeaseOptions, QueueItem, QueueItemInput, QueueStats, SampleQueue } from './types.js';
export { MAX_PRIORITY, MIN_PRIORITY } from './types.js';
export { decideEviction } from './eviction.js';
export type { EvictionCandidate, EvictionDecision, EvictionInput } from './eviction.js';
export type { GroupCommitOptions } from './group-commit.js';
export { openSqliteQueue } from './sqlite-queue.js';
export type { SqliteQueueOptions } from './sqlite-queue.js';
export { createMemoryQueue } from './memory-queue.js';
export type { MemoryQueueOptions } from './memory-queue.js';
