import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextVersion } from '../../fleet/app/training/steps/train.js';
import { semver } from '../../shared/schemas/common.js';
import { bumpMinor, compareSemver, formatSemver, parseSemver } from '../../shared/semver.js';

// Few distinct values, so generated pairs often tie part by part and reach the pre-release rules.
const num = fc.constantFrom('0', '1', '2', '9', '10', '11', '18446744073709551615', '18446744073709551616');
const preId = fc.oneof(fc.constantFrom('0', '1', '2', '10', '11'), fc.constantFrom('alpha', 'beta', 'rc', 'a-1', '-', '0a', 'A', 'Z9'));
const version = fc
  .tuple(num, num, num, fc.array(preId, { maxLength: 3 }))
  .map(([a, b, c, pre]) => `${a}.${b}.${c}${pre.length ? `-${pre.join('.')}` : ''}`);
const sign = (n: number): number => Math.sign(n) || 0;

describe('semantic versions (one parser: schema, precedence, bumps)', () => {
  it('precedence follows the examples of semver.org §11', () => {
    const chain = ['1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '2.0.0', '2.1.0', '2.1.1', '10.0.0'];
    for (let i = 0; i + 1 < chain.length; i++) {
      expect(compareSemver(chain[i]!, chain[i + 1]!), `${chain[i]} < ${chain[i + 1]}`).toBeLessThan(0);
      expect(compareSemver(chain[i + 1]!, chain[i]!)).toBeGreaterThan(0);
    }
  });

  it('compares numbers exactly past 2^53 (regression: Number() made 2^64 and 2^64-1 equal)', () => {
    expect(compareSemver('18446744073709551616.0.0', '18446744073709551615.0.0')).toBeGreaterThan(0);
    expect(compareSemver('1.0.0-9007199254740993', '1.0.0-9007199254740992')).toBeGreaterThan(0);
  });

  it('parse and format round-trip, and the wire schema accepts exactly what parses', () => {
    fc.assert(fc.property(version, (v) => formatSemver(parseSemver(v)!) === v));
    const noise = fc.string({ unit: fc.constantFrom('0', '1', '9', '.', '-', '+', 'a', 'Z', ' ', 'v'), maxLength: 14 });
    fc.assert(fc.property(fc.oneof(version, noise), (s) => semver.safeParse(s).success === (parseSemver(s) !== null)));
    for (const bad of ['01.0.0', '1.02.0', '1.0', '1.0.0-', '1.0.0-a..b', '1.0.0-01', '1.0.0+build.1', ' 1.0.0', 'v1.0.0', '1.0.0-ä']) {
      expect(parseSemver(bad), bad).toBeNull();
      expect(semver.safeParse(bad).success, bad).toBe(false);
    }
  });

  it('precedence is a total order consistent with parse: equal only when the strings are equal', () => {
    fc.assert(fc.property(version, version, (a, b) => sign(compareSemver(a, b)) === -sign(compareSemver(b, a)) && (compareSemver(a, b) === 0) === (a === b)));
    fc.assert(
      fc.property(version, version, version, (a, b, c) => {
        const [x, y, z] = [a, b, c].sort(compareSemver) as [string, string, string];
        return compareSemver(x, y) <= 0 && compareSemver(y, z) <= 0 && compareSemver(x, z) <= 0;
      }),
    );
  });

  it('orders the release core as numbers, and a release above each of its pre-releases', () => {
    fc.assert(
      fc.property(fc.tuple(fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: 3n })), fc.tuple(fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: 3n }), fc.bigInt({ min: 0n, max: 3n })), (p, q) => {
        const tuple = p[0] !== q[0] ? (p[0] < q[0] ? -1 : 1) : p[1] !== q[1] ? (p[1] < q[1] ? -1 : 1) : p[2] !== q[2] ? (p[2] < q[2] ? -1 : 1) : 0;
        return sign(compareSemver(p.join('.'), q.join('.'))) === tuple;
      }),
    );
    fc.assert(fc.property(version, (v) => compareSemver(v.split('-')[0]!, v) >= 0));
  });

  it('a bump is greater than the version and than every version of the same minor', () => {
    fc.assert(
      fc.property(version, version, (v, w) => {
        const next = bumpMinor(v);
        const s = parseSemver(v)!;
        const sameMinor = formatSemver({ ...parseSemver(w)!, major: s.major, minor: s.minor });
        return parseSemver(next)!.pre.length === 0 && compareSemver(next, v) > 0 && compareSemver(next, sameMinor) > 0;
      }),
    );
    expect(bumpMinor('1.4.0-rc.1')).toBe('1.5.0');
    expect(bumpMinor('1.9.3')).toBe('1.10.0');
  });

  it('nextVersion is above every version of the model (regression: it parsed versions apart from compareSemver)', () => {
    expect(nextVersion([])).toBe('1.0.0');
    expect(nextVersion(['1.9.0', '1.10.0', '1.2.0'])).toBe('1.11.0');
    fc.assert(fc.property(fc.array(version, { minLength: 1, maxLength: 6 }), (vs) => vs.every((v) => compareSemver(nextVersion(vs), v) > 0)));
  });

  it('refuses what is not a semantic version with a coded error', () => {
    expect(() => compareSemver('1.0', '1.0.0')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID', message: 'not a semantic version: "1.0"' }));
    expect(() => bumpMinor('latest')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
  });
});
