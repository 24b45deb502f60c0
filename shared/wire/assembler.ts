import { sharedError } from '../errors.js';
import type { EdgeloopError } from '../errors.js';
import type { Clock } from '../ids.js';
import { sha256Hex } from '../ids.js';
import type { SampleMessage, SampleMeta } from '../schemas/messages.js';

/** Options of {@link SampleAssembler}. */
export interface AssemblerOptions {
  clock: Clock;
  /** Drop a set that got no new chunk for this long. Default 60 000. */
  timeoutMs?: number;
  /** Most incomplete sets kept; the stalest is dropped beyond. Default 1000. */
  maxPending?: number;
  /** How many completed sample ids are remembered to recognise resends. Default 10 000. */
  rememberCompleted?: number;
}

/** What {@link SampleAssembler.accept} made of one message. */
export type AssembleResult =
  /** The sample is whole and its sha256 matches: store it, then ack it. */
  | { status: 'complete'; sampleId: string; meta: SampleMeta; blob: Buffer; chunks: number }
  /** More chunks are needed. */
  | { status: 'partial'; sampleId: string; received: number; count: number }
  /**
   * Seen before. `completed`: the whole sample was already assembled, this is a resend
   * (our ack was lost or late); `final`: this is the last chunk of its set. Re-ack a
   * completed sample on its final chunk so the device can delete it.
   */
  | { status: 'duplicate'; sampleId: string; completed: boolean; final: boolean }
  /**
   * Malformed chunk or a whole blob that does not match `meta.input`; the set is dropped.
   * `error.code` is `INPUT_INVALID`; `error.details.uplink` says which check failed.
   */
  | { status: 'rejected'; sampleId: string; error: EdgeloopError };

/** Counters for the fleet's metrics. */
export interface AssemblerStats {
  pending: number;
  completed: number;
  duplicates: number;
  dropped_incomplete: number;
  rejected: number;
}

interface PartialSet {
  meta: SampleMeta;
  count: number;
  parts: Array<Buffer | undefined>;
  received: number;
  lastAt: number;
}

/** Bytes a base64 string decodes to, when every character in it is valid. */
function expectedDecodedLength(b64: string): number {
  if (b64.length % 4 !== 0) return -1;
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

/**
 * The receiving side of {@link encodeSample}: collects chunks by `sample_id` (in any order),
 * checks the whole blob against `meta.input.bytes` and `meta.input.sha256`, drops sets
 * that stall, and recognises resends. Pure apart from the injected clock; the caller
 * validates each message against `sampleMessage` first.
 */
export class SampleAssembler {
  private readonly pending = new Map<string, PartialSet>();
  /** Insertion-ordered, so the oldest id is the first one dropped. */
  private readonly completed = new Set<string>();
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly rememberCompleted: number;
  private lastSweep: number;
  private readonly counters: Omit<AssemblerStats, 'pending'> = { completed: 0, duplicates: 0, dropped_incomplete: 0, rejected: 0 };

  constructor(private readonly opts: AssemblerOptions) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxPending = opts.maxPending ?? 1000;
    this.rememberCompleted = opts.rememberCompleted ?? 10_000;
    this.lastSweep = opts.clock.now();
  }

  accept(msg: SampleMessage): AssembleResult {
    const now = this.opts.clock.now();
    if (now - this.lastSweep >= this.timeoutMs / 2) this.sweep();
    const sampleId = msg.meta.sample_id;
    const index = msg.chunk?.index ?? 0;
    const count = msg.chunk?.count ?? 1;
    const final = index === count - 1;

    if (this.completed.has(sampleId)) {
      this.counters.duplicates++;
      return { status: 'duplicate', sampleId, completed: true, final };
    }
    if (index >= count) return this.reject(sampleId, `chunk index ${index} is not below count ${count}`, 'chunk_invalid');
    const part = Buffer.from(msg.blob_b64, 'base64');
    // Buffer.from skips characters that are not base64, so a corrupt chunk decodes short.
    if (part.length !== expectedDecodedLength(msg.blob_b64)) return this.reject(sampleId, `chunk ${index}/${count} is not valid base64`, 'chunk_invalid');

    let set = this.pending.get(sampleId);
    if (set && set.count !== count) return this.reject(sampleId, `chunk count changed from ${set.count} to ${count}`, 'chunk_invalid');
    if (!set) {
      set = { meta: msg.meta, count, parts: new Array<Buffer | undefined>(count), received: 0, lastAt: now };
      this.pending.set(sampleId, set);
      this.evictBeyondLimit();
    }
    if (set.parts[index] !== undefined) {
      this.counters.duplicates++;
      set.lastAt = now;
      return { status: 'duplicate', sampleId, completed: false, final };
    }
    set.parts[index] = part;
    set.received++;
    set.lastAt = now;
    if (set.received < count) return { status: 'partial', sampleId, received: set.received, count };

    this.pending.delete(sampleId);
    const blob = count === 1 ? part : Buffer.concat(set.parts as Buffer[]);
    const input = set.meta.input;
    if (blob.length !== input.bytes) return this.reject(sampleId, `blob is ${blob.length} bytes, meta says ${input.bytes}`, 'sample_hash_mismatch');
    const digest = sha256Hex(blob);
    if (digest !== input.sha256) return this.reject(sampleId, `blob sha256 ${digest} does not match meta.input.sha256`, 'sample_hash_mismatch');
    this.remember(sampleId);
    this.counters.completed++;
    return { status: 'complete', sampleId, meta: set.meta, blob, chunks: count };
  }

  /** Drop sets that got no chunk for `timeoutMs`; returns their sample ids. */
  sweep(): string[] {
    const now = this.opts.clock.now();
    this.lastSweep = now;
    const dropped: string[] = [];
    for (const [id, set] of this.pending) {
      if (now - set.lastAt >= this.timeoutMs) dropped.push(id);
    }
    for (const id of dropped) this.pending.delete(id);
    this.counters.dropped_incomplete += dropped.length;
    return dropped;
  }

  stats(): AssemblerStats {
    return { pending: this.pending.size, ...this.counters };
  }

  private reject(sampleId: string, message: string, kind: 'chunk_invalid' | 'sample_hash_mismatch'): AssembleResult {
    // Drop what we have: the device resends the whole sample after its lease expires.
    this.pending.delete(sampleId);
    this.counters.rejected++;
    return { status: 'rejected', sampleId, error: sharedError(kind === 'sample_hash_mismatch' ? 'SAMPLE_HASH_MISMATCH' : 'SAMPLE_CHUNK_INVALID', `sample ${sampleId}: ${message}`, { details: { uplink: kind, sample_id: sampleId } }) };
  }

  private evictBeyondLimit(): void {
    while (this.pending.size > this.maxPending) {
      let stalest: string | undefined;
      let stalestAt = Number.POSITIVE_INFINITY;
      for (const [id, set] of this.pending) {
        if (set.lastAt < stalestAt) {
          stalestAt = set.lastAt;
          stalest = id;
        }
      }
      if (stalest === undefined) return;
      this.pending.delete(stalest);
      this.counters.dropped_incomplete++;
    }
  }

  private remember(sampleId: string): void {
    this.completed.add(sampleId);
    if (this.completed.size > this.rememberCompleted) {
      const oldest = this.completed.values().next().value;
      if (oldest !== undefined) this.completed.delete(oldest);
    }
  }
}
