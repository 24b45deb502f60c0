import { describe, expect, it } from 'vitest';
import { DRIFT_KEEP, DriftHistory } from '../../../fleet/app/training/drift-history.js';
import { PROGRESS_KEEP, ProgressLog, type LoopProgress } from '../../../fleet/app/training/progress.js';
import type { DeviceRecord } from '../../../fleet/core/devices/state.js';
import { captureLogger } from '../../helpers/agent.js';


describe('the learning loop\'s progress log', () => {
  it('numbers lines across runs, keeps each run\'s apart (the last PROGRESS_KEEP), stamps them with the clock', () => {
    let now = Date.UTC(2026, 0, 1);
    const p = new ProgressLog({ clock: { now: () => now }, log: captureLogger().log });
    const a = p.forRun('run_a', 'digits');
    const b = p.forRun('run_b', 'pets');
    a('queued', 'a starts');
    now += 1000;
    b('dataset', 'b builds', { fraction: 0.5, metrics: { train: 3 } });
    a('train', 'a trains');
    expect(p.since('run_a')).toEqual([
      { seq: 1, run: 'run_a', model: 'digits', phase: 'queued', at: '2026-01-01T00:00:00.000Z', message: 'a starts' },
      { seq: 3, run: 'run_a', model: 'digits', phase: 'train', at: '2026-01-01T00:00:01.000Z', message: 'a trains' },
    ]);
    expect(p.since('run_b')).toEqual([{ seq: 2, run: 'run_b', model: 'pets', phase: 'dataset', at: '2026-01-01T00:00:01.000Z', message: 'b builds', fraction: 0.5, metrics: { train: 3 } }]);
    expect(p.since('run_a', 1).map((l) => l.seq)).toEqual([3]);
    expect(p.since('run_none')).toEqual([]);
    for (let i = 0; i < PROGRESS_KEEP + 10; i++) a('train', `epoch ${i}`);
    const kept = p.since('run_a');
    expect(kept).toHaveLength(PROGRESS_KEEP);
    expect(kept.at(-1)?.message).toBe(`epoch ${PROGRESS_KEEP + 9}`);
  });

  it('a run\'s own listener hears that run only, subscribers hear every run; a listener that throws is logged and ignored', () => {
    const { log, lines } = captureLogger();
    const p = new ProgressLog({ clock: { now: () => 0 }, log });
    const own: LoopProgress[] = [];
    const all: string[] = [];
    p.subscribe(() => {
      throw new Error('console gone');
    });
    const off = p.subscribe((l) => all.push(l.run));
    const a = p.forRun('run_a', 'digits', (l) => own.push(l));
    const b = p.forRun('run_b', 'digits');
    a('queued', 'one');
    b('queued', 'two');
    off();
    a('done', 'three');
    expect(own.map((l) => l.message)).toEqual(['one', 'three']);
    expect(all).toEqual(['run_a', 'run_b']);
    expect(lines.filter((l) => l.msg === 'a progress listener threw')).toHaveLength(3);
    expect(p.since('run_a')).toHaveLength(2);
  });
});

describe('drift history', () => {
  const device = (id: string, model: string | null, psi: { class: number | null; brightness: number | null; contrast: number | null } | null, lastSeen = '2026-01-01T00:05:00.000Z'): DeviceRecord =>
    ({ id, models: { active: model ? { name: model, version: '1.0.0' } : null }, health: psi ? { drift_psi: psi } : null, last_seen: lastSeen }) as unknown as DeviceRecord;

  it('keeps each device\'s points in time order (older or same-time points ignored), the last DRIFT_KEEP', () => {
    const h = new DriftHistory();
    h.observe({ device: 'a', model: 'digits', at: 10, psi: 0.1 });
    h.observe({ device: 'a', model: 'digits', at: 10, psi: 0.9 });
    h.observe({ device: 'a', model: 'digits', at: 5, psi: 0.9 });
    h.observe({ device: 'a', model: 'digits', at: 20, psi: 0.3 });
    h.observe({ device: 'b', model: 'pets', at: 1, psi: 0.2 });
    expect(h.of('digits')).toEqual([{ device: 'a', points: [{ at: 10, psi: 0.1 }, { at: 20, psi: 0.3 }] }]);
    expect(h.of('pets')).toEqual([{ device: 'b', points: [{ at: 1, psi: 0.2 }] }]);
    expect(h.of('none')).toEqual([]);
    for (let t = 21; t < 21 + DRIFT_KEEP; t++) h.observe({ device: 'a', model: 'digits', at: t, psi: 0.5 });
    const pts = h.of('digits')[0]!.points;
    expect(pts).toHaveLength(DRIFT_KEEP);
    expect(pts[0]?.at).toBe(21);
  });

  it('samples the largest PSI each device reports, for devices running a configured model with health and a last-seen time', () => {
    const h = new DriftHistory();
    h.sample(
      [
        device('a', 'digits', { class: 0.1, brightness: 0.6, contrast: null }),
        device('b', 'pets', { class: 0.9, brightness: null, contrast: null }),
        device('c', 'digits', null),
        device('d', null, { class: 0.9, brightness: null, contrast: null }),
        device('e', 'digits', { class: null, brightness: null, contrast: null }),
      ],
      new Set(['digits']),
    );
    expect(h.of('digits')).toEqual([{ device: 'a', points: [{ at: Date.parse('2026-01-01T00:05:00.000Z'), psi: 0.6 }] }]);
    expect(h.of('pets')).toEqual([]);
  });
});
