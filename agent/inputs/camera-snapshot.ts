/**
 * HTTP cameras through Node's fetch: snapshot polling (one JPEG per GET at the camera's rate)
 * and the authenticated GET of an MJPEG stream. The URL's user and password are taken out of
 * it and sent as HTTP Basic or Digest authentication (RFC 7617, RFC 7616: MD5, MD5-sess,
 * SHA-256; qop auth), whichever the camera asks for in its 401: they never reach a command
 * line.
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
 * GETs of one camera URL with its credentials: Basic first (pre-emptively), Digest once the
 * camera asks for it (the challenge is kept and its nonce count advanced per request; a
 * `stale` nonce is renewed).
 */
export class AuthenticatedGet {
  readonly target: URL;
  private readonly creds: { username: string; password: string } | null;
  private readonly uri: string;
  private digest: DigestChallenge | null = null;

  constructor(url: string) {
    this.creds = urlCredentials(url);
    this.target = new URL(url);
    this.target.username = '';
    this.target.password = '';
    this.uri = `${this.target.pathname}${this.target.search}`;
  }

  private header(): string | undefined {
    if (!this.creds) return undefined;
    if (this.digest) {
      this.digest.nc++;
      return digestAuthorization(this.digest, this.creds.username, this.creds.password, 'GET', this.uri, randomBytes(8).toString('hex'));
    }
    return `Basic ${Buffer.from(`${this.creds.username}:${this.creds.password}`).toString('base64')}`;
  }

  /** The response once its status is 2xx (the body not read); anything else throws a message without credentials. */
  async get(signal: AbortSignal, retried = false): Promise<Response> {
    const auth = this.header();
    const res = await fetch(this.target, { headers: auth ? { authorization: auth } : {}, signal, redirect: 'error' });
    if (res.ok) return res;
    await res.body?.cancel();
    const challenge = res.headers.get('www-authenticate') ?? '';
    if (res.status === 401 && this.creds && !retried && /^\s*digest\s/i.test(challenge)) {
      const p = parseChallenge(challenge);
      const renew = !this.digest || /^true$/i.test(p.stale ?? '');
      if (renew) {
        this.digest = { realm: p.realm ?? '', nonce: p.nonce ?? '', qop: p.qop, opaque: p.opaque, algorithm: p.algorithm ?? 'MD5', nc: 0 };
        return this.get(signal, true);
      }
    }
    throw new Error(`camera answered HTTP ${res.status}${res.status === 401 ? ' (credentials refused)' : ''}`);
  }
}

/** An error's message with its cause (fetch puts the socket error there). */
export function fetchFailure(err: unknown): string {
  const e = err as Error & { cause?: { message?: string } };
  return `${e.message}${e.cause ? ` (${e.cause.message ?? String(e.cause)})` : ''}`;
}

/**
 * Poll a snapshot URL: a GET every 1/fps seconds (or as soon as the previous one ended when
 * slower). Any failure (refused, timeout, 401 with wrong credentials, not a JPEG) ends the
 * source with a redacted reason; the camera reconnects with backoff.
 */
export function startSnapshots(input: SnapshotInput, sink: FrameSink): FrameSource {
  const secrets = urlSecrets(input.url);
  const http = new AuthenticatedGet(input.url);
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

  const get = async (): Promise<Buffer> => {
    const res = await http.get(AbortSignal.any([controller.signal, AbortSignal.timeout(input.timeoutMs)]));
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
      end(`snapshot failed: ${fetchFailure(err)}`);
      return;
    }
    if (!stopped) timer = setTimeout(() => void poll(), Math.max(0, periodMs - (performance.now() - started)));
  };
  void poll();
  return { stop: () => end('stopped') };
}
