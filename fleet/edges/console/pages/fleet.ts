import type { DeviceRecord } from '../../../core/devices/state.js';
import type { FleetContext } from '../../../app/context.js';
import { barChart, progressBar } from '../charts.js';
import { badge, html, num, pct, ref, when } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

const TERMINAL = new Set(['completed', 'aborted', 'rolled_back']);

function tags(t: Record<string, string>): SafeHtml {
  return html`${Object.entries(t).map(([k, v]) => html`<span class="tag">${k}=${v}</span>`)}`;
}

function deviceRow(d: DeviceRecord): SafeHtml {
  return html`<tr>
    <td><a href="/console/devices/${encodeURIComponent(d.id)}">${d.id}</a></td>
    <td>${tags(d.tags)}</td>
    <td>${badge(d.state)}</td>
    <td>${ref(d.models.active)}</td>
    <td>${d.deployment ? badge(d.deployment.phase) : '—'}</td>
    <td class="num">${pct(d.health?.outlier_rate)}</td>
    <td class="num">${num(d.health?.drift_psi.class)}</td>
    <td>${when(d.last_seen)}</td>
  </tr>`;
}

/** The fleet at a glance: devices by state and active version, counts, the device table. */
export function overviewPage(ctx: FleetContext): PageResult {
  const devices = ctx.devices.list();
  const online = devices.filter((d) => d.state === 'online').length;
  const byVersion = new Map<string, { online: number; offline: number }>();
  for (const d of devices) {
    const key = ref(d.models.active);
    const row = byVersion.get(key) ?? { online: 0, offline: 0 };
    row[d.state]++;
    byVersion.set(key, row);
  }
  const versions = [...byVersion.entries()].sort((a, b) => b[1].online + b[1].offline - (a[1].online + a[1].offline));
  const rollouts = ctx.rollouts.list();
  const active = rollouts.filter((r) => !TERMINAL.has(r.state.status));
  const progress = ctx.labels.progress();
  const models = ctx.registry.list();
  const stat = (label: string, value: string | number, href?: string): SafeHtml =>
    html`<div class="stat"><div class="stat-value">${href ? html`<a href="${href}">${value}</a>` : value}</div><div class="stat-label">${label}</div></div>`;
  const body = html`
  <h1>Fleet</h1>
  <section class="stats" id="fleet-stats">
    ${stat('devices', devices.length)}
    ${stat('online', online)}
    ${stat('offline', devices.length - online)}
    ${stat('model versions', models.length, '/console/models')}
    ${stat('active rollouts', active.length, '/console/rollouts')}
    ${stat('samples', ctx.ingest.count(), '/console/labeling')}
    ${stat('labeled', `${progress.labeled} / ${progress.total}`, '/console/labeling')}
  </section>
  <section>
    <h2>Devices by active version</h2>
    ${versions.length === 0
      ? html`<p class="muted">No devices registered yet.</p>`
      : html`<table class="grid-table" id="by-version"><thead><tr><th>active version</th><th class="num">online</th><th class="num">offline</th><th>share</th></tr></thead><tbody>
        ${versions.map(([v, c]) => html`<tr><td>${v}</td><td class="num">${c.online}</td><td class="num">${c.offline}</td><td>${progressBar([{ value: c.online, cls: 'ok', label: 'online' }, { value: c.offline, cls: 'na', label: 'offline' }], devices.length)}</td></tr>`)}
      </tbody></table>`}
  </section>
  <section>
    <h2>Devices</h2>
    <table class="grid-table" id="devices"><thead><tr><th>device</th><th>tags</th><th>state</th><th>active model</th><th>deployment</th><th class="num">outliers</th><th class="num">class PSI</th><th>last seen</th></tr></thead>
    <tbody>${devices.map(deviceRow)}</tbody></table>
  </section>`;
  return { title: 'Fleet', section: 'overview', body };
}

/** PSI rule of thumb: under 0.1 stable, 0.1-0.25 a moderate shift, over 0.25 a significant one. */
const PSI_REFS = [
  { value: 0.1, label: '0.1' },
  { value: 0.25, label: '0.25' },
];

