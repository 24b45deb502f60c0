/**
 * The moves of a rollout, shared by event and command handlers: start a stage and top it up,
 * judge its gates, pass, pause, abort, complete. Each writes its decision with the reason and
 * the signals it was based on.
 */
import { modelRefString } from '../../../shared/schemas/common.js';
import { sameDesired, sameModel, type Draft } from './draft.js';
import { evaluateGates, type GateDevice, type GateResult } from './gates.js';
import { isManaged, pickActive, pickShadow, targetSize } from './selection.js';
import { activeAllowance, resolveAllowance } from './stages.js';
import { samples } from './aggregate.js';
import type { DeviceRecord, MetricsAgg, Signal } from './state-schema.js';

/** `{ stage, stage_name }` of the current stage, for decisions. */
export function here(d: Draft): { stage: number; stage_name: string } {
  return { stage: d.stage.index, stage_name: d.stage.name };
}

function failureOf(r: DeviceRecord): GateDevice['failure'] {
  return r.failure === null ? 'none' : r.failure.acknowledged ? 'acknowledged' : 'counted';
}

/** The current stage's devices as the gates see them: cumulative, every device moved so far. */
export function gateDevices(d: Draft): GateDevice[] {
  const shadowMode = d.stage.kind === 'shadow';
  const out: GateDevice[] = [];
  const min = d.stage.gates.min_samples_per_device;
  const devices = d.state.devices;
  // A device switched before it ever reported its previous version (rollout started right
  // after it came online) has no baseline of its own: compare it with the same previous
  // version on its peers in the target instead, so the gate can judge rather than wait forever.
  // Built only when such a device is met: this runs on every event, and summing the whole
  // fleet's baselines each time was most of a step's cost at 1,000 devices.
  let pooled: Map<string, MetricsAgg> | null = null;
  const pool = (): Map<string, MetricsAgg> => {
    const m = new Map<string, MetricsAgg>();
    for (const id in devices) {
      const r = devices[id] as DeviceRecord;
      if (!isManaged(r) || !r.last_known_good) continue;
      const k = `${r.last_known_good.name}@${r.last_known_good.version}`;
      m.set(k, sumAgg(m.get(k), r.baseline));
    }
    return m;
  };
  // Key order, not rank order: it is deterministic (insertion order survives JSON) and this
  // runs on every event, where sorting the fleet each time would dominate.
  for (const id in devices) {
    const r = devices[id] as DeviceRecord;
    if (!isManaged(r) || (shadowMode ? r.shadow_stage : r.assigned_stage) === null) continue;
    let baseline = r.baseline;
    if (samples(r.baseline) < min && r.last_known_good) baseline = (pooled ??= pool()).get(`${r.last_known_good.name}@${r.last_known_good.version}`) ?? r.baseline;
    out.push({
      id,
      has_previous: r.last_known_good !== null,
      failure: failureOf(r),
      installed: (shadowMode ? r.shadow_installed_at : r.installed_at) !== null,
      baseline,
      candidate: r.candidate,
      shadow: r.shadow,
    });
  }
  return out;
}

export function evaluateStage(d: Draft): GateResult {
  const shadow = d.stage.kind === 'shadow';
  const devices = gateDevices(d);
  if (shadow && devices.length === 0 && targetSize(d.state.devices) > 0 && !canShadow(d)) {
    // No target device runs a model to shadow beside (fresh devices with none yet): nothing can
    // ever report in this stage, and waiting would stall the rollout for good. The stage passes
    // after its bake; the canary then judges the candidate as usual. (An empty target still
    // waits, see min_samples_per_device: a selector that matches nothing must not "complete".)
    return { status: 'pass', action: null, failed: [], reason: 'nothing to judge: no target device runs a model the candidate could shadow beside', signals: [{ name: 'shadow_devices', value: 0, devices: 0 }] };
  }
  return evaluateGates({ mode: shadow ? 'shadow' : 'active', gates: d.stage.gates, on_gate_failure: d.state.plan.on_gate_failure, devices });
}

/** Could a device still be picked to shadow (what top-up would pick)? */
function canShadow(d: Draft): boolean {
  for (const id in d.state.devices) {
    const r = d.state.devices[id] as DeviceRecord;
    if (isManaged(r) && r.assigned_stage === null && r.failure === null && r.shadow_stage === null && r.last_known_good !== null) return true;
  }
  return false;
}

