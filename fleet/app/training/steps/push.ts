/** Step 3 of a run: the candidate into the registry, with the loop's lineage. */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelRef } from '../../../../shared/schemas/index.js';
import { FleetError } from '../../../errors.js';
import { MANIFEST_FILE, type ModelVersion } from '../../models/registry.js';
import type { Pushed, StepDeps, Trained } from '../run-record.js';

/**
 * Stamps the loop's lineage on the candidate's manifest (whatever the trainer wrote, the loop's
 * record wins), pushes it to the registry (which signs it) and records the result on the run.
 */
export async function pushStep(d: Pick<StepDeps, 'registry' | 'runs' | 'emit'>, r: Trained): Promise<Pushed> {
  const { candidate, trained } = r;
  d.emit('push', `registering ${candidate.name}@${candidate.version}`);
  await stampLineage(trained.packageDir, candidate, { dataset: r.dataset.id, run: r.run.id, parent: r.parent, trainer: trained.run.trainer, code: trained.run.code_version });
  const pushed = await d.registry.push(trained.packageDir, { actor: `training:${r.run.id}` });
  d.runs.update(r.run.id, { result: candidate });
  return { ...r, pushed: pushed.version };
}

/**
 * Set lineage in the candidate's manifest and drop its signature (the registry signs). A
 * manifest that is unreadable or names another name@version fails the run (`FLEET_TRAINING_FAILED`).
 */
async function stampLineage(dir: string, ref: ModelRef, l: { dataset: string; run: string; parent: ModelVersion | null; trainer: string; code: string }): Promise<void> {
  const path = join(dir, MANIFEST_FILE);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new FleetError('TRAINING_FAILED', `the trainer wrote no readable ${MANIFEST_FILE}: ${(err as Error).message}`, { cause: err });
  }
  if (raw.name !== ref.name || raw.version !== ref.version) {
    throw new FleetError('TRAINING_FAILED', `the trainer wrote ${String(raw.name)}@${String(raw.version)}, not the requested ${ref.name}@${ref.version}`);
  }
  const { signature: _sig, ...rest } = raw;
  const lineage = {
    ...((rest.lineage as Record<string, unknown> | undefined) ?? {}),
    dataset_version: l.dataset,
    training_run: l.run,
    ...(l.parent ? { parent: { name: l.parent.name, version: l.parent.version } } : {}),
    trainer: l.trainer,
    code_version: l.code,
  };
  await writeFile(path, `${JSON.stringify({ ...rest, lineage }, null, 2)}\n`);
}
