/** Step 4 of a run: the candidate, and production on the same holdouts, on this host. */
import { FleetError } from '../../../errors.js';
import { evaluateDetectionModels, type DetectionEvalExample } from '../evaluate-detection.js';
import { evaluateModels, readPackageManifest, type EvalExample } from '../evaluate.js';
import type { Evaluated, Pushed, StepDeps } from '../run-record.js';

/** A detector's holdout example needs its true boxes: one without them cannot be scored. */
function withBoxes(examples: readonly EvalExample[], set: string): DetectionEvalExample[] {
  return examples.map((e) => {
    if (!e.boxes) throw new FleetError('EVALUATION_FAILED', `${set} holdout example ${e.id} has no box labels; a detector is scored on boxes`, { details: { sample_id: e.id } });
    return { id: e.id, bytes: e.bytes, boxes: e.boxes };
  });
}

/**
 * Runs the candidate, and the production model when there is one, over the clean and field
 * holdouts with ONNX Runtime: accuracy for a classifier, mAP through the agent's decoder and
 * NMS for a detector (the candidate's manifest says which).
 */
export async function evaluateStep(d: Pick<StepDeps, 'emit'>, r: Pushed): Promise<Evaluated> {
  const { parent, parentDir, split, config: c } = r;
  d.emit('evaluate', `evaluating ${r.pushed.ref}${parent ? ` against ${parent.ref}` : ''} on ${split.clean.length} clean and ${split.field.length} field holdout examples`);
  const models = [...(parent && parentDir ? [{ ref: { name: parent.name, version: parent.version }, dir: parentDir }] : []), { ref: r.candidate, dir: r.trained.packageDir }];
  const o = { warmup: c.evaluation.warmup, intraOpThreads: c.evaluation.intra_op_threads, onProgress: (fraction: number, message: string) => d.emit('evaluate', message, { fraction }) };
  const task = (await readPackageManifest(r.trained.packageDir)).task;
  const reports = task === 'detection' ? await evaluateDetectionModels(models, { clean: withBoxes(split.clean, 'clean'), field: withBoxes(split.field, 'field') }, o) : await evaluateModels(models, { clean: split.clean, field: split.field }, o);
  return { ...r, reports: { candidate: reports.at(-1)!, production: parent ? reports[0]! : null } };
}
