/** Step 2 of a run: the trainer writes the candidate package. */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { EdgeloopError } from '../../../../shared/errors.js';
import type { ModelRef } from '../../../../shared/schemas/index.js';
import { bumpMinor, compareSemver } from '../../../../shared/semver.js';
import { FleetError } from '../../../errors.js';
import type { DatasetReady, StepDeps, Trained } from '../run-record.js';

/**
 * Names the candidate (the next minor version of the model), and has the run's trainer write it
 * into `candidate/` from the training set only, fine-tuning from the parent when there is one.
 * The trainer's progress becomes `train` lines; what it reports it used is recorded on the run.
 * A trainer that throws anything but a coded error fails the run with `FLEET_TRAINING_FAILED`.
 */
export async function trainStep(d: Pick<StepDeps, 'registry' | 'runs' | 'signKeyPem' | 'emit'>, r: DatasetReady): Promise<Trained> {
  const c = r.config;
  const { trainer, parent } = r;
  const version = nextVersion(d.registry.list({ name: c.name }).map((v) => v.version));
  const candidate: ModelRef = { name: c.name, version };
  const outDir = join(r.workDir, 'candidate');
  await mkdir(outDir, { recursive: true });
  d.emit('train', `training ${c.name}@${version} with the ${trainer.name} trainer${parent ? ` from ${parent.ref}` : ' from scratch'}`);
  let trained;
  try {
    trained = await trainer.train({
      model: candidate,
      datasetVersion: r.dataset.id,
      runId: r.run.id,
      train: r.split.train,
      // A detector's YOLO/COCO layouts have a val split: the field holdout (docs/learning-loop.md).
      // Classifiers keep both holdouts away from the trainer.
      ...(r.split.field.some((e) => e.boxes) ? { val: r.split.field } : {}),
      labels: r.labels,
      parent: parent && r.parentDir ? { ref: { name: parent.name, version: parent.version }, dir: r.parentDir } : null,
      params: c.params,
      seed: c.seed,
      outputDir: outDir,
      ...(d.signKeyPem ? { signKeyPem: d.signKeyPem } : {}),
      onProgress: (p) => d.emit('train', p.message, { ...(p.fraction !== undefined ? { fraction: p.fraction } : {}), ...(p.metrics ? { metrics: p.metrics } : {}) }),
      signal: r.signal,
    });
  } catch (err) {
    if (err instanceof EdgeloopError) throw err;
    throw new FleetError('TRAINING_FAILED', `the ${trainer.name} trainer failed: ${(err as Error).message}`, { cause: err });
  }
  d.runs.update(r.run.id, { code_version: trained.run.code_version, params: trained.run.params });
  return { ...r, candidate, trained };
}

/** The next minor version after every version of the model (registered or rejected). */
export function nextVersion(versions: readonly string[]): string {
  if (versions.length === 0) return '1.0.0';
  return bumpMinor(versions.reduce((a, b) => (compareSemver(a, b) >= 0 ? a : b)));
}
