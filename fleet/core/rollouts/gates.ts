/**
 * Gate evaluation: candidate versus the previous version on the same devices. Pure: the
 * machine hands over the stage's devices with their running sums and gets a verdict with
 * every signal's value and threshold, which goes verbatim into the decision log.
 */
import { errorRate, mean, samples } from './aggregate.js';
import type { GateAction, GateName, Gates } from './plan-schema.js';
import type { MetricsAgg, ShadowAgg, Signal } from './state-schema.js';

/** One device of the stage, as the gates see it. */
export interface GateDevice {
  id: string;
  /** `false` on a first install: there is no previous version to regress from. */
  has_previous: boolean;
  /** `acknowledged`: an operator resumed past it; it no longer counts against `max_failures`. */
  failure: 'none' | 'counted' | 'acknowledged';
  /** The device proved the candidate runs (reported it active or in shadow, or sent its metrics). */
  installed: boolean;
  baseline: MetricsAgg;
  candidate: MetricsAgg;
  shadow: ShadowAgg;
}

export interface GateInput {
  /** `shadow`: compare the shadow model's side of the windows; `active`: the candidate's own windows. */
  mode: 'shadow' | 'active';
  gates: Gates;
  on_gate_failure: GateAction;
  devices: readonly GateDevice[];
}

export interface GateResult {
  status: 'pass' | 'fail' | 'waiting';
  /** What a failure asks for: `abort` if any failing gate says so. `null` unless failing. */
  action: GateAction | null;
  failed: GateName[];
  reason: string;
  signals: Signal[];
}

/** Weighted mean of per-device values: pairs each device with its own previous version. */
function paired<D>(devices: readonly D[], pick: (d: D) => { value: number; weight: number } | null): { value: number | null; devices: number } {
  let sum = 0;
  let weight = 0;
  let n = 0;
  for (const d of devices) {
    const p = pick(d);
    if (!p || p.weight <= 0) continue;
    sum += p.value * p.weight;
    weight += p.weight;
    n++;
  }
  return { value: weight > 0 ? sum / weight : null, devices: n };
}

const diff = (a: number | null, b: number | null, weight: number): { value: number; weight: number } | null => (a === null || b === null ? null : { value: a - b, weight });
const ratio = (a: number | null, b: number | null, weight: number): { value: number; weight: number } | null => (a === null || b === null || b <= 0 ? null : { value: a / b, weight });
/** The latency ratio with both sides raised to the floor (differences under it are noise). */
const latencyRatio = (floorMs: number, a: number | null, b: number | null, weight: number): { value: number; weight: number } | null =>
  a === null || b === null ? null : ratio(Math.max(a, floorMs), Math.max(b, floorMs), weight);

type Quality = { name: GateName; threshold: number | null; higherIsBetter: boolean; value: number | null; devices: number };

function activeQuality(g: Gates, ds: readonly GateDevice[]): Quality[] {
  const cm = (d: GateDevice): MetricsAgg => d.candidate;
  const bm = (d: GateDevice): MetricsAgg => d.baseline;
  return [
    { name: 'error_rate_increase', threshold: g.max_error_rate_increase, higherIsBetter: false, ...paired(ds, (d) => diff(errorRate(cm(d)), errorRate(bm(d)), samples(cm(d)))) },
    { name: 'latency_p95_ratio', threshold: g.max_latency_p95_ratio, higherIsBetter: false, ...paired(ds, (d) => latencyRatio(g.latency_floor_ms, mean(cm(d).latency_sum, cm(d).latency_weight), mean(bm(d).latency_sum, bm(d).latency_weight), cm(d).latency_weight)) },
    { name: 'confidence_drop', threshold: g.max_confidence_drop, higherIsBetter: false, ...paired(ds, (d) => diff(mean(bm(d).confidence_sum, bm(d).confidence_weight), mean(cm(d).confidence_sum, cm(d).confidence_weight), cm(d).confidence_weight)) },
    { name: 'outlier_rate_increase', threshold: g.max_outlier_rate_increase, higherIsBetter: false, ...paired(ds, (d) => diff(mean(cm(d).outlier_sum, cm(d).outlier_weight), mean(bm(d).outlier_sum, bm(d).outlier_weight), cm(d).outlier_weight)) },
  ];
}

function shadowQuality(g: Gates, ds: readonly GateDevice[]): Quality[] {
  // Error and outlier rates are not reported for the shadow side; agreement is pooled because
  // it needs no baseline.
  return [
    { name: 'shadow_agreement', threshold: g.min_shadow_agreement, higherIsBetter: true, ...paired(ds, (d) => (d.shadow.agreement_weight > 0 ? { value: d.shadow.agreement_sum / d.shadow.agreement_weight, weight: d.shadow.agreement_weight } : null)) },
    { name: 'latency_p95_ratio', threshold: g.max_latency_p95_ratio, higherIsBetter: false, ...paired(ds, (d) => latencyRatio(g.latency_floor_ms, mean(d.shadow.latency_sum, d.shadow.latency_weight), mean(d.baseline.latency_sum, d.baseline.latency_weight), d.shadow.latency_weight)) },
    { name: 'confidence_drop', threshold: g.max_confidence_drop, higherIsBetter: false, ...paired(ds, (d) => diff(mean(d.baseline.confidence_sum, d.baseline.confidence_weight), mean(d.shadow.confidence_sum, d.shadow.confidence_weight), d.shadow.confidence_weight)) },
  ];
}

