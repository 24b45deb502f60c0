import { describe, expect, it } from 'vitest';
import { loopModelConfig } from '../../../fleet/app/training/config.js';

describe('training configuration of a model', () => {
  it('parses the README example; partial sections keep the other defaults', () => {
    const c = loopModelConfig.parse({
      name: 'digits',
      trainer: 'local',
      params: {},
      seed: 1,
      base: [{ source: 'mnist', offset: 0, count: 8000, split: 'train' }, { source: 'mnist', offset: 8000, count: 2000, split: 'clean_holdout' }],
      holdout: { kind: 'hash', fraction: 0.2 },
      triggers: { labels: { min_new: 200 } },
      gate: { field_gain_min_pts: 2 },
      auto_promote: { selector: { site: 'pit-3' }, plan: { shadow: { sample_rate: 0.2, bake_s: 60 }, canary: { devices: { percent: 10 } } } },
    });
    expect(c.triggers.drift).toEqual({ psi: 0.25, min_devices: 1, for_ms: 600_000 });
    expect(c.gate).toMatchObject({ clean_drop_max_pts: 1, class_drop_max_pts: 3, latency_ratio_max: 1.2 });
    expect(c.holdout).toEqual({ kind: 'hash', fraction: 0.2, salt: '' });
    expect(c.auto_promote?.plan.waves.at(-1)?.devices).toEqual({ percent: 100 });
  });

  it('names the bad key', () => {
    const r = loopModelConfig.safeParse({ name: 'digits', gate: { field_gain: 2 } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('field_gain');
  });
});