/**
 * Brings the current stage up to its allowance: shadow devices in a shadow stage, candidate
 * devices otherwise. Returns how many devices it moved. Only called while running.
 */
export function topUp(d: Draft): number {
  const s = d.stage;
  const n = targetSize(d.state.devices);
  const candidate = d.state.candidate;
  if (s.shadow) {
    const ids = pickShadow(d.state.devices, resolveAllowance(s.shadow.devices, n));
    for (const id of ids) {
      const r = d.edit(id);
      r.shadow_stage = s.index;
      r.desired = { active: r.last_known_good, shadow: { model: { ...candidate }, sample_rate: s.shadow.sample_rate } };
    }
    return ids.length;
  }
  const ids = pickActive(d.state.devices, activeAllowance(d.stages, s.index, n));
  for (const id of ids) {
    const r = d.edit(id);
    r.assigned_stage = s.index;
    r.desired = { active: { ...candidate }, shadow: null };
    r.revert_pending = false;
  }
  return ids.length;
}

/** Points a device back at its last-known-good version (and drops any shadow). */
export function revertDevice(d: Draft, id: string): boolean {
  if (d.device(id)?.desired == null) return false;
  const r = d.edit(id);
  const before = r.desired;
  r.desired = { active: r.last_known_good, shadow: null };
  // Only a device that was told to run the candidate has something to confirm; a shadow
  // device keeps reporting its (unchanged) active version either way.
  if (sameModel(before?.active, d.state.candidate)) r.revert_pending = true;
  return !sameDesired(before, r.desired);
}

function bakeElapsed(d: Draft): boolean {
  return d.state.stage_started_at !== null && d.now - d.state.stage_started_at >= d.stage.bake_ms;
}

function allowanceSignals(d: Draft, moved: number): Signal[] {
  const n = targetSize(d.state.devices);
  const s = d.stage;
  const allowed = s.shadow ? resolveAllowance(s.shadow.devices, n) : activeAllowance(d.stages, s.index, n);
  return [
    { name: s.shadow ? 'shadow_allowance' : 'active_allowance', value: allowed },
    { name: 'target_devices', value: n },
    { name: 'moved_now', value: moved },
  ];
}

/** Makes stage `index` current and tops it up. */
export function enterStage(d: Draft, index: number): void {
  const leaving = d.stage;
  d.state.stage = index;
  d.state.stage_started_at = d.now;
  const moved = topUp(d);
  if (leaving.kind === 'shadow' && index !== leaving.index) {
    // The shadow has done its job; devices not yet on the candidate go back to plain lkg.
    for (const id of d.order()) {
      const r = d.device(id) as DeviceRecord;
      if (isManaged(r) && r.desired?.shadow && r.assigned_stage === null) revertDevice(d, id);
    }
  }
  const s = d.stage;
  const what = s.shadow ? `${moved} devices start shadowing ${modelRefString(d.state.candidate)} (sample rate ${s.shadow.sample_rate})` : `${moved} more devices move to ${modelRefString(d.state.candidate)}`;
  d.decide({ kind: 'stage_started', ...here(d), reason: `${s.name} started: ${what}; ${s.bake_ms === 0 ? 'no bake time' : `bake ${s.bake_ms / 1000}s`}`, signals: allowanceSignals(d, moved) });
}

/** Leaves the current stage forward: the next stage, or completion after the last one. */
export function advance(d: Draft): void {
  if (d.state.stage >= d.stages.length - 1) complete(d);
  else enterStage(d, d.state.stage + 1);
}

function complete(d: Draft): void {
  let on = 0;
  let confirmed = 0;
  let failed = 0;
  for (const r of Object.values(d.state.devices)) {
    if (!isManaged(r)) continue;
    if (r.failure) failed++;
    else if (sameModel(r.desired?.active, d.state.candidate)) {
      on++;
      if (r.installed_at !== null) confirmed++;
    }
  }
  d.state.status = 'completed';
  d.state.pause = null;
  d.decide({
    kind: 'completed',
    ...here(d),
    reason: `rollout of ${modelRefString(d.state.candidate)} completed: ${on} devices desired on it (${confirmed} confirmed, the rest converge when they report), ${failed} failed and stay on their previous version`,
    signals: [
      { name: 'devices_on_candidate', value: on },
      { name: 'devices_confirmed', value: confirmed },
      { name: 'devices_failed', value: failed },
    ],
  });
}

