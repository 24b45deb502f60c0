import type { FleetContext } from '../app/context.js';
import { LearningLoop, type LoopSetup } from '../app/training/loop.js';

/** A loop over the service's own parts (registry, datasets, rollouts, devices, clock, log). */
export function learningLoopFromContext(ctx: FleetContext, s: LoopSetup): LearningLoop {
  return new LearningLoop({
    labels: ctx.labels,
    artifacts: ctx.artifacts,
    registry: ctx.registry,
    datasets: ctx.datasets,
    rollouts: ctx.rollouts,
    devices: ctx.devices,
    clock: ctx.clock,
    log: ctx.log,
    runs: ctx.trainingRuns,
    ...s,
  });
}
