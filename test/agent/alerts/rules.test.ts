import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AlertEngine, type AlertObservation } from '../../../shared/alerts/engine.js';
import { anchorOf, insidePolygon } from '../../../shared/alerts/geometry.js';
import { iou } from '../../../shared/inference/detect.js';
import { loadRuleSet, parseRuleSet } from '../../../agent/alerts/load.js';
import { IouTracker } from '../../../shared/alerts/tracker.js';
import { parseAgentConfig } from '../../../agent/config.js';
import { AgentError } from '../../../agent/errors.js';
import type { AlertRule, Detection } from '../../../shared/schemas/index.js';

const MODEL = { name: 'det', version: '1.0.0' };
const FRAME = { width: 1000, height: 500 };
/** The right half of the frame. */
const RIGHT_HALF: Array<[number, number]> = [
  [0.5, 0],
  [1, 0],
  [1, 1],
  [0.5, 1],
];

function engine(rules: unknown[]): AlertEngine {
  const set = parseRuleSet({ rules });
  let n = 0;
  return new AlertEngine(set.rules as AlertRule[], 'dev-1', { now: () => 0 }, () => (n++ % 32) / 32);
}

function frame(ts: number, detections: Detection[], extra: Partial<AlertObservation> = {}): AlertObservation {
  return { model: MODEL, ts, detections, frame: FRAME, ...extra };
}

const person = (x1: number, y1: number, x2: number, y2: number, score = 0.9): Detection => ({ label: 'person', score, box: [x1, y1, x2, y2] });

describe('geometry', () => {
  it('IoU of identical boxes is 1, of disjoint boxes 0, of half-overlapping boxes 1/3', () => {
    expect(iou([0, 0, 10, 10], [0, 0, 10, 10])).toBe(1);
    expect(iou([0, 0, 10, 10], [20, 20, 30, 30])).toBe(0);
    expect(iou([0, 0, 10, 10], [5, 0, 15, 10])).toBeCloseTo(1 / 3, 9);
  });

  it('a point is inside an axis-aligned rectangle polygon exactly when its coordinates are within it', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (x, y) => {
        fc.pre(Math.abs(x - 0.5) > 1e-9 && x < 1 && y > 0 && y < 1);
        expect(insidePolygon([x, y], RIGHT_HALF)).toBe(x > 0.5);
      }),
    );
  });

  it('a concave polygon (an L) leaves out its notch', () => {
    const L: Array<[number, number]> = [
      [0, 0],
      [0.5, 0],
      [0.5, 0.5],
      [1, 0.5],
      [1, 1],
      [0, 1],
    ];
    expect(insidePolygon([0.25, 0.25], L)).toBe(true);
    expect(insidePolygon([0.75, 0.25], L)).toBe(false);
    expect(insidePolygon([0.75, 0.75], L)).toBe(true);
  });

  it('the anchor is the box centre or its bottom centre, relative to the frame', () => {
    expect(anchorOf([100, 100, 300, 400], FRAME, 'center')).toEqual([0.2, 0.5]);
    expect(anchorOf([100, 100, 300, 400], FRAME, 'bottom_center')).toEqual([0.2, 0.8]);
  });
});

describe('IoU tracker', () => {
  it('keeps the identity of an object moving a little between frames, and gives a new one to a new object', () => {
    const t = new IouTracker(1000);
    const [a] = t.update([person(0, 0, 100, 100)], 0);
    const [a2, b] = t.update([person(5, 0, 105, 100), person(500, 0, 600, 100)], 100);
    expect(a2!.track).toBe(a!.track);
    expect(b!.track).not.toBe(a!.track);
  });

  it('does not join objects of different labels, and forgets a track unseen past its ttl', () => {
    const t = new IouTracker(1000);
    const [a] = t.update([person(0, 0, 100, 100)], 0);
    const [car] = t.update([{ label: 'car', score: 0.9, box: [0, 0, 100, 100] }], 100);
    expect(car!.track).not.toBe(a!.track);
    const [again] = t.update([person(0, 0, 100, 100)], 2000);
    expect(again!.track).not.toBe(a!.track);
    expect(t.size).toBe(1);
  });
});

