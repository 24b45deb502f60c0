import type { Logger } from 'pino';
import type { BacklogSource, EncodedSample, LeasedBatch, LeaseRequest, UnsendableItem } from './backlog-source.js';

/**
 * One leased sample on its way out. `state`:
 * - `sending`: leased, messages still to publish or awaiting PUBACK;
 * - `sent`: every message PUBACKed, waiting for the fleet's ack (lease still held);
 * - `dropped`: no longer ours to send (released, failed, acked, or superseded by a re-lease).
 */
export interface Track {
  id: string;
  priority: number;
  messages: Buffer[];
  /** Index of the next message to publish. */
  next: number;
  /** Messages PUBACKed so far. */
  pubacked: number;
  state: 'sending' | 'sent' | 'dropped';
  /** When the last message was PUBACKed (state `sent`). */
  sentAt: number;
}

/** Options of {@link Backlog}. */
export interface BacklogOptions {
  source: BacklogSource;
  topic: string;
  maxMessageBytes: number;
  leaseMs: number;
  leaseMaxBytes: number;
  log: Logger;
  /** A lease that answered with a promise has landed: pump again. */
  onFetched: () => void;
  /**
   * With an asynchronous source: items to keep leased ahead of the one being sent (ready
   * here or on their way), so a slow answer from the worker (a busy host schedules it
   * late) does not stall the publishing. Default: one lease batch.
   */
  leaseAhead?: number;
}

/** Lease requests on their way at once, at most (the worker answers them in order). */
const MAX_FETCHES = 2;

/**
 * The forwarder's view of the durable queue: leases items in the queue's order (priority,
 * then FIFO), encoded into messages by its {@link BacklogSource}, and hands them out one
 * message at a time. It remembers what it sent so a re-lease (lease expired without an ack)
 * counts as a resend.
 *
 * With a source that answers later (the drain worker), up to `leaseAhead` items are kept
 * leased ahead of the one being sent (ready here or on their way), so the event loop does not
 * wait for the queue; a batch that lands after the leases were given back (disconnect, stop)
 * is released.
 */
export class Backlog {
  /** Leased tracks in lease order with messages left to publish. */
  private ready: Track[] = [];
  private head = 0;
  /** Every track this process holds (sending or sent), by queue id. */
  readonly tracks = new Map<string, Track>();
  resent = 0;
  unsendable = 0;
  /** Items whose publish was cut off and whose lease was given back. */
  private readonly cutOff = new Set<string>();
  /** Ids already logged as unsendable, so a stuck item logs once, not at every lease expiry. */
  private readonly reportedUnsendable = new Set<string>();
  /** Lease requests on their way from an asynchronous source, and the items they asked for. */
  private fetches = 0;
  private fetchingItems = 0;
  /** The last asynchronous lease found nothing: ask again only after {@link wake}. */
  private drained = false;
  /** The source answers with promises (learnt from its first answer): worth asking ahead. */
  private async = false;
  /** Bumped when leases are given back, so a batch that lands afterwards is released, not sent. */
  private generation = 0;

  constructor(private readonly opts: BacklogOptions) {}

  /** A lease is in flight: more is coming, the backlog is not idle. */
  get pending(): boolean {
    return this.fetches > 0;
  }

  /** Something may have changed in the queue (new captures, expired leases, a reconnect). */
  wake(): void {
    this.drained = false;
  }

  /**
   * The track whose next message should go out now, leasing up to `leaseMax` items when
   * nothing is ready. Undefined when nothing is ready now: the queue has nothing leasable,
   * or (see {@link pending}) a lease is on its way and `onFetched` will say when it lands.
   */
  nextTrack(leaseMax: number): Track | undefined {
    for (;;) {
      while (this.head < this.ready.length) {
        const track = this.ready[this.head] as Track;
        if (track.state === 'sending' && track.next < track.messages.length) {
          if (this.async && this.fetches < MAX_FETCHES && !this.drained && this.ready.length - this.head + this.fetchingItems + leaseMax <= Math.max(leaseMax, this.opts.leaseAhead ?? leaseMax)) {
            this.prefetch(leaseMax);
          }
          return track;
        }
        this.head++;
      }
      this.ready = [];
      this.head = 0;
      if (this.fetches > 0 || this.drained) return undefined;
      const got = this.opts.source.lease(this.request(leaseMax));
      if (got instanceof Promise) {
        this.await(got, leaseMax);
        return undefined;
      }
      if (got.samples.length === 0 && got.unsendable.length === 0) return undefined;
      this.admitBatch(got);
    }
  }

  /** Ask an asynchronous source for the next batch before this one runs out (one that answers at once is asked when nothing is ready). */
  private prefetch(leaseMax: number): void {
    let got: LeasedBatch | Promise<LeasedBatch>;
    try {
      got = this.opts.source.lease(this.request(leaseMax));
    } catch (err) {
      this.opts.log.error({ err }, 'leasing from the queue failed');
      return;
    }
    if (got instanceof Promise) this.await(got, leaseMax);
    else this.admitBatch(got);
  }

