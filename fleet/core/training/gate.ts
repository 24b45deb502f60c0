/**
 * The evaluation gate, pure: a candidate's metrics against the production model's, measured
 * on the same clean holdout, the same field holdout and the same host (fleet/app/training/
 * evaluate.ts, evaluate-detection.ts), give a verdict with a reason per failed check. The
 * compared metric is accuracy for a classifier and mAP (per-class AP for the class rule) for a
 * detector, as the gate config's `metric` names it. Metrics are fractions; thresholds are in
 * percentage points ("points"). Differences are rounded to 1e-6 points before comparing, so
 * 0.51 - 0.49 counts as exactly 2 points.
 */
import { z } from 'zod';
import { FleetError } from '../../errors.js';

/** Accuracy on one holdout, overall and per class. */
export interface SetMetrics {
  count: number;
  correct: number;
  accuracy: number;
  per_class: Record<string, { count: number; correct: number; accuracy: number }>;
}

/** A detector's scores on one holdout: COCO-style mAP overall, AP per class. */
export interface DetectionSetMetrics {
  task: 'detection';
  /** Images. */
  count: number;
  /** True boxes over all images. */
  boxes: number;
  map50: number;
  map50_95: number;
  /** Per class: its true boxes (`count`, what `class_min_samples` counts) and AP (null without boxes). */
  per_class: Record<string, { count: number; ap50: number | null; ap50_95: number | null }>;
}

/** What the gate reads of an evaluation. */
export interface GateInput {
  clean: SetMetrics | DetectionSetMetrics;
  field: SetMetrics | DetectionSetMetrics;
  latency: { p50_ms: number; p95_ms: number };
}

/** What the rules compare. */
const GATE_METRICS = ['accuracy', 'map50', 'map50_95'] as const;
export type GateMetric = (typeof GATE_METRICS)[number];

export const gateConfig = z.strictObject({
  metric: z
    .enum(GATE_METRICS)
    .optional()
    .describe('What the field, clean and per-class rules compare: accuracy (classifiers), map50 or map50_95 (detectors: mAP@0.5 or mAP@0.5:0.95 overall, AP per class). Unset: accuracy for a classifier, map50 for a detector.'),
  field_gain_min_pts: z.number().min(-100).max(100).default(2).describe('Field-holdout accuracy (mAP for a detector: see metric) must rise by at least this many points (percentage points, so -100..100; 0 accepts no gain, a negative value accepts a drop of that size).'),
  clean_drop_max_pts: z.number().nonnegative().default(1).describe('Clean-holdout accuracy (mAP for a detector) may fall by at most this many points.'),
  class_drop_max_pts: z.number().nonnegative().default(3).describe("No class's accuracy (AP for a detector) may fall by more than this many points (on either holdout)."),
  class_min_samples: z
    .number()
    .int()
    .nonnegative()
    .default(34)
    .describe(
      "Classes with fewer examples than this in a holdout are not judged per class there: with fewer than 34, one example is worth more than the 3-point class limit, so a single flipped answer would decide the gate (the demo's first run was rejected for one field image of 10).",
    ),
  latency_ratio_max: z.number().positive().default(1.2).describe("Candidate p95 latency at most this times the production model's..."),
  latency_slack_ms: z.number().nonnegative().default(0).describe('...plus this many milliseconds (0: the ratio alone; for micro-models whose p95 is timer noise).'),
  require_field_holdout: z.boolean().default(true).describe('Refuse a candidate when the field holdout is empty (nothing shows it is better on field data).'),
});
export type GateConfig = z.output<typeof gateConfig>;
export type GateConfigInput = z.input<typeof gateConfig>;

export type GateCheckName = 'field_holdout' | 'field_gain' | 'clean_drop' | 'class_drop' | 'latency';

export interface GateCheck {
  name: GateCheckName;
  passed: boolean;
  /** The measured quantity (points, or the latency ratio), null when not measurable. */
  value: number | null;
  threshold: number;
  detail: string;
}

export interface GateVerdict {
  passed: boolean;
  /** One line per failed check (what the registry records as the rejection reasons). */
  reasons: string[];
  checks: GateCheck[];
  /** Null when there was no production model to compare with (the first model passes). */
  baseline: 'production' | null;
}

const pts = (a: number, b: number): number => Math.round((a - b) * 100 * 1e6) / 1e6;
const fmt = (n: number): string => (Number.isInteger(n) ? String(n) : n.toFixed(2));

/** One holdout under the gate's metric: the overall value and each class's (count: examples, or true boxes for a detector). */
interface Scored {
  count: number;
  value: number;
  per_class: Record<string, { count: number; value: number }>;
}

const METRIC_NAME: Record<GateMetric, string> = { accuracy: 'accuracy', map50: 'mAP@0.5', map50_95: 'mAP@0.5:0.95' };
const CLASS_METRIC_NAME: Record<GateMetric, string> = { accuracy: 'accuracy', map50: 'AP@0.5', map50_95: 'AP@0.5:0.95' };

const isDetection = (s: SetMetrics | DetectionSetMetrics): s is DetectionSetMetrics => (s as DetectionSetMetrics).task === 'detection';

