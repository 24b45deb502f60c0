import type { FleetContext } from '../../../app/context.js';
import type { ModelReport } from '../../../app/training/evaluate.js';
import type { LoopProgress } from '../../../app/training/progress.js';
import type { TrainingRun } from '../../../app/training/runs.js';
import type { GateCheck, GateConfig, GateVerdict } from '../../../core/training/gate.js';
import { multiples, progressBar, timeChart } from '../charts.js';
import { ago, badge, html, num, pct } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

const runHref = (id: string): string => `/console/training/runs/${encodeURIComponent(id)}`;
const versionHref = (m: { name: string; version: string }): string => `/console/models/${encodeURIComponent(m.name)}/${encodeURIComponent(m.version)}`;
const seconds = (ms: number | null): string => (ms === null ? '—' : ms < 120_000 ? `${(ms / 1000).toFixed(1)} s` : `${(ms / 60_000).toFixed(1)} min`);

/** The run's progress lines (kept in memory by the loop while the fleet runs; none after a restart). */
const progressOf = (ctx: FleetContext, id: string): LoopProgress[] => ctx.training?.progress(id) ?? [];

/** Epoch lines: the trainer's progress lines that carry an epoch and a loss. */
function epochs(lines: readonly LoopProgress[]): Array<{ epoch: number; loss: number; metrics: Record<string, number>; message: string }> {
  return lines.flatMap((p) => (p.phase === 'train' && p.metrics && typeof p.metrics.epoch === 'number' && typeof p.metrics.loss === 'number' ? [{ epoch: p.metrics.epoch, loss: p.metrics.loss, metrics: p.metrics, message: p.message }] : []));
}

/** Where a run stands, in one cell: for a running one the phase, a bar and the latest line (as the terminal shows it). */
function liveCell(ctx: FleetContext, r: TrainingRun): SafeHtml {
  const lines = progressOf(ctx, r.id);
  const last = lines.at(-1);
  if (r.status !== 'running') return html`${r.error ? html`<span class="fail-text">${r.error.code}</span>` : last ? html`<span class="muted">${last.message}</span>` : ''}`;
  const fraction = [...lines].reverse().find((p) => typeof p.fraction === 'number')?.fraction;
  return html`${last ? badge(last.phase, 'running') : ''} ${typeof fraction === 'number' ? progressBar([{ value: fraction, cls: 'ok', label: 'done' }], 1, 120) : ''} <span class="live-line">${last?.message ?? 'starting'}</span>`;
}

function gateCell(r: TrainingRun): SafeHtml {
  if (!r.gate) return html`—`;
  const failed = r.gate.checks.filter((c) => !c.passed).length;
  return r.gate.passed ? html`${badge('pass')} <span class="muted">${r.gate.checks.length} checks${r.gate.baseline ? '' : ', no production model'}</span>` : html`${badge('fail')} <span class="muted">${failed} of ${r.gate.checks.length} checks failed</span>`;
}

