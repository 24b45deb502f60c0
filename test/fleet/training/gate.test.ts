import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { gateConfig, judge } from '../../../fleet/core/training/gate.js';
import type { DetectionSetMetrics, GateInput, SetMetrics } from '../../../fleet/core/training/gate.js';

const defaults = gateConfig.parse({});

/** A holdout of `n` examples per class with the given correct counts. */
function set(correct: Record<string, number>, n = 100): SetMetrics {
  const per_class = Object.fromEntries(Object.entries(correct).map(([l, c]) => [l, { count: n, correct: c, accuracy: c / n }]));
  const total = Object.values(correct).reduce((a, b) => a + b, 0);
  const count = n * Object.keys(correct).length;
  return { count, correct: total, accuracy: count ? total / count : 0, per_class };
}
const model = (clean: Record<string, number>, field: Record<string, number>, p95 = 1, fieldN = 100): GateInput => ({ clean: set(clean), field: set(field, fieldN), latency: { p50_ms: p95 / 2, p95_ms: p95 } });
const prod = model({ a: 90, b: 90 }, { a: 50, b: 50 });

describe('evaluation gate', () => {
  it('defaults: +2 field points, -1 clean point, -3 per class, 1.2x p95, field holdout required', () => {
    expect(defaults).toEqual({ field_gain_min_pts: 2, clean_drop_max_pts: 1, class_drop_max_pts: 3, class_min_samples: 34, latency_ratio_max: 1.2, latency_slack_ms: 0, require_field_holdout: true });
  });

  it('field gain: exactly +2 points passes, +1.5 fails with the numbers in the reason', () => {
    expect(judge(model({ a: 90, b: 90 }, { a: 52, b: 52 }), prod, defaults).passed).toBe(true);
    const v = judge(model({ a: 90, b: 90 }, { a: 51, b: 52 }), prod, defaults);
    expect(v.passed).toBe(false);
    expect(v.reasons).toEqual(['field holdout accuracy 50.0% -> 51.5% (+1.50 points; at least +2 needed)']);
  });

  it('clean drop: exactly 1 point down passes, 1.5 fails', () => {
    expect(judge(model({ a: 89, b: 89 }, { a: 60, b: 60 }), prod, defaults).passed).toBe(true);
    const v = judge(model({ a: 88, b: 89 }, { a: 60, b: 60 }), prod, defaults);
    expect(v.passed).toBe(false);
    expect(v.reasons).toEqual(['clean holdout accuracy 90.0% -> 88.5% (down 1.50 points; at most 1 down allowed)']);
  });

  it('class drop: 3 points down in one class passes, 4 fails even when the overall clean accuracy holds', () => {
    expect(judge(model({ a: 87, b: 93 }, { a: 60, b: 60 }), prod, defaults).passed).toBe(true);
    const v = judge(model({ a: 86, b: 94 }, { a: 60, b: 60 }), prod, defaults);
    expect(v.passed).toBe(false);
    expect(v.reasons).toEqual(['class a on the clean holdout: 90.0% -> 86.0% (down 4 points; at most 3 down allowed)']);
  });

  it('class drop on the field holdout counts only classes with class_min_samples examples', () => {
    const p = model({ a: 90, b: 90 }, { a: 5, b: 5 }, 1, 9);
    const c = model({ a: 90, b: 90 }, { a: 4, b: 9 }, 1, 9); // field +16.7 points overall, class a -11.1 points on 9 examples
    expect(judge(c, p, defaults).passed).toBe(true);
    expect(judge(c, p, { ...defaults, class_min_samples: 9 }).reasons).toEqual(['class a on the field holdout: 55.6% -> 44.4% (down 11.11 points; at most 3 down allowed)']);
  });

  it('latency: exactly 1.2x passes, above fails; the slack adds milliseconds', () => {
    expect(judge(model({ a: 90, b: 90 }, { a: 60, b: 60 }, 1.2), prod, defaults).passed).toBe(true);
    const v = judge(model({ a: 90, b: 90 }, { a: 60, b: 60 }, 1.25), prod, defaults);
    expect(v.reasons).toEqual(['p95 latency 1.000 ms -> 1.250 ms (1.25x; at most 1.2x)']);
    expect(judge(model({ a: 90, b: 90 }, { a: 60, b: 60 }, 1.25), prod, { ...defaults, latency_slack_ms: 0.05 }).passed).toBe(true);
  });

  it('an empty field holdout fails by default, passes when not required', () => {
    const c = model({ a: 95, b: 95 }, {}, 1);
    expect(judge(c, prod, defaults).reasons).toEqual(['the field holdout is empty: nothing shows the candidate is better on field data']);
    expect(judge(c, prod, { ...defaults, require_field_holdout: false }).passed).toBe(true);
  });

  it('without a production model only the field-holdout presence is judged', () => {
    const v = judge(model({ a: 10, b: 10 }, { a: 1, b: 1 }, 50), null, defaults);
    expect(v).toMatchObject({ passed: true, baseline: null, reasons: [] });
  });

  it('every failed check, and only those, becomes a reason', () => {
    const v = judge(model({ a: 50, b: 90 }, { a: 50, b: 50 }, 3), prod, defaults);
    expect(v.checks.filter((c) => !c.passed).map((c) => c.name)).toEqual(['field_gain', 'clean_drop', 'class_drop', 'latency']);
    expect(v.reasons).toHaveLength(4);
  });

  it('property: verdict = all thresholds hold, exactly at the configured boundaries', () => {
    const arb = fc.record({
      pc: fc.integer({ min: 0, max: 100 }),
      pf: fc.integer({ min: 0, max: 100 }),
      dc: fc.integer({ min: -10, max: 10 }),
      df: fc.integer({ min: -10, max: 10 }),
      lat: fc.integer({ min: 50, max: 200 }),
      gain: fc.integer({ min: 0, max: 5 }),
      drop: fc.integer({ min: 0, max: 5 }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const cc = Math.min(100, Math.max(0, a.pc + a.dc));
        const cf = Math.min(100, Math.max(0, a.pf + a.df));
        const p = model({ a: a.pc }, { a: a.pf });
        const c = model({ a: cc }, { a: cf }, a.lat / 100);
        const cfg = { ...defaults, field_gain_min_pts: a.gain, clean_drop_max_pts: a.drop, class_drop_max_pts: 100 };
        const ok = cf - a.pf >= a.gain && a.pc - cc <= a.drop && a.lat <= 120;
        expect(judge(c, p, cfg).passed).toBe(ok);
      }),
      { numRuns: 1000 },
    );
  });

  describe('detectors: the same rules on mAP', () => {
    /** A detector's holdout: mAP@0.5, mAP@0.5:0.95 and per class [true boxes, AP@0.5]. */
    const det = (map50: number, classes: Record<string, [number, number]>, images = 50): DetectionSetMetrics => ({
      task: 'detection',
      count: images,
      boxes: Object.values(classes).reduce((n, [c]) => n + c, 0),
      map50,
      map50_95: map50 / 2,
      per_class: Object.fromEntries(Object.entries(classes).map(([l, [c, ap]]) => [l, { count: c, ap50: ap, ap50_95: ap / 2 }])),
    });
    const detModel = (clean: DetectionSetMetrics, field: DetectionSetMetrics): GateInput => ({ clean, field, latency: { p50_ms: 1, p95_ms: 1 } });
    const base = detModel(det(0.8, { person: [100, 0.8], truck: [20, 0.8] }), det(0.3, { person: [80, 0.3], truck: [20, 0.3] }));

    it('compares mAP@0.5 by default: field gain, clean drop and per-class AP, the reasons naming the metric', () => {
      expect(judge(detModel(det(0.8, { person: [100, 0.8], truck: [20, 0.8] }), det(0.5, { person: [80, 0.5], truck: [20, 0.5] })), base, defaults).passed).toBe(true);
      const v = judge(detModel(det(0.78, { person: [100, 0.7], truck: [20, 0.1] }), det(0.31, { person: [80, 0.3], truck: [20, 0.3] })), base, defaults);
      expect(v.reasons).toEqual([
        'field holdout mAP@0.5 30.0% -> 31.0% (+1 points; at least +2 needed)',
        'clean holdout mAP@0.5 80.0% -> 78.0% (down 2 points; at most 1 down allowed)',
        // truck has 20 true boxes, under class_min_samples (34): not judged per class.
        'class person on the clean holdout (AP@0.5): 80.0% -> 70.0% (down 10 points; at most 3 down allowed)',
      ]);
    });

    it('metric map50_95 compares mAP@0.5:0.95; a metric that does not fit the task is a configuration error', () => {
      const v = judge(detModel(det(0.8, { person: [100, 0.8] }), det(0.35, { person: [80, 0.35] })), base, gateConfig.parse({ metric: 'map50_95' }));
      expect(v.checks.find((c) => c.name === 'field_gain')).toMatchObject({ passed: true, value: 2.5, detail: 'field holdout mAP@0.5:0.95 15.0% -> 17.5% (+2.50 points; at least +2 needed)' });
      expect(() => judge(base, base, gateConfig.parse({ metric: 'accuracy' }))).toThrow(expect.objectContaining({ code: 'FLEET_TRAINING_CONFIG_INVALID' }));
      expect(() => judge(prod, prod, gateConfig.parse({ metric: 'map50' }))).toThrow(/the model is a classifier/);
    });
  });
});
