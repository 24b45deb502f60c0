/**
 * Build step: tsc compiles TypeScript only, so the console's static files (script, stylesheet,
 * icon) are copied next to the compiled console (`dist/fleet/edges/console/static/`). A dist-only
 * install (no `fleet/` sources) then serves them like a checkout does. Run by `npm run build`
 * as `node dist/fleet/edges/console/copy-assets.js`.
 */
import { cpSync, existsSync, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The console's static files, by name (what index.ts serves). */
export const CONSOLE_ASSETS = ['console.js', 'console.css', 'favicon.svg'] as const;

/** Copy the assets from `from` to `to` (created); throws naming the first missing file. */
export function copyConsoleAssets(from: string, to: string): string[] {
  for (const name of CONSOLE_ASSETS) if (!existsSync(`${from}/${name}`)) throw new Error(`console asset ${from}/${name} is missing`);
  mkdirSync(to, { recursive: true });
  for (const name of CONSOLE_ASSETS) cpSync(`${from}/${name}`, `${to}/${name}`);
  return CONSOLE_ASSETS.map((n) => `${to}/${n}`);
}

// As a script from dist/fleet/edges/console/: the sources are four levels up, at the repo root.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const here = fileURLToPath(new URL('.', import.meta.url));
  const copied = copyConsoleAssets(fileURLToPath(new URL('../../../../fleet/edges/console/static', import.meta.url)), `${here}static`);
  process.stdout.write(`copied ${copied.length} console assets to ${here}static\n`);
}
