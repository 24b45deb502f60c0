import { createHash, randomBytes } from 'node:crypto';
import { createReadStream as fsReadStream } from 'node:fs';
import { mkdir, open, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { DeleteObjectCommand, GetObjectCommand, HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { EdgeloopError } from '../../../shared/errors.js';
import { resolveRange } from '../fs/artifact-store.js';
import { SHA256_RE, type ArtifactStore, type PutOptions, type PutResult, type ReadRange } from '../../app/artifacts.js';
import { FleetError } from '../../errors.js';

/** Options of {@link S3ArtifactStore}. */
export interface S3ArtifactStoreOptions {
  client: S3Client;
  bucket: string;
  /** Key prefix, e.g. `edgeloop/` (default ''). Artifacts live under `<prefix>sha256/<aa>/<sha256>`. */
  prefix?: string;
  /**
   * Multipart part size in bytes (S3 minimum 5 MiB, the default). Bodies above one part are
   * uploaded in parts, `queueSize` at a time.
   */
  partSize?: number;
  queueSize?: number;
  /** Where a stream is spooled while it is hashed (its name is only known at the end). Default: the OS temp dir. */
  spoolDir?: string;
  /** Lifetime of presigned GET URLs in seconds (default 6 hours; SigV4 allows at most 7 days). */
  presignExpiresS?: number;
}

export const S3_MIN_PART_SIZE = 5 * 1024 * 1024;
/** SigV4 presigned URLs live at most 7 days. */
const S3_MAX_PRESIGN_S = 7 * 24 * 3600;

function checkSha(sha256: string): void {
  if (!SHA256_RE.test(sha256)) throw new FleetError('INPUT_INVALID', `not a sha256: ${JSON.stringify(sha256).slice(0, 80)}`);
}

const isNotFound = (err: unknown): boolean => {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404;
};

function storage(what: string, err: unknown): Error {
  if (err instanceof EdgeloopError) return err;
  return new FleetError('STORAGE_FAILED', `S3 artifact store: ${what}: ${(err as Error).message}`, { cause: err });
}

function notFound(sha256: string): FleetError {
  return new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not stored`, { details: { sha256 } });
}

/**
 * Content-addressed artifacts (model files, manifests, sample blobs, dataset manifests) in an
 * S3 bucket: the {@link ArtifactStore} at scale. The key is derived from the sha256 alone, so
 * objects are immutable and a put of stored bytes writes nothing.
 *
 * A stream's name is only known once it has been read, so streams are spooled to a local temp
 * file while hashing, then uploaded under their final key: an S3 PUT (and a multipart
 * CompleteMultipartUpload) makes the whole object visible at once, so a reader never sees part
 * of an artifact, and a source that fails half-way leaves nothing in the bucket. `put`
 * resolves after S3 acknowledged the write (S3 stores it redundantly before answering).
 * Devices fetch model files through presigned GET URLs ({@link presignGet}); the agent
 * verifies every file's sha256 anyway.
 */
export class S3ArtifactStore implements ArtifactStore {
  readonly bucket: string;
  readonly prefix: string;
  private readonly client: S3Client;
  private readonly partSize: number;
  private readonly queueSize: number;
  private readonly spoolDir: string;
  private readonly presignExpiresS: number;
  private seq = 0;

  constructor(o: S3ArtifactStoreOptions) {
    this.client = o.client;
    this.bucket = o.bucket;
    this.prefix = o.prefix ?? '';
    this.partSize = o.partSize ?? S3_MIN_PART_SIZE;
    this.queueSize = o.queueSize ?? 4;
    this.spoolDir = o.spoolDir ?? join(tmpdir(), 'edgeloop-s3-spool');
    this.presignExpiresS = o.presignExpiresS ?? 6 * 3600;
    if (this.partSize < S3_MIN_PART_SIZE) throw new FleetError('INPUT_INVALID', `S3 part size ${this.partSize} is below the S3 minimum of ${S3_MIN_PART_SIZE} bytes`);
    if (!(this.presignExpiresS >= 1 && this.presignExpiresS <= S3_MAX_PRESIGN_S)) throw new FleetError('INPUT_INVALID', `presigned URL lifetime ${this.presignExpiresS}s is outside 1..${S3_MAX_PRESIGN_S}`);
  }

  /** The object key of an artifact. */
  keyOf(sha256: string): string {
    checkSha(sha256);
    return `${this.prefix}sha256/${sha256.slice(0, 2)}/${sha256}`;
  }

  async put(data: Uint8Array | Readable | AsyncIterable<Uint8Array>, opts: PutOptions = {}): Promise<PutResult> {
    if (opts.sha256 !== undefined) checkSha(opts.sha256);
    if (data instanceof Uint8Array) {
      const sha256 = createHash('sha256').update(data).digest('hex');
      this.checkExpected(sha256, opts);
      if (await this.has(sha256)) return { sha256, bytes: data.byteLength, created: false };
      await this.upload(sha256, data, data.byteLength);
      return { sha256, bytes: data.byteLength, created: true };
    }
    return this.putStream(data, opts);
  }

  private async putStream(data: Readable | AsyncIterable<Uint8Array>, opts: PutOptions): Promise<PutResult> {
    await mkdir(this.spoolDir, { recursive: true });
    const spool = join(this.spoolDir, `${process.pid}-${++this.seq}-${randomBytes(6).toString('hex')}`);
    const hash = createHash('sha256');
    let bytes = 0;
    let fh: FileHandle | undefined;
    try {
      fh = await open(spool, 'wx', 0o600);
      for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
        const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        hash.update(buf);
        bytes += buf.byteLength;
        await fh.write(buf);
      }
      await fh.close();
      fh = undefined;
      const sha256 = hash.digest('hex');
      this.checkExpected(sha256, opts);
      if (await this.has(sha256)) return { sha256, bytes, created: false };
      await this.upload(sha256, bytes > 0 ? fsReadStream(spool) : new Uint8Array(0), bytes);
      return { sha256, bytes, created: true };
    } catch (err) {
      throw storage('cannot store a stream', err);
    } finally {
      await fh?.close().catch(() => undefined);
      await unlink(spool).catch(() => undefined);
    }
  }

  /** One PUT up to one part, multipart above (lib-storage splits the body into parts). */
  private async upload(sha256: string, body: Uint8Array | Readable, bytes: number): Promise<void> {
    const Key = this.keyOf(sha256);
    try {
      if (bytes <= this.partSize) {
        const whole = body instanceof Uint8Array ? body : await readAll(body);
        await this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: whole, ContentLength: whole.byteLength, ContentType: 'application/octet-stream', Metadata: { sha256 } }));
        return;
      }
      const up = new Upload({
        client: this.client,
        params: { Bucket: this.bucket, Key, Body: body, ContentType: 'application/octet-stream', Metadata: { sha256 } },
        partSize: this.partSize,
        queueSize: this.queueSize,
        // A failed multipart upload is aborted, so no orphan parts are billed.
        leavePartsOnError: false,
      });
      await up.done();
    } catch (err) {
      throw storage(`cannot upload ${sha256}`, err);
    }
  }

  async has(sha256: string): Promise<boolean> {
    return (await this.size(sha256)) !== null;
  }

  async get(sha256: string): Promise<Buffer> {
    const Key = this.keyOf(sha256);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }));
      return Buffer.from(await (r.Body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray());
    } catch (err) {
      if (isNotFound(err)) throw notFound(sha256);
      throw storage(`cannot read ${sha256}`, err);
    }
  }

  async createReadStream(sha256: string, range: ReadRange = {}): Promise<Readable> {
    const Key = this.keyOf(sha256);
    const size = await this.size(sha256);
    if (size === null) throw notFound(sha256);
    const { start, end } = resolveRange(range, size, sha256);
    // An empty artifact (or range): S3 answers 416 to any Range on an empty object.
    if (end < start) return Readable.from([]);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key, Range: `bytes=${start}-${end}` }));
      return r.Body as Readable;
    } catch (err) {
      if (isNotFound(err)) throw notFound(sha256);
      throw storage(`cannot read ${sha256}`, err);
    }
  }

  async size(sha256: string): Promise<number | null> {
    const Key = this.keyOf(sha256);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.bucket, Key }));
      return r.ContentLength ?? 0;
    } catch (err) {
      if (isNotFound(err)) return null;
      throw storage(`cannot stat ${sha256}`, err);
    }
  }

  async delete(sha256: string): Promise<boolean> {
    // S3's DELETE succeeds for absent keys too: ask first, so the answer means something.
    if (!(await this.has(sha256))) return false;
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }));
      return true;
    } catch (err) {
      throw storage(`cannot delete ${sha256}`, err);
    }
  }

  /**
   * A presigned GET URL for a device (no AWS credentials on the device for this path; with
   * Greengrass, the token exchange role is the alternative). Signing is local: no request.
   */
  async presignGet(sha256: string, expiresS = this.presignExpiresS): Promise<string> {
    if (!(expiresS >= 1 && expiresS <= S3_MAX_PRESIGN_S)) throw new FleetError('INPUT_INVALID', `presigned URL lifetime ${expiresS}s is outside 1..${S3_MAX_PRESIGN_S}`);
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.bucket, Key: this.keyOf(sha256) }), { expiresIn: expiresS });
  }

  /** `s3://bucket/key` of an artifact (recipes, SageMaker channels). */
  uriOf(sha256: string): string {
    return `s3://${this.bucket}/${this.keyOf(sha256)}`;
  }

  private checkExpected(sha256: string, opts: PutOptions): void {
    if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
      throw new FleetError('ARTIFACT_HASH_MISMATCH', `content hashes to ${sha256.slice(0, 12)}..., expected ${opts.sha256.slice(0, 12)}...`, {
        details: { expected: opts.sha256, got: sha256 },
      });
    }
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const chunk of stream) parts.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(parts);
}
