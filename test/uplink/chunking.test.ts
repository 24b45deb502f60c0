import { describe, expect, it } from 'vitest';
import { AWS_IOT_MAX_MESSAGE_BYTES, encodeSample, MQTT_PUBLISH_OVERHEAD } from '../../shared/wire/chunking.js';
import { SampleAssembler } from '../../shared/wire/assembler.js';
import { sampleMessage } from '../../shared/schemas/messages.js';
import type { SampleMessage } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';
import { bytes, sampleMeta } from './fixtures/samples.js';

const topic = topics.samples('dev-1');
const parse = (payload: Uint8Array): SampleMessage => parseJsonWith(sampleMessage, payload, 'INPUT_INVALID', 'sample message');
/** What the broker counts: topic + payload + the MQTT header. */
const wireSize = (payload: Uint8Array, maxTopic = topic) => Buffer.byteLength(maxTopic) + payload.byteLength + MQTT_PUBLISH_OVERHEAD;

function assemble(messages: Uint8Array[]) {
  const assembler = new SampleAssembler({ clock: { now: () => 0 } });
  return messages.map((m) => assembler.accept(parse(m)));
}

describe('encodeSample', () => {
  it('sends a small sample as one valid message without chunk info', () => {
    const blob = bytes(1000, 1);
    const out = encodeSample(sampleMeta('s-1', blob), blob, { topic });
    expect(out).toHaveLength(1);
    const msg = parse(out[0] as Buffer);
    expect(msg.chunk).toBeUndefined();
    expect(Buffer.from(msg.blob_b64, 'base64').equals(blob)).toBe(true);
  });

  it('splits a 1 MB blob into chunks that each stay within 128 KiB and reassemble', () => {
    const blob = bytes(1024 * 1024, 2);
    const out = encodeSample(sampleMeta('s-big', blob), blob, { topic });
    // 1 MiB of base64 is 1.33 MiB: at least 11 chunks of < 128 KiB.
    expect(out.length).toBeGreaterThanOrEqual(11);
    for (const payload of out) expect(wireSize(payload)).toBeLessThanOrEqual(AWS_IOT_MAX_MESSAGE_BYTES);
    const msgs = out.map(parse);
    expect(msgs.map((m) => m.chunk)).toEqual(msgs.map((_, index) => ({ index, count: out.length })));
    const results = assemble(out);
    const last = results.at(-1);
    expect(results.slice(0, -1).every((r) => r.status === 'partial')).toBe(true);
    expect(last?.status).toBe('complete');
    if (last?.status === 'complete') expect(last.blob.equals(blob)).toBe(true);
  });

  it('fills chunks close to the limit (not wasteful)', () => {
    const blob = bytes(1024 * 1024, 3);
    const out = encodeSample(sampleMeta('s-fill', blob), blob, { topic });
    expect(wireSize(out[0] as Buffer)).toBeGreaterThan(AWS_IOT_MAX_MESSAGE_BYTES - 64);
  });

  it('puts the largest single-message blob in one message at the limit, one byte more in two', () => {
    const max = 4096;
    const fits = (n: number) => {
      const blob = bytes(n, 4);
      return encodeSample(sampleMeta('s-edge', blob), blob, { topic, maxMessageBytes: max });
    };
    let lo = 0;
    let hi = max;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (fits(mid).length === 1) lo = mid;
      else hi = mid - 1;
    }
    const single = fits(lo);
    expect(single).toHaveLength(1);
    // The largest single message lands within one base64 quantum (4 bytes) of the limit.
    expect(wireSize(single[0] as Buffer)).toBeLessThanOrEqual(max);
    expect(wireSize(single[0] as Buffer)).toBeGreaterThan(max - 4);
    const split = fits(lo + 1);
    expect(split).toHaveLength(2);
    for (const payload of split) expect(wireSize(payload)).toBeLessThanOrEqual(max);
    expect(assemble(split).at(-1)?.status).toBe('complete');
  });

  it('cuts a blob of exactly k full chunks into k, one byte more into k + 1', () => {
    const max = 8192;
    // Same number of digits in the blob length as the blobs below: the chunk header is sized by it.
    const probe = bytes(50_000, 5);
    const perChunk = Buffer.from(parse(encodeSample(sampleMeta('s-k', probe), probe, { topic, maxMessageBytes: max })[0] as Buffer).blob_b64, 'base64').length;
    for (const [n, expected] of [
      [3 * perChunk, 3],
      [3 * perChunk + 1, 4],
    ] as const) {
      const blob = bytes(n, 6);
      const out = encodeSample(sampleMeta('s-k', blob), blob, { topic, maxMessageBytes: max });
      expect(out).toHaveLength(expected);
      for (const payload of out) expect(wireSize(payload)).toBeLessThanOrEqual(max);
      const done = assemble(out).at(-1);
      expect(done?.status).toBe('complete');
    }
  });

  it('counts multi-byte UTF-8 in the meta against the limit', () => {
    const max = 4096;
    const blob = bytes(20_000, 7);
    const meta = { ...sampleMeta('s-utf8', blob), origin: 'é'.repeat(256) };
    const out = encodeSample(meta, blob, { topic, maxMessageBytes: max });
    for (const payload of out) expect(wireSize(payload)).toBeLessThanOrEqual(max);
  });

  it('refuses a sample whose meta alone does not fit, with PAYLOAD_TOO_LARGE', () => {
    const blob = bytes(10, 8);
    expect(() => encodeSample(sampleMeta('s-meta', blob), blob, { topic, maxMessageBytes: 300 })).toThrow(
      expect.objectContaining({ code: 'PAYLOAD_TOO_LARGE' }),
    );
  });

  it('sends an empty blob as one message', () => {
    const blob = new Uint8Array(0);
    const out = encodeSample(sampleMeta('s-empty', blob), blob, { topic });
    expect(out).toHaveLength(1);
    expect(assemble(out)[0]?.status).toBe('complete');
  });
});
