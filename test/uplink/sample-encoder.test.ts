import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeSampleJson } from '../../agent/uplink/sample-encoder.js';
import type { SampleMeta } from '../../shared/schemas/messages.js';
import { encodeSample } from '../../shared/wire/chunking.js';
import { topics } from '../../shared/topics.js';
import { bytes, sampleMeta } from './fixtures/samples.js';

const topic = topics.samples('dev-1');

/** What the forwarder does: the stored JSON text, and its decoding only on demand. */
function viaJson(meta: SampleMeta, blob: Uint8Array, maxMessageBytes?: number): Buffer[] {
  const json = JSON.stringify(meta);
  return encodeSampleJson(json, () => JSON.parse(json) as SampleMeta, blob, maxMessageBytes === undefined ? { topic } : { topic, maxMessageBytes });
}

describe('encodeSampleJson', () => {
  it('produces exactly the bytes of encodeSample, one message or chunked, for any meta text and size', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'binary', maxLength: 80 }),
        fc.integer({ min: 0, max: 6000 }),
        fc.constantFrom(undefined, 1500, 2048, 4096, 9000),
        (note, blobBytes, max) => {
          const blob = bytes(blobBytes, blobBytes + 1);
          const meta = { ...sampleMeta(`s-${blobBytes}`, blob), origin: note } as SampleMeta;
          let expected: Buffer[] | Error;
          try {
            expected = encodeSample(meta, blob, max === undefined ? { topic } : { topic, maxMessageBytes: max });
          } catch (err) {
            expected = err as Error;
          }
          if (expected instanceof Error) {
            expect(() => viaJson(meta, blob, max)).toThrow(expected.message);
            return;
          }
          const got = viaJson(meta, blob, max);
          expect(got.length).toBe(expected.length);
          got.forEach((payload, i) => expect(payload.equals(expected[i] as Buffer)).toBe(true));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('decodes the meta only for the chunked case', () => {
    const small = bytes(1000, 1);
    let decoded = 0;
    const json = JSON.stringify(sampleMeta('s-1', small));
    encodeSampleJson(json, () => (decoded++, JSON.parse(json) as SampleMeta), small, { topic });
    expect(decoded).toBe(0);
    const big = bytes(300 * 1024, 2);
    const bigJson = JSON.stringify(sampleMeta('s-2', big));
    const out = encodeSampleJson(bigJson, () => (decoded++, JSON.parse(bigJson) as SampleMeta), big, { topic });
    expect(decoded).toBe(1);
    expect(out.length).toBeGreaterThan(1);
  });

  it('accepts a plain Uint8Array view as the blob', () => {
    const backing = bytes(3000, 5);
    const view = new Uint8Array(backing.buffer, backing.byteOffset + 7, 2000);
    const meta = sampleMeta('s-view', view);
    const expected = encodeSample(meta, view, { topic })[0] as Buffer;
    expect(viaJson(meta, view)[0]?.equals(expected)).toBe(true);
  });
});
