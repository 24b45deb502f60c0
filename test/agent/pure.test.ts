import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { envOverrides, parseAgentConfig } from '../../agent/config.js';
import { DriftMonitor } from '../../agent/outlier/drift.js';
import { OutlierCapturePolicy, matchReasons, mergePolicy } from '../../agent/outlier/policy.js';
import { histogramOf, psi } from '../../shared/inference/drift-stats.js';
import { classify, normalisedEntropy, softmax, topK } from '../../shared/inference/postprocess.js';
import { outlierPolicy } from '../../shared/schemas/index.js';

describe('postprocessing', () => {
  it('softmax is stable and sums to one', () => {
    fc.assert(
      fc.property(fc.array(fc.double({ min: -1000, max: 1000, noNaN: true }), { minLength: 2, maxLength: 50 }), (xs) => {
        const p = softmax(xs);
        const sum = p.reduce((a, b) => a + b, 0);
        expect(sum).toBeCloseTo(1, 4);
        const argmax = xs.indexOf(Math.max(...xs));
        expect(p[argmax]).toBe(Math.max(...p));
      }),
    );
  });

  it('top-k equals a full sort (scores descending, lower index first on ties)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 20 }), { minLength: 1, maxLength: 200 }), fc.integer({ min: 1, max: 10 }), (xs, k) => {
        const labels = xs.map((_, i) => `c${i}`);
        const sorted = xs.map((v, i) => ({ v, i })).sort((a, b) => b.v - a.v || a.i - b.i).slice(0, k);
        expect(topK(xs, k, labels).map((t) => t.index)).toEqual(sorted.map((x) => x.i));
      }),
    );
  });

  it('top-k orders by score with labels and computes margin and entropy', () => {
    const c = classify([0.1, 0.6, 0.3], { softmax: false, topK: 2, labels: ['a', 'b', 'c'] });
    expect(c.topk).toEqual([
      { index: 1, label: 'b', score: expect.closeTo(0.6, 5) },
      { index: 2, label: 'c', score: expect.closeTo(0.3, 5) },
    ]);
    expect(c.margin).toBeCloseTo(0.3, 5);
    expect(normalisedEntropy([0.25, 0.25, 0.25, 0.25])).toBeCloseTo(1, 6);
    expect(normalisedEntropy([1, 0, 0])).toBe(0);
    expect(topK([1, 1], 5, ['x', 'y']).map((t) => t.label)).toEqual(['x', 'y']);
  });
});

describe('outlier policy', () => {
  const policy = outlierPolicy.parse({ min_confidence: 0.6, min_margin: 0.2, max_entropy: 0.7, random_sample_rate: 0 });

  it('matches low confidence, margin and entropy', () => {
    expect(matchReasons({ score: 0.5, margin: 0.1, entropy: 0.9 }, policy, () => 0.5)).toEqual(['low_confidence', 'low_margin', 'high_entropy']);
    expect(matchReasons({ score: 0.95, margin: 0.9, entropy: 0.1 }, policy, () => 0.5)).toEqual([]);
  });

  it('samples normal traffic at the configured rate only', () => {
    const p = { ...policy, random_sample_rate: 0.1 };
    let i = 0;
    const rand = (): number => ((i++ * 0.6180339887) % 1);
    let kept = 0;
    for (let n = 0; n < 10_000; n++) if (matchReasons({ score: 0.99, margin: 0.9, entropy: 0 }, p, rand).includes('random')) kept++;
    expect(kept).toBeGreaterThan(900);
    expect(kept).toBeLessThan(1100);
  });

  it('rate-limits per reason and takes the highest priority of kept reasons', () => {
    let now = 0;
    const p = new OutlierCapturePolicy({ ...policy, rate_limits: { low_confidence: { per_minute: 60, burst: 2 } }, priorities: { low_margin: 8 } }, { now: () => now }, () => 0.5);
    const low = { score: 0.5, margin: 0.5, entropy: 0.1 };
    expect(p.decide(low).capture).toBe(true);
    expect(p.decide(low).capture).toBe(true);
    const third = p.decide(low);
    expect(third).toMatchObject({ capture: false, suppressed: ['low_confidence'] });
    now += 1000; // one token per second refills
    expect(p.decide(low).capture).toBe(true);
    expect(p.decide({ score: 0.5, margin: 0.1, entropy: 0.1 }).priority).toBe(8);
  });

  it('while drift is past drift_psi, confident frames come back too, with reason drift and its own rate limit', () => {
    const now = 0;
    const monitor = new DriftMonitor({ class_distribution: [0.5, 0.5], brightness: histogramOf([0.8, 0.85, 0.9], [0, 0.25, 0.5, 0.75, 1]), window: 100 }, 2, 50);
    const p = new OutlierCapturePolicy({ ...policy, drift_psi: 0.5, rate_limits: { drift: { per_minute: 30, burst: 3 } } }, { now: () => now }, () => 0.5);
    const off = new OutlierCapturePolicy(policy, { now: () => now }, () => 0.5);
    const confident = { score: 0.99, margin: 0.9, entropy: 0.05 };
    const decide = () => p.decide(confident, p.drifting(() => monitor.report()) ? ['drift'] : []);
    // Not enough frames yet, then in line with the baseline: nothing to capture.
    for (let i = 0; i < 60; i++) monitor.observe(i % 2, { brightness: 0.85, contrast: 0.2 });
    expect(p.drifting(() => monitor.report())).toBe(false);
    expect(decide().capture).toBe(false);
    // The camera dims: brightness PSI passes 0.5; the confident frames match drift, three fit the burst.
    for (let i = 0; i < 100; i++) monitor.observe(i % 2, { brightness: 0.2, contrast: 0.2 });
    expect(monitor.report().brightness_psi!).toBeGreaterThan(0.5);
    expect(p.drifting(() => monitor.report())).toBe(true);
    expect([decide(), decide(), decide()].map((d) => d.reasons)).toEqual([['drift'], ['drift'], ['drift']]);
    expect(decide()).toMatchObject({ capture: false, suppressed: ['drift'] });
    // drift_psi null (the schema default) never drifts; an unknown PSI never counts.
    expect(off.drifting(() => monitor.report())).toBe(false);
    expect(p.drifting(() => ({ brightness_psi: null, contrast_psi: null }))).toBe(false);
    // A shift in which classes the camera sees alone is not input drift.
    expect(p.drifting(() => ({ class_psi: 3, brightness_psi: 0.1, contrast_psi: 0.1 }) as ReturnType<DriftMonitor['report']>)).toBe(false);
    expect(p.drifting(() => ({ brightness_psi: 0.1, contrast_psi: 0.6 }))).toBe(true);
  });

  it('device overrides win key by key', () => {
    const merged = mergePolicy(policy, { min_confidence: 0.9, priorities: { random: 0 } });
    expect(merged).toMatchObject({ min_confidence: 0.9, min_margin: 0.2, priorities: { random: 0 } });
  });
});