describe('alert rules', () => {
  it('a zone rule fires on a person whose bottom centre is inside, not on one whose centre only is', () => {
    const e = engine([{ id: 'haul-road', model: 'det', labels: ['person'], zone: { polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]] } }]);
    // Box spans y 100..300 of 500: centre y 0.4 (outside), bottom 0.6 (inside).
    const f = e.observe(frame(0, [person(100, 100, 200, 300)]));
    expect(f).toHaveLength(1);
    expect(f[0]!.record).toMatchObject({ rule: 'haul-road', label: 'person', count: 1, severity: 'warning', device_id: 'dev-1', frame: FRAME });
    expect(f[0]!.record.detections[0]!.box).toEqual([100, 100, 200, 300]);
    const centre = engine([{ id: 'haul-road', model: 'det', labels: ['person'], zone: { polygon: [[0, 0.5], [1, 0.5], [1, 1], [0, 1]], anchor: 'center' } }]);
    expect(centre.observe(frame(0, [person(100, 100, 200, 300)]))).toEqual([]);
  });

  it('a zone never matches without the frame size or a box (a classification)', () => {
    const e = engine([{ id: 'z', model: 'det', zone: { polygon: RIGHT_HALF } }]);
    expect(e.observe({ model: MODEL, ts: 0, detections: [person(600, 0, 700, 100)] })).toEqual([]);
    expect(e.observe({ model: MODEL, ts: 0, label: 'person', score: 1 })).toEqual([]);
    expect(e.observe(frame(0, [person(600, 0, 700, 100)]))).toHaveLength(1);
  });

  it('label set, score threshold, model and camera filter what matches', () => {
    const e = engine([{ id: 'r', model: 'det', camera: 'gate', labels: ['person', 'dog'], min_score: 0.6 }]);
    expect(e.observe(frame(0, [person(0, 0, 10, 10, 0.59)], { camera: 'gate' }))).toEqual([]);
    expect(e.observe(frame(0, [{ label: 'car', score: 0.99, box: [0, 0, 10, 10] }], { camera: 'gate' }))).toEqual([]);
    expect(e.observe(frame(0, [person(0, 0, 10, 10)], { camera: 'yard' }))).toEqual([]);
    expect(e.observe({ ...frame(0, [person(0, 0, 10, 10)], { camera: 'gate' }), model: { name: 'other', version: '1.0.0' } })).toEqual([]);
    expect(e.observe(frame(0, [person(0, 0, 10, 10)], { camera: 'gate' }))).toHaveLength(1);
  });

  it('count: fires only when N objects match at once', () => {
    const e = engine([{ id: 'crowd', model: 'det', labels: ['person'], min_count: 3, cooldown_s: 0 }]);
    expect(e.observe(frame(0, [person(0, 0, 10, 10), person(100, 0, 110, 10)]))).toEqual([]);
    const f = e.observe(frame(100, [person(0, 0, 10, 10), person(100, 0, 110, 10), person(200, 0, 210, 10)]));
    expect(f).toHaveLength(1);
    expect(f[0]!.record.count).toBe(3);
  });

  it('dwell: fires when the same object stayed hold_s in the zone, not when objects take turns', () => {
    const rule = { id: 'loiter', model: 'det', labels: ['person'], hold_s: 2, gap_s: 0.5, zone: { polygon: RIGHT_HALF } };
    const e = engine([rule]);
    const fired: number[] = [];
    // One person walking slowly right inside the zone, a frame every 200 ms.
    for (let t = 0; t <= 3000; t += 200) {
      const x = 600 + t / 100;
      if (e.observe(frame(t, [person(x, 100, x + 100, 300)])).length) fired.push(t);
    }
    expect(fired).toEqual([2000]);
    // Different people (far apart: no IoU) each for one second: no one stays two seconds.
    const turns = engine([rule]);
    for (let t = 0; t <= 4000; t += 200) {
      const who = Math.floor(t / 1000);
      expect(turns.observe(frame(t, [person(550 + who * 110, 100, 650 + who * 110, 300)]))).toEqual([]);
    }
  });

  it('a missed frame within gap_s keeps the hold; a longer absence starts it over', () => {
    const e = engine([{ id: 'hold', model: 'det', labels: ['person'], hold_s: 1, gap_s: 0.5 }]);
    expect(e.observe(frame(0, [person(0, 0, 100, 100)]))).toEqual([]);
    expect(e.observe(frame(300, []))).toEqual([]);
    expect(e.observe(frame(1000, [person(0, 0, 100, 100)]))).toEqual([]); // gap of 1 s: starts over at 1000
    expect(e.observe(frame(1300, []))).toEqual([]);
    expect(e.observe(frame(1500, [person(0, 0, 100, 100)]))).toEqual([]); // gap of 0.5 s: still held since 1000
    expect(e.observe(frame(2000, [person(0, 0, 100, 100)]))).toHaveLength(1);
  });

  it('de-duplication: an object that stays is one alert; a new object after the cooldown is another', () => {
    const e = engine([{ id: 'r', model: 'det', labels: ['person'], cooldown_s: 5 }]);
    const a = person(0, 0, 100, 100);
    const b = person(500, 0, 600, 100);
    const fired: number[] = [];
    for (let t = 0; t <= 20_000; t += 500) if (e.observe(frame(t, t >= 2000 ? [a, b] : [a])).length) fired.push(t);
    // a at 0; b arrives at 2000 inside a's cooldown, fires when it ends at 5000; nothing after.
    expect(fired).toEqual([0, 5000]);
  });

  it('cooldown holds per camera: the same rule on two cameras fires on each', () => {
    const e = engine([{ id: 'r', model: 'det', labels: ['person'] }]);
    expect(e.observe(frame(0, [person(0, 0, 10, 10)], { camera: 'a' }))).toHaveLength(1);
    expect(e.observe(frame(0, [person(0, 0, 10, 10)], { camera: 'b' }))).toHaveLength(1);
  });

  it('classification results: the label held for hold_s fires once, with no box', () => {
    const e = engine([{ id: 'jam', model: 'det', labels: ['blocked'], min_score: 0.8, hold_s: 1, severity: 'critical' }]);
    const obs = (ts: number, label: string, score: number): AlertObservation => ({ model: MODEL, ts, label, score, topk: [{ label, index: 0, score }] });
    expect(e.observe(obs(0, 'blocked', 0.9))).toEqual([]);
    expect(e.observe(obs(500, 'blocked', 0.7))).toEqual([]);
    expect(e.observe(obs(1000, 'blocked', 0.95))).toHaveLength(1);
    const f = engine([{ id: 'jam', model: 'det', labels: ['blocked'], min_score: 0.8, severity: 'critical' }]).observe(obs(0, 'blocked', 0.9));
    expect(f[0]!.record).toMatchObject({ severity: 'critical', label: 'blocked', detections: [{ label: 'blocked', score: 0.9 }] });
    expect(f[0]!.record.detections[0]).not.toHaveProperty('box');
  });
});

