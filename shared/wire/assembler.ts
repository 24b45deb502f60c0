import { sharedError } from '../errors.js';
import type { EdgeloopError } from '../errors.js';
import type { Clock } from '../ids.js';
import { sha256Hex } from '../ids.js';
import type { SampleMessage, SampleMeta } from '../schemas/messages.js';

/** Options of {@link SampleAssembler}. Every limit bounds memory a device chooses to take. */
export interface AssemblerOptions {
  clock: Clock;
  /** Drop a set that got no new chunk for this long. Default 60 000. */
  timeoutMs?: number;
  /** Most incomplete sets kept in all; beyond, the heaviest device's stalest set is dropped. Default 1000. */
  maxPending?: number;
  /** Most incomplete sets one device may have; beyond, that device's stalest set is dropped. Default 32. */
  maxPendingPerDevice?: number;
  /** Bytes held in incomplete sets in all; beyond, the heaviest device's stalest sets are dropped. Default 256 MiB. */
  maxPendingBytes?: number;
  /** Bytes one device may hold in incomplete sets; beyond, that device's stalest sets are dropped. Default 32 MiB. */
  maxPendingBytesPerDevice?: number;
  /** Largest sample (`meta.input.bytes`) taken at all; a bigger one is refused with `SAMPLE_TOO_LARGE`. Default 16 MiB. */
  maxSampleBytes?: number;
  /** How many completed sample ids are remembered to recognise resends. Default 10 000. */
  rememberCompleted?: number;
}

/** Bytes counted per chunk besides its data (the Buffer and bookkeeping), so empty chunks are not free. */
const CHUNK_OVERHEAD_BYTES = 128;
/** Most chunks one sample may be cut into (16 MiB in 128 KB messages takes ~170). */
const MAX_SAMPLE_CHUNKS = 4096;

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

/** Why a set was dropped before it completed. */
export type DropReason = 'timeout' | 'device_sets' | 'device_bytes' | 'total_sets' | 'total_bytes';

/** Counters for the fleet's metrics. */
export interface AssemblerStats {
  pending: number;
  completed: number;
  duplicates: number;
  dropped_incomplete: number;
  rejected: number;
  /** Bytes held in incomplete sets now. */
  pending_bytes: number;
  /** Sets dropped before they completed, by reason. */
  dropped_by_reason: Record<DropReason, number>;
}

interface PartialSet {
  key: string;
  device: string;
  meta: SampleMeta;
  count: number;
  parts: Array<Buffer | undefined>;
  received: number;
  bytes: number;
  lastAt: number;
}

interface DeviceLoad {
  sets: Set<PartialSet>;
  bytes: number;
}

/** Bytes a base64 string decodes to, when every character in it is valid. */
function expectedDecodedLength(b64: string): number {
  if (b64.length % 4 !== 0) return -1;
  const padding = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return (b64.length / 4) * 3 - padding;
}

/**
 * The receiving side of {@link encodeSample}: collects chunks by device and `sample_id` (in
 * any order), checks the whole blob against `meta.input.bytes` and `meta.input.sha256`, drops
 * sets that stall, and recognises resends. Pure apart from the injected clock; the caller
 * validates each message against `sampleMessage` and checks `meta.device_id` is the sender.
 *
 * Memory is bounded per device and in all: a device's sets live under its own id (no device
 * can touch another's sample id), a set may not grow past the size its meta declares nor
 * the sample limit, and when a device goes over its set or byte budget its own stalest set is
 * dropped. Over the total budget, the device holding the most bytes pays, so a flood from one
 * device never pushes out another's upload. Call {@link sweep} on a timer too: a stalled set
 * must not wait for the next message to be freed.
 */
export class SampleAssembler {
  private readonly pending = new Map<string, PartialSet>();
  private readonly devices = new Map<string, DeviceLoad>();
  /** Insertion-ordered, so the oldest key is the first one dropped. */
  private readonly completed = new Set<string>();
  private readonly timeoutMs: number;
  private readonly maxPending: number;
  private readonly maxPendingPerDevice: number;
  private readonly maxPendingBytes: number;
  private readonly maxPendingBytesPerDevice: number;
  private readonly maxSampleBytes: number;
  private readonly rememberCompleted: number;
  private lastSweep: number;
  private pendingBytes = 0;
  private readonly counters = { completed: 0, duplicates: 0, dropped_incomplete: 0, rejected: 0 };
  private readonly dropped: Record<DropReason, number> = { timeout: 0, device_sets: 0, device_bytes: 0, total_sets: 0, total_bytes: 0 };

