import type { FleetContext } from '../../../app/context.js';
import type { ModelVersion } from '../../../app/models/registry.js';
import { summaryOf } from '../../../app/read-models/rollouts.js';
import { lineageChain } from '../../../app/models/lineage.js';
import type { LineageChain } from '../../../app/models/lineage.js';
import { ago, badge, html, num } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

const versionHref = (name: string, version: string): string => `/console/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;

/** A content hash shortened to 12 characters; any other id (`mnist-base:0-7000`) whole, a cut one would name another. */
const shortId = (id: string): string => (/^[0-9a-f]{40,}$/.test(id) ? `${id.slice(0, 12)}…` : id);

const size = (bytes: number): string => (bytes >= 1 << 20 ? `${(bytes / (1 << 20)).toFixed(1)} MiB` : bytes >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} B`);

/** Evaluation reports are free-form: flatten nested objects to `a.b: value` rows. */
function flatten(obj: unknown, prefix = ''): Array<[string, string]> {
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    return [[prefix, typeof obj === 'number' ? num(obj, 4) : Array.isArray(obj) ? obj.map((x) => (typeof x === 'object' ? JSON.stringify(x) : String(x))).join(', ') : String(obj)]];
  }
  return Object.entries(obj as Record<string, unknown>).flatMap(([k, v]) => flatten(v, prefix ? `${prefix}.${k}` : k));
}

function evaluation(v: ModelVersion): SafeHtml {
  if (!v.evaluation) return html`<p class="muted">No evaluation report in the package.</p>`;
  return html`<table class="grid-table kv-table" id="evaluation"><tbody>${flatten(v.evaluation).map(([k, val]) => html`<tr><th>${k}</th><td class="num">${val}</td></tr>`)}</tbody></table>`;
}

/** Recent training runs and trigger firings: which trigger made which candidate, and what the gate said. */
function trainingSection(ctx: FleetContext): SafeHtml {
  const now = ctx.clock.now();
  const runs = ctx.trainingRuns.list({ limit: 20 });
  const firings = ctx.trainingRuns.firings({ limit: 10 });
  if (!runs.length && !firings.length) return html``;
  return html`<section id="training-runs"><h2>Training runs</h2>
    <table class="grid-table"><thead><tr><th>run</th><th>status</th><th>candidate</th><th>parent</th><th>trigger</th><th>started</th><th>gate</th></tr></thead><tbody>
    ${runs.map(
      (r) => html`<tr data-run="${r.id}">
        <td class="mono"><a href="/console/training/runs/${encodeURIComponent(r.id)}">${r.id}</a></td><td>${badge(r.status)}</td>
        <td>${r.result ? html`<a href="${versionHref(r.result.name, r.result.version)}">${r.result.name}@${r.result.version}</a>` : '—'}</td>
        <td>${r.parent ? `${r.parent.name}@${r.parent.version}` : '—'}</td>
        <td>${r.trigger.reason}</td><td>${ago(r.started_at, now)}</td>
        <td>${r.gate ? (r.gate.passed ? 'passed' : html`<span class="fail-text">${r.gate.reasons.join('; ')}</span>`) : r.error ? html`<span class="fail-text">${r.error.code}</span>` : '—'}</td>
      </tr>`,
    )}</tbody></table>
    <h3>Trigger firings</h3><ul class="firings">${firings.map((x) => html`<li>${ago(x.at, now)} <b>${x.kind}</b> ${x.model}: ${x.reason}</li>`)}</ul>
  </section>`;
}

export function modelsPage(ctx: FleetContext): PageResult {
  const now = ctx.clock.now();
  const byName = new Map<string, ModelVersion[]>();
  for (const v of ctx.registry.list()) byName.set(v.name, [...(byName.get(v.name) ?? []), v]);
  const body = html`
  <h1>Models</h1>
  ${byName.size === 0 ? html`<p class="muted">No model registered yet (<code>POST /v1/models</code>).</p>` : ''}
  ${[...byName.entries()].map(
    ([name, versions]) => html`<section class="model" data-model="${name}"><h2>${name}</h2>
    <table class="grid-table"><thead><tr><th>version</th><th>status</th><th>pushed</th><th>size</th><th>parent</th><th>dataset</th><th>evaluation</th></tr></thead><tbody>
    ${[...versions].reverse().map(
      (v) => html`<tr>
        <td><a href="${versionHref(v.name, v.version)}">${v.version}</a></td>
        <td>${badge(v.status)}</td>
        <td>${ago(v.pushed_at, now)} by ${v.pushed_by}</td>
        <td class="num">${size(v.total_bytes)}</td>
        <td>${v.lineage.parent ? html`<a href="${versionHref(v.lineage.parent.name, v.lineage.parent.version)}">${v.lineage.parent.name}@${v.lineage.parent.version}</a>` : '—'}</td>
        <td class="mono">${v.lineage.dataset_version ? shortId(v.lineage.dataset_version) : '—'}</td>
        <td>${v.evaluation ? flatten(v.evaluation).slice(0, 3).map(([k, val]) => html`<span class="tag">${k} ${val}</span>`) : '—'}</td>
      </tr>`,
    )}
    </tbody></table></section>`,
  )}
  ${trainingSection(ctx)}`;
  return { title: 'Models', section: 'models', body };
}

