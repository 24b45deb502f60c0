import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/**
 * Start a worker from a module next to the caller. From compiled JS (dist/) that is a .js
 * file. From TypeScript sources (tests, benchmarks) the worker registers tsx's loader first:
 * loader hooks of the parent thread do not reach workers on Node 20.
 */
export function startWorker(callerUrl: string, baseName: string): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${baseName}.js`, callerUrl));
  const entry = new URL(`./${baseName}.ts`, callerUrl).href;
  const api = pathToFileURL(join(dirname(createRequire(callerUrl).resolve('tsx/esm/api')), 'index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true });
}
