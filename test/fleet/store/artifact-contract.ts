import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ArtifactStore } from '../../../fleet/app/artifacts.js';

/** A fresh, empty store and how to dispose of it. */
export type MakeArtifactStore = () => Promise<{ store: ArtifactStore; dispose: () => Promise<void> }>;

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    return (err as { code?: string }).code ?? 'no code';
  }
  return 'resolved';
}

/**
 * The behaviour every {@link ArtifactStore} must have (docs/conventions.md rule 3): run it once per
 * implementation (filesystem now, S3 later).
 */
export function artifactStoreContract(name: string, make: MakeArtifactStore): void {
  describe(`ArtifactStore contract: ${name}`, () => {
    let store: ArtifactStore;
    let dispose: () => Promise<void>;

    beforeEach(async () => {
      ({ store, dispose } = await make());
    });
    afterEach(async () => {
      await dispose();
    });

    it('stores bytes under their sha256 and reads them back', async () => {
      const data = randomBytes(5000);
      const put = await store.put(data);
      expect(put).toEqual({ sha256: sha(data), bytes: 5000, created: true });
      expect(await store.has(put.sha256)).toBe(true);
      expect(await store.size(put.sha256)).toBe(5000);
      expect((await store.get(put.sha256)).equals(data)).toBe(true);
    });

    it('dedupes: the same bytes again store nothing new', async () => {
      const data = Buffer.from('same bytes');
      const first = await store.put(data);
      const again = await store.put(Buffer.from('same bytes'));
      expect(again).toEqual({ ...first, created: false });
      const streamed = await store.put(Readable.from([Buffer.from('same '), Buffer.from('bytes')]));
      expect(streamed).toEqual({ ...first, created: false });
    });

    it('stores a stream of many chunks, hashing while writing', async () => {
      const chunks = Array.from({ length: 40 }, () => randomBytes(64 * 1024));
      const whole = Buffer.concat(chunks);
      const put = await store.put(Readable.from(chunks));
      expect(put).toEqual({ sha256: sha(whole), bytes: whole.length, created: true });
      expect((await store.get(put.sha256)).equals(whole)).toBe(true);
    });

    it('accepts an async iterable as well as a Readable', async () => {
      async function* gen(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array([1, 2, 3]);
        yield new Uint8Array([4]);
      }
      const put = await store.put(gen());
      expect(put.sha256).toBe(sha(new Uint8Array([1, 2, 3, 4])));
      expect([...(await store.get(put.sha256))]).toEqual([1, 2, 3, 4]);
    });

    it('refuses content that does not hash to the expected sha256 and stores nothing', async () => {
      const data = Buffer.from('the real content');
      const wrong = sha(Buffer.from('something else'));
      expect(await code(store.put(data, { sha256: wrong }))).toBe('FLEET_ARTIFACT_HASH_MISMATCH');
      expect(await code(store.put(Readable.from([data]), { sha256: wrong }))).toBe('FLEET_ARTIFACT_HASH_MISMATCH');
      expect(await store.has(sha(data))).toBe(false);
      expect(await store.has(wrong)).toBe(false);
      expect(await store.put(data, { sha256: sha(data) })).toMatchObject({ sha256: sha(data), created: true });
    });

    it('stores nothing when the source stream fails half-way', async () => {
      const source = new Readable({
        read() {
          this.push(Buffer.from('partial'));
          this.destroy(new Error('connection reset'));
        },
      });
      await expect(store.put(source)).rejects.toThrow();
      expect(await store.has(sha(Buffer.from('partial')))).toBe(false);
    });

    it('reports absent artifacts without throwing, and fails reads with a code', async () => {
      const absent = sha(Buffer.from('never stored'));
      expect(await store.has(absent)).toBe(false);
      expect(await store.size(absent)).toBeNull();
      expect(await code(store.get(absent))).toBe('FLEET_ARTIFACT_NOT_FOUND');
      expect(await code(store.createReadStream(absent))).toBe('FLEET_ARTIFACT_NOT_FOUND');
      expect(await store.delete(absent)).toBe(false);
    });

    it('refuses names that are not sha256 (no path tricks)', async () => {
      for (const bad of ['../../etc/passwd', 'ABC', '', `${'a'.repeat(63)}/`]) {
        expect(await code(store.get(bad))).toBe('INPUT_INVALID');
      }
      expect(await code(store.put(Buffer.from('x'), { sha256: 'not-a-sha' }))).toBe('INPUT_INVALID');
    });

    it('streams byte ranges, inclusive at both ends, as HTTP Range asks', async () => {
      const data = Buffer.from(Array.from({ length: 1000 }, (_, i) => i % 251));
      const { sha256 } = await store.put(data);
      expect((await readAll(await store.createReadStream(sha256))).equals(data)).toBe(true);
      expect((await readAll(await store.createReadStream(sha256, { start: 400 }))).equals(data.subarray(400))).toBe(true);
      expect((await readAll(await store.createReadStream(sha256, { start: 10, end: 19 }))).equals(data.subarray(10, 20))).toBe(true);
      expect((await readAll(await store.createReadStream(sha256, { start: 999 }))).equals(data.subarray(999))).toBe(true);
      // An end past the last byte is clamped, like a server answering bytes=990-5000.
      expect((await readAll(await store.createReadStream(sha256, { start: 990, end: 5000 }))).equals(data.subarray(990))).toBe(true);
      expect(await code(store.createReadStream(sha256, { start: 1000 }))).toBe('INPUT_INVALID');
      expect(await code(store.createReadStream(sha256, { start: 20, end: 10 }))).toBe('INPUT_INVALID');
      expect(await code(store.createReadStream(sha256, { start: -1 }))).toBe('INPUT_INVALID');
    });

    it('stores and streams an empty artifact', async () => {
      const put = await store.put(Buffer.alloc(0));
      expect(put.bytes).toBe(0);
      expect(await store.size(put.sha256)).toBe(0);
      expect((await readAll(await store.createReadStream(put.sha256))).length).toBe(0);
    });

    it('deletes', async () => {
      const { sha256 } = await store.put(Buffer.from('to delete'));
      expect(await store.delete(sha256)).toBe(true);
      expect(await store.has(sha256)).toBe(false);
      expect(await store.delete(sha256)).toBe(false);
      // ...and can store it again.
      expect((await store.put(Buffer.from('to delete'))).created).toBe(true);
    });

    it('survives concurrent puts of the same and of different content', async () => {
      const same = randomBytes(3000);
      const others = Array.from({ length: 20 }, () => randomBytes(1500));
      const results = await Promise.all([...Array.from({ length: 10 }, () => store.put(same)), ...others.map((o) => store.put(o))]);
      expect(new Set(results.slice(0, 10).map((r) => r.sha256))).toEqual(new Set([sha(same)]));
      expect((await store.get(sha(same))).equals(same)).toBe(true);
      for (const o of others) expect((await store.get(sha(o))).equals(o)).toBe(true);
    });
  });
}