const tallyOf = (r: Record<string, number>): SafeHtml[] => Object.entries(r).map(([k, n]) => html`<span class="tag">${k} ${n}</span>`);

/** Entries shown per dataset before "and N more" (the CLI and the API have all of them). */
const ENTRIES_SHOWN = 50;

/**
 * The chain from this version back to the first: each version with its training run (trainer,
 * parameters, seed, code version, duration, trigger, gate), its dataset version (base set,
 * holdout rule, splits) and the dataset's field samples with device, label and labeler.
 */
/** How a version without a learning-loop run was made, from its manifest's lineage. */
interface MadeBy {
  trainer: string | null;
  code_version: string | null;
  dataset_version: string | null;
  description: string | null;
}

function madeByText(m: MadeBy | undefined): SafeHtml {
  if (!m?.trainer) return html`<p class="muted made-by">Not trained by the learning loop, and its manifest names no trainer (pushed by hand).</p>`;
  return html`<p class="made-by">Trained outside the learning loop by the <b>${m.trainer}</b> trainer${m.code_version ? html` (code <span class="mono">${m.code_version}</span>)` : ''}${m.dataset_version ? html`, on dataset <span class="mono">${shortId(m.dataset_version)}</span>` : ''}, then pushed to the registry.${m.description ? html` ${m.description}.` : ''}</p>`;
}

function provenance(chain: LineageChain, now: number, madeBy: ReadonlyMap<string, MadeBy>): SafeHtml {
  return html`<ol class="provenance" id="provenance">${chain.steps.map((s, i) => {
    const m = s.model;
    const r = s.run;
    const d = s.dataset;
    return html`<li class="step" data-ref="${m.ref}">
      <h3>${i === 0 ? html`<b>${m.ref}</b>` : m.missing ? html`${m.ref} <span class="muted">(not in this registry)</span>` : html`<a href="${versionHref(m.name, m.version)}">${m.ref}</a>`} ${m.status ? badge(m.status) : ''}</h3>
      ${m.status_reasons.length ? html`<p class="fail-text">${m.status_reasons.join('; ')}</p>` : ''}
      ${
        r
          ? html`<dl class="kv run" data-run="${r.id}">
          <dt>training run</dt><dd class="mono"><a href="/console/training/runs/${encodeURIComponent(r.id)}">${r.id}</a> ${badge(r.status)}</dd>
          <dt>trainer</dt><dd>${r.trainer}, seed ${String(r.seed)}, code ${r.code_version ?? '—'}</dd>
          <dt>parameters</dt><dd>${Object.entries(r.params).map(([k, val]) => html`<span class="tag">${k} ${typeof val === 'object' ? JSON.stringify(val) : String(val)}</span>`)} <a href="/console/training/runs/${encodeURIComponent(r.id)}#parameters">table</a></dd>
          <dt>duration</dt><dd>${r.duration_ms === null ? 'running' : `${(r.duration_ms / 1000).toFixed(1)} s`}</dd>
          <dt>trigger</dt><dd>${r.trigger.reason} (by ${r.actor})</dd>
          <dt>metrics</dt><dd>${Object.entries(r.metrics).map(([k, val]) => html`<span class="tag">${k} ${num(val, 4)}</span>`)}</dd>
          <dt>gate</dt><dd>${r.gate ? (r.gate.passed ? 'passed' : html`<span class="fail-text">failed: ${r.gate.reasons.join('; ')}</span>`) : '—'} <a href="/console/training/runs/${encodeURIComponent(r.id)}#gate-section">candidate against production</a></dd>
          ${r.rollout_id ? html`<dt>rollout</dt><dd><a href="/console/rollouts/${encodeURIComponent(r.rollout_id)}">${r.rollout_id}</a></dd>` : ''}
        </dl>`
          : m.missing
            ? ''
            : madeByText(madeBy.get(m.ref))
      }
      ${
        d
          ? html`<div class="dataset" data-dataset="${d.id}"><p>dataset <span class="mono">${d.id.slice(0, 16)}…</span>${
              d.splits ? ` — ${d.splits.train} train, ${d.splits.clean_holdout} clean holdout, ${d.splits.field_holdout} field holdout` : ''
            }</p>
            ${d.base.length ? html`<p>base set: ${d.base.map((b) => html`<span class="tag">${b.source}${b.offset !== undefined ? ` [${b.offset}, ${b.offset + (b.count ?? 0)})` : ''} ${b.split}</span>`)}</p>` : ''}
            ${d.split_rule ? html`<p>field holdout rule: ${d.split_rule.kind === 'hash' ? `hash of the sample id below ${d.split_rule.fraction}` : `the first ${d.split_rule.holdout_ms} ms of every ${d.split_rule.period_ms} ms`}</p>` : ''}
            <p>devices ${tallyOf(d.devices)} labelers ${tallyOf(d.labelers)}</p>
            ${
              d.entries.length
                ? html`<table class="grid-table entries"><thead><tr><th>sample</th><th>label</th><th>split</th><th>device</th><th>labeled by</th><th>when</th></tr></thead><tbody>${d.entries
                    .slice(0, ENTRIES_SHOWN)
                    .map(
                      (e) =>
                        html`<tr data-sample="${e.sample_id}"><td class="mono"><a href="/v1/samples/${encodeURIComponent(e.sample_id)}/blob">${e.sample_id}</a></td><td>${e.label}</td><td>${e.split ?? '—'}</td><td><a href="/console/devices/${encodeURIComponent(e.device_id)}">${e.device_id}</a></td><td>${e.labeled_by}</td><td>${ago(e.labeled_at, now)}</td></tr>`,
                    )}</tbody></table>${d.entries.length > ENTRIES_SHOWN ? html`<p class="muted">and ${d.entries.length - ENTRIES_SHOWN} more (<code>edgeloop models lineage ${chain.ref} --entries</code>)</p>` : ''}`
                : ''
            }</div>`
          : s.dataset_missing
            ? html`<p class="muted">dataset ${s.dataset_missing} is not in this fleet</p>`
            : ''
      }
    </li>`;
  })}</ol>`;
}

