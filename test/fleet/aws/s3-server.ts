import { S3Client } from '@aws-sdk/client-s3';
import S3rver from 's3rver';
import { tempDir } from '../../helpers/packages.js';

/** Fixed test credentials and region: the SDK never looks for real ones, and never leaves loopback. */
export const TEST_AWS = { region: 'eu-west-1', credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } } as const;

export interface LocalS3 {
  client: S3Client;
  endpoint: string;
  bucket: string;
  close(): Promise<void>;
}

/**
 * A real S3-protocol server (s3rver, files in a temp dir) on 127.0.0.1 port 0 in the test
 * process, and an SDK client pointed at it (path-style, since there is no DNS for
 * bucket.localhost).
 */
export async function startLocalS3(bucket = 'edgeloop-test'): Promise<LocalS3> {
  const t = tempDir('edgeloop-s3rver-');
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: t.dir, configureBuckets: [{ name: bucket }] });
  const addr = await server.run();
  const endpoint = `http://127.0.0.1:${addr.port}`;
  const client = new S3Client({ ...TEST_AWS, endpoint, forcePathStyle: true, maxAttempts: 1 });
  return {
    client,
    endpoint,
    bucket,
    close: async () => {
      client.destroy();
      await server.close();
      t.cleanup();
    },
  };
}
