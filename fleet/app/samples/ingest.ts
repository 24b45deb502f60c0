import type { Logger } from 'pino';
import { isEdgeloopError } from '../../../shared/errors.js';
import type { EdgeloopError } from '../../../shared/errors.js';
import type { Clock } from '../../../shared/ids.js';
import { sampleMessage } from '../../../shared/schemas/index.js';
import type { SampleMessage, SampleMeta } from '../../../shared/schemas/index.js';
import { parseJsonWith } from '../../../shared/validate.js';
import { SampleAssembler } from '../../../shared/wire/assembler.js';
import type { AssemblerOptions, AssemblerStats } from '../../../shared/wire/assembler.js';
import { alertOfSample, type AlertsRepo } from '../alerts/alerts.js';
import type { ArtifactStore } from '../artifacts.js';
import { FleetError } from '../../errors.js';
import type { DevicesRepo } from '../devices/registry.js';
import { DeviceLimits, type DeviceLimitOptions } from './device-limits.js';
import { parseQuery } from './filter.js';
import type { SampleQuery } from './filter.js';
import type { SamplesRepo } from './repo.js';
import type { SamplePage, SampleRecord } from './types.js';

/**
 * What became of one sample message. `ack` lists the sample ids the caller should now
 * acknowledge to the device (`sampleAck`): they are durably stored. Empty when there is
 * nothing to ack yet (a partial chunk) or nothing may be acked (rejected).
 */
export type IngestResult =
  | { status: 'stored'; sampleId: string; ack: string[] }
  /** A resend. Acked again when the sample is stored (and this is its last chunk), so the device can delete it. */
  | { status: 'duplicate'; sampleId: string; ack: string[] }
  | { status: 'partial'; sampleId: string; received: number; count: number; ack: string[] }
  /**
   * `error.code`: SAMPLE_CHUNK_INVALID, SAMPLE_HASH_MISMATCH, SAMPLE_TOO_LARGE, SAMPLE_RATE_LIMITED,
   * FLEET_SAMPLE_DEVICE_MISMATCH, FLEET_DEVICE_UNKNOWN, INPUT_INVALID. With `nack`, tell the
   * device (a `sampleNack`): it keeps the sample and waits; absent, the device's lease runs out
   * and it resends, or (a refusal already told within its window) nothing more needs saying.
   */
  | { status: 'rejected'; sampleId: string | null; error: EdgeloopError; ack: string[]; nack?: IngestNack };

/** A refusal the device is told about, so it keeps the sample and backs off. */
export interface IngestNack {
  scope: 'sample' | 'device';
  sampleIds: string[];
  retryAfterMs: number;
}

/** Defaults of the per-device ingest limits, sized for devices that send 128 KB messages at up to 100 a second. */
const DEFAULT_DEVICE_LIMITS: DeviceLimitOptions = { messagesPerSecond: 200, burst: 400, dailyBytes: 4 * 1024 ** 3 };
/** How long a device with a too-large sample is asked to wait before trying it again. */
const TOO_LARGE_RETRY_MS = 3_600_000;

/** Counters for metrics. */
export interface IngestStats {
  /** Sample messages (chunks) handed to accept. */
  received: number;
  /** New samples committed. */
  stored: number;
  /** Resends: repeated chunks and samples already stored. */
  duplicates: number;
  rejected: number;
  /** Messages refused by a device's rate limit or daily byte quota, before parsing. */
  rate_limited: number;
  /** Batches committed (one transaction each): stored / batches is the mean batch size. */
  batches: number;
  /** Batches whose blobs or rows could not be written (their samples were not acked). */
  storage_failures: number;
  assembler: AssemblerStats;
}

