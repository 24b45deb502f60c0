import type { FleetContext } from '../../context.js';
import type { ModelVersion } from '../../registry/registry.js';
import { summaryOf } from '../../http/routes/rollouts.js';
import { badge, html, num, when } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

const versionHref = (name: string, version: string): string => `/console/models/${encodeURIComponent(name)}/${encodeURIComponent(version)}`;

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

export function modelsPage(ctx: FleetContext): PageResult {
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
        <td>${when(v.pushed_at)} by ${v.pushed_by}</td>
        <td class="num">${size(v.total_bytes)}</td>
        <td>${v.lineage.parent ? html`<a href="${versionHref(v.lineage.parent.name, v.lineage.parent.version)}">${v.lineage.parent.name}@${v.lineage.parent.version}</a>` : '—'}</td>
        <td class="mono">${v.lineage.dataset_version ? v.lineage.dataset_version.slice(0, 12) : '—'}</td>
        <td>${v.evaluation ? flatten(v.evaluation).slice(0, 3).map(([k, val]) => html`<span class="tag">${k} ${val}</span>`) : '—'}</td>
      </tr>`,
    )}
    </tbody></table></section>`,
  )}`;
  return { title: 'Models', section: 'models', body };
}

export function modelVersionPage(ctx: FleetContext, name: string, version: string): PageResult {
  const v = ctx.registry.get(name, version);
  const chain = ctx.registry.lineage(name, version);
  const rollouts = ctx.rollouts.list().filter((r) => r.state.candidate.name === name && r.state.candidate.version === version).map(summaryOf);
  const body = html`
  <h1>${v.ref} ${badge(v.status)}</h1>
  ${v.description ? html`<p class="lead">${v.description}</p>` : ''}
  ${v.status_reasons.length ? html`<p class="fail-text">${v.status_reasons.join('; ')}</p>` : ''}
  <section><h2>Lineage</h2>
    <ol class="lineage" id="lineage">${chain.map(
      (e, i) => html`<li class="${e.missing ? 'missing' : ''}">${i === 0 ? html`<b>${e.name}@${e.version}</b>` : e.missing ? html`${e.name}@${e.version} <span class="muted">(not in this registry)</span>` : html`<a href="${versionHref(e.name, e.version)}">${e.name}@${e.version}</a>`}
        ${e.dataset_version ? html`<span class="tag">dataset ${e.dataset_version.slice(0, 12)}</span>` : ''}${e.training_run ? html`<span class="tag">run ${e.training_run}</span>` : ''}</li>`,
    )}</ol>
  </section>
  <section><h2>Evaluation</h2>${evaluation(v)}</section>
  <div class="cols">
    <section class="panel"><h2>Package</h2><dl class="kv">
      <dt>created</dt><dd>${when(v.created_at)}</dd>
      <dt>pushed</dt><dd>${when(v.pushed_at)} by ${v.pushed_by}</dd>
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
