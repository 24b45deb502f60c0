import { createWriteStream } from 'node:fs';
import { readFile, rename, stat, unlink } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { fileURLToPath } from 'node:url';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { sha256Hex } from '../../shared/ids.js';
import { MANIFEST_FILE } from '../../shared/package/index.js';
import { AgentError } from '../errors.js';
import type { PackageSource } from '../model/store.js';

export interface HttpSourceOptions {
  /** Package base URL: `<base>/manifest.json` and `<base>/files/<path>`. */
  baseUrl: string;
  /** The manifest must hash to this (the fleet pins it in the desired state). */
  manifestSha256: string;
  /** Bearer token of this device (sent to `baseUrl` only, never to a per-file URL). */
  token?: string | undefined;
  /**
   * Per-file URLs overriding `baseUrl` (keys `manifest.json`, `files/<path>`), such as S3
   * presigned GETs. They carry their own authorization, and S3 refuses a request with a
   * second one, so no bearer token goes with them.
   */
  urls?: Readonly<Record<string, string>> | undefined;
  /** Attempts per file (a dropped connection resumes where it stopped). */
  attempts?: number;
  /** Called with bytes received so far, for progress reporting. */
  onProgress?: (path: string, received: number) => void;
  fetchImpl?: typeof fetch;
}

/**
 * `file://` URLs read from the local disk: a model shipped as its own Greengrass component
 * is unarchived on the device, and the desired state points at it there (see
 * greengrass-recipes/README.md). Hashes and signature are verified the same way.
 */
function localFiles(f: typeof fetch): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (!url.startsWith('file:')) return f(input, init);
    try {
      return new Response(await readFile(fileURLToPath(url)), { status: 200 });
    } catch (err) {
      // A file that is not there answers 404, as a server would; anything else (permissions, an
      // I/O error) is the disk failing, and is not disguised as a missing file.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return new Response(null, { status: 404 });
      throw new AgentError('STORAGE_FAILED', `cannot read ${url}: ${(err as Error).message}`, { cause: err, details: { errno: code } });
    }
  }) as typeof fetch;
}

const join = (base: string, path: string): string => `${base.replace(/\/+$/, '')}/${path.split('/').map(encodeURIComponent).join('/')}`;

/**
 * A model package served over HTTP by the fleet. Downloads resume with `Range` after a broken
 * connection (a `.part` file keeps what arrived); the manifest is checked against the pinned
 * sha256 before anything else, and the model store verifies every file hash and the signature
 * after download, so a proxy or a truncated transfer can never install a different package.
 */
export function httpPackageSource(o: HttpSourceOptions): PackageSource {
  const f = localFiles(o.fetchImpl ?? fetch);
  // A package directory on disk (file://) has its files beside manifest.json; over HTTP they are under files/.
  const filesBase = o.baseUrl.startsWith('file:') ? o.baseUrl : join(o.baseUrl, 'files');
  const target = (key: string, fallback: string): { url: string; own: boolean } => {
    const own = o.urls?.[key];
    return own ? { url: own, own: true } : { url: fallback, own: false };
  };
  const headers = (own: boolean, extra: Record<string, string> = {}): Record<string, string> => ({ ...(o.token && !own ? { authorization: `Bearer ${o.token}` } : {}), ...extra });
  return {
    label: o.baseUrl,
    resumeKey: o.manifestSha256,
    async readManifest() {
      const t = target(MANIFEST_FILE, join(o.baseUrl, MANIFEST_FILE));
      const res = await f(t.url, { headers: headers(t.own) });
      if (!res.ok) throw new AgentError('MODEL_PACKAGE_INVALID', `GET ${MANIFEST_FILE} from ${o.baseUrl} answered ${res.status}`);
      const bytes = Buffer.from(await res.arrayBuffer());
      const got = sha256Hex(bytes);
      if (got !== o.manifestSha256) throw new AgentError('MODEL_HASH_MISMATCH', `${MANIFEST_FILE} from ${o.baseUrl} has sha256 ${got.slice(0, 12)}..., the desired state pins ${o.manifestSha256.slice(0, 12)}...`);
      return bytes;
    },
    async fetchFile(path, dest) {
      const part = `${dest}.part`;
      const attempts = o.attempts ?? 5;
      let lastErr: unknown;
      for (let attempt = 1; attempt <= attempts; attempt++) {
        const have = await stat(part).then((s) => s.size, () => 0);
        try {
          const t = target(`files/${path}`, join(filesBase, path));
          const res = await f(t.url, { headers: headers(t.own, have > 0 ? { range: `bytes=${have}-` } : {}) });
          if (res.status === 416) break; // nothing left to fetch: the part file is complete
          if (!res.ok || !res.body) throw new Error(`GET ${path} answered ${res.status}`);
          // 206 continues the part file; a 200 means the server ignored Range: start over.
          const append = res.status === 206 && have > 0;
          let received = append ? have : 0;
          const body = Readable.fromWeb(res.body as unknown as WebReadableStream<Uint8Array>);
          body.on('data', (chunk: Buffer) => {
            received += chunk.length;
            o.onProgress?.(path, received);
          });
          await pipeline(body, createWriteStream(part, { flags: append ? 'a' : 'w' }));
          lastErr = undefined;
          break;
        } catch (err) {
          lastErr = err;
          await new Promise((r) => setTimeout(r, Math.min(5000, 200 * 2 ** attempt)));
        }
      }
      if (lastErr) {
        await unlink(part).catch(() => undefined);
        throw new AgentError('MODEL_PACKAGE_INVALID', `download of ${path} from ${o.baseUrl} failed after ${attempts} attempts: ${(lastErr as Error).message}`, { cause: lastErr });
      }
      await rename(part, dest);
    },
  };
}
