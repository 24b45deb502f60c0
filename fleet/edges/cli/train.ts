import { ExitCode } from '../../../shared/errors.js';
import type { TrainingRun } from '../client/api-client.js';
import { FleetErrors } from '../../errors.js';
import { apiCommand, positionalsOf } from './common.js';

export const TRAIN_HELP = `Usage: edgeloop train [--model NAME] [--trainer local|command|...] [--note TEXT] [--detach] [--json]

Train now (the manual retrain trigger) through the fleet service: the service builds a dataset
version (labeled field samples split into train and field holdout by the model's fixed rule,
plus the base set), runs the trainer, registers the candidate with its lineage, evaluates it
against the production model on the clean and field holdouts, and marks it rejected (with the
gate's reasons, kept in the registry) or accepted (and, when the model opted in, starts its
rollout). Progress lines go to stderr while it runs.

  --model NAME     the model (default: the only one configured for training)
  --trainer NAME   another trainer than the configured one for this run
  --note TEXT      why (recorded with the trigger firing)
  --detach         print the run id and return without waiting

Exit code 0 when the run finished (accepted or rejected: see status), 1 when it failed.`;

const POLL_MS = 400;
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function summary(run: TrainingRun): string[] {
  const lines = [`run ${run.id}: ${run.status}${run.result ? ` ${run.result.name}@${run.result.version}` : ''}${run.parent ? ` (parent ${run.parent.name}@${run.parent.version})` : ''}`];
  lines.push(`  trigger     ${run.trigger.reason}`);
  if (run.dataset_version) lines.push(`  dataset     ${run.dataset_version}`);
  const m = run.metrics;
  if (m.clean_accuracy !== undefined) {
    const vs = (k: string, p: string): string => `${((m[k] ?? 0) * 100).toFixed(1)}%${m[p] !== undefined ? ` (production ${((m[p] as number) * 100).toFixed(1)}%)` : ''}`;
    lines.push(`  clean       ${vs('clean_accuracy', 'production_clean_accuracy')}`, `  field       ${vs('field_accuracy', 'production_field_accuracy')}`);
    lines.push(`  p95         ${(m.latency_p95_ms ?? 0).toFixed(3)} ms${m.production_latency_p95_ms !== undefined ? ` (production ${m.production_latency_p95_ms.toFixed(3)} ms)` : ''}`);
  }
  if (run.gate) for (const c of run.gate.checks) lines.push(`  ${c.passed ? 'pass' : 'FAIL'}        ${c.detail}`);
  if (run.rollout_id) lines.push(`  rollout     ${run.rollout_id}`);
  if (run.error) lines.push(`  error       ${run.error.code}: ${run.error.message}`);
  return lines;
}

export const trainCmd = apiCommand(TRAIN_HELP, { model: { type: 'string' }, trainer: { type: 'string' }, note: { type: 'string' }, detach: { type: 'boolean' } }, async (c) => {
  positionalsOf(c.positionals, [], TRAIN_HELP);
  const client = await c.client();
  const started = await client.train({ ...(c.values.model ? { model: c.values.model } : {}), ...(c.values.trainer ? { trainer: c.values.trainer } : {}), ...(c.values.note ? { note: c.values.note } : {}) });
  let run = started.run;
  let seq = 0;
  const show = (progress: typeof started.progress): void => {
    for (const p of progress) {
      seq = Math.max(seq, p.seq);
      if (!c.json) c.progress(`[${p.phase}]${p.fraction !== undefined ? ` ${Math.round(p.fraction * 100)}%` : ''} ${p.message}`);
    }
  };
  show(started.progress);
  if (c.values.detach) {
    c.emit(run, () => c.io.out(`run ${run.id} started: edgeloop train status is GET /v1/training/runs/${run.id}`));
    return 0;
  }
  while (run.status === 'running') {
    await pause(POLL_MS);
    const r = await client.trainingRun(run.id, seq);
    run = r.run;
    show(r.progress);
  }
  c.emit(run, () => {
    for (const l of summary(run)) c.io.out(l);
  });
  return run.status === 'failed' ? FleetErrors.TRAINING_FAILED.exit : ExitCode.OK;
});
