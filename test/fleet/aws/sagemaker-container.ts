import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand } from '@aws-sdk/client-s3';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import type { LocalS3 } from './s3-server.js';

export async function readS3(s3: LocalS3, key: string): Promise<Buffer> {
  const r = await s3.client.send(new GetObjectCommand({ Bucket: s3.bucket, Key: key }));
  return Buffer.from(await r.Body!.transformToByteArray());
}

/**
 * Plays the training container: reads the exported `train` channel under
 * `<prefix>training/<job>/input/train/` (every example dataset.json lists must be there), writes
 * a `<name>@<version>` package (default `pets@2.0.0`) as /opt/ml/model would hold it and uploads
 * it as SageMaker does (`<output path><job>/output/model.tar.gz`). Returns the S3 URI, the
 * export's dataset.json and the sha256 of every example file the channel held.
 */
export async function containerRun(
  s3: LocalS3,
  jobName: string,
  o: { prefix?: string; name?: string; version?: string; broken?: boolean } = {},
): Promise<{ uri: string; dataset: { examples: Array<{ id: string; label: string; file: string }>; labels: string[] }; received: string[] }> {
  const base = `${o.prefix ?? 'ml/'}training/${jobName}`;
  const listed = await s3.client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: `${base}/input/train/` }));
  const keys = (listed.Contents ?? []).map((c) => c.Key ?? '');
  const dataset = JSON.parse((await readS3(s3, `${base}/input/train/dataset.json`)).toString()) as { examples: Array<{ id: string; label: string; file: string }>; labels: string[] };
  const missing = dataset.examples.filter((ex) => !keys.includes(`${base}/input/train/${ex.file}`));
  if (missing.length) throw new Error(`the export lacks ${missing.map((m) => m.file).join(', ')}`);
  const received = await Promise.all(keys.filter((k) => k.startsWith(`${base}/input/train/train/`)).map(async (k) => createHash('sha256').update(await readS3(s3, k)).digest('hex')));
  const model = tempDir('edgeloop-sm-model-');
  try {
    await imagePackage(model.dir, { version: o.version ?? '2.0.0', ...(o.name ? { extra: { name: o.name } } : {}) });
    if (o.broken) execFileSync('sh', ['-c', `echo '{"not":"a manifest"}' > ${join(model.dir, 'manifest.json')}`]);
    const tgz = join(model.dir, '..', `${jobName}.tar.gz`);
    execFileSync('tar', ['-czf', tgz, '-C', model.dir, '.']);
    const key = `${base}/output/${jobName}/output/model.tar.gz`;
    await s3.client.send(new PutObjectCommand({ Bucket: s3.bucket, Key: key, Body: readFileSync(tgz) }));
    return { uri: `s3://${s3.bucket}/${key}`, dataset, received };
  } finally {
    model.cleanup();
  }
}