/** Every training run, newest first, with live progress for the running ones. */
export function trainingPage(ctx: FleetContext): PageResult {
  const now = ctx.clock.now();
  const runs = ctx.trainingRuns.list({ limit: 50 });
  const firings = ctx.trainingRuns.firings({ limit: 10 });
  const running = runs.some((r) => r.status === 'running');
  const body = html`
  <h1>Training</h1>
  <p class="lead">${ctx.training ? html`Learning loop on for ${ctx.training.models().join(', ') || 'no model'}.` : html`The learning loop is off (start <code>edgeloop serve --training FILE</code>); runs recorded before are listed.`}${running ? html` <span id="live" data-refresh-ms="2000">Updating while a run is in progress.</span>` : ''}</p>
  ${runs.length === 0
    ? html`<p class="muted" id="no-runs">No training runs yet.</p>`
    : html`<table class="grid-table" id="runs"><thead><tr><th>run</th><th>model</th><th>status</th><th>progress</th><th>trigger</th><th>started</th><th class="num">took</th><th>candidate</th><th>gate</th><th>rollout</th></tr></thead><tbody>
    ${runs.map(
      (r) => html`<tr data-run="${r.id}" data-status="${r.status}">
        <td class="mono"><a href="${runHref(r.id)}">${r.id}</a></td>
        <td>${r.model}</td>
        <td>${badge(r.status)}</td>
        <td class="progress-cell">${liveCell(ctx, r)}</td>
        <td>${r.trigger.reason}</td>
        <td>${ago(r.started_at, now)}</td>
        <td class="num">${r.status === 'running' ? seconds(now - Date.parse(r.started_at)) : seconds(r.duration_ms)}</td>
        <td>${r.result ? html`<a href="${versionHref(r.result)}">${r.result.name}@${r.result.version}</a>` : '—'}</td>
        <td>${gateCell(r)}</td>
        <td>${r.rollout_id ? html`<a href="/console/rollouts/${encodeURIComponent(r.rollout_id)}">${r.rollout_id}</a>` : '—'}</td>
      </tr>`,
    )}</tbody></table>`}
  ${firings.length ? html`<section><h2>Trigger firings</h2><ul class="firings">${firings.map((x) => html`<li>${ago(x.at, now)} <b>${x.kind}</b> ${x.model}: ${x.reason}${x.run_id ? html` → <a href="${runHref(x.run_id)}">${x.run_id}</a>` : ''}</li>`)}</ul></section>` : ''}`;
  return { title: 'Training', section: 'training', body };
}

const pts = (n: number): string => `${n > 0 ? '+' : ''}${n.toFixed(1)} pts`;

interface GateRow {
  what: string;
  production: string;
  candidate: string;
  change: string;
  rule: string;
  verdict: 'pass' | 'fail' | 'not judged';
}

/**
 * The gate as a table: each measure of production and candidate on the same holdouts, the rule
 * it is held to and the verdict. Verdicts are the gate's own checks (core/training/gate.ts);
 * per-class rows the gate did not judge (too few examples) say so.
 */
function gateRows(gate: GateVerdict, cfg: GateConfig | null, cand: ModelReport | null, prod: ModelReport | null): GateRow[] {
  const check = (name: GateCheck['name'], detailPrefix?: string): GateCheck | undefined => gate.checks.find((c) => c.name === name && (detailPrefix === undefined || c.detail.startsWith(detailPrefix)));
  const verdict = (c: GateCheck | undefined): GateRow['verdict'] => (c === undefined ? 'not judged' : c.passed ? 'pass' : 'fail');
  const rows: GateRow[] = [];
  const empty = check('field_holdout');
  if (empty) rows.push({ what: 'field holdout', production: '—', candidate: '0 examples', change: '—', rule: 'must not be empty', verdict: verdict(empty) });
  if (cand) {
    const acc = (r: ModelReport | null, set: 'clean' | 'field'): string => (r ? `${pct(r[set].accuracy)} (${r[set].correct}/${r[set].count})` : '—');
    const diff = (set: 'clean' | 'field'): string => (prod ? pts((cand[set].accuracy - prod[set].accuracy) * 100) : '—');
    rows.push({ what: 'clean holdout accuracy', production: acc(prod, 'clean'), candidate: acc(cand, 'clean'), change: diff('clean'), rule: cfg ? `at most ${cfg.clean_drop_max_pts} pts down` : '—', verdict: verdict(check('clean_drop')) });
    rows.push({ what: 'field holdout accuracy', production: acc(prod, 'field'), candidate: acc(cand, 'field'), change: diff('field'), rule: cfg ? `at least +${cfg.field_gain_min_pts} pts` : '—', verdict: verdict(check('field_gain')) });
    for (const set of ['clean', 'field'] as const) {
      for (const label of cand.labels) {
        const k = cand[set].per_class[label];
        const p = prod?.[set].per_class[label];
        if (!k && !p) continue;
        const c = check('class_drop', `class ${label} on the ${set} holdout:`);
        rows.push({
          what: `class ${label}, ${set}`,
          production: p ? `${pct(p.accuracy)} (${p.correct}/${p.count})` : '—',
          candidate: k ? `${pct(k.accuracy)} (${k.correct}/${k.count})` : '—',
          change: p && k ? pts((k.accuracy - p.accuracy) * 100) : '—',
          rule: c ? `at most ${c.threshold} pts down` : cfg && prod ? `not judged under ${cfg.class_min_samples} examples` : '—',
          verdict: verdict(c),
        });
      }
    }
    const lat = check('latency');
    rows.push({
      what: 'latency p95',
      production: prod ? `${num(prod.latency.p95_ms, 3)} ms` : '—',
      candidate: `${num(cand.latency.p95_ms, 3)} ms`,
      change: lat?.value !== null && lat?.value !== undefined ? `${lat.value.toFixed(2)}×` : '—',
      rule: cfg ? `at most ${cfg.latency_ratio_max}×${cfg.latency_slack_ms ? ` + ${cfg.latency_slack_ms} ms` : ''}` : '—',
      verdict: verdict(lat),
    });
  } else {
    for (const c of gate.checks) rows.push({ what: c.name, production: '—', candidate: c.value === null ? '—' : num(c.value), change: '—', rule: `${c.threshold}`, verdict: verdict(c) });
  }
  return rows;
}

