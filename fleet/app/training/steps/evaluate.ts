/** Step 4 of a run: candidate and production on the same holdouts, on this host. */
import { evaluateModels, type ModelReport } from '../evaluate.js';
import type { Evaluated, Pushed, StepDeps } from '../run-record.js';

/** Runs the candidate, and the production model when there is one, over the clean and field holdouts with ONNX Runtime. */
export async function evaluateStep(d: Pick<StepDeps, 'emit'>, r: Pushed): Promise<Evaluated> {
  const { parent, parentDir, split, config: c } = r;
  d.emit('evaluate', `evaluating ${r.pushed.ref}${parent ? ` against ${parent.ref}` : ''} on ${split.clean.length} clean and ${split.field.length} field holdout examples`);
  const models = [...(parent && parentDir ? [{ ref: { name: parent.name, version: parent.version }, dir: parentDir }] : []), { ref: r.candidate, dir: r.trained.packageDir }];
  const reports = await evaluateModels(models, { clean: split.clean, field: split.field }, {
    warmup: c.evaluation.warmup,
    intraOpThreads: c.evaluation.intra_op_threads,
    onProgress: (fraction, message) => d.emit('evaluate', message, { fraction }),
  });
  return { ...r, reports: { candidate: reports.at(-1) as ModelReport, production: parent ? (reports[0] as ModelReport) : null } };
}
