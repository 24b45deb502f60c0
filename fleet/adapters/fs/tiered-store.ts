import type { Readable } from 'node:stream';
import { EdgeloopError } from '../../../shared/errors.js';
import type { ArtifactStore, PutOptions, PutResult, ReadRange } from '../../app/artifacts.js';

export interface TieredArtifactStoreOptions {
  /** Where artifacts up to `maxSmallBytes` go (the SQLite store). */
  small: ArtifactStore;
  /** Everything larger: model files, big tensors (the filesystem or S3 store). */
  large: ArtifactStore;
  /** Default 256 KiB. */
  maxSmallBytes?: number;
}

const isNotFound = (err: unknown): boolean => err instanceof EdgeloopError && err.code === 'FLEET_ARTIFACT_NOT_FOUND';

/**
 * One {@link ArtifactStore} over two: small artifacts (sample blobs) in one, large ones in
 * the other, chosen by size. A stream is read up to the threshold first, so the same bytes
 * always land in the same tier whether they arrive as a buffer or a stream (dedupe holds).
 * Reads look in the small tier first.
 */
export class TieredArtifactStore implements ArtifactStore {
  private readonly small: ArtifactStore;
  private readonly large: ArtifactStore;
  private readonly maxSmall: number;

  constructor(o: TieredArtifactStoreOptions) {
    this.small = o.small;
    this.large = o.large;
    this.maxSmall = o.maxSmallBytes ?? 256 * 1024;
  }

  async put(data: Uint8Array | Readable | AsyncIterable<Uint8Array>, opts: PutOptions = {}): Promise<PutResult> {
    if (data instanceof Uint8Array) return (data.byteLength <= this.maxSmall ? this.small : this.large).put(data, opts);
    const iterator = (data as AsyncIterable<Uint8Array | string>)[Symbol.asyncIterator]();
    const head: Buffer[] = [];
    let headBytes = 0;
    for (;;) {
      const next = await iterator.next();
      if (next.done) return this.small.put(Buffer.concat(head), opts);
      const chunk = typeof next.value === 'string' ? Buffer.from(next.value) : Buffer.from(next.value);
      head.push(chunk);
      headBytes += chunk.length;
      if (headBytes > this.maxSmall) break;
    }
    // Larger than the threshold: what was read, then the rest of the stream.
    async function* rest(): AsyncGenerator<Uint8Array> {
      yield* head;
      for (;;) {
        const next = await iterator.next();
        if (next.done) return;
        yield typeof next.value === 'string' ? Buffer.from(next.value) : next.value;
      }
    }
    return this.large.put(rest(), opts);
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.small.has(sha256)) || this.large.has(sha256);
  }

  async get(sha256: string): Promise<Buffer> {
    return this.either((s) => s.get(sha256));
  }

  async createReadStream(sha256: string, range?: ReadRange): Promise<Readable> {
    return this.either((s) => s.createReadStream(sha256, range));
  }

  async size(sha256: string): Promise<number | null> {
    return (await this.small.size(sha256)) ?? this.large.size(sha256);
  }

  async delete(sha256: string): Promise<boolean> {
    const [a, b] = await Promise.all([this.small.delete(sha256), this.large.delete(sha256)]);
    return a || b;
  }

  private async either<T>(fn: (s: ArtifactStore) => Promise<T>): Promise<T> {
    try {
      return await fn(this.small);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      return fn(this.large);
    }
  }
}