  private request(leaseMax: number): LeaseRequest {
    return { max: Math.max(1, leaseMax), leaseMs: this.opts.leaseMs, maxBytes: this.opts.leaseMaxBytes, topic: this.opts.topic, maxMessageBytes: this.opts.maxMessageBytes };
  }

  private await(got: Promise<LeasedBatch>, items: number): void {
    this.async = true;
    this.fetches++;
    this.fetchingItems += items;
    const landed = (): void => {
      this.fetches--;
      this.fetchingItems -= items;
    };
    const generation = this.generation;
    got.then(
      (batch) => {
        landed();
        if (generation !== this.generation) {
          // The leases were given back meanwhile (disconnect, stop): these go back too.
          const ids = batch.samples.map((s) => s.id);
          if (ids.length > 0) void Promise.resolve(this.opts.source.release(ids)).catch((err: unknown) => this.opts.log.warn({ err, count: ids.length }, 'releasing leases failed'));
          return;
        }
        if (batch.samples.length === 0 && batch.unsendable.length === 0) this.drained = true;
        else this.admitBatch(batch);
        this.opts.onFetched();
      },
      (err: unknown) => {
        landed();
        // Storage trouble: try again at the next poll rather than spin.
        this.drained = true;
        this.opts.log.error({ err }, 'leasing from the queue failed');
      },
    );
  }

  private admitBatch(batch: LeasedBatch): void {
    for (const item of batch.unsendable) this.markUnsendable(item);
    for (const sample of batch.samples) this.admit(sample);
  }

  /** Tracks that were leased but are not completely sent; marks them dropped. */
  takeUnsent(): string[] {
    this.generation++;
    const ids: string[] = [];
    for (const track of this.tracks.values()) {
      if (track.state !== 'sending') continue;
      if (track.next > 0) this.noteCutOff(track.id);
      track.state = 'dropped';
      ids.push(track.id);
      this.tracks.delete(track.id);
    }
    this.ready = [];
    this.head = 0;
    return ids;
  }

  /**
   * Give up waiting for the fleet's ack of every sent sample: the fleet refused messages it
   * could not name (a rate limit refuses before parsing), so any of them may be missing. They
   * are sent again; those the fleet did store are only acked again.
   */
  takeAwaitingAck(): string[] {
    const ids: string[] = [];
    for (const track of this.tracks.values()) {
      if (track.state !== 'sent') continue;
      this.noteCutOff(track.id);
      track.state = 'dropped';
      ids.push(track.id);
      this.tracks.delete(track.id);
    }
    return ids;
  }

  /** A publish of this item was cut off: if it comes back, that is a resend. */
  noteCutOff(id: string): void {
    // Bounded: past this many the count only undercounts resends, it never grows memory.
    if (this.cutOff.size >= 10_000) this.cutOff.clear();
    this.cutOff.add(id);
  }

  /** Forget an item (it was acked). */
  forget(id: string): void {
    this.cutOff.delete(id);
    const track = this.tracks.get(id);
    if (!track) return;
    // Acked while (re)sending: the rest of it is not sent.
    track.state = 'dropped';
    this.tracks.delete(id);
  }

  /** Forget `sent` tracks older than `maxAgeMs`: their lease expired, the queue will hand them out again. */
  forgetStale(now: number, maxAgeMs: number): void {
    for (const track of this.tracks.values()) {
      if (track.state === 'sent' && now - track.sentAt > maxAgeMs) this.tracks.delete(track.id);
    }
  }

  private admit(sample: EncodedSample): void {
    const previous = this.tracks.get(sample.id);
    // Leased again after we published it: the lease expired before the fleet acked, or it
    // was given back when a publish was cut off. (Not the queue's `attempts`: that also
    // counts releases of items leased but never published.)
    if (previous) previous.state = 'dropped';
    if (this.cutOff.delete(sample.id) || previous) this.resent++;
    const track: Track = { id: sample.id, priority: sample.priority, messages: sample.messages, next: 0, pubacked: 0, state: 'sending', sentAt: 0 };
    this.tracks.set(sample.id, track);
    this.ready.push(track);
  }

  /**
   * Keep the lease and do not release: the item comes back after the lease expires, so a
   * sample we cannot send is retried slowly rather than spinning, and is never deleted
   * without the fleet having it.
   */
  private markUnsendable(item: UnsendableItem): void {
    this.unsendable++;
    if (this.reportedUnsendable.has(item.id)) return;
    if (this.reportedUnsendable.size >= 1000) this.reportedUnsendable.clear();
    this.reportedUnsendable.add(item.id);
    this.opts.log.error({ err: item.error, id: item.id, kind: item.kind, bytes: item.bytes }, 'queued item cannot be sent; left in the queue');
  }
}
