import type { Logger } from 'pino';
import type { QueueItem, SampleQueue } from '../queue/types.js';
import type { SampleMeta } from '../../shared/schemas/messages.js';
import { encodeSampleJson } from './sample-encoder.js';

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
  queue: SampleQueue;
  topic: string;
  maxMessageBytes: number;
  leaseMs: number;
  leaseMaxBytes: number;
  log: Logger;
}

/**
 * The forwarder's view of the durable queue: leases items in the queue's order (priority,
 * then FIFO), turns each into its messages, and hands them out one message at a time. It
 * remembers what it sent so a re-lease (lease expired without an ack) counts as a resend.
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

  constructor(private readonly opts: BacklogOptions) {}

  /**
   * The track whose next message should go out now, leasing up to `leaseMax` items when
   * nothing is ready. Undefined when the queue has nothing leasable.
   */
  nextTrack(leaseMax: number): Track | undefined {
    for (;;) {
      while (this.head < this.ready.length) {
        const track = this.ready[this.head] as Track;
        if (track.state === 'sending' && track.next < track.messages.length) return track;
        this.head++;
      }
      this.ready = [];
      this.head = 0;
      const items = this.opts.queue.lease(Math.max(1, leaseMax), this.opts.leaseMs, { maxBytes: this.opts.leaseMaxBytes });
      if (items.length === 0) return undefined;
      for (const item of items) this.admit(item);
    }
  }

  /** Tracks that were leased but are not completely sent; marks them dropped. */
  takeUnsent(): string[] {
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

  private admit(item: QueueItem): void {
    const previous = this.tracks.get(item.id);
    // Leased again after we published it: the lease expired before the fleet acked, or it
    // was given back when a publish was cut off. (Not `item.attempts`: that also counts
    // releases of items leased but never published.)
    if (previous) previous.state = 'dropped';
    if (this.cutOff.delete(item.id) || previous) this.resent++;
    const messages = this.encode(item);
    if (!messages) return;
    const track: Track = { id: item.id, priority: item.priority, messages, next: 0, pubacked: 0, state: 'sending', sentAt: 0 };
    this.tracks.set(item.id, track);
    this.ready.push(track);
  }

  private encode(item: QueueItem): Buffer[] | undefined {
    // The queue id is what the fleet acks (as sample_id): they must agree or nothing is ever deleted.
    if (!looksLikeSample(item)) {
      this.markUnsendable(item, new Error('queue item is not a sample (meta.sample_id must equal the queue id)'));
      return undefined;
    }
    try {
      return encodeSampleJson(item.metaJson, () => item.meta as unknown as SampleMeta, item.blob ?? new Uint8Array(0), {
        topic: this.opts.topic,
        maxMessageBytes: this.opts.maxMessageBytes,
      });
    } catch (err) {
      this.markUnsendable(item, err);
      return undefined;
    }
  }

  /**
   * Keep the lease and do not release: the item comes back after the lease expires, so a
   * sample we cannot send is retried slowly rather than spinning, and is never deleted
   * without the fleet having it.
   */
  private markUnsendable(item: QueueItem, err: unknown): void {
    this.unsendable++;
    if (this.reportedUnsendable.has(item.id)) return;
    if (this.reportedUnsendable.size >= 1000) this.reportedUnsendable.clear();
    this.reportedUnsendable.add(item.id);
    this.opts.log.error({ err, id: item.id, kind: item.kind, bytes: item.bytes }, 'queued item cannot be sent; left in the queue');
  }
}

/**
 * True when the item's meta names it as `sample_id` and has an `input` object.
 *
 * Accepted on the stored JSON text when it starts with `{"sample_id":<the id>,` (the agent
 * builds meta with sample_id first, and JSON.stringify escapes the id the same way every
 * time) and contains `"input":{`, which spares a JSON.parse per sample; anything else is
 * decided on the decoded meta. In JSON text, `"input":{` with unescaped quotes can only be a
 * key (quotes inside strings are escaped); a nested `input` object would pass the text test,
 * which only means the fleet refuses that sample instead of this check.
 */
function looksLikeSample(item: QueueItem): boolean {
  const json = item.metaJson;
  if (json.startsWith(`{"sample_id":${JSON.stringify(item.id)},`) && json.includes('"input":{')) return true;
  const meta = item.meta as unknown as Partial<SampleMeta>;
  return typeof meta.sample_id === 'string' && meta.sample_id === item.id && typeof meta.input === 'object';
}
