/**
 * Semantic versions (semver.org 2.0.0) as model packages carry them: `MAJOR.MINOR.PATCH` with
 * an optional pre-release. Build metadata (`+...`) is not accepted: it plays no part in
 * precedence, so two packages differing only there could not be told apart. This is the one
 * parser: the wire schema, precedence and bumps all go through it.
 *
 * Numeric parts are bigints, so `18446744073709551616.0.0` compares exactly.
 */
import { sharedError } from './errors.js';

export interface Semver {
  readonly major: bigint;
  readonly minor: bigint;
  readonly patch: bigint;
  /** Pre-release identifiers: numeric ones as bigints, alphanumeric ones as strings. */
  readonly pre: readonly (bigint | string)[];
}

// semver.org §2 and §9: no leading zeros in numbers, identifiers non-empty [0-9A-Za-z-].
const NUM = '0|[1-9]\\d*';
const PRE_ID = `(?:${NUM}|\\d*[A-Za-z-][0-9A-Za-z-]*)`;
/** The whole grammar, for the wire schema (and so the generated OpenAPI). */
export const SEMVER_PATTERN = new RegExp(`^(${NUM})\\.(${NUM})\\.(${NUM})(?:-(${PRE_ID}(?:\\.${PRE_ID})*))?$`);

/** The parts of `v`, or null when it is not a semantic version. */
export function parseSemver(v: string): Semver | null {
  const m = SEMVER_PATTERN.exec(v);
  if (!m) return null;
  const pre = m[4] === undefined ? [] : m[4].split('.').map((id) => (/^\d+$/.test(id) ? BigInt(id) : id));
  return { major: BigInt(m[1] as string), minor: BigInt(m[2] as string), patch: BigInt(m[3] as string), pre };
}

export function formatSemver(s: Semver): string {
  return `${s.major}.${s.minor}.${s.patch}${s.pre.length ? `-${s.pre.join('.')}` : ''}`;
}

function parseOrThrow(v: string): Semver {
  const s = parseSemver(v);
  if (!s) throw sharedError('INPUT_INVALID', `not a semantic version: ${JSON.stringify(v)}`);
  return s;
}

const cmp = <T extends bigint | string>(a: T, b: T): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Precedence (semver.org §11): negative when a < b, 0 when equal, positive when a > b.
 * Throws `INPUT_INVALID` for a string that is not a semantic version.
 */
export function compareSemver(a: string, b: string): number {
  const x = parseOrThrow(a);
  const y = parseOrThrow(b);
  const core = cmp(x.major, y.major) || cmp(x.minor, y.minor) || cmp(x.patch, y.patch);
  if (core !== 0) return core;
  // §11.3: a release ranks above any of its pre-releases.
  if (x.pre.length === 0 || y.pre.length === 0) return x.pre.length === y.pre.length ? 0 : x.pre.length === 0 ? 1 : -1;
  for (let i = 0; i < Math.min(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i] as bigint | string;
    const q = y.pre[i] as bigint | string;
    // §11.4.3: numeric identifiers rank below alphanumeric ones; §11.4.1/2: else by value, ASCII.
    const d = typeof p === typeof q ? cmp(p, q) : typeof p === 'bigint' ? -1 : 1;
    if (d !== 0) return d;
  }
  // §11.4.4: a longer set of identifiers ranks higher when all before are equal.
  return Math.sign(x.pre.length - y.pre.length);
}

/** The next minor release: `1.4.2` and `1.4.0-rc.1` both give `1.5.0`. */
export function bumpMinor(v: string): string {
  const s = parseOrThrow(v);
  return formatSemver({ major: s.major, minor: s.minor + 1n, patch: 0n, pre: [] });
}