function scored(s: SetMetrics | DetectionSetMetrics, metric: GateMetric): Scored {
  if (isDetection(s)) {
    if (metric === 'accuracy') throw new FleetError('TRAINING_CONFIG_INVALID', 'the gate metric is accuracy, but the model is a detector: set gate.metric to map50 or map50_95');
    const per_class: Scored['per_class'] = {};
    for (const [l, c] of Object.entries(s.per_class)) per_class[l] = { count: c.count, value: (metric === 'map50' ? c.ap50 : c.ap50_95) ?? 0 };
    return { count: s.count, value: metric === 'map50' ? s.map50 : s.map50_95, per_class };
  }
  if (metric !== 'accuracy') throw new FleetError('TRAINING_CONFIG_INVALID', `the gate metric is ${metric}, but the model is a classifier: set gate.metric to accuracy (or leave it unset)`);
  const per_class: Scored['per_class'] = {};
  for (const [l, c] of Object.entries(s.per_class)) per_class[l] = { count: c.count, value: c.accuracy };
  return { count: s.count, value: s.accuracy, per_class };
}

function classChecks(set: 'clean' | 'field', cand: Scored, prod: Scored, c: GateConfig, metric: GateMetric): GateCheck[] {
  const out: GateCheck[] = [];
  for (const [label, p] of Object.entries(prod.per_class).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const k = cand.per_class[label];
    if (!k || p.count < c.class_min_samples || k.count < c.class_min_samples) continue;
    const drop = pts(p.value, k.value);
    const passed = drop <= c.class_drop_max_pts;
    out.push({
      name: 'class_drop',
      passed,
      value: drop,
      threshold: c.class_drop_max_pts,
      detail: `class ${label} on the ${set} holdout${metric === 'accuracy' ? '' : ` (${CLASS_METRIC_NAME[metric]})`}: ${(p.value * 100).toFixed(1)}% -> ${(k.value * 100).toFixed(1)}% (${drop > 0 ? `down ${fmt(drop)}` : `up ${fmt(-drop)}`} points; at most ${fmt(c.class_drop_max_pts)} down allowed)`,
    });
  }
  return out;
}

/** Judge a candidate. `production` null: nothing to compare with, every comparison passes. */
export function judge(candidate: GateInput, production: GateInput | null, config: GateConfig): GateVerdict {
  const checks: GateCheck[] = [];
  const metric: GateMetric = config.metric ?? (isDetection(candidate.clean) ? 'map50' : 'accuracy');
  const name = METRIC_NAME[metric];
  const cand = { clean: scored(candidate.clean, metric), field: scored(candidate.field, metric) };
  if (config.require_field_holdout && cand.field.count === 0) {
    checks.push({ name: 'field_holdout', passed: false, value: 0, threshold: 1, detail: 'the field holdout is empty: nothing shows the candidate is better on field data' });
  }
  if (production) {
    const prod = { clean: scored(production.clean, metric), field: scored(production.field, metric) };
    if (cand.field.count > 0) {
      const gain = pts(cand.field.value, prod.field.value);
      checks.push({
        name: 'field_gain',
        passed: gain >= config.field_gain_min_pts,
        value: gain,
        threshold: config.field_gain_min_pts,
        detail: `field holdout ${name} ${(prod.field.value * 100).toFixed(1)}% -> ${(cand.field.value * 100).toFixed(1)}% (${gain >= 0 ? '+' : ''}${fmt(gain)} points; at least +${fmt(config.field_gain_min_pts)} needed)`,
      });
    }
    const drop = pts(prod.clean.value, cand.clean.value);
    checks.push({
      name: 'clean_drop',
      passed: drop <= config.clean_drop_max_pts,
      value: drop,
      threshold: config.clean_drop_max_pts,
      detail: `clean holdout ${name} ${(prod.clean.value * 100).toFixed(1)}% -> ${(cand.clean.value * 100).toFixed(1)}% (${drop > 0 ? `down ${fmt(drop)}` : `up ${fmt(-drop)}`} points; at most ${fmt(config.clean_drop_max_pts)} down allowed)`,
    });
    checks.push(...classChecks('clean', cand.clean, prod.clean, config, metric), ...classChecks('field', cand.field, prod.field, config, metric));
    const limit = production.latency.p95_ms * config.latency_ratio_max + config.latency_slack_ms;
    const ratio = production.latency.p95_ms > 0 ? candidate.latency.p95_ms / production.latency.p95_ms : null;
    checks.push({
      name: 'latency',
      passed: candidate.latency.p95_ms <= limit,
      value: ratio,
      threshold: config.latency_ratio_max,
      detail: `p95 latency ${production.latency.p95_ms.toFixed(3)} ms -> ${candidate.latency.p95_ms.toFixed(3)} ms (${ratio === null ? 'n/a' : `${ratio.toFixed(2)}x`}; at most ${config.latency_ratio_max}x${config.latency_slack_ms ? ` + ${config.latency_slack_ms} ms` : ''})`,
    });
  }
  const failed = checks.filter((c) => !c.passed);
  return { passed: failed.length === 0, reasons: failed.map((c) => c.detail), checks, baseline: production ? 'production' : null };
}
