/**
 * One training run as a pipeline of steps over its record (run-record.ts):
 *
 *   prepare -> dataset -> train -> push -> evaluate -> gate -> [promote]
 *
 * Each step is a function of the fleet's parts and the record so far (steps/), testable alone.
 * The run ends `rejected` when the gate says no, `accepted` after promotion, and `failed` with
 * the error's code when a step throws; its work directory is removed either way.
 */
import { rm } from 'node:fs/promises';
import { EdgeloopError } from '../../../shared/errors.js';
import { FleetError } from '../../errors.js';
import type { RunStart, StepDeps } from './run-record.js';
import type { TrainingRun } from './runs.js';
import { datasetStep } from './steps/dataset.js';
import { evaluateStep } from './steps/evaluate.js';
import { gateStep } from './steps/gate.js';
import { prepareStep } from './steps/prepare.js';
import { promoteStep } from './steps/promote.js';
import { pushStep } from './steps/push.js';
import { trainStep } from './steps/train.js';

/** Runs every step of `start`; resolves with the finished run (accepted, rejected or failed), never rejects. */
export async function runPipeline(d: StepDeps, start: RunStart): Promise<TrainingRun> {
  const id = start.run.id;
  try {
    const prepared = await prepareStep(d, start);
    const ready = await datasetStep(d, prepared);
    const trained = await trainStep(d, ready);
    const pushed = await pushStep(d, trained);
    const evaluated = await evaluateStep(d, pushed);
    const judged = await gateStep(d, evaluated);
    const model = `${judged.candidate.name}@${judged.candidate.version}`;
    if (!judged.verdict.passed) {
      const done = d.runs.finish(id, { status: 'rejected', metrics: judged.metrics, gate: judged.verdict, report_sha256: judged.reportSha });
      d.emit('done', `${model} rejected (kept in the registry with the reasons)`);
      return done;
    }
    const promoted = await promoteStep(d, judged);
    const done = d.runs.finish(id, { status: 'accepted', metrics: promoted.metrics, gate: promoted.verdict, report_sha256: promoted.reportSha, error: promoted.rolloutError });
    d.emit('done', `${model} accepted`);
    return done;
  } catch (err) {
    const e = err instanceof EdgeloopError ? err : new FleetError('TRAINING_FAILED', (err as Error).message, { cause: err });
    d.log.error({ run: id, code: e.code, reason: e.message }, 'training run failed');
    d.emit('failed', `${e.code}: ${e.message}`);
    return d.runs.finish(id, { status: 'failed', error: { code: e.code, message: e.message } });
  } finally {
    await rm(start.workDir, { recursive: true, force: true }).catch(() => undefined);
  }
}
