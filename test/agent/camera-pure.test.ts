import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig } from '../../agent/config.js';
import { cameraKind, cameraSchema, redactText, redactUrl, urlSecrets } from '../../agent/inputs/camera-config.js';
import { ffmpegArgs, rtspList } from '../../agent/inputs/camera-ffmpeg.js';
import { JpegSplitter } from '../../agent/inputs/camera-jpeg.js';
import { digestAuthorization, parseChallenge } from '../../agent/inputs/camera-snapshot.js';

/** A structurally valid JPEG: SOI, APP0, optional APP1 (an EXIF-like segment holding a whole thumbnail JPEG), SOS, entropy data with stuffed bytes and a restart marker, EOI. */
function jpeg(n: number, body = 10, thumbnail = false): Buffer {
  const seg = (marker: number, payload: Buffer): Buffer => Buffer.concat([Buffer.from([0xff, marker]), Buffer.from([(payload.length + 2) >> 8, (payload.length + 2) & 0xff]), payload]);
  const thumb = Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xda, 0x00, 0x02, 1, 2, 0xff, 0xd9])]);
  const entropy = Buffer.concat([Buffer.alloc(body, n), Buffer.from([0xff, 0x00, 7, 0xff, 0xd3, 9])]);
  return Buffer.concat([
    Buffer.from([0xff, 0xd8]),
    seg(0xe0, Buffer.from('JFIF\0')),
    ...(thumbnail ? [seg(0xe1, Buffer.concat([Buffer.from('Exif\0\0'), thumb]))] : []),
    seg(0xda, Buffer.from([1, 1, 0, 0, 63, 0])),
    entropy,
    Buffer.from([0xff, 0xd9]),
  ]);
}

describe('JpegSplitter', () => {
  it('cuts frames at their real EOI whatever the chunking, skipping bytes between frames', () => {
    const frames = [jpeg(1), jpeg(2, 300, true), jpeg(3, 1)];
    const stream = Buffer.concat([Buffer.from('junk'), frames[0]!, Buffer.from('\r\n--b\r\ncontent-type: image/jpeg\r\n\r\n'), frames[1]!, frames[2]!]);
    for (const size of [1, 2, 3, 7, 64, stream.length]) {
      const s = new JpegSplitter(1024);
      const out: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) out.push(...s.push(stream.subarray(i, i + size)));
      expect(out.map((f) => f.length), `chunk ${size}`).toEqual(frames.map((f) => f.length));
      // The thumbnail's EOI inside APP1 did not end the frame early.
      expect(out[1]!.equals(frames[1]!)).toBe(true);
      expect(s.buffered).toBe(0);
      expect(s.malformed).toBe(0);
    }
  });

  it('splits real JPEGs from sharp and drops a frame cut off by the next SOI', async () => {
    const a = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#3a7' } }).jpeg({ progressive: true }).toBuffer();
    const b = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#f00' } }).jpeg().toBuffer();
    const s = new JpegSplitter(1 << 20);
    const out = s.push(Buffer.concat([a, a.subarray(0, a.length - 100), b]));
    expect(out.map((f) => f.length)).toEqual([a.length, b.length]);
    expect(s.malformed).toBe(1);
  });

  it('bounds its buffer: a frame without an end beyond maxFrameBytes is discarded', () => {
    const s = new JpegSplitter(100);
    const big = jpeg(7, 150);
    expect(s.push(big.subarray(0, big.length - 2))).toEqual([]);
    expect(s.oversized).toBe(1);
    expect(s.buffered).toBe(0);
    expect(s.push(jpeg(5))).toHaveLength(1);
    // Bytes that never start a frame are not kept either.
    for (let i = 0; i < 100; i++) s.push(Buffer.alloc(1000, 1));
    expect(s.buffered).toBeLessThanOrEqual(1);
  });
});

describe('credential redaction', () => {
  it('removes user info from URLs in any text, and the password however it is written', () => {
    expect(redactUrl('rtsp://admin:h%40rd@10.0.0.5:554/stream1')).toBe('rtsp://***@10.0.0.5:554/stream1');
    expect(redactUrl('http://cam.local/snap.jpg')).toBe('http://cam.local/snap.jpg');
    const url = 'rtsp://admin:h%40rd!pw@10.0.0.5/s';
    const text = `rtsp://admin:h%40rd!pw@10.0.0.5/s: 401; tried password h@rd!pw`;
    const out = redactText(text, urlSecrets(url));
    expect(out).not.toContain('h@rd!pw');
    expect(out).not.toContain('h%40rd');
    expect(out).toContain('rtsp://***@10.0.0.5/s');
  });
});

