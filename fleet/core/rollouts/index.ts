/** Rollouts: a pure state machine (shadow → canary → waves, gated on model quality). */
export * from './types.js';
export { initialState, step, replay, desiredStates, currentGates, type ReplayResult } from './machine.js';
export { evaluateGates, type GateDevice, type GateInput, type GateResult } from './gates.js';
export { stagesOf, resolveAllowance, activeAllowance, type StageSpec } from './stages.js';
export { deviceRank, rankOrder, targetSize, isManaged } from './selection.js';
export { commandAllowed } from './commands.js';
export { metricsEventFromTelemetry, reportEventFromStatus } from './telemetry.js';
