import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { desiredStates, initialState, replay } from '../../../fleet/core/rollouts/machine.js';
import type { Allowance, DesiredChange, RolloutPlan, RolloutState, StepResult } from '../../../fleet/core/rollouts/types.js';
import type { ModelRef } from '../../../shared/schemas/common.js';
import { CAND } from './helpers.js';
import { runScenario, scenarioArb, type Scenario } from './scenario.js';

const isCand = (m: ModelRef | null | undefined): boolean => m?.name === CAND.name && m.version === CAND.version;
const sameRef = (a: ModelRef | null, b: ModelRef | null): boolean => (a === null || b === null ? a === b : a.name === b.name && a.version === b.version);
const namesCand = (c: { active: ModelRef | null; shadow: { model: ModelRef } | null }): boolean => isCand(c.active) || isCand(c.shadow?.model);

/** Written apart from stages.ts on purpose: the test's own reading of "cumulative allowance". */
function allowanceOracle(plan: RolloutPlan, stage: number, n: number): number {
  const list: (Allowance | null)[] = [...(plan.shadow ? [null] : []), plan.canary.devices, ...plan.waves.map((w) => w.devices)];
  if (stage >= list.length - 1) return n;
  let k = 0;
  for (const a of list.slice(0, stage + 1)) {
    if (!a) continue;
    k = Math.max(k, 'count' in a ? Math.min(a.count, n) : Math.min(n, Math.ceil((a.percent * n) / 100 - 1e-9)));
  }
  return k;
}

const managed = (s: RolloutState) => Object.entries(s.devices).filter(([, r]) => !r.removed && r.excluded_reason === null);
const candidateCount = (s: RolloutState): number => managed(s).filter(([, r]) => isCand(r.desired?.active)).length;

/** Checks the invariants after one step; `published` is what a backend would hold. */
function checker(published: Map<string, DesiredChange>) {
  return (before: RolloutState, r: StepResult): void => {
    const s = r.state;
    for (const c of r.desired) published.set(c.device_id, c);
    for (const d of r.decisions) expect(d.reason.length).toBeGreaterThan(0);
    for (const d of r.decisions) if (d.kind === 'gate_failed' || d.kind === 'gate_passed') expect(d.signals?.length).toBeGreaterThan(0);

    // 1. No stage exceeds its allowance (shadow devices do not count as active). A shrinking
    //    target may leave a stage above its new allowance; the machine then moves no one.
    const n = managed(s).length;
    const allowed = s.status === 'pending' || s.status === 'aborted' || s.status === 'rolled_back' ? 0 : allowanceOracle(s.plan, s.stage, n);
    const count = candidateCount(s);
    const assignsCandidate = r.desired.some((c) => isCand(c.active) && !isCand(before.devices[c.device_id]?.desired?.active));
    if (assignsCandidate) expect(count).toBeLessThanOrEqual(allowed);
    expect(count).toBeLessThanOrEqual(Math.max(allowed, candidateCount(before)));
    if (s.status === 'pending' || (s.stage === 0 && s.plan.shadow)) expect(count).toBe(0);

    // 2. After an abort or rollback every touched device is back on its last-known-good.
    // (Violations are collected and asserted once: an expect per device per step is slow.)
    if (s.status === 'aborted' || s.status === 'rolled_back') {
      const wrong = Object.entries(s.devices).filter(([id, rec]) => {
        if (rec.removed) return false;
        const p = published.get(id);
        const desiredOk = !rec.desired || (rec.desired.shadow === null && sameRef(rec.desired.active, rec.last_known_good));
        return !desiredOk || (p !== undefined && namesCand(p));
      });
      expect(wrong.map(([id]) => id)).toEqual([]);
    }

    // 4. Completed: every target device that did not fail has the candidate desired.
    if (s.status === 'completed') {
      const missing = managed(s).filter(([id, rec]) => rec.failure === null && !isCand(published.get(id)?.active));
      expect(missing.map(([id]) => id)).toEqual([]);
    }

    // 5. Paused emits no new candidate assignments until resumed.
    if (before.status === 'paused' && !r.decisions.some((d) => d.kind === 'resumed')) {
      expect(r.desired.filter(namesCand)).toEqual([]);
    }
  };
}

describe('rollout machine: properties', () => {
  it('allowance, abort reverts everything, completion covers the target, pause holds (random plans, fleets, interleavings)', { timeout: 240_000 }, () => {
    let completed = 0;
    let aborted = 0;
    fc.assert(
      fc.property(scenarioArb(), (sc: Scenario) => {
        const published = new Map<string, DesiredChange>();
        const { final } = runScenario(sc, checker(published));
        // What was published, folded, equals the state's own view of desired states.
        const fromState = new Map(desiredStates(final).map((c) => [c.device_id, c]));
        for (const [id, c] of published) if (!final.devices[id]?.removed) expect(fromState.get(id), id).toEqual(c);
        expect(fromState.size).toBe([...published.keys()].filter((id) => !final.devices[id]?.removed).length);
        if (final.status === 'completed') completed++;
        if (final.status === 'aborted' || final.status === 'rolled_back') aborted++;
      }),
      { numRuns: 150 },
    );
    // The generator must actually reach the interesting ends, or the invariants say little.
    expect(completed).toBeGreaterThan(3);
    expect(aborted).toBeGreaterThan(3);
  });

  it('is deterministic: replaying the log, with a JSON restart anywhere, gives the same decisions and desired states', () => {
    fc.assert(
      fc.property(scenarioArb(120, 50), fc.double({ min: 0, max: 1, noNaN: true }), (sc, cut) => {
        const { events, final } = runScenario(sc);
        const init = initialState('ro-prop', CAND, sc.plan);
        const once = replay(init, events);
        const k = Math.floor(cut * events.length);
        const first = replay(init, events.slice(0, k));
        // A restart: the state is stored as JSON and read back by a new process.
        const restored = JSON.parse(JSON.stringify(first.state)) as RolloutState;
        expect(restored).toStrictEqual(first.state);
        const rest = replay(restored, events.slice(k));
        expect([...first.decisions, ...rest.decisions]).toStrictEqual(once.decisions);
        expect([...first.desired, ...rest.desired]).toStrictEqual(once.desired);
        expect(rest.state).toStrictEqual(once.state);
        expect(once.state).toStrictEqual(final);
      }),
      { numRuns: 60 },
    );
  });
});
