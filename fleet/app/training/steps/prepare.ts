/** Step 0 of a run: its work directory, the parent's package in it, and the candidate's classes. */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { FleetError } from '../../../errors.js';
import type { ArtifactStore } from '../../artifacts.js';
import { MANIFEST_FILE, type ModelRegistry, type ModelVersion } from '../../models/registry.js';
import { readPackageManifest } from '../evaluate.js';
import type { Prepared, RunStart, StepDeps } from '../run-record.js';

/**
 * Empties the run's work directory and writes the parent's package into `parent/` (the trainer
 * fine-tunes from it, the evaluation runs it). The candidate's classes are the parent's, else
 * the configuration's; with neither, `FLEET_TRAINING_NOT_CONFIGURED`.
 */
export async function prepareStep(d: Pick<StepDeps, 'registry' | 'artifacts'>, r: RunStart): Promise<Prepared> {
  await rm(r.workDir, { recursive: true, force: true });
  await mkdir(r.workDir, { recursive: true });
  const parentDir = r.parent ? await exportRegisteredPackage(d.registry, d.artifacts, r.parent, join(r.workDir, 'parent')) : null;
  const labels = parentDir ? (await readPackageManifest(parentDir)).labels : r.config.labels;
  if (!labels) throw new FleetError('TRAINING_NOT_CONFIGURED', `${r.config.name} has no registered version and its training configuration lists no labels`);
  return { ...r, parentDir, labels };
}

/** Write a registered version's package (signed manifest + files) into `dir`. */
async function exportRegisteredPackage(registry: ModelRegistry, artifacts: ArtifactStore, v: ModelVersion, dir: string): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, MANIFEST_FILE), await registry.manifestBytes(v.name, v.version));
  for (const f of v.files) {
    const target = join(dir, f.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, await artifacts.get(f.sha256));
  }
  return dir;
}
