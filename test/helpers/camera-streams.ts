/**
 * Real camera streams made in the test: an MJPEG-over-HTTP server (multipart/x-mixed-replace,
 * the way IP cameras serve it), a snapshot server with HTTP Basic or Digest authentication,
 * and GStreamer's RTSP server (test/helpers/rtsp-server.py) as a child process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import sharp from 'sharp';
import { missingBinary } from './optional-binary.js';

/** A solid-colour JPEG (RGB), e.g. white for privacy-mask pixel checks. */
export function solidJpeg(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).jpeg({ quality: 95 }).toBuffer();
}

/** JPEGs that differ from each other: a grey level per frame (a moving picture). */
export async function movingFrames(count: number, width = 320, height = 240): Promise<Buffer[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => solidJpeg(width, height, [40 + ((i * 37) % 180), 90, 200 - ((i * 23) % 150)])));
}

function listen(server: Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
  });
}

function close(server: Server, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((resolve) => server.close(() => resolve()));
}

function track(server: Server): Set<Socket> {
  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  return sockets;
}

export interface MjpegServer {
  url: string;
  port: number;
  /** The URL with user and password in it. */
  urlWith: (user: string, pass: string) => string;
  /** Frames written so far (to all clients). */
  sent: () => number;
  /** Clients connected now. */
  clients: () => number;
  /** Cut every client off (the stream dies; the camera must reconnect). */
  dropClients: () => void;
  /** Send the same frame again and again (a frozen picture), or move again. */
  freeze: (on: boolean) => void;
  /** Stop sending frames while keeping connections open (a stalled stream). */
  stall: (on: boolean) => void;
  close: () => Promise<void>;
}

/**
 * MJPEG over HTTP at `fps`, cycling through `frames`; with `auth`, HTTP Basic authentication is
 * required. `port`: listen there (a camera coming back at its old address); default a free one.
 */
export async function startMjpegServer(frames: Buffer[], fps: number, auth?: { user: string; pass: string }, port0 = 0): Promise<MjpegServer> {
  const clients = new Set<ServerResponse>();
  const server = createServer((req, res) => {
    if (auth && req.headers.authorization !== `Basic ${Buffer.from(`${auth.user}:${auth.pass}`).toString('base64')}`) {
      res.writeHead(401, { 'www-authenticate': 'Basic realm="camera"' });
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'multipart/x-mixed-replace; boundary=frame', 'cache-control': 'no-cache', connection: 'close' });
    clients.add(res);
    req.on('close', () => clients.delete(res));
  });
  const sockets = track(server);
  let i = 0;
  let sent = 0;
  let frozen = false;
  let stalled = false;
  const timer = setInterval(() => {
    if (stalled) return;
    if (!frozen) i = (i + 1) % frames.length;
    const f = frames[i]!;
    for (const res of clients) {
      res.write(`--frame\r\ncontent-type: image/jpeg\r\ncontent-length: ${f.length}\r\n\r\n`);
      res.write(f);
      res.write('\r\n');
      sent++;
    }
  }, 1000 / fps);
  const port = await listen(server, port0);
  return {
    url: `http://127.0.0.1:${port}/video.mjpg`,
    port,
    urlWith: (user, pass) => `http://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}/video.mjpg`,
    sent: () => sent,
    clients: () => clients.size,
    dropClients: () => {
      for (const res of clients) res.destroy();
      clients.clear();
    },
    freeze: (on) => {
      frozen = on;
    },
    stall: (on) => {
      stalled = on;
    },
    close: async () => {
      clearInterval(timer);
      await close(server, sockets);
    },
  };
}

export interface SnapshotServer {
  url: (user?: string, pass?: string) => string;
  /** Requests answered with a JPEG. */
  served: () => number;
  /** Requests refused with 401. */
  refused: () => number;
  close: () => Promise<void>;
}

/**
 * A snapshot URL (`/snapshot.jpg`) that wants HTTP Basic or Digest (MD5, qop auth)
 * authentication, checked here independently of the agent's code.
 */
