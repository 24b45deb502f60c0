import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import type { SampleFilter } from '../../../fleet/app/samples/filter.js';
import type { OutlierReason } from '../../../shared/schemas/index.js';
import { ingestAll, openParts, T0 } from './helpers.js';
import type { Parts, SampleSpec } from './helpers.js';

let parts: Parts | undefined;
afterEach(() => {
  parts?.cleanup();
  parts = undefined;
});

const DEVICES = ['cam-1', 'cam-2', 'cam-3'] as const;
const SITES: Record<string, string | null> = { 'cam-1': 'pit-1', 'cam-2': 'pit-2', 'cam-3': null };
const REASONS: OutlierReason[] = ['low_confidence', 'drift', 'random'];
const SCORES = [0.1, 0.3, 0.5, 0.7, 0.9];

interface Spec {
  device: (typeof DEVICES)[number];
  reasons: OutlierReason[];
  model: string;
  version: string;
  label: string;
  score: number;
  minute: number;
  human: { kind: 'none' } | { kind: 'assign'; label: string } | { kind: 'skip' };
}

const specArb: fc.Arbitrary<Spec> = fc.record({
  device: fc.constantFrom(...DEVICES),
  reasons: fc.subarray(REASONS, { minLength: 1 }),
  model: fc.constantFrom('digits', 'pets'),
  version: fc.constantFrom('1.0.0', '1.1.0'),
  label: fc.constantFrom('1', '2', '3'),
  score: fc.constantFrom(...SCORES),
  minute: fc.integer({ min: 0, max: 9 }),
  human: fc.oneof(fc.constant({ kind: 'none' as const }), fc.constant({ kind: 'skip' as const }), fc.constantFrom('1', '2', '3').map((label) => ({ kind: 'assign' as const, label }))),
});

const time = (minute: number): number => T0 + minute * 60_000;

const filterFields = {
  device: fc.constantFrom(...DEVICES, 'cam-9'),
  site: fc.constantFrom('pit-1', 'pit-2', 'pit-9'),
  reason: fc.constantFrom(...REASONS, 'high_entropy' as const),
  model: fc.constantFrom('digits', 'pets'),
  version: fc.constantFrom('1.0.0', '1.1.0'),
  label: fc.constantFrom('1', '2', '3'),
  labeledAs: fc.constantFrom('1', '2', '3'),
  minConfidence: fc.constantFrom(...SCORES, 0.4),
  maxConfidence: fc.constantFrom(...SCORES, 0.6),
  from: fc.integer({ min: 0, max: 10 }).map((m) => new Date(time(m)).toISOString()),
  to: fc.integer({ min: 0, max: 10 }).map(time),
  labeled: fc.boolean(),
};
type FilterKey = keyof typeof filterFields;

/** Up to three fields at a time: with more, nearly every filter selects nothing and proves little. */
const filterArb: fc.Arbitrary<SampleFilter> = fc
  .uniqueArray(fc.constantFrom(...(Object.keys(filterFields) as FilterKey[])), { maxLength: 3 })
  .chain((keys) => fc.record(Object.fromEntries(keys.map((k) => [k, filterFields[k]])) as { [K in FilterKey]?: (typeof filterFields)[K] }) as fc.Arbitrary<SampleFilter>);

/** The filter's meaning, written independently of the SQL. */
function matches(f: SampleFilter, s: Spec): boolean {
  const labeled = s.human.kind === 'assign';
  const t = time(s.minute);
  return (
    (f.device === undefined || f.device === s.device) &&
    (f.site === undefined || f.site === SITES[s.device]) &&
    (f.reason === undefined || s.reasons.includes(f.reason)) &&
    (f.model === undefined || f.model === s.model) &&
    (f.version === undefined || f.version === s.version) &&
    (f.label === undefined || f.label === s.label) &&
    (f.labeledAs === undefined || (s.human.kind === 'assign' && s.human.label === f.labeledAs)) &&
    (f.minConfidence === undefined || s.score >= f.minConfidence) &&
    (f.maxConfidence === undefined || s.score <= f.maxConfidence) &&
    (f.from === undefined || t >= Date.parse(String(f.from))) &&
    (f.to === undefined || t < Number(f.to)) &&
    (f.labeled === undefined || f.labeled === labeled)
  );
}

