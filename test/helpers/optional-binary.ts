import { existsSync } from 'node:fs';

/**
 * Why a suite that needs an optional system binary cannot run here, or null when it can. A
 * developer machine without the binary skips the suite with this reason (printed); under CI (`CI` set)
 * `.ci/run` installs every such binary, so a missing one throws instead: a skip there would
 * hide that the suite never ran.
 */
export function missingBinary(path: string, reason: string): string | null {
  if (existsSync(path)) return null;
  const why = `${path} not found: ${reason}`;
  if (process.env.CI) throw new Error(`${why}; .ci/run installs it, so under CI this suite fails instead of skipping`);
  // Said where the run is read, so a skipped suite is never silent.
  console.warn(`[skipped] ${why}`);
  return why;
}
