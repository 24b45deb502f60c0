import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decideTrigger, driftRunStart, triggerPolicy } from '../../../fleet/core/training/triggers.js';
import type { DriftPoint, TriggerSnapshot } from '../../../fleet/core/training/triggers.js';

const MIN = 60_000;
const off = triggerPolicy.parse({ labels: null, drift: null, schedule: null, min_interval_ms: 0 });
const snap = (o: Partial<TriggerSnapshot> = {}): TriggerSnapshot => ({ now: 100 * MIN, lastRunAt: null, startedAt: 0, newLabels: 0, drift: [], ...o });
const series = (from: number, psis: number[], step = MIN): DriftPoint[] => psis.map((psi, i) => ({ at: from + i * step, psi }));

describe('retrain trigger policy', () => {
  it('defaults: 200 labels, PSI 0.25 on 1 device for 10 min, no schedule, 5 min between automatic runs', () => {
    expect(triggerPolicy.parse({})).toEqual({ labels: { min_new: 200 }, drift: { psi: 0.25, min_devices: 1, for_ms: 10 * MIN }, schedule: null, min_interval_ms: 5 * MIN });
  });

  it('labels: fires at exactly N new labels, not at N - 1', () => {
    const p = { ...off, labels: { min_new: 50 } };
    expect(decideTrigger(snap({ newLabels: 49 }), p).fire).toBe(false);
    const d = decideTrigger(snap({ newLabels: 50 }), p);
    expect(d).toMatchObject({ fire: true, kind: 'labels', kinds: ['labels'] });
    expect(d.reason).toContain('50 new labels');
  });

  it('drift: k devices above the threshold for T; exactly T fires, T - 1 ms does not; equal to the threshold is not above', () => {
    const p = { ...off, drift: { psi: 0.25, min_devices: 2, for_ms: 10 * MIN } };
    const now = 100 * MIN;
    const above = series(now - 10 * MIN, Array(11).fill(0.4) as number[]);
    const late = series(now - 10 * MIN + 1, Array(10).fill(0.4) as number[]);
    expect(decideTrigger(snap({ drift: [{ device: 'a', points: above }] }), p).fire).toBe(false); // one device of two
    const two = decideTrigger(snap({ drift: [{ device: 'a', points: above }, { device: 'b', points: above }] }), p);
    expect(two).toMatchObject({ fire: true, kind: 'drift' });
    expect(two.details.driftingDevices).toEqual(['a', 'b']);
    expect(decideTrigger(snap({ drift: [{ device: 'a', points: above }, { device: 'b', points: late }] }), p).fire).toBe(false);
    const equal = series(now - 10 * MIN, Array(11).fill(0.25) as number[]);
    expect(decideTrigger(snap({ drift: [{ device: 'a', points: equal }, { device: 'b', points: above }] }), p).fire).toBe(false);
  });

  it('drift: a dip below the threshold restarts the clock; observations in the future are ignored', () => {
    const pts = [...series(0, [0.5, 0.5, 0.5]), { at: 3 * MIN, psi: 0.1 }, ...series(4 * MIN, [0.5, 0.5])];
    expect(driftRunStart(pts, 0.25, 10 * MIN)).toBe(4 * MIN);
    expect(driftRunStart(pts, 0.25, 2 * MIN)).toBe(0);
    expect(driftRunStart(pts, 0.25, 3 * MIN)).toBeNull();
    expect(driftRunStart([], 0.25, 0)).toBeNull();
  });

  it('drift that the last run already answered must persist T after that run', () => {
    const p = { ...off, drift: { psi: 0.25, min_devices: 1, for_ms: 10 * MIN } };
    const pts = series(0, Array(101).fill(0.9) as number[]);
    expect(decideTrigger(snap({ drift: [{ device: 'a', points: pts }], lastRunAt: 95 * MIN }), p).fire).toBe(false);
    expect(decideTrigger(snap({ drift: [{ device: 'a', points: pts }], lastRunAt: 90 * MIN }), p).fire).toBe(true);
  });

  it('schedule: counts from the last run, or from the loop start before the first run', () => {
    const p = { ...off, schedule: { every_ms: 60 * MIN } };
    expect(decideTrigger(snap({ startedAt: 40 * MIN }), p).fire).toBe(true);
    expect(decideTrigger(snap({ startedAt: 41 * MIN }), p).fire).toBe(false);
    expect(decideTrigger(snap({ lastRunAt: 40 * MIN }), p)).toMatchObject({ fire: true, kind: 'schedule' });
    expect(decideTrigger(snap({ lastRunAt: 40 * MIN + 1 }), p).fire).toBe(false);
  });

  it('manual always fires, names the actor, and ignores the minimum interval', () => {
    const p = { ...off, min_interval_ms: 60 * MIN };
    const d = decideTrigger(snap({ manual: { actor: 'otto', note: 'new camera' }, lastRunAt: 99 * MIN }), p);
    expect(d).toMatchObject({ fire: true, kind: 'manual' });
    expect(d.reason).toBe('manual: requested by otto (new camera)');
  });

  it('automatic triggers wait out the minimum interval and say how long', () => {
    const p = { ...off, labels: { min_new: 1 }, min_interval_ms: 10 * MIN };
    const d = decideTrigger(snap({ newLabels: 5, lastRunAt: 95 * MIN }), p);
    expect(d.fire).toBe(false);
    expect(d.kinds).toEqual(['labels']);
    expect(d.details.waitMs).toBe(5 * MIN);
    expect(decideTrigger(snap({ newLabels: 5, lastRunAt: 90 * MIN }), p).fire).toBe(true);
  });

  it('property: fires iff some condition holds and (manual or the interval passed); the reason names every held condition', () => {
    const arb = fc.record({
      newLabels: fc.integer({ min: 0, max: 400 }),
      minNew: fc.option(fc.integer({ min: 1, max: 400 }), { nil: null }),
      every: fc.option(fc.integer({ min: 1, max: 200 }), { nil: null }),
      interval: fc.integer({ min: 0, max: 50 }),
      last: fc.option(fc.integer({ min: 0, max: 100 }), { nil: null }),
      manual: fc.boolean(),
      psi: fc.array(fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }), { maxLength: 4 }),
      k: fc.integer({ min: 1, max: 3 }),
      forMin: fc.integer({ min: 0, max: 8 }),
    });
    fc.assert(
      fc.property(arb, (a) => {
        const p = triggerPolicy.parse({
          labels: a.minNew === null ? null : { min_new: a.minNew },
          drift: { psi: 0.5, min_devices: a.k, for_ms: a.forMin * MIN },
          schedule: a.every === null ? null : { every_ms: a.every * MIN },
          min_interval_ms: a.interval * MIN,
        });
        const s = snap({ newLabels: a.newLabels, lastRunAt: a.last === null ? null : a.last * MIN, manual: a.manual ? { actor: 'x' } : undefined, drift: a.psi.map((ps, i) => ({ device: `d${i}`, points: series(88 * MIN, ps) })) });
        const d = decideTrigger(s, p);
        const labels = a.minNew !== null && a.newLabels >= a.minNew;
        const schedule = a.every !== null && s.now - (s.lastRunAt ?? 0) >= a.every * MIN;
        // Drift, recomputed by hand: the run starts after the last observation at or below 0.5.
        const drifting = a.psi.filter((ps) => {
          if (ps.length === 0 || (ps.at(-1) as number) <= 0.5) return false;
          let i = ps.length - 1;
          while (i > 0 && (ps[i - 1] as number) > 0.5) i--;
          const from = Math.max(88 * MIN + i * MIN, s.lastRunAt ?? -Infinity);
          return s.now - from >= a.forMin * MIN;
        }).length;
        expect(d.details.driftingDevices).toHaveLength(drifting);
        const expected = [a.manual && 'manual', labels && 'labels', drifting >= a.k && 'drift', schedule && 'schedule'].filter(Boolean);
        expect(d.kinds).toEqual(expected);
        const waited = a.last === null || s.now - a.last * MIN >= a.interval * MIN;
        expect(d.fire).toBe(expected.length > 0 && (a.manual || waited));
        if (d.fire) for (const k of expected) expect(d.reason).toContain(`${k as string}:`);
        expect(d.kind).toBe(d.fire ? expected[0] : null);
      }),
      { numRuns: 500 },
    );
  });
});
