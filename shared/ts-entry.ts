/**
 * Starting code from TypeScript sources or from compiled JS, written once for every worker
 * thread and child process the project starts. Compiled (dist/), an entry is the `.js` file
 * beside its caller. From sources (tests, benchmarks, `node --import tsx`), tsx's loader has to
 * be registered first in the new thread or process: on Node 20 the parent's loader hooks do not
 * reach workers, and a child process gets only the flags it is given.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';

/** Whether the module at `moduleUrl` runs from TypeScript sources (under tsx) rather than compiled JS. */
export function runsFromSource(moduleUrl: string): boolean {
  return moduleUrl.endsWith('.ts');
}

/** Starts a worker thread from the module `baseName` next to the caller (`import.meta.url`). */
export function startWorker(callerUrl: string, baseName: string): Worker {
  if (!runsFromSource(callerUrl)) return new Worker(new URL(`./${baseName}.js`, callerUrl));
  const entry = new URL(`./${baseName}.ts`, callerUrl).href;
  const api = pathToFileURL(join(dirname(createRequire(callerUrl).resolve('tsx/esm/api')), 'index.mjs')).href;
  const boot = `import(${JSON.stringify(api)}).then((m) => { m.register(); return import(${JSON.stringify(entry)}); });`;
  return new Worker(boot, { eval: true });
}

/**
 * Node flags that let a child process run a TypeScript entry: tsx's loader, resolved from the
 * caller, so the child finds it whatever its working directory.
 */
export function tsxNodeArgs(callerUrl: string): string[] {
  return ['--import', pathToFileURL(createRequire(callerUrl).resolve('tsx')).href];
}
