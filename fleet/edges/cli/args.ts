/**
 * Command-line values to API inputs: tags, model refs, durations, allowances, rollout plans
 * and sample filters. Pure functions; a bad value is a `FLEET_USAGE` error (exit 2) that
 * names the flag.
 */
import type { ModelRef } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';
import { rolloutPlan } from '../../core/rollouts/types.js';
import type { Allowance, RolloutPlanInput } from '../../core/rollouts/types.js';
import type { SampleFilter } from '../../app/samples/filter.js';

const bad = (message: string): FleetError => new FleetError('USAGE', message);

/** `k=v,k2=v2` (repeatable) to a tag map. A value may contain `=`; the key ends at the first. */
export function parseTags(values: readonly string[] | string | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  const list = values === undefined ? [] : typeof values === 'string' ? [values] : values;
  for (const item of list.flatMap((v) => v.split(','))) {
    const t = item.trim();
    if (!t) continue;
    const i = t.indexOf('=');
    if (i <= 0) throw bad(`--${flag} expects key=value, got '${t}'`);
    out[t.slice(0, i)] = t.slice(i + 1);
  }
  return out;
}

/** `NAME@VERSION` (the version is after the last `@`). */
export function parseModelRef(s: string | undefined): ModelRef {
  const at = s ? s.lastIndexOf('@') : -1;
  if (!s || at <= 0 || at === s.length - 1) throw bad(`expected NAME@VERSION (e.g. pets@1.2.0), got '${s ?? ''}'`);
  return { name: s.slice(0, at), version: s.slice(at + 1) };
}

const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

/** `90`, `90s`, `10m`, `1.5h`, `1h30m`, `2d` to seconds. */
export function parseDuration(s: string, flag: string): number {
  const text = s.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Number(text);
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)];
  if (!parts.length || parts.map((p) => p[0]).join('') !== text) throw bad(`--${flag} expects a duration such as 90s, 10m, 1h30m; got '${s}'`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] ?? 0), 0);
}

/** `10%` (share of the target) or `3` (a device count). */
export function parseAllowance(s: string, flag: string): Allowance {
  const t = s.trim();
  const pct = /^(\d+(?:\.\d+)?)%$/.exec(t);
  if (pct) {
    const percent = Number(pct[1]);
    if (percent <= 0 || percent > 100) throw bad(`--${flag}: a percent is in (0, 100], got ${t}`);
    return { percent };
  }
  if (/^\d+$/.test(t) && Number(t) > 0) return { count: Number(t) };
  throw bad(`--${flag} expects a percent (10%) or a device count (3), got '${s}'`);
}

/** A percent in (0, 100] as a fraction: `5%` -> 0.05. */
function parseFraction(s: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)%$/.exec(s.trim());
  const v = m ? Number(m[1]) : NaN;
  if (!(v > 0 && v <= 100)) throw bad(`--${flag} expects a percent in (0, 100], e.g. 5%; got '${s}'`);
  return v / 100;
}

export interface PlanFlags {
  canary?: string | undefined;
  waves?: string | undefined;
  bake?: string | undefined;
  shadow?: string | undefined;
  /** `k=v` tags the canary prefers (plan `canary.prefer.tag`). */
  canaryPrefer?: string[] | undefined;
}

/**
 * A rollout plan from the short flags, or `undefined` when none is given (the server's
 * default plan). Flags not given keep the plan schema's defaults; `--bake` applies to every
 * stage; `--shadow P%` adds a shadow stage in which the canary's devices also score P% of
 * their inputs with the candidate. Gates keep their defaults (use `--plan FILE` for more).
 */
export function planFromFlags(f: PlanFlags): RolloutPlanInput | undefined {
  if (f.canary === undefined && f.waves === undefined && f.bake === undefined && f.shadow === undefined && f.canaryPrefer === undefined) return undefined;
  // The defaults come from the schema itself, so the flags never drift from them.
  const defaults = rolloutPlan.parse({});
  const bake_s = f.bake === undefined ? undefined : parseDuration(f.bake, 'bake');
  const withBake = <T extends object>(stage: T): T & { bake_s?: number } => (bake_s === undefined ? stage : { ...stage, bake_s });
  const canary = f.canary === undefined ? defaults.canary.devices : parseAllowance(f.canary, 'canary');
  const waves = f.waves === undefined ? defaults.waves.map((w) => w.devices) : f.waves.split(',').map((w) => parseAllowance(w, 'waves'));
  const last = waves[waves.length - 1];
  if (!last || !('percent' in last) || last.percent !== 100) throw bad('--waves: the last wave must be 100% (every target device)');
  return {
    ...(f.shadow !== undefined ? { shadow: withBake({ sample_rate: parseFraction(f.shadow, 'shadow') }) } : {}),
    canary: withBake({ devices: canary, ...(f.canaryPrefer !== undefined ? { prefer: { tag: parseTags(f.canaryPrefer, 'canary-prefer') } } : {}) }),
    waves: waves.map((devices) => withBake({ devices })),
  };
}

/** Flags shared by `samples list`, `labels progress` and `datasets export`. */
export const FILTER_OPTIONS = {
  device: { type: 'string' },
  site: { type: 'string' },
  reason: { type: 'string' },
  model: { type: 'string' },
  version: { type: 'string' },
  label: { type: 'string' },
  'labeled-as': { type: 'string' },
  'min-confidence': { type: 'string' },
  'max-confidence': { type: 'string' },
  from: { type: 'string' },
  to: { type: 'string' },
} as const;

export const FILTER_HELP = `Filters (every given one must hold):
  --device ID --site S --model NAME --version X.Y.Z
  --reason R              low_confidence, low_margin, high_entropy, random, drift, shadow_disagreement
  --label L               predicted (top-1) label
  --labeled-as L          current human label
  --min-confidence X --max-confidence X
  --from T --to T         captured time window (ISO time or epoch ms)`;

const time = (v: string): number | string => (/^\d+$/.test(v) ? Number(v) : v);

function confidence(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw bad(`--${flag} expects a number, got '${v}'`);
  return n;
}

/** The filter flags to a sample filter (validated by the server with the same schema). */
export function filterFromFlags(v: { [K in keyof typeof FILTER_OPTIONS]?: string | undefined }): SampleFilter {
  const f: SampleFilter = {};
  if (v.device !== undefined) f.device = v.device;
  if (v.site !== undefined) f.site = v.site;
  if (v.reason !== undefined) f.reason = v.reason as SampleFilter['reason'];
  if (v.model !== undefined) f.model = v.model;
  if (v.version !== undefined) f.version = v.version;
  if (v.label !== undefined) f.label = v.label;
  if (v['labeled-as'] !== undefined) f.labeledAs = v['labeled-as'];
  const min = confidence(v['min-confidence'], 'min-confidence');
  const max = confidence(v['max-confidence'], 'max-confidence');
  if (min !== undefined) f.minConfidence = min;
  if (max !== undefined) f.maxConfidence = max;
  if (v.from !== undefined) f.from = time(v.from);
  if (v.to !== undefined) f.to = time(v.to);
  return f;
}
