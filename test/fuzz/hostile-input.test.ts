/**
 * Fuzzing the readers that take bytes from devices and network peers: arbitrary and
 * mutated-valid inputs never crash, never throw anything but a coded error (or a documented
 * RangeError for the ONNX reader, which the package rules turn into `model_not_onnx`), and
 * never hold more memory than their caps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyToInput } from '../../agent/inputs/http.js';
import { INLINE_BYTES, JsonBodyParser } from '../../agent/inputs/json-body.js';
import { extractTar } from '../../fleet/adapters/aws/tar.js';
import { FleetError } from '../../fleet/errors.js';
import { SampleAssembler } from '../../shared/wire/assembler.js';
import { isEdgeloopError } from '../../shared/errors.js';
import { readOnnxGraphIo } from '../../shared/onnx/reader.js';
import { inspectPackage } from '../../shared/package/read.js';
import { ackTopicMessage, deviceStatus, sampleMessage, telemetry } from '../../shared/schemas/index.js';
import { parseJsonWith } from '../../shared/validate.js';
import { encodeSample } from '../../shared/wire/chunking.js';
import { memoryReader, syntheticParts } from '../helpers/broken-packages.js';
import { bytes, sampleMeta } from '../uplink/fixtures/samples.js';

const RUNS = { numRuns: 300 };

/** Valid bytes with a few of them changed, cut or extended: closer to what breaks parsers than noise. */
function mutated(valid: Uint8Array): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 4096 }),
    fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), n: fc.integer({ min: 1, max: 8 }) }).map(({ at, value, n }) => {
      const out = Buffer.from(valid);
      for (let i = 0; i < n; i++) out[(at + i * 97) % out.length] = (value + i) & 0xff;
      return out;
    }),
    fc.nat({ max: valid.length }).map((cut) => Buffer.from(valid).subarray(0, cut)),
    fc.uint8Array({ maxLength: 256 }).map((tail) => Buffer.concat([Buffer.from(valid), tail])),
  );
}

/** Coded: an EdgeloopError with a code, the only kind of failure a peer may cause. */
function expectCoded(err: unknown): void {
  expect(isEdgeloopError(err), String(err)).toBe(true);
}

describe('fuzz: messages from devices', () => {
  const blob = bytes(3000, 7);
  const valid = encodeSample(sampleMeta('s-1', blob), blob, { topic: 'edgeloop/v1/devices/dev-1/samples', maxMessageBytes: 1024 });

  it('sample messages: parse and reassembly never crash, answers are coded, memory stays within the caps', () => {
    const assembler = new SampleAssembler({ clock: { now: () => 0 }, maxPendingBytes: 64 * 1024, maxPendingBytesPerDevice: 16 * 1024 });
    fc.assert(
      fc.property(fc.oneof(...valid.map((v) => mutated(v)), fc.json().map((j) => Buffer.from(j))), (payload) => {
        let msg;
        try {
          msg = parseJsonWith(sampleMessage, payload, 'INPUT_INVALID', 'sample');
        } catch (err) {
          expectCoded(err);
          return;
        }
        const r = assembler.accept(msg);
        if (r.status === 'rejected') expectCoded(r.error);
        expect(assembler.stats().pending_bytes).toBeLessThanOrEqual(64 * 1024);
      }),
      RUNS,
    );
  });

  it('telemetry, status and ack-topic messages: a coded refusal or a valid message, never a crash', () => {
    const schemas = [telemetry, deviceStatus, ackTopicMessage] as const;
    fc.assert(
      fc.property(fc.oneof(fc.json(), fc.string(), fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString('latin1'))), fc.nat({ max: 2 }), (text, which) => {
        try {
          parseJsonWith(schemas[which] as (typeof schemas)[number], text, 'INPUT_INVALID', 'message');
        } catch (err) {
          expectCoded(err);
        }
      }),
      RUNS,
    );
  });
});

describe('fuzz: request bodies and files from peers', () => {
  it('agent inference bodies: images, JSON and other types give a model input or a coded error, in place or off the event loop', async () => {
    const parser = new JsonBodyParser();
    // Padding past INLINE_BYTES sends the same body through the worker thread.
    const padded = (text: string): string => `${' '.repeat(INLINE_BYTES)}${text}`;
    try {
      await fc.assert(
        fc.asyncProperty(fc.constantFrom('application/json', 'image/png', 'text/plain', '', 'application/json; charset=utf-8'), fc.oneof(fc.json(), fc.string()), fc.boolean(), async (type, text, big) => {
          try {
            await bodyToInput(type, Buffer.from(big ? padded(text) : text), parser);
          } catch (err) {
            expectCoded(err);
          }
        }),
        RUNS,
      );
      expect(parser.offThread).toBeGreaterThan(0);
    } finally {
      await parser.close();
    }
  });

  it('the ONNX reader: a real model mutated gives its IO names or a RangeError, never anything else', () => {
    const model = syntheticParts().files.get('model.onnx') as Uint8Array;
    fc.assert(
      fc.property(mutated(model), (b) => {
        try {
          const io = readOnnxGraphIo(b);
          expect(Array.isArray(io.inputs) && Array.isArray(io.outputs)).toBe(true);
        } catch (err) {
          expect(err, String(err)).toBeInstanceOf(RangeError);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('the manifest reader: any manifest text gives a list of problems, never a throw', async () => {
    const good = JSON.stringify(syntheticParts().manifest);
    await fc.assert(
      fc.asyncProperty(fc.oneof(mutated(Buffer.from(good)).map((b) => Buffer.from(b).toString('utf8')), fc.json(), fc.string()), async (text) => {
        const parts = syntheticParts();
        parts.manifestText = text;
        const r = await inspectPackage(memoryReader(parts));
        expect(Array.isArray(r.problems)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  it('the tar reader (model uploads): any stream is unpacked within its caps or refused with a code', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeloop-fuzz-tar-'));
    const header = Buffer.alloc(512);
    header.write('manifest.json', 0);
    header.write('0000644\0', 100);
    header.write(`${(20).toString(8).padStart(11, '0')}\0`, 124);
    header.write('0', 156);
    header.write('ustar\0', 257);
    header.write('00', 263);
    let sum = 0;
    for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : (header[i] as number);
    header.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
    const validTar = Buffer.concat([header, Buffer.alloc(512, 0x41), Buffer.alloc(1024)]);
    const refusals = { label: 'fuzzed upload', invalid: (m: string) => new FleetError('INPUT_INVALID', m), tooLarge: (m: string) => new FleetError('INPUT_INVALID', m) };
    try {
      // The unmutated archive unpacks: the fuzzing starts from something the reader takes.
      async function* whole(): AsyncGenerator<Uint8Array> {
        yield validTar;
      }
      expect(await extractTar(whole(), mkdtempSync(join(dir, 'valid-')), { refusals })).toEqual(['manifest.json']);
      await fc.assert(
        fc.asyncProperty(mutated(validTar), fc.integer({ min: 1, max: 700 }), async (tar, chunk) => {
          const out = mkdtempSync(join(dir, 'x-'));
          async function* stream(): AsyncGenerator<Uint8Array> {
            for (let i = 0; i < tar.length; i += chunk) yield tar.subarray(i, i + chunk);
          }
          try {
            await extractTar(stream(), out, { maxBytes: 64 * 1024, maxFileBytes: 16 * 1024, maxEntries: 16, refusals });
          } catch (err) {
            expectCoded(err);
          }
        }),
        { numRuns: 200 },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
