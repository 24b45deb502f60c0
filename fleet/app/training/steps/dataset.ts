/** Step 1 of a run: the dataset version and its three sets. */
import { FleetError } from '../../../errors.js';
import type { BaseRef, DatasetManifest } from '../../../core/labels/dataset-schema.js';
import type { ArtifactStore } from '../../artifacts.js';
import { baseContentSha, type BaseSetSource } from '../base-source.js';
import type { EvalExample } from '../evaluate.js';
import type { DatasetReady, Prepared, RunSplit, StepDeps } from '../run-record.js';
import type { TrainingExample } from '../trainer.js';

/**
 * Resolves the configured base set (refusing one whose content changed since its hash was
 * recorded), cuts the dataset version (field samples split by the model's fixed holdout rule,
 * keeping the placements of the model's previous version), records it on the run, and loads
 * the three sets. An empty training set is `INPUT_INVALID`.
 */
export async function datasetStep(d: Pick<StepDeps, 'base' | 'datasets' | 'runs' | 'artifacts' | 'emit'>, r: Prepared): Promise<DatasetReady> {
  const c = r.config;
  d.emit('dataset', 'building the dataset version');
  const resolved = await resolveBase(d.base, c.base);
  const previous = d.runs.previousDataset(c.name, r.run.id);
  const { dataset, excluded } = await d.datasets.createTrainingVersion({ model: c.name, labels: r.labels, base: resolved.map((b) => b.ref), rule: c.holdout, actor: `training:${r.run.id}`, previous });
  d.runs.update(r.run.id, { dataset_version: dataset.id });
  const split = await splitExamples(d.artifacts, dataset, resolved);
  d.emit('dataset', `dataset ${dataset.id.slice(0, 12)}: ${split.train.length} train, ${split.clean.length} clean holdout, ${split.field.length} field holdout${excluded ? ` (${excluded} labels outside the classes left out)` : ''}`, {
    metrics: { train: split.train.length, clean_holdout: split.clean.length, field_holdout: split.field.length },
  });
  if (split.train.length === 0) throw new FleetError('INPUT_INVALID', `dataset ${dataset.id} has no training examples`);
  return { ...r, dataset, split };
}

/** Each base reference's examples, the reference stamped with their content hash. Throws `FLEET_BASE_SET_INVALID` when a recorded hash no longer matches. */
async function resolveBase(source: BaseSetSource, refs: readonly BaseRef[]): Promise<Array<{ ref: BaseRef; examples: TrainingExample[] }>> {
  const resolved: Array<{ ref: BaseRef; examples: TrainingExample[] }> = [];
  for (const ref of refs) {
    const examples = await source.examples(ref);
    const sha = baseContentSha(examples);
    if (ref.content_sha256 && ref.content_sha256 !== sha) {
      throw new FleetError('BASE_SET_INVALID', `base set ${ref.source} [${ref.offset ?? 0}, +${ref.count ?? examples.length}) no longer matches its recorded content hash`, { details: { ref, sha } });
    }
    resolved.push({ ref: { ...ref, content_sha256: sha }, examples });
  }
  return resolved;
}

/** Train examples (base train slices + field train), clean holdout (base), field holdout (field). */
async function splitExamples(artifacts: ArtifactStore, dataset: DatasetManifest, base: ReadonlyArray<{ ref: BaseRef; examples: TrainingExample[] }>): Promise<RunSplit> {
  const train: TrainingExample[] = [];
  const clean: EvalExample[] = [];
  for (const b of base) (b.ref.split === 'train' ? train : clean).push(...b.examples);
  const field: TrainingExample[] = [];
  for (const e of dataset.entries) {
    const bytes = new Uint8Array(await artifacts.get(e.blob_sha256));
    const ex: TrainingExample = e.boxes && e.frame ? { id: e.sample_id, label: '', bytes, boxes: e.boxes, frame: e.frame } : { id: e.sample_id, label: e.label ?? '', bytes };
    if (e.split === 'field_holdout') field.push(ex);
    else train.push(ex);
  }
  return { train, clean, field };
}
