import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openSqliteArtifactStore } from '../../../fleet/adapters/sqlite/artifact-store.js';
import { sqliteDevicesRepo } from '../../../fleet/adapters/sqlite/devices-repo.js';
import { sqliteSamplesRepo } from '../../../fleet/adapters/sqlite/samples-repo.js';
import { TieredArtifactStore } from '../../../fleet/adapters/fs/tiered-store.js';
import type { ArtifactStore } from '../../../fleet/app/artifacts.js';
import { FleetError } from '../../../fleet/errors.js';
import { SampleIngest } from '../../../fleet/app/samples/ingest.js';
import type { SampleMessage } from '../../../shared/schemas/index.js';
import { ingestAll, makeSample, messageOf, messagesOf, openParts, T0 } from './helpers.js';
import type { Parts } from './helpers.js';
import { waitUntil } from '../../helpers/wait.js';

let parts: Parts | undefined;
afterEach(() => {
  parts?.cleanup();
  parts = undefined;
});

async function open(o?: Parameters<typeof openParts>[0]): Promise<Parts> {
  parts = await openParts(o);
  return parts;
}

describe('SampleIngest', () => {
  it('stores a sample: blob in the artifact store, row indexed with the device site, and acks it', async () => {
    const p = await open();
    await p.devices.register('cam-1', { tags: { site: 'pit-3' } });
    const s = makeSample({ id: 's-1', label: '3', score: 0.52, reasons: ['low_confidence', 'drift'] });
    p.clock.set(T0 + 1234);
    const r = await p.ingest.accept('cam-1', messagesOf(s)[0] as SampleMessage);
    expect(r).toEqual({ status: 'stored', sampleId: 's-1', ack: ['s-1'] });
    expect(p.ingest.get('s-1')).toMatchObject({
      sample_id: 's-1',
      device_id: 'cam-1',
      site: 'pit-3',
      reasons: ['low_confidence', 'drift'],
      model: { name: 'digits', version: '1.0.0' },
      prediction: { label: '3', score: 0.52 },
      confidence: 0.52,
      captured_at: new Date(T0).toISOString(),
      received_at: new Date(T0 + 1234).toISOString(),
      blob: { sha256: s.meta.input.sha256, bytes: s.blob.length, content_type: 'image/png' },
      input_stats: { brightness: 0.4, contrast: 0.2 },
      label: null,
      meta: s.meta,
    });
    expect(await p.artifacts.has(s.meta.input.sha256)).toBe(true);
    expect((await p.ingest.blob('s-1')).data.equals(s.blob)).toBe(true);
    expect(p.ingest.stats()).toMatchObject({ received: 1, stored: 1, duplicates: 0, rejected: 0 });
    expect(() => p.ingest.get('nope')).toThrow(expect.objectContaining({ code: 'FLEET_SAMPLE_NOT_FOUND', status: 404 }));
  });

  it('treats a resend as a counted no-op and acks it again, also after a restart', async () => {
    const p = await open();
    const msg = messageOf({ id: 's-1' });
    await p.ingest.accept('cam-1', msg);
    expect(await p.ingest.accept('cam-1', msg)).toEqual({ status: 'duplicate', sampleId: 's-1', ack: ['s-1'] });
    // A new process: the assembler has forgotten, the database has not.
    const restarted = new SampleIngest({ samples: sqliteSamplesRepo(p.db), devices: sqliteDevicesRepo(p.db), artifacts: p.artifacts, clock: p.clock });
    expect(await restarted.accept('cam-1', msg)).toEqual({ status: 'duplicate', sampleId: 's-1', ack: ['s-1'] });
    expect(p.ingest.count()).toBe(1);
    expect(p.ingest.stats()).toMatchObject({ received: 2, stored: 1, duplicates: 1 });
    expect(restarted.stats()).toMatchObject({ received: 1, stored: 0, duplicates: 1 });
  });

  it('acks a resend that arrives while the original is still being written only after it committed', async () => {
    const p = await open({ ingest: { maxDelayMs: 20 } });
    const msg = messageOf({ id: 's-1' });
    const first = p.ingest.accept('cam-1', msg);
    const second = p.ingest.accept('cam-1', msg).then((r) => ({ r, storedWhenAcked: p.ingest.count() }));
    expect(await first).toMatchObject({ status: 'stored', ack: ['s-1'] });
    expect(await second).toEqual({ r: { status: 'duplicate', sampleId: 's-1', ack: ['s-1'] }, storedWhenAcked: 1 });
  });

  it('reassembles a chunked sample sent in any order, acking once it is whole', async () => {
    const p = await open();
    const s = makeSample({ id: 'big', blobBytes: 20_000 });
    const chunks = messagesOf(s, 4000);
    expect(chunks.length).toBeGreaterThan(4);
    const order = chunks.map((_, i) => i).reverse();
    const results = [];
    for (const i of order) results.push(await p.ingest.accept('cam-1', chunks[i] as SampleMessage));
    expect(results.slice(0, -1).every((r) => r.status === 'partial' && r.ack.length === 0)).toBe(true);
    expect(results.at(-1)).toEqual({ status: 'stored', sampleId: 'big', ack: ['big'] });
    expect((await p.ingest.blob('big')).data.equals(s.blob)).toBe(true);
    // The device resends every chunk (its ack was lost): re-acked on the final chunk only.
    const resent = [];
    for (const c of chunks) resent.push(await p.ingest.accept('cam-1', c));
    expect(resent.map((r) => r.ack.length)).toEqual(chunks.map((_, i) => (i === chunks.length - 1 ? 1 : 0)));
    expect(resent.every((r) => r.status === 'duplicate')).toBe(true);
  });

  it('refuses a sample that claims to come from another device', async () => {
    const p = await open();
    const r = await p.ingest.accept('cam-2', messageOf({ id: 's-1', device: 'cam-1' }));
    expect(r).toMatchObject({ status: 'rejected', sampleId: 's-1', ack: [], error: { code: 'FLEET_SAMPLE_DEVICE_MISMATCH', status: 403 } });
    expect(p.ingest.count()).toBe(0);
    expect(p.ingest.stats().rejected).toBe(1);
  });

  it('rejects a corrupt chunk and a blob that does not match its hash, with codes, storing nothing', async () => {
    const p = await open();
    const chunks = messagesOf(makeSample({ id: 'big', blobBytes: 9000 }), 4000);
    const corrupt = { ...(chunks[0] as SampleMessage), blob_b64: `${(chunks[0] as SampleMessage).blob_b64.slice(0, -8)}!!!!!!!!` };
    expect(await p.ingest.accept('cam-1', corrupt)).toMatchObject({ status: 'rejected', ack: [], error: { code: 'SAMPLE_CHUNK_INVALID' } });

    const s = makeSample({ id: 'flipped' });
    const msg = messagesOf(s)[0] as SampleMessage;
    const flipped = Buffer.from(s.blob);
    flipped[0] = (flipped[0] as number) ^ 0xff;
    expect(await p.ingest.accept('cam-1', { ...msg, blob_b64: flipped.toString('base64') })).toMatchObject({ status: 'rejected', error: { code: 'SAMPLE_HASH_MISMATCH' } });
    expect(await p.ingest.acceptPayload('cam-1', '{"type":"sample"')).toMatchObject({ status: 'rejected', sampleId: null, error: { code: 'INPUT_INVALID' } });
    expect(p.ingest.count()).toBe(0);
    expect(p.ingest.stats()).toMatchObject({ rejected: 3, stored: 0 });
    // The intact sample, resent, goes in.
    expect(await p.ingest.acceptPayload('cam-1', JSON.stringify(msg))).toMatchObject({ status: 'stored' });
  });

  it('can refuse samples from unregistered devices', async () => {
    const p = await open({ ingest: { requireRegisteredDevice: true } });
    expect(await p.ingest.accept('ghost', messageOf({ id: 's-1', device: 'ghost' }))).toMatchObject({ status: 'rejected', error: { code: 'FLEET_DEVICE_UNKNOWN' } });
    await p.devices.register('cam-1');
    expect(await p.ingest.accept('cam-1', messageOf({ id: 's-2' }))).toMatchObject({ status: 'stored' });
  });

  it('commits concurrent samples in batches and stores the same blob once', async () => {
    const p = await open({ ingest: { maxBatch: 64 } });
    // Ten samples with an empty blob: different ids, one shared artifact.
    const specs = Array.from({ length: 300 }, (_, i) => ({ id: `s-${i}`, ...(i < 10 ? { blobBytes: 0 } : {}) }));
    const results = await Promise.all(specs.map((s) => p.ingest.accept('cam-1', messageOf(s))));
    expect(results.every((r) => r.status === 'stored')).toBe(true);
    expect(p.ingest.count()).toBe(300);
    expect(p.ingest.stats()).toMatchObject({ stored: 300, received: 300 });
    // 300 samples arriving together: ceil(300 / 64) commits, not 300.
    expect(p.ingest.stats().batches).toBe(5);
    const empty = p.ingest.get('s-0').blob.sha256;
    expect(p.ingest.get('s-9').blob.sha256).toBe(empty);
    expect(await p.artifacts.size(empty)).toBe(0);
  });

  it('acks nothing when storage fails, and stores the resend once storage is back', async () => {
    let failing = true;
    const p = await open({
      artifacts: (real): ArtifactStore => ({
        ...real,
        has: (sha) => real.has(sha),
        get: (sha) => real.get(sha),
        size: (sha) => real.size(sha),
        delete: (sha) => real.delete(sha),
        createReadStream: (sha, r) => real.createReadStream(sha, r),
        put: (data, o) => (failing ? Promise.reject(new FleetError('STORAGE_FAILED', 'disk full')) : real.put(data, o)),
      }),
    });
    const msg = messageOf({ id: 's-1' });
    await expect(p.ingest.accept('cam-1', msg)).rejects.toMatchObject({ code: 'FLEET_STORAGE_FAILED' });
    expect(p.ingest.count()).toBe(0);
    expect(p.ingest.stats().storage_failures).toBe(1);
    failing = false;
    // Not mistaken for a duplicate of something stored: the resend is stored and acked.
    expect(await p.ingest.accept('cam-1', msg)).toEqual({ status: 'stored', sampleId: 's-1', ack: ['s-1'] });
  });

  it('works the same over the tiered store (small blobs packed in SQLite)', async () => {
    let small: ReturnType<typeof openSqliteArtifactStore> | undefined;
    const p = await open({
      artifacts: (files) => {
        small = openSqliteArtifactStore({ path: join(files.dir, '..', 'small.db') });
        return new TieredArtifactStore({ small, large: files, maxSmallBytes: 4096 });
      },
    });
    try {
      const little = makeSample({ id: 'little', blobBytes: 1000 });
      const big = makeSample({ id: 'big', blobBytes: 30_000 });
      for (const m of [...messagesOf(little), ...messagesOf(big, 8000)]) await p.ingest.accept('cam-1', m);
      expect(p.ingest.count()).toBe(2);
      expect((await p.ingest.blob('little')).data.equals(little.blob)).toBe(true);
      expect((await p.ingest.blob('big')).data.equals(big.blob)).toBe(true);
      expect(await small?.has(little.meta.input.sha256)).toBe(true);
      expect(await p.artifacts.has(big.meta.input.sha256)).toBe(true);
      expect(await p.ingest.accept('cam-1', messagesOf(little)[0] as SampleMessage)).toMatchObject({ status: 'duplicate', ack: ['little'] });
    } finally {
      small?.close();
    }
  });

  it('flush() writes waiting samples at once', async () => {
    const p = await open({ ingest: { maxDelayMs: 60_000 } });
    const pending = ingestAll(p, [{ id: 'a' }, { id: 'b' }]);
    await new Promise((r) => setTimeout(r, 10));
    expect(p.ingest.count()).toBe(0);
    await p.ingest.flush();
    await pending;
    expect(p.ingest.count()).toBe(2);
  });

  it('holds each device to its message rate and daily bytes, refused before parsing with one nack per window; others are not slowed', async () => {
    const p = await open({ ingest: { deviceLimits: { messagesPerSecond: 10, burst: 20, dailyBytes: 1_000_000 } } });
    const payload = (id: string, device = 'cam-1'): string => JSON.stringify(messageOf({ id, device }));
    const results = [];
    for (let i = 0; i < 25; i++) results.push(await p.ingest.acceptPayload('cam-1', payload(`a-${i}`)));
    expect(results.slice(0, 20).every((r) => r.status === 'stored')).toBe(true);
    const refused = results[20];
    expect(refused).toMatchObject({ status: 'rejected', sampleId: null, nack: { scope: 'device', sampleIds: [] } });
    if (refused?.status !== 'rejected') throw new Error('not refused');
    expect(refused.error.code).toBe('SAMPLE_RATE_LIMITED');
    // Told once: the rest of the flood is refused without another nack.
    expect(results.slice(21).every((r) => r.status === 'rejected' && r.nack === undefined)).toBe(true);
    // Another device has its own budget.
    expect((await p.ingest.acceptPayload('cam-2', payload('b-1', 'cam-2'))).status).toBe('stored');
    // After the pause it asked for, the device is served again.
    p.clock.advance(refused.nack?.retryAfterMs ?? 0);
    expect((await p.ingest.acceptPayload('cam-1', payload('a-late'))).status).toBe('stored');
    expect(p.ingest.stats()).toMatchObject({ rate_limited: 5 });
    // The daily quota: refused until the next UTC day.
    const q = await openParts({ ingest: { deviceLimits: { messagesPerSecond: 1000, burst: 1000, dailyBytes: 5000 } } });
    try {
      const daily = [];
      for (let i = 0; i < 6; i++) daily.push(await q.ingest.acceptPayload('cam-1', payload(`d-${i}`)));
      const over = daily.find((r) => r.status === 'rejected');
      expect(over).toMatchObject({ nack: { scope: 'device' } });
      const dayEnd = Math.ceil(q.clock.now() / 86_400_000) * 86_400_000;
      expect(over?.status === 'rejected' && over.nack?.retryAfterMs).toBe(dayEnd - q.clock.now());
    } finally {
      q.cleanup();
    }
  });

  it('frees a stalled chunk set on its timer, without waiting for another message', async () => {
    const p = await open({ ingest: { assembler: { timeoutMs: 1000 }, sweepEveryMs: 20 } });
    const msgs = messagesOf(makeSample({ id: 'big', blobBytes: 300_000 }));
    expect(msgs.length).toBeGreaterThan(1);
    await p.ingest.accept('cam-1', msgs[0] as SampleMessage);
    expect(p.ingest.stats().assembler.pending).toBe(1);
    p.clock.advance(1000);
    await waitUntil(() => p.ingest.stats().assembler.pending === 0, 10_000, 'the sweep timer to drop the stalled set');
    expect(p.ingest.stats().assembler.dropped_by_reason.timeout).toBe(1);
    await p.ingest.flush();
  });
});
