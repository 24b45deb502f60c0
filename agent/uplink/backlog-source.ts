import type { QueueItem, SampleQueue } from '../queue/types.js';
import type { SampleMeta } from '../../shared/schemas/messages.js';
import { encodeSampleJson } from './sample-encoder.js';

/** What a lease asks for: how much, for how long, and how to encode it for the wire. */
export interface LeaseRequest {
  max: number;
  leaseMs: number;
  maxBytes: number;
  /** The samples topic (it counts against the message limit). */
  topic: string;
  maxMessageBytes: number;
}

/** A leased sample, encoded: its messages in publish order. */
export interface EncodedSample {
  id: string;
  priority: number;
  messages: Buffer[];
}

/** A leased item that cannot be sent as a sample (left leased: it comes back after the lease, never deleted unsent). */
export interface UnsendableItem {
  id: string;
  kind: string;
  bytes: number;
  error: Error;
}

export interface LeasedBatch {
  samples: EncodedSample[];
  unsendable: UnsendableItem[];
}

/**
 * Where the forwarder's backlog comes from: the durable queue's lease, encode, ack and
 * release, as one port. In this thread over any {@link SampleQueue} ({@link queueSource});
 * or in a worker thread that owns its own connection to the SQLite file ({@link DrainWorker}
 * in drain-worker.ts), so reading rows, base64 and the deletes of acked rows run beside the
 * event loop instead of on it. A source answers either at once or with a promise; the
 * backlog handles both.
 */
export interface BacklogSource {
  /** Items per lease this source works best with, when the forwarder is not told otherwise. */
  readonly preferredLeaseBatch?: number;
  /** How long to collect acks for one `ack` call, when the forwarder is not told otherwise. */
  readonly preferredAckBatchMs?: number;
  /** Lease and encode, in the queue's order (priority, then FIFO). */
  lease(req: LeaseRequest): LeasedBatch | Promise<LeasedBatch>;
  /** Delete delivered items; how many were deleted. Idempotent. */
  ack(ids: string[]): number | Promise<number>;
  /** Give leases back (not completely sent). Failures only delay: leases expire on their own. */
  release(ids: string[]): void | Promise<void>;
}

/**
 * Encode one leased queue item as sample messages, or say why it cannot be sent.
 * The queue id is what the fleet acks (as sample_id): they must agree or nothing is ever deleted.
 */
function encodeLeased(item: QueueItem, topic: string, maxMessageBytes: number): Buffer[] | Error {
  if (!looksLikeSample(item)) return new Error('queue item is not a sample (meta.sample_id must equal the queue id)');
  try {
    return encodeSampleJson(item.metaJson, () => item.meta as unknown as SampleMeta, item.blob ?? new Uint8Array(0), { topic, maxMessageBytes });
  } catch (err) {
    return err instanceof Error ? err : new Error(String(err));
  }
}

/** Lease a batch from `queue` and encode it (the work both sources do, here or in the worker). */
export function leaseEncoded(queue: SampleQueue, req: LeaseRequest): LeasedBatch {
  const items = queue.lease(Math.max(1, req.max), req.leaseMs, { maxBytes: req.maxBytes });
  const batch: LeasedBatch = { samples: [], unsendable: [] };
  for (const item of items) {
    const encoded = encodeLeased(item, req.topic, req.maxMessageBytes);
    if (encoded instanceof Error) batch.unsendable.push({ id: item.id, kind: item.kind, bytes: item.bytes, error: encoded });
    else batch.samples.push({ id: item.id, priority: item.priority, messages: encoded });
  }
  return batch;
}

/** The source over a queue in this thread: every call answers at once. */
export function queueSource(queue: SampleQueue): BacklogSource {
  return {
    lease: (req) => leaseEncoded(queue, req),
    ack: (ids) => queue.ack(ids),
    release: (ids) => queue.release(ids),
  };
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
