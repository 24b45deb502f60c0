import type { Allowance, Gates, RolloutPlan } from './plan-schema.js';

/** One stage of a plan, flattened: shadow (optional), canary, then each wave. */
export interface StageSpec {
  index: number;
  kind: 'shadow' | 'canary' | 'wave';
  /** For logs and the console: `shadow`, `canary`, `wave 1`... */
  name: string;
  bake_ms: number;
  /** Plan gates with the stage's overrides applied. */
  gates: Gates;
  /** Devices that run the candidate as active (cumulative); `null` for the shadow stage. */
  devices: Allowance | null;
  /** Shadow stage only. */
  shadow: { devices: Allowance; sample_rate: number } | null;
}

/** The plan's stages in order; `state.stage` indexes this list. */
export function stagesOf(plan: RolloutPlan): StageSpec[] {
  const out: StageSpec[] = [];
  const gates = (o: Partial<Gates> | undefined): Gates => {
    // Skip keys present but undefined, so an override never blanks a plan-level threshold.
    const set = Object.fromEntries(Object.entries(o ?? {}).filter(([, v]) => v !== undefined));
    return { ...plan.gates, ...set, on_failure: { ...plan.gates.on_failure, ...o?.on_failure } };
  };
  if (plan.shadow) {
    out.push({
      index: 0,
      kind: 'shadow',
      name: 'shadow',
      bake_ms: plan.shadow.bake_s * 1000,
      gates: gates(plan.shadow.gates),
      devices: null,
      // Default the shadow set to the canary's allowance: selection ranks devices the same way,
      // so these are exactly the devices that will run the candidate first.
      shadow: { devices: plan.shadow.devices ?? plan.canary.devices, sample_rate: plan.shadow.sample_rate },
    });
  }
  out.push({ index: out.length, kind: 'canary', name: 'canary', bake_ms: plan.canary.bake_s * 1000, gates: gates(plan.canary.gates), devices: plan.canary.devices, shadow: null });
  plan.waves.forEach((w, i) => {
    out.push({ index: out.length, kind: 'wave', name: `wave ${i + 1}`, bake_ms: w.bake_s * 1000, gates: gates(w.gates), devices: w.devices, shadow: null });
  });
  return out;
}

/** Devices an allowance grants out of `n`: percents round up, so 5% of 10 devices is one device. */
export function resolveAllowance(a: Allowance, n: number): number {
  if ('count' in a) return Math.min(a.count, n);
  // The epsilon keeps float noise (7% of 100 = 7.000000000000001) from granting an extra device.
  return Math.min(n, Math.max(0, Math.ceil((a.percent * n) / 100 - 1e-9)));
}

/**
 * Devices that may run the candidate as active while `stages[index]` is current: the largest
 * allowance of this and every earlier stage (waves are cumulative even if a count-based wave
 * resolves smaller than a percent-based one), and the whole target on the last stage.
 */
export function activeAllowance(stages: readonly StageSpec[], index: number, n: number): number {
  if (index >= stages.length - 1) return n;
  let k = 0;
  for (const s of stages.slice(0, index + 1)) if (s.devices) k = Math.max(k, resolveAllowance(s.devices, n));
  return k;
}

/** Human summary of a plan for the `started` decision: `shadow 2 → canary 5% → 25%, 50%, 100%`. */
export function describePlan(stages: readonly StageSpec[]): string {
  const a = (x: Allowance): string => ('count' in x ? `${x.count}` : `${x.percent}%`);
  return stages
    .map((s) => (s.shadow ? `shadow ${a(s.shadow.devices)}` : s.devices ? `${s.name} ${a(s.devices)}` : s.name))
    .join(' → ');
}
