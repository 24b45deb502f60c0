import { sharedError } from '../errors.js';
import type { SampleMeta } from '../schemas/messages.js';

/** AWS IoT Core's hard limit on one message (topic and payload), in bytes. */
export const AWS_IOT_MAX_MESSAGE_BYTES = 128 * 1024;

/**
 * Bytes of an MQTT 3.1.1 QoS 1 PUBLISH besides topic and payload: fixed header (1 + up to
 * 4 bytes of remaining length), topic length (2), packet id (2) = 9; rounded up so a
 * broker that counts a little differently still accepts the message.
 */
export const MQTT_PUBLISH_OVERHEAD = 16;

/** Options of {@link encodeSample}. */
export interface ChunkOptions {
  /** The topic the messages go to: it counts against the limit. */
  topic: string;
  /** Largest message, topic + payload + MQTT header. Default {@link AWS_IOT_MAX_MESSAGE_BYTES}. */
  maxMessageBytes?: number;
}

function digits(n: number): number {
  return String(Math.max(0, Math.floor(n))).length;
}

/**
 * Encode a sample as one or more `sampleMessage` JSON payloads (shared/schemas/messages.ts),
 * each small enough that topic + payload + MQTT header stays within `maxMessageBytes`.
 *
 * The blob travels base64-encoded; when it does not fit in one message it is split and
 * every chunk repeats the meta and carries `chunk: { index, count }`, so the receiver can
 * start a set from any chunk and check the whole blob against `meta.input.sha256`.
 *
 * Hot path of the forwarder: `meta` is trusted (validated at capture, before it was
 * queued) and the JSON is assembled by concatenation, since base64 needs no escaping and
 * JSON.stringify over a 128 KB string would only scan it again. Throws
 * `AGENT_UPLINK_MESSAGE_TOO_LARGE` when the meta alone leaves no room for any blob bytes.
 */
export function encodeSample(meta: SampleMeta, blob: Uint8Array, opts: ChunkOptions): Buffer[] {
  const max = opts.maxMessageBytes ?? AWS_IOT_MAX_MESSAGE_BYTES;
  const budget = max - Buffer.byteLength(opts.topic) - MQTT_PUBLISH_OVERHEAD;
  const prefix = `{"type":"sample","v":1,"meta":${JSON.stringify(meta)},"blob_b64":"`;
  const prefixBytes = Buffer.byteLength(prefix);
  const data = Buffer.isBuffer(blob) ? blob : Buffer.from(blob.buffer, blob.byteOffset, blob.byteLength);
  const wholeB64Bytes = Math.ceil(data.length / 3) * 4;

  if (prefixBytes + wholeB64Bytes + 2 <= budget) {
    return [Buffer.from(`${prefix}${data.toString('base64')}"}`)];
  }

  // Chunk suffix sized for the largest index and count possible (count <= blob length), so
  // the estimate can only be too generous, never too small.
  const n = digits(data.length);
  const suffixBytes = `","chunk":{"index":,"count":}}`.length + 2 * n;
  const b64Room = budget - prefixBytes - suffixBytes;
  const rawPerChunk = Math.floor(b64Room / 4) * 3;
  if (rawPerChunk < 3) {
    throw sharedError('PAYLOAD_TOO_LARGE', `sample ${meta.sample_id}: meta alone (${prefixBytes} bytes) leaves no room within ${max} bytes`, {
      details: { uplink: 'message_too_large', sample_id: meta.sample_id, meta_bytes: prefixBytes, max_message_bytes: max },
    });
  }
  const count = Math.ceil(data.length / rawPerChunk);
  const out: Buffer[] = new Array<Buffer>(count);
  for (let index = 0; index < count; index++) {
    const part = data.subarray(index * rawPerChunk, Math.min(data.length, (index + 1) * rawPerChunk));
    out[index] = Buffer.from(`${prefix}${part.toString('base64')}","chunk":{"index":${index},"count":${count}}}`);
  }
  return out;
}
