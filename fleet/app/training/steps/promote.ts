/** Step 6 of a run: the automatic rollout of an accepted candidate, when the model opted in. */
import { EdgeloopError } from '../../../../shared/errors.js';
import type { Judged, Promoted, StepDeps } from '../run-record.js';

/**
 * Starts a rollout of the candidate to the configured selector with the configured plan. A
 * rollout that cannot start does not fail the run: the candidate stays accepted and the reason
 * is kept as the run's error.
 */
export async function promoteStep(d: Pick<StepDeps, 'rollouts' | 'runs' | 'log' | 'emit'>, r: Judged): Promise<Promoted> {
  const auto = r.config.auto_promote;
  if (!auto) return { ...r, rolloutError: null };
  const { candidate } = r;
  try {
    const ro = d.rollouts.create({ model: candidate, selector: auto.selector, plan: auto.plan, actor: `training:${r.run.id}` });
    d.runs.update(r.run.id, { rollout_id: ro.state.id });
    const stages = [...(auto.plan.shadow ? ['shadow'] : []), 'canary', ...auto.plan.waves.map((_, i) => `wave ${i + 1}`)];
    d.emit('rollout', `rollout ${ro.state.id} of ${candidate.name}@${candidate.version} started (${stages.join(' -> ')})`);
    return { ...r, rolloutError: null };
  } catch (err) {
    const rolloutError = { code: err instanceof EdgeloopError ? err.code : 'FLEET_TRAINING_FAILED', message: `accepted, but the automatic rollout did not start: ${(err as Error).message}` };
    d.log.warn({ run: r.run.id, reason: rolloutError.message }, 'automatic promotion failed');
    d.emit('rollout', rolloutError.message);
    return { ...r, rolloutError };
  }
}
