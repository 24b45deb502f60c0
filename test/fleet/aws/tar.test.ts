import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractTarGz } from '../../../fleet/adapters/aws/tar.js';
import { tempDir } from '../../helpers/packages.js';

/** One ustar header + body, written by hand so the test can make entries GNU tar would refuse to. */
function entry(name: string, body: Buffer, type = '0'): Buffer {
  const h = Buffer.alloc(512);
  h.write(name, 0, 100, 'utf8');
  h.write('0000644\0', 100);
  h.write('0000000\0', 108);
  h.write('0000000\0', 116);
  h.write(`${body.length.toString(8).padStart(11, '0')}\0`, 124);
  h.write('00000000000\0', 136);
  h.write(type, 156);
  h.write('ustar\0', 257);
  h.write('00', 263);
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
  const pad = Buffer.alloc(Math.ceil(body.length / 512) * 512 - body.length);
  return Buffer.concat([h, body, pad]);
}
const tarOf = (...e: Buffer[]): Buffer => gzipSync(Buffer.concat([...e, Buffer.alloc(1024)]));

describe('model.tar.gz extraction', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir('edgeloop-tar-');
  });
  afterEach(() => t.cleanup());

  it('extracts what GNU tar packed (nested directories, long names)', async () => {
    const src = join(t.dir, 'src');
    const long = `${'d'.repeat(120)}/model.onnx`;
    mkdirSync(join(src, 'd'.repeat(120)), { recursive: true });
    writeFileSync(join(src, 'manifest.json'), '{"a":1}');
    writeFileSync(join(src, long), Buffer.from([1, 2, 3]));
    const tgz = join(t.dir, 'm.tar.gz');
    execFileSync('tar', ['-czf', tgz, '-C', src, '.']);
    const out = join(t.dir, 'out');
    const files = await extractTarGz(readFileSync(tgz), out);
    expect(files.sort()).toEqual([long, 'manifest.json'].sort());
    expect([...readFileSync(join(out, long))]).toEqual([1, 2, 3]);
  });

  it('refuses entries that leave the directory, links, and corrupt headers', async () => {
    await expect(extractTarGz(tarOf(entry('../evil', Buffer.from('x'))), join(t.dir, 'o1'))).rejects.toMatchObject({ code: 'FLEET_TRAINING_OUTPUT_INVALID' });
    await expect(extractTarGz(tarOf(entry('a/../../evil', Buffer.from('x'))), join(t.dir, 'o2'))).rejects.toMatchObject({ code: 'FLEET_TRAINING_OUTPUT_INVALID' });
    await expect(extractTarGz(tarOf(entry('link', Buffer.alloc(0), '2')), join(t.dir, 'o3'))).rejects.toThrow(/only files and directories/);
    const bad = Buffer.concat([entry('ok', Buffer.from('x')), Buffer.alloc(1024)]);
    bad[10] = 0x41;
    await expect(extractTarGz(gzipSync(bad), join(t.dir, 'o4'))).rejects.toThrow(/corrupt header/);
    await expect(extractTarGz(Buffer.from('not gzip'), join(t.dir, 'o5'))).rejects.toThrow(/not gzip/);
    expect(await extractTarGz(tarOf(entry('./fine.txt', Buffer.from('ok'))), join(t.dir, 'o6'))).toEqual(['fine.txt']);
  });
});