export interface SampleIngestOptions {
  samples: SamplesRepo;
  /** Whether a device is registered, and its site tag. */
  devices: Pick<DevicesRepo, 'exists' | 'tag'>;
  artifacts: ArtifactStore;
  clock: Clock;
  logger?: Logger;
  /** Reassembly of chunked samples (timeouts, memory per device and in all), on `clock`. */
  assembler?: Omit<AssemblerOptions, 'clock'>;
  /** Per-device rate and daily byte quota. Default {@link DEFAULT_DEVICE_LIMITS}; null: none. */
  deviceLimits?: DeviceLimitOptions | null;
  /** How often stalled chunk sets are swept, whatever arrives. Default half the assembler's timeout. */
  sweepEveryMs?: number;
  /** Most samples committed in one transaction. Default 256. */
  maxBatch?: number;
  /**
   * How long the first complete sample of a batch waits for company. 0 (default): the
   * batch closes on the next `setImmediate`, i.e. after every message already received.
   */
  maxDelayMs?: number;
  /** Batches written at the same time (blob fsyncs overlap; rows commit one after another). Default 4. */
  maxConcurrentBatches?: number;
  /** Refuse samples from devices the registry does not know. Default false (the broker authenticates). */
  requireRegisteredDevice?: boolean;
  /** The device tag copied into each sample as its site. Default `site`. */
  siteTag?: string;
  /** Where the alerts samples carry (`meta.alert`) are stored, before the sample is acked. */
  alerts?: Pick<AlertsRepo, 'insertMany'>;
}

interface Pending {
  meta: SampleMeta;
  receivedAt: number;
  blob: Buffer;
  resolve: (stored: boolean) => void;
  reject: (err: Error) => void;
}

/**
 * The fleet side of the sample uplink: reassembles chunked samples, stores each blob in the
 * artifact store (content-addressed, durable) and indexes it in SQLite, then says which ids
 * to ack. Idempotent by sample id: a resend is a counted no-op and is acked again.
 *
 * Complete samples are written in batches: every blob of a batch is stored (in parallel),
 * then all rows go in one transaction (one fsync), and only then do the `accept` promises
 * of the batch resolve. An ack is only ever issued for a sample whose blob and row are durable.
 */
export class SampleIngest {
  private readonly samples: SamplesRepo;
  private readonly devices: Pick<DevicesRepo, 'exists' | 'tag'>;
  private readonly artifacts: ArtifactStore;
  private readonly log: Logger | undefined;
  private readonly clock: Clock;
  private assembler: SampleAssembler;
  private readonly maxBatch: number;
  private readonly maxDelayMs: number;
  private readonly maxConcurrent: number;
  private readonly requireRegistered: boolean;
  private readonly siteTag: string;
  private readonly alerts: Pick<AlertsRepo, 'insertMany'> | null;
  private readonly counters = { received: 0, stored: 0, duplicates: 0, rejected: 0, rate_limited: 0, batches: 0, storage_failures: 0 };
  private readonly limits: DeviceLimits | null;
  /** Per-device counters since start (duplicates, refusals), bounded like the limits. */
  private readonly perDevice = new Map<string, { duplicates: number; rejected: number; rate_limited: number }>();
  private readonly sweeper: NodeJS.Timeout;

  private pending: Pending[] = [];
  /** Samples in a batch not yet committed: a resend of one waits for its commit before it is acked. */
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly assemblerOpts: Omit<AssemblerOptions, 'clock'>;
  private timer: { kind: 'timeout'; handle: NodeJS.Timeout } | { kind: 'immediate'; handle: NodeJS.Immediate } | null = null;
  private active = 0;
  private readonly idle: Array<() => void> = [];

  constructor(opts: SampleIngestOptions) {
    this.samples = opts.samples;
    this.devices = opts.devices;
    this.artifacts = opts.artifacts;
    this.log = opts.logger?.child({ component: 'sample-ingest' });
    this.clock = opts.clock;
    this.assemblerOpts = { ...opts.assembler };
    this.assembler = new SampleAssembler({ ...this.assemblerOpts, clock: this.clock });
    this.maxBatch = Math.max(1, opts.maxBatch ?? 256);
    this.maxDelayMs = Math.max(0, opts.maxDelayMs ?? 0);
    this.maxConcurrent = Math.max(1, opts.maxConcurrentBatches ?? 4);
    this.requireRegistered = opts.requireRegisteredDevice ?? false;
    this.siteTag = opts.siteTag ?? 'site';
    this.alerts = opts.alerts ?? null;
    const limits = opts.deviceLimits === undefined ? DEFAULT_DEVICE_LIMITS : opts.deviceLimits;
    this.limits = limits ? new DeviceLimits(limits, this.clock) : null;
    // A set that stalls is freed on time even when no other message arrives to notice it.
    this.sweeper = setInterval(() => this.sweep(), opts.sweepEveryMs ?? (this.assemblerOpts.timeoutMs ?? 60_000) / 2);
    this.sweeper.unref();
  }

