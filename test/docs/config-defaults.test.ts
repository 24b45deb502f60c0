/**
 * The configuration reference states every default and every threshold's range (issue 16):
 * read from the generated docs/configuration.md, checked against the constants the code runs
 * with, so the page cannot keep a number the agent no longer uses.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { OUTLIER_DEFAULT_PRIORITIES, OUTLIER_DEFAULT_RATE_LIMITS, outlierPolicy } from '../../shared/schemas/index.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/configuration.md', import.meta.url)), 'utf8');
/** Table rows: key, type, default, allowed, description. */
const rows = doc
  .split('\n')
  .filter((l) => /^\| `/.test(l))
  .map((l) => l.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim()));

describe('docs/configuration.md', () => {
  it("states the outlier policy's built-in rate limits and priorities, as the agent applies them", () => {
    for (const [reason, l] of Object.entries(OUTLIER_DEFAULT_RATE_LIMITS)) expect(doc).toContain(`\`${reason}\` ${l.per_minute}/min, burst ${l.burst}`);
    for (const [reason, p] of Object.entries(OUTLIER_DEFAULT_PRIORITIES)) expect(doc).toContain(`\`${reason}\` ${p}`);
    // The random slice of normal traffic: 30 a minute, 5 at once.
    expect(OUTLIER_DEFAULT_RATE_LIMITS.random).toEqual({ per_minute: 30, burst: 5 });
    expect(doc).toMatch(/`outlier\.random_sample_rate` .*built in: 30\/min, burst 5/);
  });

  it("states the manifest's own outlier thresholds, where the agent's default is the manifest's", () => {
    const d = outlierPolicy.parse({});
    for (const k of ['min_confidence', 'min_margin', 'max_entropy', 'random_sample_rate'] as const) {
      const row = rows.find((r) => r[0] === `\`outlier.${k}\``);
      expect(row?.[4], k).toContain(`A manifest that does not set it: \`${d[k]}\`.`);
    }
  });

  it('gives every key a default (or says it is required or optional) and every numeric threshold its range', () => {
    expect(rows.length).toBeGreaterThan(100);
    for (const [key, , dflt] of rows) expect(dflt, key).not.toBe('');
    // Numbers without a range: none but an offset, which may be any integer.
    const open = rows.filter(([, type, , allowed]) => /number|integer/.test(type ?? '') && !/object/.test(type ?? '') && allowed === '').map(([key]) => key);
    expect(open).toEqual(['`models[].holdout.offset_ms`']);
  });
});
