import type { Logger } from 'pino';
import type { SampleQueue } from '../queue/types.js';
import { systemClock } from '../../shared/ids.js';
import type { Clock } from '../../shared/ids.js';
import { ackTopicMessage } from '../../shared/schemas/messages.js';
import type { SampleNack } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';
import { Backlog } from './backlog.js';
import { queueSource } from './backlog-source.js';
import type { BacklogSource } from './backlog-source.js';
import type { Track } from './backlog.js';
import { AWS_IOT_MAX_MESSAGE_BYTES } from '../../shared/wire/chunking.js';
import { PublishLimiter, WAIT_FOR_SLOT } from './limits.js';
import type { PublishLimitOptions } from './limits.js';
import { LiveLane } from './live-lane.js';
import type { LiveMessage } from './live-lane.js';
import { systemTimers } from './timers.js';
import type { Timers } from './timers.js';
import type { PublishOptions, Uplink } from './types.js';

/**
 * When a queued sample may be deleted.
 * - `fleet` (default): when the fleet publishes a `sampleAck` naming it, i.e. after the
 *   fleet stored it. With AWS IoT Core a PUBACK only means the broker took the message;
 *   if no rule or subscriber stored it, it is gone.
 * - `puback`: at PUBACK, for brokers where a durable subscriber (persistent session) is
 *   guaranteed to receive it.
 */
export type AckMode = 'fleet' | 'puback';

/** Options of {@link Forwarder}. */
export interface ForwarderOptions {
  deviceId: string;
  /** The durable queue (its depth is reported in stats). */
  queue: SampleQueue;
  /**
   * Where leases, acks and releases go. Default: `queue` in this thread. The agent passes a
   * `DrainWorker` (drain-worker.ts) over its SQLite queue file, so reading rows, encoding and deleting
   * acked rows run in a worker thread and the event loop only publishes.
   */
  source?: BacklogSource;
  uplink: Uplink;
  /** Parent logger; the forwarder logs through a child `{ component: 'uplink' }`. */
  logger: Logger;
  ackMode?: AckMode;
  /**
   * Lease length: how long a sent sample waits for its ack before it is sent again.
   * Default 60 000. Resends are harmless, the fleet is idempotent on sample ids.
   */
  ackTimeoutMs?: number;
  /**
   * Collect deletions for this long before one `ack()` call (one SQLite transaction); default
   * the source's preferred time, else 10.
   * Deleting late is safe: the items stay leased meanwhile, and after a crash they are only
   * sent again. Flushed at once when the drain is over (nothing to send, nothing in flight).
   */
  ackBatchMs?: number;
  /**
   * Most items per `lease()` call (one SQLite transaction). Default the source's preferred
   * batch, else 64; fewer when the rate cap could not send them within half a lease.
   */
  leaseBatch?: number;
  /** Bytes per `lease()` call, bounding the memory a batch of big samples takes. Default 8 MiB, less when the bandwidth cap could not send them within half a lease. */
  leaseMaxBytes?: number;
  /** How often to look at the queue when it seemed empty (new captures, expired leases). Default 1000. */
  pollMs?: number;
  limits?: PublishLimitOptions;
  /** Largest message, topic + payload. Default 128 KiB (AWS IoT Core). */
  maxMessageBytes?: number;
  /** Live messages kept while they cannot be sent; the oldest go first. Default 100. */
  liveCapacity?: number;
  /** Default `topics.samples(deviceId)`. */
  samplesTopic?: string;
  /** Default `topics.acks(deviceId)`. */
  acksTopic?: string;
  clock?: Clock;
  timers?: Timers;
}