export function pause(d: Draft, by: 'gate' | 'manual', actor: string | null, reason: string, signals?: Signal[]): void {
  d.state.status = 'paused';
  d.state.pause = { at: d.now, by, actor, reason };
  d.decide({ kind: 'paused', ...here(d), ...(actor ? { actor } : {}), reason, ...(signals ? { signals } : {}) });
}

/** Device ids in a message: the first few, then how many more. */
function idList(ids: readonly string[], shown = 10): string {
  return ids.length <= shown ? ids.join(', ') : `${ids.slice(0, shown).join(', ')} and ${ids.length - shown} more`;
}

/**
 * Ends the rollout and reverts every device it touched (active or shadow) to last-known-good.
 * Offline devices get the desired state too and converge when they come back. A device that
 * had no version before the candidate has nothing to go back to: it is told to run none, and
 * an agent keeps the model it runs rather than stop serving, so it keeps the candidate. The
 * decision counts it apart and names it instead of calling it reverted.
 */
export function abortAll(d: Draft, status: 'aborted' | 'rolled_back', actor: string | null, reason: string, signals: Signal[] = []): void {
  let reverted = 0;
  const nothingToRevert: string[] = [];
  for (const id of d.order()) {
    const r = d.device(id) as DeviceRecord;
    if (r.removed || r.desired === null) continue;
    const onCandidate = sameModel(r.desired.active, d.state.candidate);
    if (!revertDevice(d, id)) continue;
    if (onCandidate && r.last_known_good === null) nothingToRevert.push(id);
    else reverted++;
  }
  d.state.status = status;
  d.state.pause = null;
  d.decide({
    kind: status,
    ...here(d),
    ...(actor ? { actor } : {}),
    reason: `${reason}; ${reverted} ${reverted === 1 ? 'device' : 'devices'} reverted to their last-known-good version${
      nothingToRevert.length ? `; ${nothingToRevert.length} had no previous version to revert to and keep${nothingToRevert.length === 1 ? 's' : ''} running ${modelRefString(d.state.candidate)} until given another: ${idList(nothingToRevert)}` : ''
    }`,
    signals: [...signals, { name: 'devices_reverted', value: reverted }, { name: 'devices_without_previous', value: nothingToRevert.length }],
  });
}

/** A failed gate: log it, then pause or abort as the plan (or the gate's override) says. */
export function trip(d: Draft, result: GateResult): void {
  const action = result.action ?? 'pause';
  const reason = `${d.stage.name} ${result.reason}`;
  d.decide({ kind: 'gate_failed', ...here(d), reason: `${reason}; ${action === 'abort' ? 'aborting' : 'pausing'} per plan`, signals: result.signals });
  if (action === 'abort') abortAll(d, 'aborted', null, reason, []);
  else pause(d, 'gate', null, reason, result.signals);
}

/**
 * Judges the current stage after any event: a failing gate pauses or aborts at once; passing
 * gates advance once the bake time is over. Loops because a stage with no bake time may pass
 * right away; bounded by the number of stages. While paused only an abort-level failure acts.
 */
export function progress(d: Draft): void {
  for (let guard = 0; guard <= d.stages.length; guard++) {
    if (d.state.status === 'paused') {
      const r = evaluateStage(d);
      if (r.status === 'fail' && r.action === 'abort') trip(d, r);
      return;
    }
    if (d.state.status !== 'running') return;
    const r = evaluateStage(d);
    if (r.status === 'fail') return trip(d, r);
    if (r.status !== 'pass' || !bakeElapsed(d)) return;
    d.decide({ kind: 'gate_passed', ...here(d), reason: `${d.stage.name} passed ${d.stage.bake_ms === 0 ? 'with no bake time' : `after ${d.stage.bake_ms / 1000}s bake`}: ${r.reason}`, signals: r.signals });
    advance(d);
  }
}

/** Field-wise sum of two metric aggregates (all fields are running sums). */
function sumAgg(a: MetricsAgg | undefined, b: MetricsAgg): MetricsAgg {
  if (!a) return { ...b };
  return {
    windows: a.windows + b.windows,
    count: a.count + b.count,
    errors: a.errors + b.errors,
    latency_sum: a.latency_sum + b.latency_sum,
    latency_weight: a.latency_weight + b.latency_weight,
    confidence_sum: a.confidence_sum + b.confidence_sum,
    confidence_weight: a.confidence_weight + b.confidence_weight,
    outlier_sum: a.outlier_sum + b.outlier_sum,
    outlier_weight: a.outlier_weight + b.outlier_weight,
  };
}