  /** Drop chunk sets that stalled (also done on a timer). */
  sweep(): void {
    const dropped = this.assembler.sweep();
    if (dropped.length > 0) this.log?.info({ dropped: dropped.length }, 'unfinished samples dropped after their timeout; devices resend them');
  }

  /**
   * Take one sample message (already validated against `sampleMessage`) that arrived from
   * `deviceId` (the authenticated sender: its topic or token, never the payload's claim).
   * Resolves once the outcome is durable. Never rejects for bad input: that is a
   * `rejected` result; rejects only with `FLEET_STORAGE_FAILED` when the sample could not be
   * stored (nothing is acked; the device resends it later).
   */
  async accept(deviceId: string, msg: SampleMessage): Promise<IngestResult> {
    this.counters.received++;
    const sampleId = msg.meta.sample_id;
    if (msg.meta.device_id !== deviceId) {
      return this.rejected(sampleId, new FleetError('SAMPLE_DEVICE_MISMATCH', `sample ${sampleId} claims device ${msg.meta.device_id} but came from ${deviceId}`, { details: { sample_id: sampleId, claimed: msg.meta.device_id, sender: deviceId } }), deviceId);
    }
    if (this.requireRegistered && !this.devices.exists(deviceId)) {
      return this.rejected(sampleId, new FleetError('DEVICE_UNKNOWN', `sample ${sampleId} from unregistered device ${deviceId}`, { details: { sample_id: sampleId, device_id: deviceId } }), deviceId);
    }

    const r = this.assembler.accept(msg);
    switch (r.status) {
      case 'rejected':
        return this.rejected(sampleId, r.error, deviceId, r.error.code === 'SAMPLE_TOO_LARGE' ? { scope: 'sample', sampleIds: [sampleId], retryAfterMs: TOO_LARGE_RETRY_MS } : undefined);
      case 'partial':
        return { status: 'partial', sampleId, received: r.received, count: r.count, ack: [] };
      case 'duplicate': {
        this.counters.duplicates++;
        this.bump(deviceId, 'duplicates');
        if (!r.completed || !r.final) return { status: 'duplicate', sampleId, ack: [] };
        // Still being written: ack only once its batch committed.
        const writing = this.inflight.get(sampleId);
        if (writing) await writing;
        return { status: 'duplicate', sampleId, ack: [sampleId] };
      }
      case 'complete':
        return this.store(deviceId, r.meta, r.blob);
    }
  }

  /** Parse and validate a raw MQTT payload, then {@link accept}. A malformed payload is a `rejected` result. */
  async acceptPayload(deviceId: string, payload: string | Uint8Array): Promise<IngestResult> {
    // Charged before parsing: a flooding device costs no JSON work beyond its budget.
    const verdict = this.limits?.take(deviceId, typeof payload === 'string' ? Buffer.byteLength(payload) : payload.byteLength);
    if (verdict && !verdict.ok) {
      this.counters.received++;
      this.counters.rate_limited++;
      this.bump(deviceId, 'rate_limited');
      const what = verdict.reason === 'rate' ? 'sends sample messages faster than its limit' : 'is over its daily sample byte quota';
      const error = new FleetError('SAMPLE_RATE_LIMITED', `device ${deviceId} ${what}; retry in ${verdict.retryAfterMs} ms`, { details: { device_id: deviceId, limit: verdict.reason, retry_after_ms: verdict.retryAfterMs } });
      // Told once per refusal window (and logged once), not once per message of a flood.
      if (!verdict.notify) {
        this.counters.rejected++;
        return { status: 'rejected', sampleId: null, error, ack: [] };
      }
      return this.rejected(null, error, deviceId, { scope: 'device', sampleIds: [], retryAfterMs: verdict.retryAfterMs });
    }
    let msg: SampleMessage;
    try {
      msg = parseJsonWith(sampleMessage, payload, 'INPUT_INVALID', 'sample message');
    } catch (err) {
      this.counters.received++;
      return this.rejected(null, err as EdgeloopError, deviceId);
    }
    return this.accept(deviceId, msg);
  }