/** Counters since start, plus current gauges. */
export interface ForwarderStats {
  /** Samples whose every message the transport acknowledged (PUBACK). */
  sent: number;
  /** Samples deleted from the queue on an ack (fleet ack or PUBACK, per `ackMode`). */
  acked: number;
  /** Samples sent again after an attempt that did not end in an ack. */
  resent: number;
  live_sent: number;
  /** Live messages dropped because the lane was full (oldest first). */
  live_dropped: number;
  /** Live messages given up on: refused while connected, or cut off by a second disconnect. */
  live_failed: number;
  /** Publishes acknowledged, both lanes. */
  messages_sent: number;
  /** Payload bytes acknowledged, both lanes. */
  bytes_sent: number;
  publish_failed: number;
  /** Refusals the fleet sent back (`sampleNack`: rate limit, quota, too large); the samples stay queued. */
  nacked: number;
  /** Until when (epoch ms) the fleet asked us to stop sending samples; 0 when not paused. */
  paused_until: number;
  /** Queue items that cannot be encoded as sample messages (left in the queue). */
  unsendable: number;
  /** Publishes awaiting PUBACK. */
  inflight: number;
  /** Samples sent and waiting for the fleet's ack. */
  awaiting_ack: number;
  /** Items in the queue (leased or not). */
  backlog: number;
}

const RETAIN: PublishOptions = Object.freeze({ retain: true });

/** Most ids per `ack()` call. */
const MAX_ACK_BATCH = 1000;

type Counters = Omit<ForwarderStats, 'resent' | 'live_dropped' | 'unsendable' | 'inflight' | 'awaiting_ack' | 'backlog' | 'paused_until'>;

/** Longest pause a fleet's nack can impose: a day (a daily quota's reset), so no bad answer parks a device for longer. */
const MAX_NACK_PAUSE_MS = 86_400_000;

/**
 * Drains the durable sample queue through an {@link Uplink}, with a live lane for telemetry.
 *
 * Delivery is at-least-once, ack-then-delete: items are leased (not removed) for
 * `ackTimeoutMs`, published, and deleted only on an ack (see {@link AckMode}); an item
 * whose ack never comes is leased and sent again when its lease runs out, and items not
 * completely sent when the connection drops are released at once so they go first, in
 * queue order, after the reconnect.
 *
 * Every publish passes the rate cap, bandwidth cap and in-flight window. The live lane is
 * always served before the backlog, so a telemetry message sent during a long backlog drain
 * waits for at most one publish slot, never for the backlog.
 *
 * Event-driven, never blocking: publishes complete asynchronously; the pump runs in a
 * microtask after anything that can free capacity (PUBACK, connect, sendLive, a timer).
 */
export class Forwarder {
  private readonly log: Logger;
  private readonly queue: SampleQueue;
  private readonly source: BacklogSource;
  private readonly uplink: Uplink;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly ackMode: AckMode;
  private readonly ackTimeoutMs: number;
  private readonly leaseBatch: number;
  private readonly ackBatchMs: number;
  private readonly pollMs: number;
  private readonly samplesTopic: string;
  private readonly acksTopic: string;
  private readonly limiter: PublishLimiter;
  private readonly live: LiveLane;
  private readonly backlog: Backlog;
  private readonly counters: Counters = { sent: 0, acked: 0, live_sent: 0, live_failed: 0, messages_sent: 0, bytes_sent: 0, publish_failed: 0, nacked: 0 };
  /** The fleet asked us to pause samples (rate limit, quota) until then; live messages still go. */
  private pausedUntil = 0;

  private running = false;
  private pumpScheduled = false;
  /** Set when a lease came back empty; cleared by the poll tick, connect and notify(). */
  private backlogIdle = false;
  private wakeTimer: unknown;
  private pollTimer: unknown;
  private pendingAcks: string[] = [];
  private ackFlushTimer: unknown;
  private readonly unlisten: Array<() => void> = [];
  /** Acks handed to an asynchronous source and not yet answered. */
  private readonly acksInFlight = new Set<Promise<unknown>>();
  /** The uplink's callback publish when it has one (no Promise per message), else its Promise one. */
  private readonly send: (topic: string, payload: Uint8Array, opts: PublishOptions | undefined, done: (err?: unknown) => void) => void;

