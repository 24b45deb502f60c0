import { execFileSync } from 'node:child_process';
import { createReadStream, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { extractTarGz } from '../../../fleet/adapters/aws/tar.js';
import { tarHeader } from '../../../fleet/edges/client/tar-pack.js';
import { tempDir } from '../../helpers/packages.js';

/** One ustar header + body, written by hand so the test can make entries GNU tar would refuse to. */
function entry(name: string, body: Buffer, type = '0'): Buffer {
  const pad = Buffer.alloc(Math.ceil(body.length / 512) * 512 - body.length);
  return Buffer.concat([tarHeader(name, body.length, type), body, pad]);
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

  it('extracts what GNU tar packed in pax format (a long non-ASCII path in a pax record)', async () => {
    const src = join(t.dir, 'src');
    const long = `${'d'.repeat(120)}/ü/model.onnx`;
    mkdirSync(join(src, 'd'.repeat(120), 'ü'), { recursive: true });
    writeFileSync(join(src, long), Buffer.alloc(70_000, 7));
    const tgz = join(t.dir, 'm.tar.gz');
    execFileSync('tar', ['--format=pax', '-czf', tgz, '-C', src, '.']);
    const out = join(t.dir, 'out');
    expect(await extractTarGz(createReadStream(tgz), out)).toEqual([long]);
    expect(readFileSync(join(out, long)).equals(Buffer.alloc(70_000, 7))).toBe(true);
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

  it('reads the archive as a stream (an S3 GetObject body) and writes each file whole', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024 + 7, 'weights ');
    const tgz = join(t.dir, 'm.tar.gz');
    writeFileSync(tgz, tarOf(entry('./', Buffer.alloc(0), '5'), entry('./sub/', Buffer.alloc(0), '5'), entry('./sub/model.onnx', big), entry('./manifest.json', Buffer.from('{}'))));
    const out = join(t.dir, 'out');
    expect(await extractTarGz(createReadStream(tgz, { highWaterMark: 1000 }), out)).toEqual(['sub/model.onnx', 'manifest.json']);
    expect(readFileSync(join(out, 'sub/model.onnx')).equals(big)).toBe(true);
    expect(readFileSync(join(out, 'manifest.json'), 'utf8')).toBe('{}');
  });

  it('honours pax path records and GNU long names, and checks them like any name', async () => {
    const out = join(t.dir, 'o');
    const long = `${'p'.repeat(150)}/model.onnx`;
    expect(await extractTarGz(tarOf(pax({ path: long }), entry('short', Buffer.from('a')), entry('././@LongLink', Buffer.from(`${'l'.repeat(120)}/x\0`), 'L'), entry('cut', Buffer.from('b'))), out)).toEqual([long, `${'l'.repeat(120)}/x`]);
    expect(readFileSync(join(out, long), 'utf8')).toBe('a');
    await expect(extractTarGz(tarOf(pax({ path: '../../etc/cron.d/x' }), entry('innocent', Buffer.from('x'))), join(t.dir, 'p1'))).rejects.toThrow(/leaves the package directory/);
    await expect(extractTarGz(tarOf(entry('././@LongLink', Buffer.from('../x\0'), 'L'), entry('innocent', Buffer.from('x'))), join(t.dir, 'p2'))).rejects.toThrow(/leaves the package directory/);
    await expect(extractTarGz(tarOf(entry('p', Buffer.from('5 a\n'), 'x'), entry('f', Buffer.from('x'))), join(t.dir, 'p3'))).rejects.toThrow(/malformed pax header/);
  });

  it('refuses hostile archives with FLEET_TRAINING_OUTPUT_INVALID', async () => {
    const dir = (n: string): string => join(t.dir, n);
    const refused = async (gz: Uint8Array, message: RegExp, o: Parameters<typeof extractTarGz>[2] = {}, out = dir('h')): Promise<void> => {
      await expect(extractTarGz(gz, out, o)).rejects.toMatchObject({ code: 'FLEET_TRAINING_OUTPUT_INVALID', message: expect.stringMatching(message) });
    };
    await refused(tarOf(entry('/etc/passwd', Buffer.from('x'))), /leaves the package directory/);
    await refused(tarOf(entry('hard', Buffer.alloc(0), '1')), /type "1": only files and directories/);
    await refused(tarOf(entry('dev', Buffer.alloc(0), '3')), /type "3": only files and directories/);
    // Over the size cap: a header that declares too much, and a body that inflates past it.
    await refused(tarOf(entry('big', Buffer.alloc(200_000))), /of 200000 bytes would unpack past 100000 bytes/, { maxBytes: 100_000 });
    await refused(gzipSync(Buffer.alloc(64 * 1024)), /unpacks to more than 1024 bytes/, { maxBytes: 1024 });
    await refused(tarOf(...Array.from({ length: 6 }, (_, i) => entry(`f${i}`, Buffer.from('x')))), /more than 5 entries/, { maxEntries: 5 });
    // Cut short: inside the gzip stream, and a complete gzip stream whose tar body ends early.
    const whole = tarOf(entry('model.onnx', Buffer.alloc(200_000, 'w')));
    await refused(whole.subarray(0, whole.length - 20), /truncated/);
    await refused(gzipSync(entry('model.onnx', Buffer.alloc(5000, 'w')).subarray(0, 3000)), /truncated inside model\.onnx/);
    await refused(gzipSync(entry('model.onnx', Buffer.alloc(5000)).subarray(0, 300)), /truncated inside a header/);
    // A name that is a file and then a directory: a clash, not a crash.
    await refused(tarOf(entry('a', Buffer.from('x')), entry('a/b', Buffer.from('y'))), /entry "a\/b" cannot be written/, {}, dir('clash'));
    const size = entry('s', Buffer.from('x'));
    size.write('9999999999\0', 124);
    fixChecksum(size);
    await refused(gzipSync(Buffer.concat([size, Buffer.alloc(1024)])), /corrupt size/);
    expect(existsSync(join(t.dir, 'etc'))).toBe(false);
  });

  it('keeps the event loop turning while a large archive inflates (regression: gunzipSync stalled MQTT and HTTP)', async () => {
    const size = 64 * 1024 * 1024;
    const gz = gzipSync(Buffer.concat([entry('model.onnx', Buffer.alloc(size, 'edgeloop model weights 0.1234 ')), Buffer.alloc(1024)]), { level: 1 });
    const out = join(t.dir, 'out');
    let files: string[] = [];
    const streaming = await maxGapDuring(async () => {
      files = await extractTarGz(gz, out);
    });
    expect(files).toEqual(['model.onnx']);
    expect(statSync(join(out, 'model.onnx')).size).toBe(size);
    // The same probe around what the old reader did (one gunzipSync of the archive): the bound
    // scales with this machine's speed, and the probe is shown to see a stall.
    const blocking = await maxGapDuring(async () => gunzipSync(gz).length);
    expect(streaming).toBeLessThan(blocking / 2);
  });
});

/** Longest pause between ticks of a 1 ms interval while `work` runs. */
async function maxGapDuring(work: () => Promise<unknown>): Promise<number> {
  let last = performance.now();
  let gap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gap = Math.max(gap, now - last);
    last = now;
  }, 1);
  try {
    await work();
  } finally {
    clearInterval(tick);
  }
  return Math.max(gap, performance.now() - last);
}

function fixChecksum(h: Buffer): void {
  h.fill(' ', 148, 156);
  let sum = 0;
  for (const b of h.subarray(0, 512)) sum += b;
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148);
}

/** A pax extended header entry with well-formed `<len> key=value\n` records. */
function pax(records: Record<string, string>): Buffer {
  const body = Object.entries(records)
    .map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = Buffer.byteLength(rest) + 1;
      while (String(len).length + Buffer.byteLength(rest) !== len) len++;
      return `${len}${rest}`;
    })
    .join('');
  return entry('PaxHeader', Buffer.from(body), 'x');
}