  /** Write every waiting sample now and wait for all batches in flight; stops the sweep timer. */
  async flush(): Promise<void> {
    clearInterval(this.sweeper);
    this.clearTimer();
    while (this.pending.length > 0 || this.active > 0) {
      if (this.pending.length > 0 && this.active < this.maxConcurrent) {
        void this.runBatch();
        continue;
      }
      await new Promise<void>((resolve) => this.idle.push(resolve));
    }
  }

  /** One page of samples matching the query, in arrival order (stable across pages). */
  query(q: SampleQuery = {}): SamplePage {
    return this.samples.page(parseQuery(q));
  }

  /** One sample. Throws `FLEET_SAMPLE_NOT_FOUND`. */
  get(sampleId: string): SampleRecord {
    const sample = this.samples.find(sampleId);
    if (!sample) throw notFound(sampleId);
    return sample;
  }

  /** The sample's input bytes (image or tensor) and how to serve them. Throws `FLEET_SAMPLE_NOT_FOUND`. */
  async blob(sampleId: string): Promise<{ data: Buffer; sha256: string; bytes: number; content_type: string | null }> {
    const { blob } = this.get(sampleId);
    return { data: await this.artifacts.get(blob.sha256), sha256: blob.sha256, bytes: blob.bytes, content_type: blob.content_type };
  }

  stats(): IngestStats {
    return { ...this.counters, assembler: this.assembler.stats() };
  }

  /**
   * Per device: samples stored (from the database, so it survives restarts), and since this
   * start the resends seen (duplicates), refusals and rate-limited messages; accounting of
   * what each device delivered, without the demo.
   */
  deviceStats(): Array<{ device_id: string; stored: number; duplicates: number; rejected: number; rate_limited: number }> {
    const rows = new Map(this.samples.countByDevice().map((r) => [r.device_id, { device_id: r.device_id, stored: r.stored, duplicates: 0, rejected: 0, rate_limited: 0 }]));
    for (const [device, c] of this.perDevice) {
      const row = rows.get(device) ?? { device_id: device, stored: 0, duplicates: 0, rejected: 0, rate_limited: 0 };
      rows.set(device, { ...row, ...c });
    }
    return [...rows.values()].sort((a, b) => (a.device_id < b.device_id ? -1 : a.device_id > b.device_id ? 1 : 0));
  }

  private bump(device: string, key: 'duplicates' | 'rejected' | 'rate_limited'): void {
    let c = this.perDevice.get(device);
    if (!c) {
      if (this.perDevice.size >= 100_000) return;
      c = { duplicates: 0, rejected: 0, rate_limited: 0 };
      this.perDevice.set(device, c);
    }
    c[key]++;
  }

  /** Total samples stored. */
  count(): number {
    return this.samples.count();
  }

  private rejected(sampleId: string | null, error: EdgeloopError, deviceId: string, nack?: IngestNack): IngestResult {
    this.counters.rejected++;
    this.bump(deviceId, 'rejected');
    this.log?.warn({ device: deviceId, sample: sampleId, code: error.code, reason: error.message }, 'sample rejected');
    return { status: 'rejected', sampleId, error, ack: [], ...(nack ? { nack } : {}) };
  }