  constructor(opts: ForwarderOptions) {
    this.log = opts.logger.child({ component: 'uplink' });
    this.queue = opts.queue;
    this.source = opts.source ?? queueSource(opts.queue);
    this.uplink = opts.uplink;
    const uplink = opts.uplink;
    const publishCallback = uplink.publishCallback?.bind(uplink);
    this.send = publishCallback
      ? (topic, payload, publishOpts, done) => publishCallback(topic, payload, done, publishOpts)
      : (topic, payload, publishOpts, done) =>
          void uplink.publish(topic, payload, publishOpts).then(
            () => done(),
            (err: unknown) => done(err ?? new Error('publish failed')),
          );
    this.clock = opts.clock ?? systemClock;
    this.timers = opts.timers ?? systemTimers;
    this.ackMode = opts.ackMode ?? 'fleet';
    this.ackTimeoutMs = opts.ackTimeoutMs ?? 60_000;
    const limits = opts.limits ?? {};
    // Lease no more than the caps let us send within half a lease, so a slow link never
    // holds leased items until they expire unsent (and come back as spurious resends).
    const halfLeaseS = this.ackTimeoutMs / 2000;
    const rateCap = limits.publishesPerS === undefined ? 100 : limits.publishesPerS;
    this.leaseBatch = Math.max(1, Math.min(opts.leaseBatch ?? this.source.preferredLeaseBatch ?? 64, rateCap === null ? Infinity : Math.floor(rateCap * halfLeaseS)));
    // Queue bytes are raw; on the wire the blob grows by 4/3 (base64), hence the 3/4.
    const leaseMaxBytes = Math.min(opts.leaseMaxBytes ?? 8 * 1024 * 1024, limits.bytesPerS ? Math.floor(limits.bytesPerS * halfLeaseS * 0.75) : Infinity);
    this.ackBatchMs = Math.max(0, opts.ackBatchMs ?? this.source.preferredAckBatchMs ?? 10);
    this.pollMs = opts.pollMs ?? 1000;
    this.samplesTopic = opts.samplesTopic ?? topics.samples(opts.deviceId);
    this.acksTopic = opts.acksTopic ?? topics.acks(opts.deviceId);
    this.limiter = new PublishLimiter(limits, this.clock);
    this.live = new LiveLane(opts.liveCapacity ?? 100);
    // Leased ahead of sending (with the drain worker): a second batch rides out a late answer
    // from the worker on a busy host, within what the caps let us send in half a lease.
    const leaseAhead = limits.bytesPerS ? this.leaseBatch : Math.max(this.leaseBatch, Math.min(2 * this.leaseBatch, rateCap === null ? Infinity : Math.floor(rateCap * halfLeaseS)));
    this.backlog = new Backlog({
      source: this.source,
      leaseAhead,
      onFetched: () => this.schedulePump(),
      topic: this.samplesTopic,
      maxMessageBytes: opts.maxMessageBytes ?? AWS_IOT_MAX_MESSAGE_BYTES,
      leaseMs: this.ackTimeoutMs,
      leaseMaxBytes: Math.max(1, leaseMaxBytes),
      log: this.log,
    });
  }

