import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3ArtifactStore, S3_MIN_PART_SIZE } from '../../../fleet/adapters/aws/s3-store.js';
import { tempDir } from '../../helpers/packages.js';
import { artifactStoreContract } from '../store/artifact-contract.js';
import { startLocalS3, type LocalS3 } from './s3-server.js';

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

let n = 0;
artifactStoreContract('S3 (s3rver in process)', async () => {
  const s3 = await startLocalS3();
  const spool = tempDir('edgeloop-s3-spool-');
  const store = new S3ArtifactStore({ client: s3.client, bucket: s3.bucket, prefix: `contract-${++n}/`, spoolDir: spool.dir });
  return {
    store,
    dispose: async () => {
      await s3.close();
      spool.cleanup();
    },
  };
});

describe('S3 artifact store', () => {
  let s3: LocalS3;
  beforeAll(async () => {
    s3 = await startLocalS3();
  });
  afterAll(async () => {
    await s3.close();
  });

  const keys = async (prefix: string): Promise<string[]> => {
    const r = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix }));
    return (r.Contents ?? []).map((c) => c.Key ?? '').sort();
  };

  it('keys objects by content: <prefix>sha256/<aa>/<sha256>', async () => {
    const store = new S3ArtifactStore({ client: s3.client, bucket: s3.bucket, prefix: 'layout/' });
    const { sha256 } = await store.put(Buffer.from('layout'));
    expect(await keys('layout/')).toEqual([`layout/sha256/${sha256.slice(0, 2)}/${sha256}`]);
    expect(store.uriOf(sha256)).toBe(`s3://${s3.bucket}/layout/sha256/${sha256.slice(0, 2)}/${sha256}`);
  });

  it('uploads a file above the part size in parts (stream and bytes)', async () => {
    const spool = tempDir('edgeloop-s3-spool-');
    try {
      const store = new S3ArtifactStore({ client: s3.client, bucket: s3.bucket, prefix: 'multipart/', partSize: S3_MIN_PART_SIZE, spoolDir: spool.dir });
      const big = randomBytes(S3_MIN_PART_SIZE * 2 + 12345);
      const sent: string[] = [];
      // Count the parts the SDK really sends (middleware sees every command).
      s3.client.middlewareStack.add((next, context) => async (args) => {
        sent.push(context.commandName ?? '?');
        return next(args);
      }, { step: 'initialize', name: 'countCommands' });
      try {
        const chunks = Array.from({ length: 11 }, (_, i) => big.subarray(Math.floor((i * big.length) / 11), Math.floor(((i + 1) * big.length) / 11)));
        const put = await store.put(Readable.from(chunks));
        expect(put).toEqual({ sha256: sha(big), bytes: big.length, created: true });
        expect(sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
        expect(sent).toContain('CreateMultipartUploadCommand');
        expect(sent).toContain('CompleteMultipartUploadCommand');
        expect(sent).not.toContain('PutObjectCommand');
        expect((await store.get(put.sha256)).equals(big)).toBe(true);
        const tail = await store.createReadStream(put.sha256, { start: big.length - 100 });
        const got: Buffer[] = [];
        for await (const c of tail) got.push(Buffer.from(c as Uint8Array));
        expect(Buffer.concat(got).equals(big.subarray(big.length - 100))).toBe(true);
        // Bytes as a buffer above one part go multipart too.
        const big2 = randomBytes(S3_MIN_PART_SIZE + 1);
        sent.length = 0;
        await store.put(big2);
        expect(sent.filter((c) => c === 'UploadPartCommand')).toHaveLength(2);
      } finally {
        s3.client.middlewareStack.remove('countCommands');
      }
      expect(await keys('multipart/')).toHaveLength(2);
    } finally {
      spool.cleanup();
    }
  });

  it('presigns GET URLs a device can fetch without credentials', async () => {
    const store = new S3ArtifactStore({ client: s3.client, bucket: s3.bucket, prefix: 'presign/' });
    const data = randomBytes(3000);
    const { sha256 } = await store.put(data);
    const url = await store.presignGet(sha256, 600);
    expect(url).toContain('X-Amz-Signature=');
    expect(url).toContain('X-Amz-Expires=600');
    const res = await fetch(url);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer()).equals(data)).toBe(true);
    await expect(store.presignGet(sha256, 8 * 24 * 3600)).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('refuses a part size below the S3 minimum', () => {
    expect(() => new S3ArtifactStore({ client: s3.client, bucket: s3.bucket, partSize: 1024 })).toThrow(/minimum/);
  });

  it('fails with FLEET_STORAGE_FAILED when the bucket does not exist', async () => {
    const store = new S3ArtifactStore({ client: s3.client, bucket: 'no-such-bucket' });
    await expect(store.put(Buffer.from('x'))).rejects.toMatchObject({ code: 'FLEET_STORAGE_FAILED' });
  });
});