  constructor(private readonly opts: AssemblerOptions) {
    this.timeoutMs = opts.timeoutMs ?? 60_000;
    this.maxPending = opts.maxPending ?? 1000;
    this.maxPendingPerDevice = opts.maxPendingPerDevice ?? 32;
    this.maxPendingBytes = opts.maxPendingBytes ?? 256 * 1024 * 1024;
    this.maxPendingBytesPerDevice = opts.maxPendingBytesPerDevice ?? 32 * 1024 * 1024;
    this.maxSampleBytes = opts.maxSampleBytes ?? 16 * 1024 * 1024;
    this.rememberCompleted = opts.rememberCompleted ?? 10_000;
    this.lastSweep = opts.clock.now();
  }

  accept(msg: SampleMessage): AssembleResult {
    const now = this.opts.clock.now();
    if (now - this.lastSweep >= this.timeoutMs / 2) this.sweep();
    const sampleId = msg.meta.sample_id;
    const device = msg.meta.device_id;
    const key = `${device}\u0000${sampleId}`;
    const index = msg.chunk?.index ?? 0;
    const count = msg.chunk?.count ?? 1;
    const final = index === count - 1;

    if (this.completed.has(key)) {
      this.counters.duplicates++;
      return { status: 'duplicate', sampleId, completed: true, final };
    }
    const declared = msg.meta.input.bytes;
    if (declared > this.maxSampleBytes) return this.tooLarge(sampleId, `declares ${declared} bytes, the limit is ${this.maxSampleBytes}`, key);
    if (index >= count) return this.reject(key, sampleId, `chunk index ${index} is not below count ${count}`, 'chunk_invalid');
    if (count > MAX_SAMPLE_CHUNKS || count > Math.max(1, declared)) return this.reject(key, sampleId, `${count} chunks for ${declared} bytes (at most ${MAX_SAMPLE_CHUNKS}, one byte each)`, 'chunk_invalid');
    // Checked before decoding: the base64 of a part can only be as long as the whole sample's.
    if (msg.blob_b64.length > Math.ceil(declared / 3) * 4) return this.reject(key, sampleId, `chunk ${index}/${count} is longer than the ${declared} bytes the sample declares`, 'sample_hash_mismatch');
    const part = Buffer.from(msg.blob_b64, 'base64');
    // Buffer.from skips characters that are not base64, so a corrupt chunk decodes short.
    if (part.length !== expectedDecodedLength(msg.blob_b64)) return this.reject(key, sampleId, `chunk ${index}/${count} is not valid base64`, 'chunk_invalid');

    let set = this.pending.get(key);
    if (set && set.count !== count) return this.reject(key, sampleId, `chunk count changed from ${set.count} to ${count}`, 'chunk_invalid');
    if (set?.parts[index] !== undefined) {
      this.counters.duplicates++;
      set.lastAt = now;
      return { status: 'duplicate', sampleId, completed: false, final };
    }
    if (count === 1) return this.complete(key, sampleId, msg.meta, part, 1);
    if (!set) {
      set = { key, device, meta: msg.meta, count, parts: new Array<Buffer | undefined>(count), received: 0, bytes: 0, lastAt: now };
      this.pending.set(key, set);
      this.loadOf(device).sets.add(set);
    }
    const dataBytes = set.bytes - set.received * CHUNK_OVERHEAD_BYTES + part.length;
    if (dataBytes > declared) return this.reject(key, sampleId, `chunks hold more than the ${declared} bytes the sample declares`, 'sample_hash_mismatch');
    set.parts[index] = part;
    set.received++;
    set.lastAt = now;
    this.grow(set, part.length + CHUNK_OVERHEAD_BYTES);
    this.enforceLimits(set);
    if (!this.pending.has(key)) {
      // This very set was the one to go (its device is over budget with nothing staler).
      return this.tooLarge(sampleId, `device ${device} holds more unfinished sample bytes than its ${this.maxPendingBytesPerDevice} limit`, key, false);
    }
    if (set.received < count) return { status: 'partial', sampleId, received: set.received, count };

    this.drop(set);
    return this.complete(key, sampleId, set.meta, Buffer.concat(set.parts as Buffer[]), count);
  }

  /** Drop sets that got no chunk for `timeoutMs`; returns their sample ids. Call it on a timer as well. */
  sweep(): string[] {
    const now = this.opts.clock.now();
    this.lastSweep = now;
    const stale: PartialSet[] = [];
    for (const set of this.pending.values()) {
      if (now - set.lastAt >= this.timeoutMs) stale.push(set);
    }
    for (const set of stale) this.evict(set, 'timeout');
    return stale.map((set) => set.meta.sample_id);
  }