  /**
   * Start draining whenever the uplink is connected. Subscribes to the ack topic first
   * (fleet mode) so no ack for a sample we send can arrive before we listen.
   */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    if (this.ackMode === 'fleet') await this.uplink.subscribe(this.acksTopic, (_topic, payload) => this.onFleetAck(payload));
    this.unlisten.push(this.uplink.on('connected', () => this.onConnected()));
    this.unlisten.push(this.uplink.on('disconnected', () => this.onDisconnected()));
    this.armPoll();
    if (this.uplink.isConnected()) this.onConnected();
  }

  /**
   * Stop sending and give back the leases of samples not completely sent. Publishes in
   * flight still settle; samples awaiting a fleet ack keep their lease and are resent
   * after it expires if the ack never comes.
   */
  stop(): void {
    if (!this.running) return;
    this.flushAcks();
    this.running = false;
    for (const off of this.unlisten.splice(0)) off();
    if (this.pollTimer !== undefined) this.timers.clearTimeout(this.pollTimer);
    if (this.wakeTimer !== undefined) this.timers.clearTimeout(this.wakeTimer);
    this.pollTimer = undefined;
    this.wakeTimer = undefined;
    this.releaseUnsent('stopped');
  }

  /**
   * Queue a live message (telemetry, status). Never blocks and never throws: it is sent
   * ahead of the backlog as soon as the limits allow; while offline it waits in a bounded
   * lane where the oldest message is dropped first. Not durable: a message whose publish
   * is cut off by a disconnect gets one more try after the reconnect, then is counted failed.
   */
  sendLive(topic: string, payload: Uint8Array, opts?: { retain?: boolean }): void {
    this.live.push({ topic, payload, retain: opts?.retain ?? false });
    this.schedulePump();
  }

  /** New items were enqueued: look at the queue now rather than at the next poll. */
  notify(): void {
    this.backlogIdle = false;
    this.backlog.wake();
    this.schedulePump();
  }

  stats(): ForwarderStats {
    let awaiting = 0;
    for (const track of this.backlog.tracks.values()) if (track.state === 'sent') awaiting++;
    return {
      ...this.counters,
      resent: this.backlog.resent,
      live_dropped: this.live.dropped,
      unsendable: this.backlog.unsendable,
      inflight: this.limiter.inflight(),
      awaiting_ack: awaiting,
      backlog: this.queue.stats().depth,
      paused_until: this.pausedUntil > this.clock.now() ? this.pausedUntil : 0,
    };
  }

  private onConnected(): void {
    if (!this.running) return;
    this.backlogIdle = false;
    this.backlog.wake();
    this.log.info({ ackMode: this.ackMode, live: this.live.length }, 'uplink up: draining');
    this.schedulePump();
  }

  private onDisconnected(): void {
    if (!this.running) return;
    if (this.wakeTimer !== undefined) this.timers.clearTimeout(this.wakeTimer);
    this.wakeTimer = undefined;
    this.releaseUnsent('disconnected');
  }

  /** Give back leases of samples not completely published, so they go first after a reconnect. */
  private releaseUnsent(reason: string): void {
    this.flushAcks();
    const ids = this.backlog.takeUnsent();
    if (ids.length === 0) return;
    this.release(ids);
    this.log.info({ reason, released: ids.length }, 'draining paused; unsent samples released');
  }

  /** Give leases back; a failure only delays the items (the leases expire on their own, nothing is lost). */
  private release(ids: string[]): void {
    const failed = (err: unknown): void => this.log.warn({ err, count: ids.length }, 'releasing leases failed');
    try {
      const done = this.source.release(ids);
      if (done) done.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  private schedulePump(): void {
    if (this.pumpScheduled || !this.running) return;
    this.pumpScheduled = true;
    queueMicrotask(() => this.pump());
  }

  private pump(): void {
    this.pumpScheduled = false;
    if (!this.running || !this.uplink.isConnected()) return;
    for (;;) {
      const live = this.live.peek();
      let track: Track | undefined;
      let payload: Uint8Array;
      if (live) {
        payload = live.payload;
      } else {
        if (this.backlogIdle) return;
        const pausedFor = this.pausedUntil - this.clock.now();
        if (pausedFor > 0) {
          this.wakeAfter(pausedFor);
          return;
        }
        // Window full: a settling publish pumps again. Checked before leasing so no lease waits on it.
        if (this.limiter.inflight() >= this.limiter.maxInflight) return;
        // A whole batch per lease (one transaction), not what the window has free right now:
        // after the first fill one slot frees per PUBACK, and a lease per message would cost
        // a transaction per message. A batch drains in well under a lease at any sane rate cap.
        track = this.nextTrack(this.leaseBatch);
        if (!track) {
          // A lease on its way pumps again when it lands.
          if (!this.backlog.pending) this.backlogIdle = true;
          return;
        }
        payload = track.messages[track.next] as Buffer;
      }
      const wait = this.limiter.tryAcquire(payload.byteLength);
      if (wait !== 0) {
        // A full window reopens when a publish settles (which pumps); budgets refill with time.
        if (wait !== WAIT_FOR_SLOT) this.wakeAfter(wait);
        return;
      }
      if (live) {
        this.live.shift();
        this.publishLive(live);
      } else if (track) {
        track.next++;
        this.publishSample(track, payload as Buffer);
      }
    }
  }

  private nextTrack(leaseMax: number): Track | undefined {
    try {
      return this.backlog.nextTrack(leaseMax);
    } catch (err) {
      // Storage trouble: try again at the next poll rather than spin.
      this.log.error({ err }, 'leasing from the queue failed');
      return undefined;
    }
  }

  private publishLive(msg: LiveMessage): void {
    this.send(msg.topic, msg.payload, msg.retain ? RETAIN : undefined, (err) => {
      if (err === undefined) {
        this.limiter.settle();
        this.counters.live_sent++;
        this.counters.messages_sent++;
        this.counters.bytes_sent += msg.payload.byteLength;
        this.schedulePump();
      } else {
        this.limiter.settle();
        this.counters.publish_failed++;
        const attempts = (msg.attempts ?? 0) + 1;
        // Cut off by a disconnect: one more try after the reconnect, ahead of newer messages.
        // Only one, since a broker that drops us for this very publish (an AWS IoT policy
        // denial) would otherwise make it a reconnect loop.
        if (!this.uplink.isConnected() && attempts < 2) {
          if (!this.live.unshift({ ...msg, attempts })) this.log.debug({ topic: msg.topic }, 'live lane full; cut-off message dropped');
        } else {
          this.counters.live_failed++;
          this.log.debug({ err, topic: msg.topic }, 'live message not delivered');
        }
        this.schedulePump();
      }
    });
  }

  private publishSample(track: Track, payload: Buffer): void {
    this.send(this.samplesTopic, payload, undefined, (err) => {
      if (err === undefined) this.onSamplePuback(track, payload.byteLength);
      else this.onSampleFailed(track, err);
    });
  }

  private onSamplePuback(track: Track, bytes: number): void {
    this.limiter.settle();
    this.counters.messages_sent++;
    this.counters.bytes_sent += bytes;
    track.pubacked++;
    if (track.state === 'sending' && track.pubacked === track.messages.length) {
      this.counters.sent++;
      if (this.ackMode === 'puback') {
        track.state = 'dropped';
        this.backlog.tracks.delete(track.id);
        this.ackLater(track.id);
        this.flushAcksIfDrained();
      } else {
        track.state = 'sent';
        track.sentAt = this.clock.now();
        // The payloads are not needed again: a resend re-reads the queue.
        track.messages = [];
      }
    }
    this.schedulePump();
  }

  private onSampleFailed(track: Track, err: unknown): void {
    this.limiter.settle();
    this.counters.publish_failed++;
    if (track.state === 'sending') {
      track.state = 'dropped';
      this.backlog.tracks.delete(track.id);
      if (this.uplink.isConnected()) {
        // Connected but refused: keep the lease so the retry waits for it to expire instead of spinning.
        this.log.warn({ err, id: track.id }, 'sample publish failed; retrying after the lease expires');
      } else {
        this.backlog.noteCutOff(track.id);
        this.release([track.id]);
      }
    }
    this.schedulePump();
  }

  private onFleetAck(payload: Uint8Array): void {
    if (!this.running) return;
    let ids: string[];
    try {
      const msg = parseJsonWith(ackTopicMessage, payload, 'INPUT_INVALID', 'sample ack');
      if (msg.type === 'sample_nack') return this.onFleetNack(msg);
      ids = msg.sample_ids;
    } catch (err) {
      this.log.warn({ err }, 'ignoring malformed sample ack');
      return;
    }
    for (const id of ids) this.backlog.forget(id);
    // Ids we have no track for (sent by a previous run, or forgotten) are acked too: ack is idempotent.
    for (const id of ids) this.ackLater(id);
    this.flushAcksIfDrained();
  }

  /**
   * The fleet refused samples for now. Nothing is deleted: device-wide (rate limit, daily
   * quota), stop sending samples until `retry_after_ms` is over, then send again what was not
   * sent or not acked yet; for named samples (too large), they wait for their lease to run out.
   */
  private onFleetNack(nack: SampleNack): void {
    this.counters.nacked++;
    if (nack.scope === 'device') {
      const until = this.clock.now() + Math.min(nack.retry_after_ms, MAX_NACK_PAUSE_MS);
      if (until > this.pausedUntil) this.pausedUntil = until;
      this.releaseUnsent('fleet asked for a pause');
      // Refused before the fleet read them, so which were dropped is unknown: all go again after the pause.
      const unacked = this.backlog.takeAwaitingAck();
      if (unacked.length > 0) this.release(unacked);
    }
    this.log.warn({ code: nack.code, scope: nack.scope, samples: nack.sample_ids.length, retry_after_ms: nack.retry_after_ms, reason: nack.message }, 'fleet refused samples for now; they stay queued');
  }

  /**
   * Batch deletions: one SQLite transaction (one fsync at synchronous=FULL) per burst of
   * PUBACKs or fleet ack messages, rather than one per sample; while a commit blocks the
   * event loop, the next burst accumulates.
   */
  private ackLater(id: string): void {
    this.pendingAcks.push(id);
    // Bounded transaction size: a burst of this many is flushed without waiting.
    if (this.pendingAcks.length >= MAX_ACK_BATCH) {
      this.flushAcks();
      return;
    }
    if (this.ackFlushTimer !== undefined) return;
    this.ackFlushTimer = this.timers.setTimeout(() => {
      this.ackFlushTimer = undefined;
      this.flushAcks();
    }, this.ackBatchMs);
  }

  /**
   * Nothing left to send and nothing in flight: no more deletions will join the batch soon,
   * so delete now rather than at the timer (the queue's depth is right at once when a drain ends).
   */
  private flushAcksIfDrained(): void {
    if (this.backlogIdle && this.limiter.inflight() === 0 && this.live.length === 0) this.flushAcks();
  }

  private flushAcks(): void {
    if (this.ackFlushTimer !== undefined) this.timers.clearTimeout(this.ackFlushTimer);
    this.ackFlushTimer = undefined;
    if (this.pendingAcks.length === 0) return;
    const ids = this.pendingAcks;
    this.pendingAcks = [];
    // Not deleted means sent again later: duplicates, never loss.
    const failed = (err: unknown): void => this.log.error({ err, count: ids.length }, 'deleting acked samples failed');
    try {
      const deleted = this.source.ack(ids);
      if (typeof deleted === 'number') {
        this.counters.acked += deleted;
        return;
      }
      const settled = deleted.then((n) => void (this.counters.acked += n), failed).finally(() => this.acksInFlight.delete(settled));
      this.acksInFlight.add(settled);
    } catch (err) {
      failed(err);
    }
  }

  /** Resolves when every ack handed to the source so far is answered (committed or failed). */
  async acksSettled(): Promise<void> {
    while (this.acksInFlight.size > 0) await Promise.all([...this.acksInFlight]);
  }

  private wakeAfter(ms: number): void {
    if (this.wakeTimer !== undefined) return;
    this.wakeTimer = this.timers.setTimeout(() => {
      this.wakeTimer = undefined;
      this.schedulePump();
    }, ms);
  }

  /** Periodic look at the queue: new captures, leases that expired without an ack. */
  private armPoll(): void {
    this.pollTimer = this.timers.setTimeout(() => {
      this.pollTimer = undefined;
      if (!this.running) return;
      // Twice the lease: by then the queue has handed the item out again (counted as a resend) or it was acked.
      this.backlog.forgetStale(this.clock.now(), 2 * this.ackTimeoutMs);
      this.backlogIdle = false;
      this.backlog.wake();
      this.schedulePump();
      this.armPoll();
    }, this.pollMs);
  }
}
