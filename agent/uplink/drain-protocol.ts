/** Messages between the forwarder's {@link DrainWorker} and its thread (drain-thread.ts). */
import type { LeaseRequest } from './backlog-source.js';

/** How the thread opens its connection to the queue file (same file and settings as the agent's own). */
export interface DrainQueueOptions {
  path: string;
  quotaBytes: number;
  synchronous: 'FULL' | 'NORMAL';
  busyTimeoutMs?: number;
}

/**
 * A leased batch on the wire: every message of every sample in one transferred buffer
 * (one transfer per batch, not one per message), each sample naming its messages as
 * `[offset, length, offset, length, ...]` into it.
 */
export interface WireBatch {
  buffer: ArrayBuffer;
  samples: Array<{ id: string; priority: number; parts: number[] }>;
  unsendable: Array<{ id: string; kind: string; bytes: number; message: string }>;
}

export type DrainRequest =
  | { op: 'open'; id: number; options: DrainQueueOptions }
  | { op: 'lease'; id: number; req: LeaseRequest }
  | { op: 'ack'; id: number; ids: string[] }
  | { op: 'release'; id: number; ids: string[] }
  | { op: 'close'; id: number };

export type DrainResponse =
  | { id: number; ok: true; batch?: WireBatch; deleted?: number }
  | { id: number; ok: false; error: { message: string; code?: string } };
