/**
 * Waiting for a condition on real parts (a broker, sockets, child processes, files), where
 * there is no event to await; unit tests use fake timers instead.
 *
 * Deadline-based: the limit runs from the call whatever each check costs (a slow async check
 * does not stretch it), and the condition is checked once more when the deadline comes.
 */
import { setTimeout as sleep } from 'node:timers/promises';

export type Condition = () => boolean | Promise<boolean>;

/** True once `cond` holds, false if it still does not after `timeoutMs` (for a bench that reports a timeout as a result). */
export async function waitFor(cond: Condition, timeoutMs: number, everyMs = 10): Promise<boolean> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    await sleep(Math.min(everyMs, left));
  }
}

/**
 * Resolves once `cond` holds; rejects after `timeoutMs` with an error naming what it waited for:
 * `what`, or else the condition's own source text. A condition that throws rejects at once.
 */
export async function waitUntil(cond: Condition, timeoutMs = 5000, what?: string, everyMs = 10): Promise<void> {
  if (await waitFor(cond, timeoutMs, everyMs)) return;
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what ?? cond.toString().replace(/\s+/g, ' ').slice(0, 200)}`);
}