/**
 * A classifier's report for the accuracy table; a detector's report (mAP, `task: 'detection'`)
 * is shown as the gate's own checks, whose details name mAP and AP.
 */
const classifier = (r: ModelReport | null | undefined): ModelReport | null => (r && (r as { task?: string }).task !== 'detection' ? r : null);

function gateTable(rows: GateRow[]): SafeHtml {
  return html`<table class="grid-table gate-table" id="gate"><thead><tr><th>measure</th><th class="num">production</th><th class="num">candidate</th><th class="num">change</th><th>rule</th><th>verdict</th></tr></thead><tbody>
  ${rows.map((r) => html`<tr data-measure="${r.what}" data-verdict="${r.verdict}"><td>${r.what}</td><td class="num">${r.production}</td><td class="num">${r.candidate}</td><td class="num">${r.change}</td><td>${r.rule}</td><td class="${r.verdict === 'pass' ? 'pass' : r.verdict === 'fail' ? 'fail' : 'muted'}">${r.verdict}</td></tr>`)}
  </tbody></table>`;
}

/** Parameters as rows: nested values flattened to `a.b`, lists joined. */
function paramRows(params: Record<string, unknown>, prefix = ''): Array<[string, string]> {
  return Object.entries(params).flatMap(([k, v]): Array<[string, string]> => {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return paramRows(v as Record<string, unknown>, key);
    return [[key, Array.isArray(v) ? v.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ') : String(v)]];
  });
}

/** One run: what it trained from and with, its progress as the terminal shows it, the gate as a table, what it produced. */
export async function trainingRunPage(ctx: FleetContext, id: string): Promise<PageResult> {
  const now = ctx.clock.now();
  const r = ctx.trainingRuns.get(id);
  const lines = progressOf(ctx, r.id);
  const ep = epochs(lines);
  // The stored evaluation report (steps/gate.ts): both models' numbers and the gate's configuration.
  type Report = { candidate?: ModelReport; production?: ModelReport | null; gate_config?: GateConfig };
  const report: Report | null = r.report_sha256 ? ((await ctx.trainingRuns.report(r.id)) as Report) : null;
  const dataset = r.dataset_version ? await ctx.datasets.findDataset(r.dataset_version) : null;
  const body = html`
  <p><a href="/console/training">Training</a> › run</p>
  <h1>Run <span class="mono">${r.id}</span> ${badge(r.status)}</h1>
  <p class="lead">${r.model} · ${r.trigger.reason} (by ${r.actor}) · started ${ago(r.started_at, now)} · ${r.status === 'running' ? html`running for ${seconds(now - Date.parse(r.started_at))}<span id="live" data-refresh-ms="2000"></span>` : html`took ${seconds(r.duration_ms)}`}</p>
  ${r.error ? html`<p class="fail-text" id="run-error"><code>${r.error.code}</code> ${r.error.message}</p>` : ''}
  <div class="cols">
    <section class="panel" id="produced"><h2>Produced</h2><dl class="kv">
      <dt>from</dt><dd>${r.parent ? html`<a href="${versionHref(r.parent)}">${r.parent.name}@${r.parent.version}</a>` : 'scratch'}</dd>
      <dt>candidate</dt><dd>${r.result ? html`<a href="${versionHref(r.result)}" id="run-model">${r.result.name}@${r.result.version}</a>` : '—'}</dd>
      <dt>rollout</dt><dd>${r.rollout_id ? html`<a href="/console/rollouts/${encodeURIComponent(r.rollout_id)}" id="run-rollout">${r.rollout_id}</a>` : r.status === 'accepted' ? 'none started' : '—'}</dd>
    </dl></section>
    <section class="panel" id="dataset"><h2>Dataset</h2>${
      r.dataset_version
        ? html`<dl class="kv"><dt>version</dt><dd class="mono">${r.dataset_version.slice(0, 16)}…</dd>${
            dataset
              ? html`${dataset.splits ? html`<dt>splits</dt><dd>${dataset.splits.train} train, ${dataset.splits.clean_holdout} clean holdout, ${dataset.splits.field_holdout} field holdout</dd>` : ''}<dt>field samples</dt><dd>${dataset.entries.length} labeled</dd>`
              : html`<dt></dt><dd class="muted">not in this fleet</dd>`
          }</dl>`
        : html`<p class="muted">Not built yet.</p>`
    }</section>
    <section class="panel" id="parameters"><h2>Parameters</h2><table class="grid-table kv-table" id="params"><tbody>
      <tr><th>trainer</th><td>${r.trainer}</td></tr>
      <tr><th>seed</th><td>${String(r.seed)}</td></tr>
      <tr><th>code version</th><td class="mono">${r.code_version ?? '—'}</td></tr>
      ${paramRows(r.params).map(([k, v]) => html`<tr data-param="${k}"><th>${k}</th><td>${v}</td></tr>`)}
    </tbody></table></section>
  </div>
  <section id="progress-section"><h2>Progress</h2>
    ${ep.length ? multiples([timeChart({ title: `training loss by epoch of ${r.id}`, name: 'loss by epoch', points: ep.map((e) => ({ x: e.epoch, y: e.loss })), format: (v) => String(Number(v.toPrecision(2))), xLabel: (e) => `epoch ${e}` })], { label: 'training progress' }) : ''}
    ${lines.length
      ? html`<pre class="terminal" id="progress-lines">${lines.map((p) => `${p.at.slice(11, 19)}  ${p.phase.padEnd(8)} ${p.message}\n`).join('')}</pre>`
      : html`<p class="muted">${r.status === 'running' ? 'Starting.' : 'The progress lines are kept while the fleet runs; this run finished before the last start.'}</p>`}
  </section>
  <section id="gate-section"><h2>Evaluation gate ${r.gate ? badge(r.gate.passed ? 'pass' : 'fail') : ''}</h2>${
    r.gate
      ? html`${r.gate.baseline ? html`<p>The candidate against the production model ${r.parent ? html`<a href="${versionHref(r.parent)}">${r.parent.name}@${r.parent.version}</a>` : ''}, on the same holdouts and the same host.</p>` : html`<p>No production model to compare with: the first model passes on its own numbers.</p>`}
        ${gateTable(gateRows(r.gate, report?.gate_config ?? null, classifier(report?.candidate), classifier(report?.production)))}
        ${r.gate.reasons.length ? html`<ul class="fail-text">${r.gate.reasons.map((x) => html`<li>${x}</li>`)}</ul>` : ''}`
      : html`<p class="muted">${r.status === 'running' ? 'Not judged yet.' : 'No verdict.'}</p>`
  }</section>`;
  return { title: `Run ${r.id}`, section: 'training', body };
}
