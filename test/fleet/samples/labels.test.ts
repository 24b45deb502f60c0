import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ingestAll, openParts, T0 } from './helpers.js';
import type { Parts } from './helpers.js';

let p: Parts;
beforeEach(async () => {
  p = await openParts();
  await p.devices.register('cam-1', { tags: { site: 'pit-1' } });
  await p.devices.register('cam-2', { tags: { site: 'pit-2' } });
  await ingestAll(p, [
    { id: 's-1', label: '7' },
    { id: 's-2', label: '1' },
    { id: 's-3', label: '7', device: 'cam-2' },
    { id: 's-4', label: '4', device: 'cam-2' },
    { id: 's-5', label: '9' },
  ]);
});
afterEach(() => p.cleanup());

const iso = (ms: number): string => new Date(ms).toISOString();

describe('Labels', () => {
  it('assigns, relabels and confirms; the current label is the latest, history keeps who and when', () => {
    const a = p.labels.assign('s-1', '1', { actor: 'alice', at: T0 + 1000 });
    expect(a.label).toEqual({ state: 'labeled', value: '1', by: 'alice', at: iso(T0 + 1000) });
    p.clock.set(T0 + 2000);
    expect(p.labels.assign('s-1', '2', { actor: 'bob' }).label).toEqual({ state: 'labeled', value: '2', by: 'bob', at: iso(T0 + 2000) });
    p.clock.set(T0 + 3000);
    // Confirm: the model was right after all.
    expect(p.labels.confirm('s-1', 'carol').label).toEqual({ state: 'labeled', value: '7', by: 'carol', at: iso(T0 + 3000) });
    expect(p.labels.history('s-1').map((e) => [e.action, e.label, e.actor, e.at, e.undone_at])).toEqual([
      ['assign', '1', 'alice', iso(T0 + 1000), null],
      ['assign', '2', 'bob', iso(T0 + 2000), null],
      ['confirm', '7', 'carol', iso(T0 + 3000), null],
    ]);
    expect(p.ingest.get('s-1').label?.value).toBe('7');
  });

  it('undo reverts that actor\u2019s last action only, and walks back on repeat', () => {
    p.labels.assign('s-1', 'a', { actor: 'alice' });
    p.labels.assign('s-2', 'b', { actor: 'alice' });
    p.labels.assign('s-1', 'x', { actor: 'bob' });
    p.clock.set(T0 + 5000);
    const u1 = p.labels.undo('alice');
    expect(u1?.undone).toMatchObject({ sample_id: 's-2', label: 'b', actor: 'alice', undone_by: 'alice', undone_at: iso(T0 + 5000) });
    expect(u1?.sample.label).toBeNull();
    const u2 = p.labels.undo('alice');
    expect(u2?.undone).toMatchObject({ sample_id: 's-1', label: 'a' });
    // Bob's later label on s-1 stands.
    expect(u2?.sample.label).toMatchObject({ value: 'x', by: 'bob' });
    expect(p.labels.undo('alice')).toBeNull();
    // Bob undoes his: alice's was undone already, so s-1 has no label left.
    expect(p.labels.undo('bob')?.sample.label).toBeNull();
    expect(p.labels.history('s-1').map((e) => [e.actor, e.label, e.undone_by])).toEqual([
      ['alice', 'a', 'alice'],
      ['bob', 'x', 'bob'],
    ]);
  });

  it('undo of a relabel brings back the previous label', () => {
    p.labels.assign('s-1', '1', { actor: 'alice' });
    p.labels.assign('s-1', '2', { actor: 'alice' });
    expect(p.labels.undo('alice')?.sample.label).toMatchObject({ value: '1', by: 'alice' });
  });

  it('skip takes a sample out of the labeled set and to the back of the queue', () => {
    p.labels.assign('s-2', '1', { actor: 'alice' });
    p.labels.skip('s-1', 'alice');
    expect(p.ingest.get('s-1').label).toMatchObject({ state: 'skipped', value: null, by: 'alice' });
    expect(p.labels.next({}, 10).map((s) => s.sample_id)).toEqual(['s-3', 's-4', 's-5', 's-1']);
    expect(p.labels.next({}, 2).map((s) => s.sample_id)).toEqual(['s-3', 's-4']);
    expect(p.labels.next({ device: 'cam-1' }, 10).map((s) => s.sample_id)).toEqual(['s-5', 's-1']);
    expect(p.labels.progress()).toEqual({ total: 5, labeled: 1, skipped: 1, unlabeled: 3 });
    expect(p.labels.progress({ site: 'pit-1' })).toEqual({ total: 3, labeled: 1, skipped: 1, unlabeled: 1 });
    expect(p.labels.progress({ device: 'nobody' })).toEqual({ total: 0, labeled: 0, skipped: 0, unlabeled: 0 });
    // Labeling a skipped sample later makes it labeled.
    p.labels.assign('s-1', '7', { actor: 'bob' });
    expect(p.labels.progress().labeled).toBe(2);
    expect(p.ingest.query({ labeled: true }).items.map((s) => s.sample_id)).toEqual(['s-1', 's-2']);
    expect(p.ingest.query({ labeledAs: '7' }).items.map((s) => s.sample_id)).toEqual(['s-1']);
  });

  it('refuses unknown samples, empty labels and missing actors', () => {
    expect(() => p.labels.assign('nope', '1', { actor: 'a' })).toThrow(expect.objectContaining({ code: 'FLEET_SAMPLE_NOT_FOUND' }));
    expect(() => p.labels.assign('s-1', '  ', { actor: 'a' })).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
    expect(() => p.labels.confirm('s-1', '')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
    expect(() => p.labels.history('nope')).toThrow(expect.objectContaining({ code: 'FLEET_SAMPLE_NOT_FOUND' }));
    expect(p.labels.history('s-1')).toEqual([]);
  });
});
