import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { newRecord } from '../../../fleet/core/rollouts/handlers.js';
import { deviceRank, pickActive, rankOrder } from '../../../fleet/core/rollouts/selection.js';
import { activeAllowance, resolveAllowance, stagesOf } from '../../../fleet/core/rollouts/stages.js';
import { rolloutEvent, rolloutPlan, rolloutState, type DeviceRecord } from '../../../fleet/core/rollouts/types.js';
import { initialState, replay } from '../../../fleet/core/rollouts/machine.js';
import { CAND, devices, PREV } from './helpers.js';

const records = (ids: string[], rollout = 'ro-1'): Record<string, DeviceRecord> => Object.fromEntries(ids.map((id) => [id, newRecord(rollout, CAND, { id, active: PREV })]));

describe('selection', () => {
  it('ranks are stable, differ per rollout, and do not depend on insertion order', () => {
    expect(deviceRank('ro-1', 'cam-7')).toBe(deviceRank('ro-1', 'cam-7'));
    expect(deviceRank('ro-1', 'cam-7')).not.toBe(deviceRank('ro-2', 'cam-7'));
    const ids = Array.from({ length: 50 }, (_, i) => `cam-${i}`);
    expect(rankOrder(records(ids))).toEqual(rankOrder(records([...ids].reverse())));
    expect(rankOrder(records(ids))).not.toEqual(rankOrder(records(ids, 'ro-2')));
  });

  it('each stage takes the front of the same order, so waves are cumulative', () => {
    const recs = records(Array.from({ length: 40 }, (_, i) => `cam-${i}`));
    const order = rankOrder(recs);
    expect(pickActive(recs, 2)).toEqual(order.slice(0, 2));
    for (const id of order.slice(0, 2)) (recs[id] as DeviceRecord).assigned_stage = 0;
    expect(pickActive(recs, 10)).toEqual(order.slice(2, 10));
    expect(pickActive(recs, 1)).toEqual([]);
  });

  it('percents round up, never exceed the target, and are cumulative across stages', () => {
    expect(resolveAllowance({ percent: 5 }, 10)).toBe(1);
    expect(resolveAllowance({ percent: 7 }, 100)).toBe(7);
    expect(resolveAllowance({ percent: 100 }, 0)).toBe(0);
    expect(resolveAllowance({ count: 50 }, 30)).toBe(30);
    fc.assert(
      fc.property(fc.double({ min: 0.01, max: 100, noNaN: true }), fc.integer({ min: 0, max: 5000 }), (p, n) => {
        const k = resolveAllowance({ percent: p }, n);
        expect(k).toBeGreaterThanOrEqual((p * n) / 100 - 1e-6);
        expect(k).toBeLessThanOrEqual(n);
      }),
    );
    const stages = stagesOf(rolloutPlan.parse({ canary: { devices: { count: 30 } }, waves: [{ devices: { percent: 10 } }, { devices: { percent: 100 } }] }));
    expect([0, 1, 2].map((i) => activeAllowance(stages, i, 100))).toEqual([30, 30, 100]);
  });
});

describe('schemas', () => {
  it('fill sane defaults and keep plan gates under stage overrides', () => {
    const plan = rolloutPlan.parse({ gates: { max_confidence_drop: 0.02 }, canary: { devices: { count: 3 }, gates: { min_devices_reporting: 3 } } });
    expect(plan.waves.map((w) => w.devices)).toEqual([{ percent: 25 }, { percent: 50 }, { percent: 100 }]);
    expect(plan).toMatchObject({ on_gate_failure: 'pause', gates: { max_failures: 0, min_devices_reporting: 1, max_confidence_drop: 0.02 } });
    const [canary] = stagesOf(plan);
    expect(canary?.gates).toMatchObject({ min_devices_reporting: 3, max_confidence_drop: 0.02 });
  });

  it('reject plans that never reach the whole target, and mixed allowances', () => {
    expect(rolloutPlan.safeParse({ waves: [{ devices: { count: 10 } }] }).success).toBe(false);
    expect(rolloutPlan.safeParse({ canary: { devices: { count: 1, percent: 5 } } }).success).toBe(false);
  });

  it('generate JSON Schema for the HTTP API', () => {
    expect(() => z.toJSONSchema(rolloutPlan, { io: 'input', unrepresentable: 'any' })).not.toThrow();
    expect(() => z.toJSONSchema(rolloutEvent, { io: 'input', unrepresentable: 'any' })).not.toThrow();
  });

  it('a state after real events survives JSON and validates against rolloutState', () => {
    const plan = { shadow: {}, canary: { devices: { count: 2 } } };
    const r = replay(initialState('ro-1', CAND, plan), [
      { type: 'start', at: 1, devices: devices(5) },
      { type: 'device_report', at: 2, device_id: 'dev-000', phase: 'failed', model: CAND, reason: 'x' },
    ]);
    const loaded = rolloutState.parse(JSON.parse(JSON.stringify(r.state)));
    expect(loaded).toEqual(r.state);
  });
});
