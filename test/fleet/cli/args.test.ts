import { describe, expect, it } from 'vitest';
import { filterFromFlags, parseAllowance, parseDuration, parseModelRef, parseTags, planFromFlags } from '../../../fleet/edges/cli/args.js';
import { table } from '../../../fleet/edges/cli/format.js';
import { rolloutPlan } from '../../../fleet/core/rollouts/types.js';

describe('CLI argument parsing', () => {
  it('tags: k=v lists, repeatable, values may hold =', () => {
    expect(parseTags(['site=pit-3,line=2', 'k=a=b'], 'tags')).toEqual({ site: 'pit-3', line: '2', k: 'a=b' });
    expect(parseTags(undefined, 'tags')).toEqual({});
    expect(() => parseTags(['site'], 'tags')).toThrow(/--tags expects key=value/);
  });

  it('model refs split at the last @', () => {
    expect(parseModelRef('pets@1.2.0-rc.1')).toEqual({ name: 'pets', version: '1.2.0-rc.1' });
    for (const bad of ['pets', '@1.0.0', 'pets@', undefined]) expect(() => parseModelRef(bad)).toThrow(/NAME@VERSION/);
  });

  it('durations and allowances', () => {
    expect(parseDuration('90', 'bake')).toBe(90);
    expect(parseDuration('10m', 'bake')).toBe(600);
    expect(parseDuration('1h30m', 'bake')).toBe(5400);
    expect(parseDuration('250ms', 'bake')).toBe(0.25);
    expect(() => parseDuration('10 minutes', 'bake')).toThrow(/--bake expects a duration/);
    expect(parseAllowance('10%', 'canary')).toEqual({ percent: 10 });
    expect(parseAllowance('3', 'canary')).toEqual({ count: 3 });
    for (const bad of ['0%', '101%', '0', '-1', 'x']) expect(() => parseAllowance(bad, 'canary')).toThrow(/--canary/);
  });

  it('a plan from flags keeps the schema defaults for what is not given, and validates', () => {
    expect(planFromFlags({})).toBeUndefined();
    const p = planFromFlags({ canary: '10%', waves: '50%,100%', bake: '10m', shadow: '5%' });
    expect(p).toEqual({
      shadow: { sample_rate: 0.05, bake_s: 600 },
      canary: { devices: { percent: 10 }, bake_s: 600 },
      waves: [
        { devices: { percent: 50 }, bake_s: 600 },
        { devices: { percent: 100 }, bake_s: 600 },
      ],
    });
    expect(rolloutPlan.safeParse(p).success).toBe(true);
    // --canary-prefer: the canary prefers the tagged devices, the rest of the plan stays the default.
    const prefer = rolloutPlan.parse(planFromFlags({ canaryPrefer: ['site=pit-3'] }));
    expect(prefer.canary).toEqual({ ...rolloutPlan.parse({}).canary, prefer: { tag: { site: 'pit-3' } } });
    // Only --bake: the default allowances, each with the bake time.
    const bakeOnly = rolloutPlan.parse(planFromFlags({ bake: '30s' }));
    const defaults = rolloutPlan.parse({});
    expect(bakeOnly.canary).toEqual({ ...defaults.canary, bake_s: 30 });
    expect(bakeOnly.waves.map((w) => w.devices)).toEqual(defaults.waves.map((w) => w.devices));
    expect(() => planFromFlags({ waves: '50%' })).toThrow(/last wave must be 100%/);
  });

  it('sample filters from flags', () => {
    expect(filterFromFlags({ device: 'gw-1', 'labeled-as': 'cat', 'min-confidence': '0.2', from: '1700000000000', to: '2025-01-01T00:00:00Z' })).toEqual({
      device: 'gw-1',
      labeledAs: 'cat',
      minConfidence: 0.2,
      from: 1700000000000,
      to: '2025-01-01T00:00:00Z',
    });
    expect(() => filterFromFlags({ 'max-confidence': 'high' })).toThrow(/--max-confidence expects a number/);
  });

  it('tables align every column but the last', () => {
    expect(table(['ID', 'STATE', 'TAGS'], [['gw-1', 'online', 'site=a'], ['gateway-22', 'offline', '-']])).toEqual(['ID          STATE    TAGS', 'gw-1        online   site=a', 'gateway-22  offline  -']);
  });
});
