import { Worker } from 'node:worker_threads';

/**
 * Start a worker from a module next to the caller. From compiled JS (dist/) that is a .js
 * file; from TypeScript sources (tests, benchmarks, `tsx`) the worker needs the tsx loader.
 */
export function startWorker(callerUrl: string, baseName: string): Worker {
  const fromTs = callerUrl.endsWith('.ts');
  const url = new URL(`./${baseName}.${fromTs ? 'ts' : 'js'}`, callerUrl);
  return new Worker(url, fromTs ? { execArgv: [...process.execArgv.filter((a) => !a.startsWith('--inspect')), '--import', 'tsx'] } : {});
}