/** `0.05` → `0.050`, `3` → `3`: readable on the console without float noise. */
function fmt(n: number | string | null | undefined): string {
  if (n === null || n === undefined) return 'n/a';
  if (typeof n === 'string') return n;
  return Number.isInteger(n) ? String(n) : n.toFixed(3);
}

function describe(s: Signal): string {
  const cmp = s.ok === null || s.ok === undefined ? 'vs' : s.name === 'shadow_agreement' || s.name === 'devices_reporting' ? (s.ok ? '≥' : '<') : s.ok ? '≤' : '>';
  return `${s.name} ${fmt(s.value)} ${cmp} ${fmt(s.threshold)}`;
}

/** Evaluates a stage's gates. Failures are judged at once; quality gates once enough devices report. */
export function evaluateGates(input: GateInput): GateResult {
  const { gates: g, devices, mode } = input;
  const signals: Signal[] = [];
  const counted = devices.filter((d) => d.failure === 'counted').length;
  const failedAny = devices.filter((d) => d.failure !== 'none').length;
  const finished = failedAny + devices.filter((d) => d.failure === 'none' && d.installed).length;

  if (g.max_failures !== null) signals.push({ name: 'failures', value: counted, threshold: g.max_failures, ok: counted <= g.max_failures, devices: devices.length });
  if (g.max_failure_ratio !== null) {
    // Like IoT Jobs' minNumberOfExecutedThings: one early failure out of one install is not a ratio.
    const judged = finished >= Math.max(1, g.min_devices_reporting);
    const value = finished > 0 ? counted / finished : null;
    signals.push({ name: 'failure_ratio', value, threshold: g.max_failure_ratio, ok: judged && value !== null ? value <= g.max_failure_ratio : null, devices: finished });
  }

  const healthy = devices.filter((d) => d.failure === 'none');
  const min = g.min_samples_per_device;
  const reporting = healthy.filter((d) =>
    mode === 'shadow'
      ? d.shadow.count >= min && samples(d.baseline) >= min
      : samples(d.candidate) >= min && (!d.has_previous || samples(d.baseline) >= min),
  );
  const required = Math.max(g.min_devices_reporting, Math.ceil(g.min_reporting_ratio * healthy.length - 1e-9));
  const enough = reporting.length >= required;
  signals.push({ name: 'devices_reporting', value: reporting.length, threshold: required, ok: enough, devices: healthy.length });

  const comparable = mode === 'shadow' ? reporting : reporting.filter((d) => d.has_previous);
  for (const q of mode === 'shadow' ? shadowQuality(g, comparable) : activeQuality(g, comparable)) {
    if (q.threshold === null) continue;
    // Not judged (ok: null) until enough devices report: one device's first window is noise.
    const ok = !enough || q.value === null ? null : q.higherIsBetter ? q.value >= q.threshold : q.value <= q.threshold;
    signals.push({ name: q.name, value: q.value, threshold: q.threshold, ok, devices: q.devices });
  }

  const failing = signals.filter((s) => s.ok === false && s.name !== 'devices_reporting');
  if (failing.length > 0) {
    const failed = failing.map((s) => s.name as GateName);
    const action = failed.some((n) => (g.on_failure[n] ?? input.on_gate_failure) === 'abort') ? 'abort' : 'pause';
    return { status: 'fail', action, failed, reason: `gate failed: ${failing.map(describe).join('; ')}`, signals };
  }
  if (!enough) {
    // A device that ran its previous version too little before the switch (idle right before the
    // rollout) never gets a baseline: say so, or the stage looks stuck for no reason.
    const noBaseline = mode === 'active' ? healthy.filter((d) => d.has_previous && samples(d.candidate) >= min && samples(d.baseline) < min) : [];
    const why = noBaseline.length
      ? `; ${noBaseline.length} of them (${noBaseline
          .slice(0, 5)
          .map((d) => d.id)
          .join(', ')}${noBaseline.length > 5 ? ', ...' : ''}) ran the candidate but sent under ${min} samples of their previous version to compare with (idle before the switch): promote to go on without the comparison, or abort`
      : '';
    return { status: 'waiting', action: null, failed: [], reason: `waiting for devices: ${reporting.length} of ${required} required reporting (${min} samples each)${why}`, signals };
  }
  const judged = signals.filter((s) => s.ok !== undefined && s.name !== 'devices_reporting').map(describe);
  if (comparable.length === 0 && mode === 'active') {
    // A first install: nothing ran before the candidate, so no quality gate had a side to compare
    // with. Saying "passed" would claim a check that never happened (issue 16).
    const failures = signals.filter((s) => s.name === 'failures' || s.name === 'failure_ratio').map(describe);
    return {
      status: 'pass',
      action: null,
      failed: [],
      reason: `no baseline to compare with: the ${reporting.length} reporting devices ran no model before this one, so only installs, smoke tests and failures were judged${failures.length ? ` (${failures.join('; ')})` : ''}; quality gates (error rate, latency, confidence, outliers) start with the next version`,
      signals,
    };
  }
  return { status: 'pass', action: null, failed: [], reason: `gates passed with ${reporting.length} devices reporting${judged.length ? `: ${judged.join('; ')}` : ''}`, signals };
}