export async function modelVersionPage(ctx: FleetContext, name: string, version: string): Promise<PageResult> {
  const now = ctx.clock.now();
  const v = ctx.registry.get(name, version);
  const chain = ctx.registry.lineage(name, version);
  const full = await lineageChain({ registry: ctx.registry, datasets: ctx.datasets, runs: ctx.trainingRuns }, { name, version });
  // Versions without a run: what their manifests say about how they were made.
  const madeBy = new Map<string, MadeBy>();
  for (const s of full.steps) {
    if (s.run || s.model.missing) continue;
    const lin = (await ctx.registry.manifest(s.model.name, s.model.version)).lineage;
    const v2 = ctx.registry.get(s.model.name, s.model.version);
    madeBy.set(s.model.ref, { trainer: lin?.trainer ?? null, code_version: lin?.code_version ?? null, dataset_version: lin?.dataset_version ?? null, description: v2.description });
  }
  const rollouts = ctx.rollouts.list().filter((r) => r.state.candidate.name === name && r.state.candidate.version === version).map((r) => summaryOf(r, ctx));
  const body = html`
  <h1>${v.ref} ${badge(v.status)}</h1>
  ${v.description ? html`<p class="lead">${v.description}</p>` : ''}
  ${v.status_reasons.length ? html`<p class="fail-text">${v.status_reasons.join('; ')}</p>` : ''}
  <section><h2>Lineage</h2>
    <ol class="lineage" id="lineage">${chain.map(
      (e, i) => html`<li class="${e.missing ? 'missing' : ''}">${i === 0 ? html`<b>${e.name}@${e.version}</b>` : e.missing ? html`${e.name}@${e.version} <span class="muted">(not in this registry)</span>` : html`<a href="${versionHref(e.name, e.version)}">${e.name}@${e.version}</a>`}
        ${e.dataset_version ? html`<span class="tag">dataset ${shortId(e.dataset_version)}</span>` : ''}${e.training_run ? html`<span class="tag">run ${e.training_run}</span>` : ''}</li>`,
    )}</ol>
  </section>
  <section><h2>From this model back to the labels</h2>${provenance(full, ctx.clock.now(), madeBy)}</section>
  <section><h2>Evaluation</h2>${evaluation(v)}</section>
  <div class="cols">
    <section class="panel"><h2>Package</h2><dl class="kv">
      <dt>created</dt><dd>${ago(v.created_at, now)}</dd>
      <dt>pushed</dt><dd>${ago(v.pushed_at, now)} by ${v.pushed_by}</dd>
      <dt>manifest</dt><dd class="mono">${v.manifest_sha256.slice(0, 16)}…</dd>
      <dt>signed by</dt><dd class="mono">${v.key_id}</dd>
      <dt>size</dt><dd>${size(v.total_bytes)}</dd>
    </dl></section>
    <section class="panel"><h2>Files</h2><table class="grid-table"><tbody>${v.files.map((f) => html`<tr><td>${f.path}</td><td>${f.role}</td><td class="num">${size(f.bytes)}</td><td class="mono">${f.sha256.slice(0, 12)}</td></tr>`)}</tbody></table></section>
  </div>
  <section><h2>Rollouts of this version</h2>${
    rollouts.length
      ? html`<ul>${rollouts.map((r) => html`<li><a href="/console/rollouts/${encodeURIComponent(r.id)}">${r.id}</a> ${badge(r.status)} ${r.stage_name ?? ''}</li>`)}</ul>`
      : html`<p class="muted">None.</p>`
  }</section>`;
  return { title: v.ref, section: 'models', body };
}
