/**
 * Snapshot cameras: one JPEG per HTTP GET, polled at the camera's rate with Node's fetch.
 * The URL's user and password are taken out of it and sent as HTTP Basic or Digest
 * authentication (RFC 7617, RFC 7616: MD5, MD5-sess, SHA-256; qop auth), whichever the
 * camera asks for in its 401.
 */
import { createHash, randomBytes } from 'node:crypto';
import { redactText, urlCredentials, urlSecrets } from './camera-config.js';
import type { FrameSink, FrameSource } from './camera-ffmpeg.js';

export interface SnapshotInput {
  url: string;
  fps: number;
  timeoutMs: number;
  maxFrameBytes: number;
}

interface DigestChallenge {
  realm: string;
  nonce: string;
  qop?: string | undefined;
  opaque?: string | undefined;
  algorithm: string;
  nc: number;
}

/** `Digest realm="x", nonce="y", qop="auth"` -> its parameters (lower-case keys). */
export function parseChallenge(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.replace(/^\s*\w+\s+/, '').matchAll(/([a-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/gi)) out[m[1]!.toLowerCase()] = (m[2] ?? m[3] ?? '').replace(/\\(.)/g, '$1');
  return out;
}

/** The `Authorization: Digest ...` value for one request (RFC 7616 section 3.4). */
export function digestAuthorization(c: DigestChallenge, user: string, pass: string, method: string, uri: string, cnonce: string): string {
  const alg = c.algorithm.toUpperCase();
  const hashName = alg.startsWith('SHA-256') ? 'sha256' : 'md5';
  const h = (s: string): string => createHash(hashName).update(s).digest('hex');
  let ha1 = h(`${user}:${c.realm}:${pass}`);
  if (alg.endsWith('-SESS')) ha1 = h(`${ha1}:${c.nonce}:${cnonce}`);
  const ha2 = h(`${method}:${uri}`);
  const qop = c.qop?.split(',').map((q) => q.trim()).includes('auth') ? 'auth' : undefined;
  const nc = c.nc.toString(16).padStart(8, '0');
  const response = qop ? h(`${ha1}:${c.nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : h(`${ha1}:${c.nonce}:${ha2}`);
  const q = (s: string): string => `"${s.replace(/(["\\])/g, '\\$1')}"`;
  return [
    `Digest username=${q(user)}`,
    `realm=${q(c.realm)}`,
    `nonce=${q(c.nonce)}`,
    `uri=${q(uri)}`,
    `algorithm=${c.algorithm}`,
    `response=${q(response)}`,
    ...(c.opaque !== undefined ? [`opaque=${q(c.opaque)}`] : []),
    ...(qop ? [`qop=${qop}`, `nc=${nc}`, `cnonce=${q(cnonce)}`] : []),
  ].join(', ');
}

/**
 * Poll a snapshot URL: a GET every 1/fps seconds (or as soon as the previous one ended when
 * slower). Any failure (refused, timeout, 401 with wrong credentials, not a JPEG) ends the
 * source with a redacted reason; the camera reconnects with backoff.
 */
export function startSnapshots(input: SnapshotInput, sink: FrameSink): FrameSource {
  const creds = urlCredentials(input.url);
  const secrets = urlSecrets(input.url);
  const target = new URL(input.url);
  target.username = '';
  target.password = '';
  const uri = `${target.pathname}${target.search}`;
  let digest: DigestChallenge | null = null;
  let stopped = false;
  let timer: NodeJS.Timeout | null = null;
  const controller = new AbortController();
  const periodMs = 1000 / input.fps;

  const end = (reason: string): void => {
    if (stopped) return;
    stopped = true;
    if (timer) clearTimeout(timer);
    controller.abort();
    sink.onEnd(redactText(reason, secrets));
  };

  const authHeader = (): string | undefined => {
    if (!creds) return undefined;
    if (digest) {
      digest.nc++;
      return digestAuthorization(digest, creds.username, creds.password, 'GET', uri, randomBytes(8).toString('hex'));
    }
    return `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
  };

  const get = async (retried = false): Promise<Buffer> => {
    const auth = authHeader();
    const res = await fetch(target, {
      headers: auth ? { authorization: auth } : {},
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(input.timeoutMs)]),
      redirect: 'error',
    });
    if (res.status === 401 && creds && !retried) {
      const challenge = res.headers.get('www-authenticate') ?? '';
      await res.body?.cancel();
      if (/^\s*digest\s/i.test(challenge)) {
        const p = parseChallenge(challenge);
        digest = { realm: p.realm ?? '', nonce: p.nonce ?? '', qop: p.qop, opaque: p.opaque, algorithm: p.algorithm ?? 'MD5', nc: 0 };
        return get(true);
      }
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (res.status === 401 && digest && /stale\s*=\s*"?true/i.test(res.headers.get('www-authenticate') ?? '')) {
        digest = null;
        return get(false);
      }
      throw new Error(`snapshot answered HTTP ${res.status}${res.status === 401 ? ' (credentials refused)' : ''}`);
    }
    const declared = Number(res.headers.get('content-length') ?? 0);
    if (declared > input.maxFrameBytes) {
      await res.body?.cancel();
      throw new Error(`snapshot of ${declared} bytes is over max_frame_bytes`);
    }
    const body = Buffer.from(await res.arrayBuffer());
    if (body.length > input.maxFrameBytes) throw new Error(`snapshot of ${body.length} bytes is over max_frame_bytes`);
    if (body[0] !== 0xff || body[1] !== 0xd8) throw new Error(`snapshot is not a JPEG (content-type ${res.headers.get('content-type') ?? 'none'})`);
    return body;
  };

  const poll = async (): Promise<void> => {
    const started = performance.now();
    try {
      const jpeg = await get();
      if (stopped) return;
      sink.onFrame(jpeg);
    } catch (err) {
      end(`snapshot failed: ${(err as Error).message}${(err as Error).cause ? ` (${String((err as { cause: { message?: string } }).cause.message ?? (err as Error).cause)})` : ''}`);
      return;
    }
    if (!stopped) timer = setTimeout(() => void poll(), Math.max(0, periodMs - (performance.now() - started)));
  };
  void poll();
  return { stop: () => end('stopped') };
}
