import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModelManifest, ModelRef } from '../../shared/schemas/index.js';
import type { FleetContext } from '../context.js';
import type { Trainer, TrainingExample } from '../training/trainer.js';

export interface RetrainOutcome {
  ref: ModelRef;
  clean: number | null;
  /** Clean-holdout change against the parent, in points. */
  cleanDelta: number | null;
  datasetVersion: string;
  trainer: string;
  trainS: number;
  labelsUsed: number;
  /** The evaluation gate's verdict, when the learning loop ran one. */
  gate: Record<string, unknown> | null;
}

/**
 * One retrain, step by step through the fleet's library calls: freeze the labeled samples as
 * a dataset version, hand its examples to the trainer with the parent's package, and push
 * the candidate (with its lineage) to the registry.
 *
 * TODO(learning loop): the evaluation gate (fleet/training/gate.ts, evaluate.ts) and the
 * field holdout split belong to the learning-loop orchestrator; until the demo runs it, no
 * gate is applied here and `gate` is null (the report says so). No second gate is written.
 */
export async function retrainOnce(
  ctx: FleetContext,
  o: { parent: { ref: ModelRef; dir: string }; version: string; trainer: Trainer; workDir: string; baseClean: number | null; seed: number; say(line: string): void; signal?: AbortSignal },
): Promise<RetrainOutcome> {
  const { dataset } = await ctx.datasets.exportDataset({ actor: 'learning-loop', name: `field-labels-for-${o.version}` });
  o.say(`dataset version ${dataset.id.slice(0, 12)}: ${dataset.entries.length} labeled samples (${Object.entries(dataset.counts).map(([k, v]) => `${k}:${v}`).join(' ')})`);
  const train: TrainingExample[] = [];
  for (const e of dataset.entries) train.push({ id: e.sample_id, label: e.label, bytes: await ctx.artifacts.get(e.blob_sha256) });
  const parentManifest = await ctx.registry.manifest(o.parent.ref.name, o.parent.ref.version);
  const out = join(o.workDir, `${o.parent.ref.name}-${o.version}`);
  await rm(out, { recursive: true, force: true });
  await mkdir(o.workDir, { recursive: true });
  let lastPct = -1;
  const res = await o.trainer.train({
    model: { name: o.parent.ref.name, version: o.version },
    datasetVersion: dataset.id,
    train,
    labels: parentManifest.labels,
    parent: o.parent,
    params: {},
    seed: o.seed,
    outputDir: out,
    onProgress: (p) => {
      const pc = p.fraction === undefined ? -1 : Math.floor(p.fraction * 10);
      if (p.fraction === undefined || pc !== lastPct) o.say(`  ${p.fraction === undefined ? '' : `${Math.round(p.fraction * 100)}% `}${p.message}`);
      lastPct = pc;
    },
    ...(o.signal ? { signal: o.signal } : {}),
  });
  const pushed = await ctx.registry.push(res.packageDir, { actor: 'learning-loop' });
  const manifest: ModelManifest = await ctx.registry.manifest(pushed.version.name, pushed.version.version);
  const clean = typeof manifest.evaluation?.holdout_accuracy === 'number' ? manifest.evaluation.holdout_accuracy : (res.metrics.clean_holdout_accuracy ?? null);
  return {
    ref: { name: pushed.version.name, version: pushed.version.version },
    clean,
    cleanDelta: clean !== null && o.baseClean !== null ? (clean - o.baseClean) * 100 : null,
    datasetVersion: dataset.id,
    trainer: res.run.trainer,
    trainS: res.durationMs / 1000,
    labelsUsed: dataset.entries.length,
    gate: null,
  };
}