describe('rule set validation (AGENT_ALERT_RULES_INVALID)', () => {
  it('names every bad key in one error', () => {
    let err: unknown;
    try {
      loadRuleSet(
        parseAgentConfig({
          alerts: {
            rules: [
              { id: 'a', model: 'det', min_score: 2, zone: { polygon: [[0, 0], [1, 2]] }, actions: ['nope'], colour: 'red' },
              { id: 'a', model: 'Bad Name', severity: 'loud' },
            ],
            actions: { siren: { kind: 'mqtt', url: 'mqtt://x', topic: 't', payload: '{{rule}} {{secret}}' }, hook: { kind: 'webhook', url: 'not a url' } },
          },
        }).alerts,
      );
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(AgentError);
    const e = err as AgentError;
    expect(e.code).toBe('AGENT_ALERT_RULES_INVALID');
    for (const key of ['alerts.rules.0.min_score', 'alerts.rules.0.zone.polygon', 'alerts.rules.0: Unrecognized key: "colour"', 'alerts.rules.0.actions.0: no action named nope', 'alerts.rules.1.model', 'alerts.rules.1.severity', 'alerts.actions.siren.payload', 'alerts.actions.hook.url']) expect(e.message).toContain(key);
    expect(e.message).toContain('{{secret}}');
  });

  it('names unknown action references and duplicate rule ids', () => {
    expect(() => parseRuleSet({ rules: [{ id: 'a', model: 'det', actions: ['nope'] }, { id: 'a', model: 'det' }] })).toThrow(/rules\.0\.actions\.0: no action named nope.*rules\.1\.id: duplicate rule id a/);
  });

  it('reads alerts.rules_file (path relative to the config file), and refuses it beside inline rules', () => {
    const dir = mkdtempSync(join(tmpdir(), 'rules-'));
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({ rules: [{ id: 'r', model: 'det', hold_s: -1 }] }));
    const cfg = parseAgentConfig({ alerts: { rules_file: 'rules.json' } }, dir);
    expect(() => loadRuleSet(cfg.alerts)).toThrow(/rules\.json is invalid: rules\.0\.hold_s/);
    writeFileSync(join(dir, 'rules.json'), JSON.stringify({ rules: [{ id: 'r', model: 'det' }] }));
    expect(loadRuleSet(cfg.alerts).rules[0]).toMatchObject({ id: 'r', min_score: 0.5, cooldown_s: 60, severity: 'warning' });
    expect(() => parseAgentConfig({ alerts: { rules_file: 'rules.json', rules: [{}] } }, dir)).toThrow(/set either rules_file or rules/);
    expect(() => loadRuleSet(parseAgentConfig({ alerts: { rules_file: 'missing.json' } }, dir).alerts)).toThrow(/cannot read the alert rule set/);
  });
});

describe('a detector result with its summary classification', () => {
  it('one person counts once: the best-box label and topk a detector result carries are not objects of their own (regression: min_count 2 fired on one box)', () => {
    const e = engine([{ id: 'crowd', model: 'det', labels: ['person'], min_count: 2, cooldown_s: 0 }]);
    const summary = { label: 'person', score: 0.9, topk: [{ label: 'person', index: 0, score: 0.9 }] };
    expect(e.observe(frame(0, [person(10, 10, 50, 90)], summary))).toEqual([]);
    // Two boxes are two people: the positive case of the same rule.
    const fired = e.observe(frame(100, [person(10, 10, 50, 90), person(600, 10, 650, 90)], summary));
    expect(fired.map((f) => [f.record.rule, f.record.count])).toEqual([['crowd', 2]]);
  });
});
