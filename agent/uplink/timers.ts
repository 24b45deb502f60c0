/**
 * Timer functions, passed in (docs/conventions.md rule 2) so reconnect backoff, lease polling and rate
 * limiting run under fake time in tests.
 */
export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The real timers. Wrapped rather than referenced so vitest's fake timers are picked up at call time. */
export const systemTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};