describe('camera config', () => {
  it('names every bad key in one error', () => {
    let message = '';
    try {
      parseAgentConfig({
        inputs: {
          cameras: [
            { name: 'ok', url: 'rtsp://h/x', fps: 5 },
            { name: 'bad name!', url: 'ftp://h/x', fps: 0, colour: 'red' },
            { name: 'ok', url: '/dev/video0', kind: 'rtsp', privacy: { zones: [[[0, 0], [2, 0], [1, 1]]], mode: 'pixelate' } },
          ],
        },
      });
    } catch (err) {
      message = (err as Error).message;
      expect((err as { code: string }).code).toBe('AGENT_CONFIG_INVALID');
    }
    for (const key of ['inputs.cameras.1.name', 'inputs.cameras.1.fps', 'inputs.cameras.1', 'colour', 'inputs.cameras.2.privacy.zones.0.1.0', 'inputs.cameras.2.privacy.mode', 'inputs.cameras.2.name']) expect(message).toContain(key);
    expect(message).toContain('inputs.cameras.1.url');
    expect(message).toContain('inputs.cameras.2.kind: rtsp does not fit a device URL');
  });

  it('defaults the kind from the URL; snapshot is an http URL', () => {
    const k = (url: string, kind?: 'snapshot'): string => cameraKind(cameraSchema.parse({ name: 'c', url, ...(kind ? { kind } : {}) }));
    expect([k('rtsp://h/x'), k('RTSPS://h/x'), k('http://h/x.mjpg'), k('https://h/s.jpg', 'snapshot'), k('/dev/video2')]).toEqual(['rtsp', 'rtsp', 'mjpeg', 'snapshot', 'device']);
    const c = cameraSchema.parse({ name: 'c', url: 'rtsp://h/x', privacy: { zones: [[[0, 0], [1, 0], [1, 1]]] } });
    expect(c.privacy).toMatchObject({ mode: 'black', model_sees: 'masked' });
  });
});

describe('ffmpeg arguments', () => {
  it('RTSP over TCP, the rate as an fps filter, JPEGs on stdout, no shell', () => {
    const a = ffmpegArgs({ kind: 'rtsp', url: 'rtsp://u:pw@h/x', fps: 2.5, timeoutMs: 5000 });
    // The URL goes to stdin in an ffconcat list, with TCP and the timeout as its options.
    expect(a.join(' ')).toContain('-f concat -safe 0');
    expect(a.join(' ')).not.toContain('h/x');
    expect(rtspList("rtsp://u:it's@h/x", 5000)).toBe("ffconcat version 1.0\nfile 'rtsp://u:it'\\''s@h/x'\noption rtsp_transport tcp\noption timeout 5000000\n");
    expect(a.join(' ')).toContain('-vf fps=2.5 -f image2pipe -c:v mjpeg');
    expect(a.at(-1)).toBe('pipe:1');
    // MJPEG: Node fetches the stream and feeds ffmpeg's stdin, so the URL (and its credentials) is not an argument.
    const m = ffmpegArgs({ kind: 'mjpeg', url: 'http://u:pw@h/x.mjpg', fps: 1, timeoutMs: 1 }).join(' ');
    expect(m).toContain('-f mjpeg -i pipe:0');
    expect(m).not.toContain('h/x.mjpg');
    expect(ffmpegArgs({ kind: 'device', url: '/dev/video0', fps: 1, timeoutMs: 1 }).join(' ')).toContain('-f v4l2 -i /dev/video0');
  });
});

describe('HTTP digest authentication', () => {
  it('matches the RFC 7616 section 3.9.1 MD5 example', () => {
    const c = parseChallenge('Digest realm="http-auth@example.org", qop="auth, auth-int", algorithm=MD5, nonce="7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", opaque="FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS"');
    const h = digestAuthorization(
      { realm: c.realm!, nonce: c.nonce!, qop: c.qop, opaque: c.opaque, algorithm: c.algorithm!, nc: 1 },
      'Mufasa',
      'Circle of Life',
      'GET',
      '/dir/index.html',
      'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ',
    );
    expect(h).toContain('response="8ca523f5e9506fed4657c9700eebdbec"');
    expect(h).toContain('nc=00000001');
    expect(h).toContain('qop=auth,');
    // SHA-256 variant of the same example.
    const s = digestAuthorization({ realm: c.realm!, nonce: c.nonce!, qop: 'auth', opaque: c.opaque, algorithm: 'SHA-256', nc: 1 }, 'Mufasa', 'Circle of Life', 'GET', '/dir/index.html', 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ');
    expect(s).toContain('response="753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"');
  });
});