  private async store(deviceId: string, meta: SampleMeta, blob: Buffer): Promise<IngestResult> {
    const sampleId = meta.sample_id;
    // No lookup first: a sample stored before (the assembler forgot it after a restart) goes
    // through the batch like any other; its blob dedupes in the store and its row in
    // ON CONFLICT DO NOTHING, which says it was a duplicate.
    const writing = new Promise<boolean>((resolve, reject) => {
      this.pending.push({ meta, receivedAt: this.clock.now(), blob, resolve, reject });
    });
    this.inflight.set(sampleId, writing);
    this.schedule();
    let stored: boolean;
    try {
      stored = await writing;
    } finally {
      this.inflight.delete(sampleId);
    }
    if (stored) this.counters.stored++;
    else {
      this.counters.duplicates++;
      this.bump(deviceId, 'duplicates');
    }
    return { status: stored ? 'stored' : 'duplicate', sampleId, ack: [sampleId] };
  }

  private schedule(): void {
    if (this.pending.length >= this.maxBatch && this.active < this.maxConcurrent) {
      this.clearTimer();
      void this.runBatch();
      return;
    }
    if (this.timer) return;
    const fire = (): void => {
      this.timer = null;
      if (this.pending.length > 0 && this.active < this.maxConcurrent) void this.runBatch();
    };
    this.timer = this.maxDelayMs > 0 ? { kind: 'timeout', handle: setTimeout(fire, this.maxDelayMs) } : { kind: 'immediate', handle: setImmediate(fire) };
  }

  private clearTimer(): void {
    if (this.timer?.kind === 'timeout') clearTimeout(this.timer.handle);
    else if (this.timer?.kind === 'immediate') clearImmediate(this.timer.handle);
    this.timer = null;
  }

  private async runBatch(): Promise<void> {
    const batch = this.pending.splice(0, this.maxBatch);
    if (batch.length === 0) return;
    this.active++;
    try {
      // Blobs first, each durable before its row can reference it; identical blobs once.
      const blobs = new Map<string, Buffer>();
      for (const p of batch) blobs.set(p.meta.input.sha256, p.blob);
      await Promise.all([...blobs].map(([sha256, data]) => this.artifacts.put(data, { sha256 })));
      const results = this.insertRows(batch);
      this.counters.batches++;
      batch.forEach((p, i) => p.resolve(results[i] as boolean));
    } catch (err) {
      this.counters.storage_failures++;
      const error = isEdgeloopError(err) ? err : new FleetError('STORAGE_FAILED', `cannot store ${batch.length} samples: ${(err as Error).message}`, { cause: err });
      this.log?.error({ samples: batch.length, reason: (err as Error).message }, 'sample batch not stored; devices will resend');
      // The assembler remembers these as complete and would call a resend a duplicate (and
      // ack what was never stored): start over. Devices resend whole samples, so sets that
      // were half-way are only delayed.
      this.assembler = new SampleAssembler({ ...this.assemblerOpts, clock: this.clock });
      for (const p of batch) p.reject(error);
    } finally {
      this.active--;
      if (this.pending.length > 0) this.schedule();
      for (const wake of this.idle.splice(0)) wake();
    }
  }

  /** One transaction for the batch; the site is the device's tag at this moment, read once per device. */
  private insertRows(batch: Pending[]): boolean[] {
    const sites = new Map<string, string | null>();
    const samples = batch.map((p) => {
      const device = p.meta.device_id;
      let site = sites.get(device);
      if (site === undefined) {
        site = this.devices.tag(device, this.siteTag);
        sites.set(device, site);
      }
      return { meta: p.meta, site, receivedAt: p.receivedAt };
    });
    const stored = this.samples.insertMany(samples);
    // Every alert of the batch, resends included: the sample may have been stored by a batch
    // whose alert write failed. Idempotent by alert id; acked only after both.
    const alerts = this.alerts ? samples.flatMap((x) => alertOfSample(x.meta, x.site, x.receivedAt) ?? []) : [];
    if (alerts.length) this.alerts!.insertMany(alerts);
    return stored;
  }
}

const notFound = (sampleId: string): FleetError => new FleetError('SAMPLE_NOT_FOUND', `sample ${sampleId} is not stored`, { details: { sample_id: sampleId } });
