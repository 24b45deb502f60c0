import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { hashUnit, holdoutRule, ruleSays, splitField } from '../../../fleet/core/labels/split.js';
import type { FieldSplit, HoldoutRule } from '../../../fleet/core/labels/split.js';

const sampleArb = fc.record({ sample_id: fc.string({ minLength: 1, maxLength: 12 }), captured_at_ms: fc.integer({ min: 0, max: 10 ** 12 }) });
const samplesArb = fc.uniqueArray(sampleArb, { selector: (s) => s.sample_id, maxLength: 60 });
const ruleArb: fc.Arbitrary<HoldoutRule> = fc.oneof(
  fc.record({ kind: fc.constant('hash' as const), fraction: fc.double({ min: 0, max: 1, noNaN: true }), salt: fc.string({ maxLength: 6 }) }),
  fc
    .record({ kind: fc.constant('time' as const), period_ms: fc.integer({ min: 1, max: 10 ** 7 }), holdout_ms: fc.integer({ min: 0, max: 10 ** 7 }), offset_ms: fc.integer({ min: -(10 ** 7), max: 10 ** 7 }) })
    .map((r) => ({ ...r, holdout_ms: Math.min(r.holdout_ms, r.period_ms) })),
);

describe('field holdout split', () => {
  it('is deterministic and independent of the order samples arrive in', () => {
    fc.assert(
      fc.property(samplesArb, ruleArb, (samples, rule) => {
        const a = splitField(samples, rule);
        const b = splitField([...samples].reverse(), rule);
        expect([...a.entries()].sort()).toEqual([...b.entries()].sort());
      }),
    );
  });

  it('places every sample in exactly one split (train and holdout are disjoint and cover all)', () => {
    fc.assert(
      fc.property(samplesArb, ruleArb, (samples, rule) => {
        const placed = splitField(samples, rule);
        const train = samples.filter((s) => placed.get(s.sample_id) === 'train').map((s) => s.sample_id);
        const hold = samples.filter((s) => placed.get(s.sample_id) === 'field_holdout').map((s) => s.sample_id);
        expect(train.filter((id) => hold.includes(id))).toEqual([]);
        expect(train.length + hold.length).toBe(samples.length);
      }),
    );
  });

  it('never moves a sample between splits when new samples arrive, even under a changed rule', () => {
    fc.assert(
      fc.property(samplesArb, samplesArb, ruleArb, ruleArb, (first, later, rule1, rule2) => {
        const v1 = splitField(first, rule1);
        const ids = new Set(first.map((s) => s.sample_id));
        const v2 = splitField([...first, ...later.filter((s) => !ids.has(s.sample_id))], rule2, v1);
        for (const [id, split] of v1) expect(v2.get(id)).toBe(split);
        // The same rule with no memory at all gives the same placements too: the rule is per sample.
        const again = splitField([...first, ...later.filter((s) => !ids.has(s.sample_id))], rule1);
        for (const [id, split] of v1) expect(again.get(id)).toBe(split);
      }),
    );
  });

  it('hash rule: fraction 0 holds nothing out, fraction 1 everything, and about the fraction in between', () => {
    const ids = Array.from({ length: 4000 }, (_, i) => ({ sample_id: `s-${i}`, captured_at_ms: i }));
    const count = (fraction: number): number => [...splitField(ids, { kind: 'hash', fraction, salt: 'x' }).values()].filter((s) => s === 'field_holdout').length;
    expect(count(0)).toBe(0);
    expect(count(1)).toBe(4000);
    const fifth = count(0.2);
    expect(fifth).toBeGreaterThan(4000 * 0.17);
    expect(fifth).toBeLessThan(4000 * 0.23);
    // Another salt is another (independent) slice.
    const other = splitField(ids, { kind: 'hash', fraction: 0.2, salt: 'y' });
    const same = splitField(ids, { kind: 'hash', fraction: 0.2, salt: 'x' });
    const both = ids.filter((s) => other.get(s.sample_id) === 'field_holdout' && same.get(s.sample_id) === 'field_holdout').length;
    expect(both).toBeLessThan(fifth * 0.35);
  });

  it('hash units are in [0, 1)', () => {
    fc.assert(fc.property(fc.string(), fc.string(), (id, salt) => {
      const u = hashUnit(id, salt);
      expect(u).toBeGreaterThanOrEqual(0);
      expect(u).toBeLessThan(1);
    }));
  });

  it('time rule: the first holdout_ms of each period is held out, boundaries included/excluded exactly', () => {
    const rule = holdoutRule.parse({ kind: 'time', period_ms: 3_600_000, holdout_ms: 720_000, offset_ms: 0 });
    const at = (ms: number): FieldSplit => ruleSays({ sample_id: 'a', captured_at_ms: ms }, rule);
    expect(at(0)).toBe('field_holdout');
    expect(at(719_999)).toBe('field_holdout');
    expect(at(720_000)).toBe('train');
    expect(at(3_599_999)).toBe('train');
    expect(at(3_600_000)).toBe('field_holdout');
    // Before the offset (negative phase) wraps the same way.
    const shifted = holdoutRule.parse({ kind: 'time', period_ms: 1000, holdout_ms: 100, offset_ms: 500 });
    expect(ruleSays({ sample_id: 'a', captured_at_ms: 450 }, shifted)).toBe('train');
    expect(ruleSays({ sample_id: 'a', captured_at_ms: 550 }, shifted)).toBe('field_holdout');
    expect(ruleSays({ sample_id: 'a', captured_at_ms: -450 }, shifted)).toBe('field_holdout');
  });

  it('refuses a rule that is not one of the two kinds or out of range', () => {
    expect(holdoutRule.safeParse({ kind: 'hash', fraction: 1.5 }).success).toBe(false);
    expect(holdoutRule.safeParse({ kind: 'time', period_ms: 0, holdout_ms: 0 }).success).toBe(false);
    expect(holdoutRule.safeParse({ kind: 'random' }).success).toBe(false);
  });
});
