import { EdgeloopError } from '../../../shared/errors.js';
import { FleetError } from '../../errors.js';

/** Wrap a SQLite failure (disk full, I/O error) as `FLEET_STORAGE_FAILED`; domain errors pass through. */
export function storageError(what: string, err: unknown): Error {
  if (err instanceof EdgeloopError) return err;
  return new FleetError('STORAGE_FAILED', `${what}: ${(err as Error).message}`, { cause: err });
}

/**
 * A repository whose every method turns a SQLite failure (disk full, I/O error, a closed
 * database, a schema it does not know) into `FLEET_STORAGE_FAILED` naming the repository and
 * the operation, with the SQLite error as `cause`; domain errors (thrown by a check inside a
 * transaction) pass through unchanged. A lookup that can miss returns null, so callers tell a
 * miss from a failure without catching anything.
 */
export function guarded<T extends object>(name: string, repo: T): T {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(repo)) {
    if (typeof value !== 'function') {
      out[key] = value;
      continue;
    }
    const fn = value as (...args: unknown[]) => unknown;
    out[key] = (...args: unknown[]): unknown => {
      try {
        return fn(...args);
      } catch (err) {
        throw storageError(`fleet database, ${name}.${key}`, err);
      }
    };
  }
  return out as T;
}
