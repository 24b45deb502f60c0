import { describe, expect, it } from 'vitest';
import { uplinkFailureOf } from '../../agent/uplink/errors.js';
import { SampleAssembler } from '../../shared/wire/assembler.js';
import { encodeSample } from '../../shared/wire/chunking.js';
import { sampleMessage } from '../../shared/schemas/messages.js';
import type { SampleMessage } from '../../shared/schemas/messages.js';
import { parseJsonWith } from '../../shared/validate.js';
import { bytes, sampleMeta } from './fixtures/samples.js';

const topic = 'edgeloop/v1/devices/dev-1/samples';

function chunksOf(id: string, n: number, max = 2048, deviceId = 'dev-1'): SampleMessage[] {
  const blob = bytes(n, id.length + n);
  return encodeSample(sampleMeta(id, blob, { deviceId }), blob, { topic, maxMessageBytes: max }).map((p) => parseJsonWith(sampleMessage, p, 'INPUT_INVALID', 'sample'));
}

function fakeClock() {
  let t = 0;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('SampleAssembler', () => {
  it('reassembles chunks arriving out of order', () => {
    const msgs = chunksOf('s-1', 10_000);
    expect(msgs.length).toBeGreaterThan(4);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    const order = [...msgs.keys()].reverse();
    const results = order.map((i) => assembler.accept(msgs[i] as SampleMessage));
    const done = results.at(-1);
    expect(done?.status).toBe('complete');
    if (done?.status === 'complete') expect(done.chunks).toBe(msgs.length);
    expect(assembler.stats()).toMatchObject({ pending: 0, completed: 1, duplicates: 0 });
  });

  it('counts a repeated chunk as a duplicate and still completes', () => {
    const msgs = chunksOf('s-2', 5000);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    assembler.accept(msgs[0] as SampleMessage);
    expect(assembler.accept(msgs[0] as SampleMessage)).toMatchObject({ status: 'duplicate', completed: false });
    const results = msgs.slice(1).map((m) => assembler.accept(m));
    expect(results.at(-1)?.status).toBe('complete');
    expect(assembler.stats().duplicates).toBe(1);
  });

  it('recognises a resend of a completed sample and flags its final chunk for a re-ack', () => {
    const msgs = chunksOf('s-3', 5000);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    for (const m of msgs) assembler.accept(m);
    const again = msgs.map((m) => assembler.accept(m));
    expect(again.every((r) => r.status === 'duplicate' && r.completed)).toBe(true);
    expect(again.map((r) => r.status === 'duplicate' && r.final)).toEqual(msgs.map((_, i) => i === msgs.length - 1));
  });

  it('rejects a chunk that is not valid base64, with a code', () => {
    const msgs = chunksOf('s-4', 5000);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    const bad = { ...(msgs[1] as SampleMessage), blob_b64: `${(msgs[1] as SampleMessage).blob_b64.slice(0, -8)}!!!!====` };
    const r = assembler.accept(bad);
    expect(r.status).toBe('rejected');
    if (r.status === 'rejected') {
      // A shared code (no AGENT_/FLEET_ prefix): the assembler runs on the fleet side too.
      expect(r.error.code).toBe('SAMPLE_CHUNK_INVALID');
      expect(uplinkFailureOf(r.error)).toBe('chunk_invalid');
      expect(r.error.details).toMatchObject({ uplink: 'chunk_invalid', sample_id: 's-4' });
    }
  });

  it('rejects a sample whose bytes were altered in transit (sha256 mismatch) and drops the set', () => {
    const msgs = chunksOf('s-5', 5000);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    const victim = msgs[2] as SampleMessage;
    const raw = Buffer.from(victim.blob_b64, 'base64');
    raw[0] = (raw[0] ?? 0) ^ 0xff;
    const corrupt = { ...victim, blob_b64: raw.toString('base64') };
    const results = msgs.map((m, i) => assembler.accept(i === 2 ? corrupt : m));
    const last = results.at(-1);
    expect(last?.status).toBe('rejected');
    if (last?.status === 'rejected') expect(last.error.details).toMatchObject({ uplink: 'sample_hash_mismatch' });
    expect(assembler.stats()).toMatchObject({ pending: 0, completed: 0, rejected: 1 });
    // The device resends the whole sample; a clean copy then completes.
    expect(msgs.map((m) => assembler.accept(m)).at(-1)?.status).toBe('complete');
  });

  it('rejects an index outside the count and a count that changes within a set', () => {
    const msgs = chunksOf('s-6', 5000);
    const assembler = new SampleAssembler({ clock: fakeClock() });
    const first = msgs[0] as SampleMessage;
    expect(assembler.accept({ ...first, chunk: { index: 9, count: 3 } }).status).toBe('rejected');
    assembler.accept(first);
    expect(assembler.accept({ ...(msgs[1] as SampleMessage), chunk: { index: 1, count: 99 } }).status).toBe('rejected');
  });

  it('drops an incomplete set after the timeout', () => {
    const clock = fakeClock();
    const msgs = chunksOf('s-7', 5000);
    const assembler = new SampleAssembler({ clock, timeoutMs: 1000 });
    assembler.accept(msgs[0] as SampleMessage);
    clock.advance(999);
    expect(assembler.sweep()).toEqual([]);
    clock.advance(1);
    expect(assembler.sweep()).toEqual(['s-7']);
    expect(assembler.stats()).toMatchObject({ pending: 0, dropped_incomplete: 1 });
  });

  it('bounds the number of incomplete sets, dropping the stalest', () => {
    const clock = fakeClock();
    const assembler = new SampleAssembler({ clock, maxPending: 2 });
    for (const id of ['a-1', 'a-2', 'a-3']) {
      assembler.accept(chunksOf(id, 5000)[0] as SampleMessage);
      clock.advance(10);
    }
    expect(assembler.stats()).toMatchObject({ pending: 2, dropped_incomplete: 1 });
  });

  it('keeps each device to its own sets: a flood of chunk starts from one device never pushes out another’s sample', () => {
    const clock = fakeClock();
    const assembler = new SampleAssembler({ clock, maxPending: 100, maxPendingPerDevice: 8 });
    const victim = chunksOf('b-1', 5000, 2048, 'dev-b');
    assembler.accept(victim[0] as SampleMessage);
    clock.advance(1);
    // 1,500 first chunks from device A, each starting a set that never finishes.
    for (let i = 0; i < 1500; i++) assembler.accept(chunksOf(`a-${i}`, 3000, 2048, 'dev-a')[0] as SampleMessage);
    const stats = assembler.stats();
    expect(stats.pending).toBe(9); // A's newest 8 and B's one
    expect(stats.dropped_by_reason.device_sets).toBe(1492);
    expect(victim.slice(1).map((m) => assembler.accept(m)).at(-1)?.status).toBe('complete');
  });

  it('keys sets by device: another device cannot add chunks to a sample id it does not own', () => {
    const assembler = new SampleAssembler({ clock: fakeClock() });
    const mine = chunksOf('same-id', 5000, 2048, 'dev-b');
    const theirs = chunksOf('same-id', 5000, 2048, 'dev-a');
    assembler.accept(mine[0] as SampleMessage);
    for (const m of theirs.slice(1)) assembler.accept(m);
    expect(mine.slice(1).map((m) => assembler.accept(m)).at(-1)?.status).toBe('complete');
  });

  it('bounds the bytes one device holds in unfinished sets and in all, the heaviest device paying', () => {
    const clock = fakeClock();
    const assembler = new SampleAssembler({ clock, maxPendingBytesPerDevice: 25_000, maxPendingBytes: 40_000 });
    const b = chunksOf('b-1', 20_000, 8192, 'dev-b');
    assembler.accept(b[0] as SampleMessage);
    clock.advance(1);
    for (let i = 0; i < 50; i++) {
      for (const m of chunksOf(`a-${i}`, 20_000, 8192, 'dev-a').slice(0, 2)) assembler.accept(m);
      clock.advance(1);
    }
    const stats = assembler.stats();
    expect(stats.pending_bytes).toBeLessThanOrEqual(40_000);
    expect(stats.dropped_by_reason.device_bytes + stats.dropped_by_reason.total_bytes).toBeGreaterThan(40);
    expect(b.slice(1).map((m) => assembler.accept(m)).at(-1)?.status).toBe('complete');
  });

  it('refuses a sample declared over the size limit with SAMPLE_TOO_LARGE, and chunks holding more than declared', () => {
    const assembler = new SampleAssembler({ clock: fakeClock(), maxSampleBytes: 4000 });
    const big = chunksOf('big', 5000)[0] as SampleMessage;
    const r = assembler.accept(big);
    expect(r).toMatchObject({ status: 'rejected' });
    if (r.status === 'rejected') expect(r.error.code).toBe('SAMPLE_TOO_LARGE');
    // The meta says 3000 bytes but every chunk index carries a fresh 1.5 KB: refused once past 3000.
    const small = chunksOf('small', 3000);
    const a = new SampleAssembler({ clock: fakeClock() });
    const first = small[0] as SampleMessage;
    const results = [0, 1, 2, 3].map((index) => a.accept({ ...first, chunk: { index, count: 10 } }));
    expect(results.map((x) => x.status)).toContain('rejected');
    // Never more held than the declared size (plus per-chunk bookkeeping).
    expect(a.stats().pending_bytes).toBeLessThanOrEqual(3000 + 4 * 128);
    // A count no declared size can need.
    expect(a.accept({ ...first, chunk: { index: 0, count: 100_000 } }).status).toBe('rejected');
  });
});
