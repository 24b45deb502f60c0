/**
 * The rollout state machine: `step(state, event)` folds one event into a new state, the
 * desired states to publish and the decisions to log. No I/O, no clock, no randomness: the
 * same state and event always give the same result, so a rollout is its event log, and a
 * restarted fleet service continues from the stored state (or replays the log).
 */
import { idString, modelRef, type ModelRef } from '../../../shared/schemas/common.js';
import { parseWith } from '../../../shared/validate.js';
import { Draft } from './draft.js';
import type { RolloutEvent } from './event-schema.js';
import { eventHandlers } from './handlers.js';
import { rolloutPlan, type RolloutPlan, type RolloutPlanInput } from './plan-schema.js';
import { rankOrder } from './selection.js';
import { ROLLOUT_STATE_VERSION, type Decision, type DesiredChange, type RolloutState, type StepResult } from './state-schema.js';
import type { GateResult } from './gates.js';
import { evaluateStage, progress } from './transitions.js';

/**
 * A pending rollout. Validates the id, candidate and plan (defaults filled in) and throws
 * `INPUT_INVALID` listing every bad key; nothing happens until a `start` event.
 */
export function initialState(id: string, candidate: ModelRef, plan: RolloutPlanInput): RolloutState {
  return {
    v: ROLLOUT_STATE_VERSION,
    id: parseWith(idString, id, 'INPUT_INVALID', 'rollout id'),
    candidate: parseWith(modelRef, candidate, 'INPUT_INVALID', 'candidate model'),
    // Through JSON so the stored plan is exactly what a reload gives back (no undefined keys).
    plan: JSON.parse(JSON.stringify(parseWith(rolloutPlan, plan, 'INPUT_INVALID', 'rollout plan'))) as RolloutPlan,
    status: 'pending',
    stage: 0,
    stage_started_at: null,
    started_at: null,
    updated_at: null,
    pause: null,
    devices: {},
    decisions: [],
  };
}

/**
 * Folds one event. Never mutates `state` (unchanged parts are shared with the result, so
 * treat both as immutable). `desired` lists only devices whose desired state changed, each as
 * a full desired state; `decisions` are this step's log lines (also appended to the state).
 * Events are trusted to be valid: parse untrusted input with `rolloutEvent` first.
 */
export function step(state: RolloutState, event: RolloutEvent): StepResult {
  const d = new Draft(state, event.at);
  (eventHandlers[event.type] as (d: Draft, e: RolloutEvent) => void)(d, event);
  progress(d);
  return d.finish();
}

export interface ReplayResult {
  state: RolloutState;
  /** Every desired change in emission order (a device may appear several times; the last wins). */
  desired: DesiredChange[];
  decisions: Decision[];
}

/** Folds events from `initial` (usually `initialState(...)`, or a stored state to continue from). */
export function replay(initial: RolloutState, events: Iterable<RolloutEvent>): ReplayResult {
  let state = initial;
  const desired: DesiredChange[] = [];
  const decisions: Decision[] = [];
  for (const e of events) {
    const r = step(state, e);
    state = r.state;
    desired.push(...r.desired);
    decisions.push(...r.decisions);
  }
  return { state, desired, decisions };
}

/**
 * Every desired state this rollout currently holds, in selection order: what a backend
 * re-publishes after its own restart or when a device reconnects with a stale revision.
 * Devices the rollout never touched, and devices that left the target, are not listed.
 */
export function desiredStates(state: RolloutState): DesiredChange[] {
  const out: DesiredChange[] = [];
  for (const id of rankOrder(state.devices)) {
    const r = state.devices[id];
    if (r && !r.removed && r.desired) out.push({ device_id: id, active: r.desired.active, shadow: r.desired.shadow });
  }
  return out;
}

/**
 * The current stage's gates as they stand, for the console and API (`tick`s log nothing while a
 * gate waits, so this is where "waiting for 2 of 5 devices" is read). `null` before start.
 */
export function currentGates(state: RolloutState): GateResult | null {
  if (state.status === 'pending') return null;
  return evaluateStage(new Draft(state, state.updated_at ?? 0));
}
