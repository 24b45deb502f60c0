import { describe, expect, it } from 'vitest';
import { accountDevice, sumAccounts } from '../../chaos/accounting.js';
import { FAULT_KINDS, pickFault } from '../../chaos/faults.js';
import { seededRandom } from '../../shared/ids.js';

const counters = { depth: 0, enqueuedTotal: 3, ackedTotal: 3, evictedTotal: 0, droppedOnRecord: 0 };
const none = new Set<string>();

describe('chaos ledger', () => {
  it('balances when every returned id is stored once', () => {
    const a = accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b', 'c'], counters, dropped: none });
    expect(a).toMatchObject({ captured: 3, received: 3, missing: 0, by_count: 0, lost: 0, duplicated: 0 });
  });

  it('accepts a returned id the fleet does not have only when the device has that very id on its drop record', () => {
    const evictedOne = { ...counters, ackedTotal: 2, evictedTotal: 1, droppedOnRecord: 1 };
    // c was dropped by the device: matched by id.
    expect(accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b'], counters: evictedOne, dropped: new Set(['c']) })).toMatchObject({
      missing: 1,
      by_count: 0,
      lost: 0,
    });
    // The device dropped another sample (x, never returned to a caller), not c: c is lost though the counts balance.
    expect(accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b'], counters: evictedOne, dropped: new Set(['x']) }).lost).toBe(1);
    // Nothing dropped at all.
    expect(accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b'], counters: { ...counters, ackedTotal: 2 }, dropped: none }).lost).toBe(1);
  });

  it('falls back to counts only for what the record cannot show: samples still queued, drops older than the record', () => {
    // Still queued on the device: not lost, and said to be accounted by count.
    expect(accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b'], counters: { ...counters, ackedTotal: 2, depth: 1 }, dropped: none })).toMatchObject({
      lost: 0,
      by_count: 1,
    });
    // One eviction the record no longer holds (evictedTotal 1, on record 0).
    expect(accountDevice({ device_id: 'd', returned: new Set(['a', 'b', 'c']), stored: ['a', 'b'], counters: { ...counters, ackedTotal: 2, evictedTotal: 1 }, dropped: none })).toMatchObject({
      lost: 0,
      by_count: 1,
    });
  });

  it('counts what the fleet acknowledged and no longer has as lost, even when no caller saw the id', () => {
    // Three acked by the fleet (the device deleted them), two stored: the fleet lost one it acked.
    expect(accountDevice({ device_id: 'd', returned: new Set(['a']), stored: ['a', 'x'], counters, dropped: none }).lost).toBe(1);
  });

  it('counts an id stored twice as a duplicate', () => {
    const a = accountDevice({ device_id: 'd', returned: new Set(['a', 'b']), stored: ['a', 'b', 'b'], counters: { ...counters, enqueuedTotal: 2, ackedTotal: 2 }, dropped: none });
    expect(a).toMatchObject({ received: 2, duplicated: 1, lost: 0 });
    expect(sumAccounts([a, a])).toMatchObject({ captured: 4, received: 4, missing: 0, by_count: 0, duplicated: 2 });
  });
});

describe('fault draw', () => {
  it('is reproducible from the seed and draws every kind', () => {
    const draw = (seed: number): string[] => {
      const r = seededRandom(seed);
      return Array.from({ length: 200 }, () => {
        const p = pickFault(r, { idleDevices: ['a', 'b'], fleetIdle: true });
        return `${p?.kind}:${p?.device}`;
      });
    };
    expect(draw(5)).toEqual(draw(5));
    expect(new Set(draw(5).map((s) => s.split(':')[0]))).toEqual(new Set(FAULT_KINDS));
  });

  it('never hits a busy target', () => {
    const r = seededRandom(1);
    for (let i = 0; i < 100; i++) {
      const p = pickFault(r, { idleDevices: ['b'], fleetIdle: false });
      expect(p?.kind === 'fleet_kill' || p?.kind === 'broker_outage').toBe(false);
      expect(p?.device).toBe('b');
    }
    expect(pickFault(r, { idleDevices: [], fleetIdle: false })).toBeNull();
  });

  it('draws the kinds not drawn yet first', () => {
    const r = seededRandom(3);
    for (let i = 0; i < 50; i++) expect(pickFault(r, { idleDevices: ['a'], fleetIdle: true, undrawn: ['broker_outage'] })?.kind).toBe('broker_outage');
  });
});
