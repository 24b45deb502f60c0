import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

/**
 * A minimal HTTP server for model packages, as the fleet serves them: `<base>/manifest.json`
 * and `<base>/files/<path>`, with Range support. `dropOnce` cuts the connection half-way
 * through the first download of a file, to exercise resumption. `hold` keeps every download
 * of a file waiting until `release()` (`held` resolves when the first one arrives).
 */
export async function servePackages(
  dirs: Record<string, string>,
  opts: { token?: string; dropOnce?: string; hold?: string } = {},
): Promise<{ url: string; requests: string[]; close: () => Promise<void>; server: Server; held: Promise<void>; release: () => void }> {
  const requests: string[] = [];
  let dropped = false;
  let arrived: () => void = () => undefined;
  const held = new Promise<void>((r) => (arrived = r));
  let release: () => void = () => undefined;
  const released = new Promise<void>((r) => (release = r));
  const server = createServer(async (req, res) => {
    if (opts.hold && req.url?.endsWith(`/files/${opts.hold}`)) {
      arrived();
      await released;
    }
    requests.push(`${req.method} ${req.url} ${req.headers.range ?? ''}`.trim());
    if (opts.token && req.headers.authorization !== `Bearer ${opts.token}`) {
      res.writeHead(401).end();
      return;
    }
    const m = /^\/pkgs\/([^/]+)\/(manifest\.json|files\/(.+))$/.exec(decodeURIComponent(req.url ?? ''));
    const dir = m ? dirs[m[1]!] : undefined;
    if (!m || !dir) {
      res.writeHead(404).end();
      return;
    }
    let body: Buffer;
    try {
      body = readFileSync(join(dir, m[3] ?? 'manifest.json'));
    } catch {
      res.writeHead(404).end();
      return;
    }
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const start = range ? Number(range[1]) : 0;
    if (start >= body.length && range) {
      res.writeHead(416).end();
      return;
    }
    const part = body.subarray(start);
    res.writeHead(range ? 206 : 200, { 'content-length': part.length, ...(range ? { 'content-range': `bytes ${start}-${body.length - 1}/${body.length}` } : {}) });
    if (opts.dropOnce && m[3] === opts.dropOnce && !dropped) {
      dropped = true;
      // Let the first half reach the client before the connection dies.
      res.write(part.subarray(0, Math.floor(part.length / 2)), () => setTimeout(() => res.destroy(), 100));
      return;
    }
    res.end(part);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/pkgs`, requests, server, held, release, close: () => new Promise<void>((r) => server.close(() => r())) };
}
