/**
 * The evaluation gate, pure: a candidate's metrics against the production model's, measured
 * on the same clean holdout, the same field holdout and the same host (fleet/app/training/
 * evaluate.ts), give a verdict with a reason per failed check. Accuracies are fractions;
 * thresholds are in percentage points ("points"). Differences are rounded to 1e-6 points
 * before comparing, so 0.51 - 0.49 counts as exactly 2 points.
 */
import { z } from 'zod';

/** Accuracy on one holdout, overall and per class. */
export interface SetMetrics {
  count: number;
  correct: number;
  accuracy: number;
  per_class: Record<string, { count: number; correct: number; accuracy: number }>;
}

/** What the gate reads of an evaluation. */
export interface GateInput {
  clean: SetMetrics;
  field: SetMetrics;
  latency: { p50_ms: number; p95_ms: number };
}

export const gateConfig = z.strictObject({
  field_gain_min_pts: z.number().min(-100).max(100).default(2).describe('Field-holdout accuracy must rise by at least this many points (accuracy points, so -100..100; 0 accepts no gain, a negative value accepts a drop of that size).'),
  clean_drop_max_pts: z.number().nonnegative().default(1).describe('Clean-holdout accuracy may fall by at most this many points.'),
  class_drop_max_pts: z.number().nonnegative().default(3).describe('No class may fall by more than this many points (on either holdout).'),
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

function classChecks(set: 'clean' | 'field', cand: SetMetrics, prod: SetMetrics, c: GateConfig): GateCheck[] {
  const out: GateCheck[] = [];
  for (const [label, p] of Object.entries(prod.per_class).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const k = cand.per_class[label];
    if (!k || p.count < c.class_min_samples || k.count < c.class_min_samples) continue;
    const drop = pts(p.accuracy, k.accuracy);
    const passed = drop <= c.class_drop_max_pts;
    out.push({
      name: 'class_drop',
      passed,
      value: drop,
      threshold: c.class_drop_max_pts,
      detail: `class ${label} on the ${set} holdout: ${(p.accuracy * 100).toFixed(1)}% -> ${(k.accuracy * 100).toFixed(1)}% (${drop > 0 ? `down ${fmt(drop)}` : `up ${fmt(-drop)}`} points; at most ${fmt(c.class_drop_max_pts)} down allowed)`,
    });
  }
  return out;
}

/** Judge a candidate. `production` null: nothing to compare with, every comparison passes. */
export function judge(candidate: GateInput, production: GateInput | null, config: GateConfig): GateVerdict {
  const checks: GateCheck[] = [];
  if (config.require_field_holdout && candidate.field.count === 0) {
    checks.push({ name: 'field_holdout', passed: false, value: 0, threshold: 1, detail: 'the field holdout is empty: nothing shows the candidate is better on field data' });
  }
  if (production) {
    if (candidate.field.count > 0) {
      const gain = pts(candidate.field.accuracy, production.field.accuracy);
      checks.push({
        name: 'field_gain',
        passed: gain >= config.field_gain_min_pts,
        value: gain,
        threshold: config.field_gain_min_pts,
        detail: `field holdout accuracy ${(production.field.accuracy * 100).toFixed(1)}% -> ${(candidate.field.accuracy * 100).toFixed(1)}% (${gain >= 0 ? '+' : ''}${fmt(gain)} points; at least +${fmt(config.field_gain_min_pts)} needed)`,
      });
    }
    const drop = pts(production.clean.accuracy, candidate.clean.accuracy);
    checks.push({
      name: 'clean_drop',
      passed: drop <= config.clean_drop_max_pts,
      value: drop,
      threshold: config.clean_drop_max_pts,
      detail: `clean holdout accuracy ${(production.clean.accuracy * 100).toFixed(1)}% -> ${(candidate.clean.accuracy * 100).toFixed(1)}% (${drop > 0 ? `down ${fmt(drop)}` : `up ${fmt(-drop)}`} points; at most ${fmt(config.clean_drop_max_pts)} down allowed)`,
    });
    checks.push(...classChecks('clean', candidate.clean, production.clean, config), ...classChecks('field', candidate.field, production.field, config));
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