export async function startSnapshotServer(o: { auth: 'basic' | 'digest'; user: string; pass: string; frames: Buffer[] }): Promise<SnapshotServer> {
  const realm = 'camera';
  const nonces = new Set<string>();
  let served = 0;
  let refused = 0;
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
  const authorised = (req: IncomingMessage): boolean => {
    const h = req.headers.authorization ?? '';
    if (o.auth === 'basic') return h === `Basic ${Buffer.from(`${o.user}:${o.pass}`).toString('base64')}`;
    if (!h.startsWith('Digest ')) return false;
    const p: Record<string, string> = {};
    for (const m of h.slice(7).matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]*))/g)) p[m[1]!] = m[2] ?? m[3] ?? '';
    if (p.username !== o.user || p.realm !== realm || !nonces.has(p.nonce ?? '') || p.uri !== req.url) return false;
    const ha1 = md5(`${o.user}:${realm}:${o.pass}`);
    const ha2 = md5(`GET:${req.url}`);
    return p.response === md5(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`);
  };
  const server = createServer((req, res) => {
    if (!authorised(req)) {
      refused++;
      const nonce = randomBytes(12).toString('hex');
      nonces.add(nonce);
      res.writeHead(401, { 'www-authenticate': o.auth === 'basic' ? `Basic realm="${realm}"` : `Digest realm="${realm}", qop="auth", nonce="${nonce}", opaque="op1", algorithm=MD5` });
      res.end();
      return;
    }
    const f = o.frames[served % o.frames.length]!;
    served++;
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': f.length });
    res.end(f);
  });
  const sockets = track(server);
  const port = await listen(server);
  return {
    url: (user = o.user, pass = o.pass) => `http://${encodeURIComponent(user)}:${encodeURIComponent(pass)}@127.0.0.1:${port}/snapshot.jpg`,
    served: () => served,
    refused: () => refused,
    close: () => close(server, sockets),
  };
}

/** Why the RTSP tests cannot run here (GStreamer's RTSP server for python3), or null. */
export function rtspMissing(): string | null {
  return missingBinary('/usr/lib/x86_64-linux-gnu/girepository-1.0/GstRtspServer-1.0.typelib', 'GStreamer RTSP server (apt-get install gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good)') ?? missingBinary('/usr/bin/python3', 'python3');
}

export interface RtspServer {
  port: number;
  url: (user?: string, pass?: string) => string;
  child: ChildProcess;
  /** SIGKILL the server (the camera's stream dies). */
  kill: () => Promise<void>;
}

/** GStreamer's RTSP server on 127.0.0.1 (port 0: a free one), a moving pattern (or `image`, a PNG, live) at /cam as RTP/JPEG. */
export async function startRtspServer(o: { port?: number; width?: number; height?: number; fps?: number; user?: string; pass?: string; image?: string } = {}): Promise<RtspServer> {
  const script = fileURLToPath(new URL('./rtsp-server.py', import.meta.url));
  const args = [script, '--port', String(o.port ?? 0), '--width', String(o.width ?? 320), '--height', String(o.height ?? 240), '--fps', String(o.fps ?? 10)];
  if (o.user) args.push('--user', o.user, '--password', o.pass ?? '');
  if (o.image) args.push('--image', o.image);
  // The system python: the GStreamer bindings are Debian packages.
  const child = spawn('/usr/bin/python3', ['-u', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const t = setTimeout(() => reject(new Error(`RTSP server did not start: ${err}`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /PORT (\d+)/.exec(out);
      if (m) {
        clearTimeout(t);
        resolve(Number(m[1]));
      }
    });
    child.on('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`RTSP server exited (${code}): ${err}`));
    });
  });
  return {
    port,
    child,
    url: (user, pass) => `rtsp://${user !== undefined ? `${encodeURIComponent(user)}:${encodeURIComponent(pass ?? '')}@` : ''}127.0.0.1:${port}/cam`,
    kill: () =>
      new Promise((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGKILL');
      }),
  };
}