/** One device: status, models, deployment phase, health, drift and its latest samples. */
/** How the device logs in to the broker: its certificate (with expiry, or revoked) or its secret. */
function login(d: DeviceRecord): SafeHtml {
  const c = d.certificate;
  if (!c) return html`secret <span class="muted">(set ${when(d.secret_set_at)})</span>`;
  if (c.revoked_at) return html`${badge('revoked')} certificate <span class="muted">revoked ${when(c.revoked_at)}, serial ${c.serial}</span>`;
  return html`certificate <span class="muted">until ${when(c.not_after)}, serial ${c.serial}, sha256 ${c.sha256.slice(0, 16)}…</span>`;
}

export function devicePage(ctx: FleetContext, id: string): PageResult {
  const d = ctx.devices.get(id);
  const h = d.health;
  const drift = h
    ? barChart(
        (['class', 'brightness', 'contrast'] as const).map((k) => {
          const v = h.drift_psi[k];
          return { label: `${k} PSI`, value: v, ok: v === null ? null : v < 0.25 };
        }),
        { title: `drift PSI of ${d.id}`, refs: PSI_REFS },
      )
    : html`<p class="muted">No telemetry yet.</p>`;
  const samples = ctx.ingest.query({ device: d.id, order: 'desc', limit: 8 }).items;
  const dl = (rows: Array<[string, unknown]>): SafeHtml => html`<dl class="kv">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
  const body = html`
  <h1>Device ${d.id} ${badge(d.state)}</h1>
  <div class="cols">
    <section class="panel"><h2>Status</h2>${dl([
      ['state', badge(d.state)],
      ['last seen', when(d.last_seen)],
      ['offline since', when(d.offline_at)],
      ['agent', d.agent_version ?? '—'],
      ['tags', tags(d.tags)],
      ['registered', when(d.created_at)],
      ['login', login(d)],
    ])}</section>
    <section class="panel"><h2>Models</h2>${dl([
      ['active', ref(d.models.active)],
      ['previous', ref(d.models.previous)],
      ['staged', ref(d.models.staged)],
      ['installed', d.models.installed.map(ref).join(', ') || '—'],
    ])}</section>
    <section class="panel" id="deployment"><h2>Deployment</h2>${
      d.deployment
        ? dl([
            ['phase', badge(d.deployment.phase)],
            ['target', ref(d.deployment.target)],
            ['revision', d.deployment.revision],
            ['rollout', d.deployment.rollout_id ? html`<a href="/console/rollouts/${encodeURIComponent(d.deployment.rollout_id)}">${d.deployment.rollout_id}</a>` : '—'],
            ['reason', d.deployment.reason ?? '—'],
            ['error', d.deployment.error_code ?? '—'],
          ])
        : html`<p class="muted">No deployment reported.</p>`
    }</section>
  </div>
  <div class="cols">
    <section class="panel" id="health"><h2>Health</h2>${
      h
        ? dl([
            ['inference rate', `${num(h.inference_rate_per_s, 1)} /s`],
            ['latency p95', `${num(h.latency_p95_ms, 1)} ms`],
            ['outlier rate', pct(h.outlier_rate)],
            ['queue', `${h.queue.depth} samples, ${h.queue.bytes} bytes, ${h.queue.evicted_total} evicted`],
          ])
        : html`<p class="muted">No telemetry yet.</p>`
    }</section>
    <section class="panel" id="drift"><h2>Drift (PSI)</h2>${drift}</section>
  </div>
  <section><h2>Latest samples</h2>${
    samples.length
      ? html`<div class="strip">${samples.map((s) => html`<figure><img src="/v1/samples/${encodeURIComponent(s.sample_id)}/blob" alt="sample ${s.sample_id}" width="72" height="72"><figcaption>${s.prediction.label} ${pct(s.confidence)}</figcaption></figure>`)}</div>`
      : html`<p class="muted">No samples from this device.</p>`
  }</section>`;
  return { title: `Device ${d.id}`, section: 'overview', body };
}
