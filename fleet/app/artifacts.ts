import type { Readable } from 'node:stream';

/** What {@link ArtifactStore.put} stored. */
export interface PutResult {
  sha256: string;
  bytes: number;
  /** false when the content was already stored (content addressing dedupes). */
  created: boolean;
}

export interface PutOptions {
  /**
   * The sha256 the content must have. When given, a mismatch fails the put with
   * `FLEET_ARTIFACT_HASH_MISMATCH` and nothing is stored.
   */
  sha256?: string;
}

/** A byte range, inclusive at both ends like HTTP `Range: bytes=start-end`. */
export interface ReadRange {
  start?: number;
  end?: number;
}

/**
 * Content-addressed blob storage: model files, signed manifests, sample blobs, dataset
 * manifests. An artifact is named by the sha256 of its bytes, so it is immutable, a second
 * put of the same bytes stores nothing new, and a reader can always verify what it got.
 *
 * Implementations: filesystem (fs-store.ts, the embedded default), S3 at scale. Every
 * implementation runs the contract suite in test/fleet/store/artifact-contract.ts.
 *
 * Durability: `put` resolves only once the artifact survives power loss; callers record
 * references to it (a database row, an ack to a device) after that.
 */
export interface ArtifactStore {
  /** Store bytes or a stream; the hash is computed (and checked, with `sha256`) while writing. */
  put(data: Uint8Array | Readable | AsyncIterable<Uint8Array>, opts?: PutOptions): Promise<PutResult>;
  has(sha256: string): Promise<boolean>;
  /** The whole artifact. Throws `FLEET_ARTIFACT_NOT_FOUND`. */
  get(sha256: string): Promise<Buffer>;
  /**
   * A stream of the artifact or of a byte range of it (HTTP Range, resumed downloads).
   * Throws `FLEET_ARTIFACT_NOT_FOUND` before any byte is streamed, and `INPUT_INVALID`
   * for a range that does not fit the artifact.
   */
  createReadStream(sha256: string, range?: ReadRange): Promise<Readable>;
  /** Size in bytes, or null when absent. */
  size(sha256: string): Promise<number | null>;
  /** Remove an artifact; false when it was not there. Callers check references first. */
  delete(sha256: string): Promise<boolean>;
}

export const SHA256_RE = /^[0-9a-f]{64}$/;
