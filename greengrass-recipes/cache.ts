/**
 * The packager's build cache: Node runtimes and npm packages fetched from the registry, and
 * better-sqlite3 compiled per Node ABI and CPU. Each entry is a directory built once, in a
 * temporary sibling, and renamed into place when complete, so an interrupted build never
 * leaves a half entry behind. A lock per entry lets two processes (two vitest workers, or a
 * test run beside `npm run package:greengrass`) share one build instead of doing it twice.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** `$XDG_CACHE_HOME/edgeloop/greengrass`, else `~/.cache/edgeloop/greengrass`. */
export function defaultCacheDir(env: Record<string, string | undefined> = process.env): string {
  return join(env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'edgeloop', 'greengrass');
}

/** Whether the process that wrote a lock is still alive (a lock left by a killed build is taken over). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `fn` while holding the lock `<path>.lock` (a directory: mkdir is atomic). Waits while
 * another live process holds it; a lock whose process died is removed.
 */
async function withLock<T>(path: string, fn: () => Promise<T>, o: { waitMs?: number; onWait?: () => void } = {}): Promise<T> {
  const lock = `${path}.lock`;
  const deadline = Date.now() + (o.waitMs ?? 30 * 60_000);
  let told = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let pid = NaN;
      try {
        pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
      } catch {
        /* the holder has not written its pid yet */
      }
      if (Number.isInteger(pid) && !alive(pid)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${lock} (held by pid ${pid})`);
      if (!told) o.onWait?.();
      told = true;
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

/**
 * The cache entry `dir`, built by `build(tmp)` into a temporary directory the first time and
 * renamed into place. Returns `dir` and whether it was there already.
 */
export async function cachedDir(dir: string, build: (tmp: string) => Promise<void>, o: { onWait?: () => void } = {}): Promise<{ dir: string; hit: boolean }> {
  if (existsSync(dir)) return { dir, hit: true };
  mkdirSync(join(dir, '..'), { recursive: true });
  return withLock(
    dir,
    async () => {
      if (existsSync(dir)) return { dir, hit: true };
      const tmp = `${dir}.tmp-${process.pid}`;
      rmSync(tmp, { recursive: true, force: true });
      mkdirSync(tmp, { recursive: true });
      try {
        await build(tmp);
        renameSync(tmp, dir);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
      return { dir, hit: false };
    },
    o,
  );
}
