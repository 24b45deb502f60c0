import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BaseRef } from '../../../fleet/core/labels/dataset-schema.js';
import { datasetIdOf } from '../../../fleet/app/labels/datasets.js';
import { ingestAll, openParts, T0 } from '../samples/helpers.js';
import type { Parts } from '../samples/helpers.js';

let p: Parts;
const base: BaseRef[] = [
  { source: 'mnist', offset: 0, count: 500, split: 'train' },
  { source: 'mnist', offset: 500, count: 200, split: 'clean_holdout' },
];
const rule = { kind: 'hash' as const, fraction: 0.5, salt: 't' };
const ids = Array.from({ length: 30 }, (_, i) => `f-${String(i).padStart(2, '0')}`);

beforeEach(async () => {
  p = await openParts();
  await ingestAll(p, ids.map((id, i) => ({ id, label: String(i % 3), device: i % 2 ? 'cam-2' : 'cam-1', capturedAt: T0 + i * 1000 })));
  ids.forEach((id, i) => p.labels.assign(id, i === 29 ? 'zebra' : String(i % 3), { actor: i % 2 ? 'bob' : 'alice', at: T0 + 100_000 + i }));
});
afterEach(() => p.cleanup());

describe('training dataset versions', () => {
  it('cuts labeled field samples into train and field holdout beside the base set by reference, with lineage per entry', async () => {
    const { dataset, created, excluded } = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base, rule, actor: 'loop' });
    expect(created).toBe(true);
    expect(excluded).toBe(1); // 'zebra' is not a class of the model
    expect(dataset.entries).toHaveLength(29);
    expect(dataset.base).toEqual(base);
    expect(dataset.split_rule).toEqual(rule);
    const hold = dataset.entries.filter((e) => e.split === 'field_holdout');
    expect(hold.length).toBeGreaterThan(0);
    expect(hold.length).toBeLessThan(29);
    expect(dataset.splits).toEqual({ train: 500 + 29 - hold.length, clean_holdout: 200, field_holdout: hold.length });
    const e = dataset.entries.find((x) => x.sample_id === 'f-03');
    expect(e).toMatchObject({ device_id: 'cam-2', labeled_by: 'bob', label: '0', captured_at: new Date(T0 + 3000).toISOString() });
    expect(datasetIdOf(dataset)).toBe(dataset.id);
    // Read back, verified against its id; reverse lineage per sample.
    expect((await p.datasets.getDataset(dataset.id)).entries).toEqual(dataset.entries);
    expect(p.datasets.datasetsOfSample('f-03')).toEqual([{ dataset_id: dataset.id, split: e?.split }]);
  });

  it('is content-addressed: the same inputs again are the same version; another base or rule is another', async () => {
    const a = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base, rule, actor: 'loop' });
    const b = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base, rule, actor: 'someone' });
    expect(b.created).toBe(false);
    expect(b.dataset.id).toBe(a.dataset.id);
    const c = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base: base.slice(0, 1), rule, actor: 'loop' });
    expect(c.dataset.id).not.toBe(a.dataset.id);
  });

  it('keeps every earlier placement when new labels arrive and the rule changes', async () => {
    const first = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base, rule, actor: 'loop' });
    await ingestAll(p, [{ id: 'g-1', label: '1', capturedAt: T0 }, { id: 'g-2', label: '2', capturedAt: T0 }]);
    p.labels.assign('g-1', '1', { actor: 'carol' });
    p.labels.assign('g-2', '2', { actor: 'carol' });
    const everything = { kind: 'hash' as const, fraction: 1, salt: 't' };
    const second = await p.datasets.createTrainingVersion({ model: 'digits', labels: ['0', '1', '2'], base, rule: everything, actor: 'loop', previous: first.dataset.id });
    expect(second.dataset.previous).toBe(first.dataset.id);
    const before = new Map(first.dataset.entries.map((e) => [e.sample_id, e.split]));
    for (const e of second.dataset.entries) {
      if (before.has(e.sample_id)) expect(e.split).toBe(before.get(e.sample_id));
      else expect(e.split).toBe('field_holdout');
    }
    expect(second.dataset.entries).toHaveLength(31);
  });

  it('a model without labeled samples gets a base-only version', async () => {
    const { dataset } = await p.datasets.createTrainingVersion({ model: 'pets', labels: ['cat', 'dog'], base, rule, actor: 'loop' });
    expect(dataset.entries).toEqual([]);
    expect(dataset.splits).toEqual({ train: 500, clean_holdout: 200, field_holdout: 0 });
  });
});