  stats(): AssemblerStats {
    return { pending: this.pending.size, pending_bytes: this.pendingBytes, ...this.counters, dropped_by_reason: { ...this.dropped } };
  }

  private complete(key: string, sampleId: string, meta: SampleMeta, blob: Buffer, chunks: number): AssembleResult {
    const input = meta.input;
    if (blob.length !== input.bytes) return this.reject(key, sampleId, `blob is ${blob.length} bytes, meta says ${input.bytes}`, 'sample_hash_mismatch');
    const digest = sha256Hex(blob);
    if (digest !== input.sha256) return this.reject(key, sampleId, `blob sha256 ${digest} does not match meta.input.sha256`, 'sample_hash_mismatch');
    this.remember(key);
    this.counters.completed++;
    return { status: 'complete', sampleId, meta, blob, chunks };
  }

  private reject(key: string, sampleId: string, message: string, kind: 'chunk_invalid' | 'sample_hash_mismatch'): AssembleResult {
    // Drop what we have: the device resends the whole sample after its lease expires.
    const set = this.pending.get(key);
    if (set) this.drop(set);
    this.counters.rejected++;
    return { status: 'rejected', sampleId, error: sharedError(kind === 'sample_hash_mismatch' ? 'SAMPLE_HASH_MISMATCH' : 'SAMPLE_CHUNK_INVALID', `sample ${sampleId}: ${message}`, { details: { uplink: kind, sample_id: sampleId } }) };
  }

  private tooLarge(sampleId: string, message: string, key: string, dropSet = true): AssembleResult {
    const set = dropSet ? this.pending.get(key) : undefined;
    if (set) this.drop(set);
    this.counters.rejected++;
    return { status: 'rejected', sampleId, error: sharedError('SAMPLE_TOO_LARGE', `sample ${sampleId}: ${message}`, { details: { uplink: 'sample_too_large', sample_id: sampleId } }) };
  }

  private loadOf(device: string): DeviceLoad {
    let load = this.devices.get(device);
    if (!load) {
      load = { sets: new Set(), bytes: 0 };
      this.devices.set(device, load);
    }
    return load;
  }

  private grow(set: PartialSet, bytes: number): void {
    set.bytes += bytes;
    this.pendingBytes += bytes;
    this.loadOf(set.device).bytes += bytes;
  }

  /** Forget a set (completed, rejected or evicted) and give back its bytes. */
  private drop(set: PartialSet): void {
    if (!this.pending.delete(set.key)) return;
    this.pendingBytes -= set.bytes;
    const load = this.devices.get(set.device);
    if (!load) return;
    load.sets.delete(set);
    load.bytes -= set.bytes;
    if (load.sets.size === 0) this.devices.delete(set.device);
  }

  private evict(set: PartialSet, reason: DropReason): void {
    this.drop(set);
    this.counters.dropped_incomplete++;
    this.dropped[reason]++;
  }

  /** The device's own stalest sets go first; over the totals, the heaviest device's. */
  private enforceLimits(grown: PartialSet): void {
    const own = this.devices.get(grown.device);
    while (own && own.sets.size > 0 && (own.sets.size > this.maxPendingPerDevice || own.bytes > this.maxPendingBytesPerDevice)) {
      this.evict(stalestOf(own.sets), own.sets.size > this.maxPendingPerDevice ? 'device_sets' : 'device_bytes');
    }
    while (this.pending.size > this.maxPending || this.pendingBytes > this.maxPendingBytes) {
      const heaviest = this.heaviestDevice();
      if (!heaviest) return;
      this.evict(stalestOf(heaviest.sets), this.pending.size > this.maxPending ? 'total_sets' : 'total_bytes');
    }
  }

  private heaviestDevice(): DeviceLoad | undefined {
    let heaviest: DeviceLoad | undefined;
    for (const load of this.devices.values()) {
      if (!heaviest || load.bytes > heaviest.bytes || (load.bytes === heaviest.bytes && load.sets.size > heaviest.sets.size)) heaviest = load;
    }
    return heaviest;
  }

  private remember(key: string): void {
    this.completed.add(key);
    if (this.completed.size > this.rememberCompleted) {
      const oldest = this.completed.values().next().value;
      if (oldest !== undefined) this.completed.delete(oldest);
    }
  }
}

function stalestOf(sets: Set<PartialSet>): PartialSet {
  let stalest: PartialSet | undefined;
  for (const set of sets) if (!stalest || set.lastAt < stalest.lastAt) stalest = set;
  return stalest as PartialSet;
}