async function load(p: Parts, specs: Spec[]): Promise<string[]> {
  const ids = specs.map((_, i) => `s-${String(i).padStart(3, '0')}`);
  const samples: SampleSpec[] = specs.map((s, i) => ({ id: ids[i] as string, device: s.device, reasons: s.reasons, model: s.model, version: s.version, label: s.label, score: s.score, capturedAt: time(s.minute) }));
  // One batch: rows get seq in call order, which is the arrival order the listing follows.
  await ingestAll(p, samples);
  specs.forEach((s, i) => {
    if (s.human.kind === 'assign') p.labels.assign(ids[i] as string, s.human.label, { actor: 'lab' });
    if (s.human.kind === 'skip') p.labels.skip(ids[i] as string, 'lab');
  });
  return ids;
}

async function fresh(): Promise<Parts> {
  parts?.cleanup();
  parts = await openParts();
  await parts.devices.register('cam-1', { tags: { site: 'pit-1' } });
  await parts.devices.register('cam-2', { tags: { site: 'pit-2' } });
  await parts.devices.register('cam-3');
  return parts;
}

describe('sample query', () => {
  it('pages through any filter: exactly the filtered set, in order, no duplicates, no gaps', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(specArb, { minLength: 5, maxLength: 30 }), filterArb, fc.integer({ min: 1, max: 7 }), fc.constantFrom('asc' as const, 'desc' as const), async (specs, filter, limit, order) => {
        const p = await fresh();
        const ids = await load(p, specs);
        const expected = ids.filter((_, i) => matches(filter, specs[i] as Spec));
        if (order === 'desc') expected.reverse();
        const got: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 100; page++) {
          const r = p.ingest.query({ ...filter, limit, order, ...(cursor ? { cursor } : {}) });
          expect(r.items.length).toBeLessThanOrEqual(limit);
          got.push(...r.items.map((s) => s.sample_id));
          if (r.next_cursor === null) break;
          expect(r.items.length).toBe(limit);
          cursor = r.next_cursor;
        }
        expect(got).toEqual(expected);
        expect(p.labels.progress(filter).total).toBe(expected.length);
      }),
      { numRuns: 80 },
    );
  });

  it('keeps a cursor valid while new samples arrive: they show up at the end, nothing repeats', async () => {
    const p = await fresh();
    await ingestAll(p, Array.from({ length: 5 }, (_, i) => ({ id: `a-${i}` })));
    const first = p.ingest.query({ limit: 3 });
    expect(first.items.map((s) => s.sample_id)).toEqual(['a-0', 'a-1', 'a-2']);
    await ingestAll(p, [{ id: 'b-0' }]);
    const second = p.ingest.query({ limit: 3, cursor: first.next_cursor as string });
    expect(second.items.map((s) => s.sample_id)).toEqual(['a-3', 'a-4', 'b-0']);
    expect(second.next_cursor).toBeNull();
  });

  it('refuses bad queries with INPUT_INVALID naming the problem', async () => {
    const p = await fresh();
    const bad = (q: unknown): unknown => {
      try {
        p.ingest.query(q as SampleFilter);
      } catch (err) {
        return (err as { code: string; message: string }).code;
      }
      return 'accepted';
    };
    expect(bad({ cursor: 'zzz' })).toBe('INPUT_INVALID');
    expect(bad({ order: 'desc', cursor: 'a1' })).toBe('INPUT_INVALID');
    expect(bad({ limit: 5000 })).toBe('INPUT_INVALID');
    expect(bad({ reason: 'bored' })).toBe('INPUT_INVALID');
    expect(bad({ devices: 'cam-1' })).toBe('INPUT_INVALID');
    expect(bad({ from: 'yesterday' })).toBe('INPUT_INVALID');
    expect(bad({ from: T0, to: new Date(T0).toISOString() })).toBe('accepted');
  });
});
