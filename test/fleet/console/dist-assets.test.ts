import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { CONSOLE_ASSETS, copyConsoleAssets } from '../../../fleet/edges/console/copy-assets.js';
import type { ConsoleApp } from '../../../fleet/edges/console/index.js';
import type { FleetContext } from '../../../fleet/app/context.js';
import { tempDir } from '../../helpers/packages.js';

const SOURCE_STATIC = fileURLToPath(new URL('../../../fleet/edges/console/static', import.meta.url));

describe('console assets in a dist-only install', () => {
  it('are served from dist/ once the build copied them, with no fleet/ sources around', async () => {
    // The compiled console where a dist-only install has it, away from the source tree but
    // inside the checkout's node_modules, so its dependencies (left external) resolve.
    const t = { dir: mkdtempSync(join(fileURLToPath(new URL('../../../node_modules/', import.meta.url)), '.edgeloop-dist-console-')) };
    try {
      const outfile = join(t.dir, 'dist', 'fleet', 'console', 'index.mjs');
      await build({ entryPoints: [fileURLToPath(new URL('../../../fleet/edges/console/index.ts', import.meta.url))], outfile, bundle: true, platform: 'node', format: 'esm', logLevel: 'silent', packages: 'external' });
      const load = async (v: number): Promise<{ createConsole(ctx: FleetContext): ConsoleApp }> => (await import(`${pathToFileURL(outfile).href}?v=${v}`)) as { createConsole(ctx: FleetContext): ConsoleApp };
      // Without the build's copy step the assets are missing (what a plain tsc build shipped).
      await expect(load(1).then((m) => m.createConsole({} as FleetContext))).rejects.toThrow(/console assets .* missing/);
      // The build step (package.json "build" runs it after tsc).
      const copied = copyConsoleAssets(SOURCE_STATIC, join(t.dir, 'dist', 'fleet', 'console', 'static'));
      expect(copied).toHaveLength(CONSOLE_ASSETS.length);
      const app = (await load(2)).createConsole({} as FleetContext);
      const server = createServer((req, res) => {
        const url = new URL(req.url ?? '/', 'http://x');
        app.handle(req, res, url, { principal: { kind: 'anonymous' } as never }).catch((err: unknown) => res.writeHead(500).end(String(err)));
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      try {
        const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
        for (const name of CONSOLE_ASSETS) {
          const res = await fetch(`${base}/console/static/${name}`);
          expect(res.status).toBe(200);
          expect(Buffer.from(await res.arrayBuffer()).equals(readFileSync(join(SOURCE_STATIC, name)))).toBe(true);
        }
      } finally {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    } finally {
      rmSync(t.dir, { recursive: true, force: true });
    }
  });

  it('the copy step names a missing asset', () => {
    const t = tempDir('edgeloop-dist-console-');
    try {
      expect(() => copyConsoleAssets(t.dir, join(t.dir, 'out'))).toThrow(/console asset .*console\.js is missing/);
    } finally {
      t.cleanup();
    }
  });
});