describe('drift', () => {
  it('PSI is 0 for equal distributions and grows with shift', () => {
    expect(psi([1, 1, 1], [2, 2, 2])).toBeCloseTo(0, 10);
    expect(psi([0.5, 0.5], [0.9, 0.1])).toBeGreaterThan(0.25);
  });

  it('reports class and brightness PSI against the baseline after enough samples', () => {
    const edges = [0, 0.25, 0.5, 0.75, 1];
    const baseline = { class_distribution: [0.5, 0.5], brightness: histogramOf([0.8, 0.8, 0.9, 0.85], edges), window: 100 };
    const m = new DriftMonitor(baseline, 2, 50);
    for (let i = 0; i < 49; i++) m.observe(i % 2, { brightness: 0.8, contrast: 0.2 });
    expect(m.report().class_psi).toBeNull();
    m.observe(1, { brightness: 0.8, contrast: 0.2 });
    expect(m.report().class_psi!).toBeLessThan(0.05);
    expect(m.report().brightness_psi!).toBeLessThan(0.05);
    for (let i = 0; i < 100; i++) m.observe(0, { brightness: 0.2, contrast: 0.2 }); // dim camera, one class
    expect(m.report().class_psi!).toBeGreaterThan(0.25);
    expect(m.report().brightness_psi!).toBeGreaterThan(1);
    expect(m.report().contrast_psi).toBeNull();
  });
});

describe('config', () => {
  it('lists every bad key in one error', () => {
    try {
      parseAgentConfig({ uplink: { max_inflight: 500, colour: 'x' }, inference: { graph_optimization: 'max' }, typo: true });
      expect.unreachable();
    } catch (err) {
      const e = err as { code: string; message: string };
      expect(e.code).toBe('AGENT_CONFIG_INVALID');
      for (const key of ['uplink.max_inflight', 'uplink: Unrecognized key: "colour"', 'inference.graph_optimization', '"typo"']) expect(e.message).toContain(key);
    }
  });

  it('refuses ack_mode puback unless the broker is declared durable: the embedded broker would lose samples on a fleet crash', () => {
    expect(() => parseAgentConfig({ uplink: { kind: 'mqtt', ack_mode: 'puback' } })).toThrow(expect.objectContaining({ code: 'AGENT_CONFIG_INVALID', message: expect.stringContaining('uplink.ack_mode: puback') }));
    expect(parseAgentConfig({ uplink: { kind: 'mqtt', ack_mode: 'puback', durable_broker: true } }).uplink.ack_mode).toBe('puback');
    expect(parseAgentConfig({ uplink: { kind: 'mqtt' } }).uplink.ack_mode).toBe('fleet');
  });

  it('takes environment overrides, parsing JSON values', () => {
    const env = { EDGELOOP_AGENT_UPLINK__URL: 'mqtts://x:8883', EDGELOOP_AGENT_QUEUE__QUOTA_BYTES: '1024', EDGELOOP_AGENT_INFERENCE__EXECUTION_PROVIDERS: '["cuda","cpu"]', OTHER: '1' };
    expect(envOverrides(env)).toEqual({ uplink: { url: 'mqtts://x:8883' }, queue: { quota_bytes: 1024 }, inference: { execution_providers: ['cuda', 'cpu'] } });
    const c = parseAgentConfig(envOverrides(env), '/base');
    expect(c.queue.quota_bytes).toBe(1024);
    expect(c.data_dir).toBe('/base/.data/agent');
    expect(Object.isFrozen(c.uplink)).toBe(true);
  });
});
