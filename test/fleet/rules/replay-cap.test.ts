import { describe, expect, it } from 'vitest';
import { MAX_LISTED_FIRINGS, replayRuleSet } from '../../../fleet/app/rules/replay.js';
import type { SampleRecord } from '../../../fleet/app/samples/types.js';
import { alertRuleSet } from '../../../shared/schemas/index.js';
import { systemClock } from '../../../shared/ids.js';

/** A stored classifier sample, as much of it as the replay reads. */
const sample = (i: number): SampleRecord =>
  ({
    sample_id: `s-${i}`,
    device_id: `dev-${String(i).padStart(5, '0')}`,
    captured_at: new Date(Date.UTC(2026, 0, 1) + i).toISOString(),
    model: { name: 'm', version: '1.0.0' },
    prediction: { label: 'person', score: 0.9, topk: [{ label: 'person', index: 0, score: 0.9 }] },
    meta: { input: { kind: 'image', content_type: 'image/png', sha256: '0'.repeat(64), bytes: 1 }, source: 'http' },
  }) as unknown as SampleRecord;

describe('rules test: the replay answers counts, and lists a bounded number of firings', () => {
  it(`lists the first ${MAX_LISTED_FIRINGS} firings, counts the rest in per_rule and firings_omitted`, () => {
    const set = alertRuleSet.parse({ rules: [{ id: 'anyone', model: 'm', labels: ['person'], cooldown_s: 0 }] });
    const n = MAX_LISTED_FIRINGS + 25;
    const r = replayRuleSet(set, Array.from({ length: n }, (_, i) => sample(i)), { clock: systemClock });
    expect(r.per_rule).toEqual({ anyone: n });
    expect([r.firings.length, r.firings_omitted]).toEqual([MAX_LISTED_FIRINGS, 25]);
    expect(r.firings[0]).toMatchObject({ rule: 'anyone', device_id: 'dev-00000', sample_id: 's-0' });
  });
});
