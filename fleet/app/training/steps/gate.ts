/** Step 5 of a run: the evaluation gate's verdict, the stored report, the run's metrics. */
import { cpus } from 'node:os';
import { judge } from '../../../core/training/gate.js';
import type { Evaluated, Judged, StepDeps } from '../run-record.js';

/** The run's headline numbers of one report: accuracy for a classifier, mAP for a detector. */
function scores(rep: Evaluated['reports']['candidate'], prefix: string): Record<string, number> {
  if ('task' in rep && rep.task === 'detection') {
    return { [`${prefix}clean_map50`]: rep.clean.map50, [`${prefix}field_map50`]: rep.field.map50, [`${prefix}clean_map50_95`]: rep.clean.map50_95, [`${prefix}field_map50_95`]: rep.field.map50_95 };
  }
  const c = rep as Exclude<typeof rep, { task: 'detection' }>;
  return { [`${prefix}clean_accuracy`]: c.clean.accuracy, [`${prefix}field_accuracy`]: c.field.accuracy };
}

/**
 * Judges the candidate against production with the model's gate, stores the evaluation report
 * (an artifact) and computes the run's metrics. A candidate that fails is marked `rejected` in
 * the registry with the reasons (it is kept).
 */
export async function gateStep(d: Pick<StepDeps, 'registry' | 'runs' | 'clock' | 'log' | 'emit'>, r: Evaluated): Promise<Judged> {
  const c = r.config;
  const { candidate, production } = r.reports;
  const verdict = judge(candidate, production, c.gate);
  const report = {
    schema: 'edgeloop.evaluation-report',
    v: 1,
    run: r.run.id,
    dataset_version: r.dataset.id,
    candidate,
    production,
    gate: verdict,
    gate_config: c.gate,
    host: { cpus: cpus().length, platform: process.platform, arch: process.arch },
    at: new Date(d.clock.now()).toISOString(),
  };
  const reportSha = await d.runs.putReport(report);
  const metrics: Record<string, number> = {
    ...r.trained.metrics,
    train_duration_ms: r.trained.durationMs,
    ...scores(candidate, ''),
    latency_p95_ms: candidate.latency.p95_ms,
    ...(production ? { ...scores(production, 'production_'), production_latency_p95_ms: production.latency.p95_ms } : {}),
  };
  d.emit('gate', verdict.passed ? `gate passed${production ? ` against ${r.parent?.ref}` : ' (no production model to compare with)'}` : `gate failed: ${verdict.reasons.join('; ')}`, { metrics });
  const model = `${r.candidate.name}@${r.candidate.version}`;
  if (verdict.passed) {
    d.log.info({ run: r.run.id, model }, 'candidate accepted by the evaluation gate');
  } else {
    d.registry.setStatus(c.name, r.candidate.version, { status: 'rejected', reasons: verdict.reasons, actor: 'evaluation-gate' });
    d.log.warn({ run: r.run.id, model, reasons: verdict.reasons }, 'candidate rejected by the evaluation gate');
  }
  return { ...r, verdict, reportSha, metrics };
}
