import type { FleetContext } from '../../../app/context.js';
import type { DriftPoint } from '../../../core/devices/state.js';
import { fleetOverviewOf, thresholdsOf } from '../../../app/read-models/sites.js';
import type { DeviceHealthRow, FleetOverview, Thresholds } from '../../../app/read-models/sites.js';
import { FleetError } from '../../../errors.js';
import { barChart, multiples, timeChart } from '../charts.js';
import { ago, badge, html, num, pct, ref, when } from '../html.js';
import type { SafeHtml } from '../html.js';
import { deviceSlots, type DeviceRecord } from '../../../core/devices/state.js';
import type { PageResult } from './types.js';

const TERMINAL = new Set(['completed', 'aborted', 'rolled_back']);

function tags(t: Record<string, string>): SafeHtml {
  return html`${Object.entries(t).map(([k, v]) => html`<span class="tag">${k}=${v}</span>`)}`;
}

const psiText = (p: DeviceHealthRow['worst_psi']): string => (p ? `${p.kind} ${num(p.value, 2)}` : '—');

/** The colour class of a value against a device's thresholds. */
function psiLevel(v: number | null | undefined, t: Thresholds): string {
  return v === null || v === undefined ? '' : v >= t.drift_trouble ? 'trouble' : v >= t.drift_attention ? 'attention' : '';
}
function outlierLevel(v: number | null | undefined, t: Thresholds): string {
  return v === null || v === undefined ? '' : v >= t.outlier_trouble ? 'trouble' : v >= t.outlier_attention ? 'attention' : '';
}

/** Traffic in words: "no traffic" for an idle device (not "0.0/s, p95 0.0 ms"). */
function traffic(d: { idle: boolean; inference_rate_per_s: number | null; latency_p95_ms: number | null }): string {
  return d.idle ? 'no traffic' : `${num(d.inference_rate_per_s, 1)}/s, p95 ${num(d.latency_p95_ms, 1)} ms`;
}

const accText = (a: DeviceHealthRow['accuracy']): SafeHtml => (a ? html`${pct(a.value)} <span class="muted">of ${a.labeled}</span>` : html`<span class="muted">no labels</span>`);

const siteHref = (site: string): string => `/console/sites/${encodeURIComponent(site)}`;

function attentionList(o: FleetOverview): SafeHtml {
  if (o.attention.length === 0) return html`<p class="all-ok" id="needs-attention">All ${o.devices.length} devices ok.</p>`;
  return html`<section><h2>Needs attention</h2><ul class="attention-list" id="needs-attention">${o.attention.map(
    (a) => html`<li class="${a.level}" data-device="${a.device}" data-level="${a.level}"><b>${a.level}</b> · <a href="${siteHref(a.site)}">${a.site}</a> › <a href="/console/devices/${encodeURIComponent(a.device)}">${a.device}</a>: ${a.reason}</li>`,
  )}</ul></section>`;
}

/** Open and all alerts per device (fleet/app/alerts). */
type AlertCounts = ReadonlyMap<string, { total: number; open: number }>;

function deviceTable(rows: DeviceHealthRow[], now: number, alerts: AlertCounts): SafeHtml {
  const alertCell = (id: string): SafeHtml | string => {
    const a = alerts.get(id);
    return a ? html`<a href="/console/alerts?device=${encodeURIComponent(id)}" title="open / all">${a.open} / ${a.total}</a>` : '0';
  };
  return html`<table class="grid-table" id="devices"><thead><tr><th>device</th><th>site</th><th>state</th><th>health</th><th>models</th><th>traffic</th><th class="num">worst PSI</th><th class="num">outliers</th><th class="num">accuracy</th><th class="num">alerts</th><th>last seen</th></tr></thead>
    <tbody>${rows.map(
      (d) => html`<tr class="level-${d.level}" data-device="${d.id}" data-level="${d.level}">
        <td><a href="/console/devices/${encodeURIComponent(d.id)}">${d.id}</a></td>
        <td><a href="${siteHref(d.site)}">${d.site}</a></td>
        <td>${badge(d.state)}</td>
        <td>${badge(d.level)}${d.reasons.length ? html` <span class="muted">${d.reasons.join('; ')}</span>` : ''}</td>
        <td class="models">${d.models.length ? d.models.join(', ') : '—'}</td>
        <td>${traffic(d)}</td>
        <td class="num ${psiLevel(d.worst_psi?.value, d.thresholds)}" title="attention at ${num(d.thresholds.drift_attention, 2)}, trouble at ${num(d.thresholds.drift_trouble, 2)} (${d.thresholds.source})">${psiText(d.worst_psi)}</td>
        <td class="num ${d.idle ? '' : outlierLevel(d.outlier_rate, d.thresholds)}">${d.idle ? '—' : pct(d.outlier_rate)}</td>
        <td class="num">${accText(d.accuracy)}</td>
        <td class="num alerts">${alertCell(d.id)}</td>
        <td>${ago(d.last_seen, now)}</td>
      </tr>`,
    )}</tbody></table>`;
}

/** The fleet at a glance: what needs attention first, then one row per site, then counts. */
export async function overviewPage(ctx: FleetContext): Promise<PageResult> {
  const now = ctx.clock.now();
  const o = await fleetOverviewOf(ctx);
  const online = o.devices.filter((d) => d.state === 'online').length;
  const rollouts = ctx.rollouts.list();
  const active = rollouts.filter((r) => !TERMINAL.has(r.state.status));
  const progress = ctx.labels.progress();
  const models = ctx.registry.list();
  const alerts = ctx.alerts.countsByDevice();
  const openAlerts = [...alerts.values()].reduce((n, a) => n + a.open, 0);
  const stat = (label: string, value: string | number, href?: string, cls = ''): SafeHtml =>
    html`<div class="stat ${cls}"><div class="stat-value">${href ? html`<a href="${href}">${value}</a>` : value}</div><div class="stat-label">${label}</div></div>`;
  const body = html`
  <h1>Fleet</h1>
  ${attentionList(o)}
  <section><h2>Sites</h2>
  ${o.sites.length === 0
    ? html`<p class="muted">No devices registered yet.</p>`
    : html`<table class="grid-table" id="sites"><thead><tr><th>site</th><th>health</th><th class="num">online</th><th class="num">offline</th><th class="num">worst drift PSI</th><th class="num">outlier rate</th><th class="num">accuracy (labeled)</th><th>last seen</th></tr></thead><tbody>
      ${o.sites.map(
        (s) => html`<tr class="level-${s.level}" data-site="${s.site}" data-level="${s.level}">
          <td><a href="${siteHref(s.site)}">${s.site}</a></td>
          <td>${badge(s.level)}${s.reasons.length ? html` <span class="muted">${s.reasons[0]}${s.reasons.length > 1 ? ` (+${s.reasons.length - 1})` : ''}</span>` : ''}</td>
          <td class="num">${s.online}</td>
          <td class="num ${s.offline ? 'trouble' : ''}">${s.offline}</td>
          <td class="num ${s.worst_psi ? psiLevel(s.worst_psi.value, (o.devices.find((d) => d.id === s.worst_psi?.device) as DeviceHealthRow).thresholds) : ''}">${psiText(s.worst_psi)}</td>
          <td class="num">${pct(s.outlier_rate)}</td>
          <td class="num">${accText(s.accuracy)}</td>
          <td>${ago(s.last_seen, now)}</td>
        </tr>`,
      )}</tbody></table>`}
  </section>
  <section class="stats" id="fleet-stats">
    ${stat('devices', o.devices.length)}
    ${stat('online', online)}
    ${stat('offline', o.devices.length - online, undefined, o.devices.length - online ? 'trouble' : '')}
    ${stat('model versions', models.length, '/console/models')}
    ${stat('active rollouts', active.length, '/console/rollouts')}
    ${stat('samples', ctx.ingest.count(), '/console/labeling')}
    ${stat('labeled', `${progress.labeled} / ${progress.total}`, '/console/labeling')}
    ${stat('open alerts', openAlerts, '/console/alerts?state=open')}
  </section>
  <section>
    <h2>Devices</h2>
    ${deviceTable(o.devices, now, alerts)}
  </section>`;
  return { title: 'Fleet', section: 'overview', body };
}

/** One site: its devices with their health, what needs attention there first. */
export async function sitePage(ctx: FleetContext, site: string): Promise<PageResult> {
  const now = ctx.clock.now();
  const o = await fleetOverviewOf(ctx, { site });
  if (o.devices.length === 0) throw new FleetError('NOT_FOUND', `no device has site ${site}`);
  const s = o.sites[0] as FleetOverview['sites'][number];
  const body = html`
  <p><a href="/console/">Fleet</a> › site</p>
  <h1>Site ${site} ${badge(s.level)}</h1>
  <p class="lead">${s.online} online, ${s.offline} offline · worst drift ${psiText(s.worst_psi)} · outlier rate ${pct(s.outlier_rate)} · last seen ${ago(s.last_seen, now)}</p>
  ${attentionList(o)}
  <section><h2>Devices</h2>${deviceTable(o.devices, now, ctx.alerts.countsByDevice())}</section>`;
  return { title: `Site ${site}`, section: 'overview', body };
}

/** How the device logs in to the broker: its certificate (with expiry, or revoked) or its secret. */
function login(d: DeviceRecord): SafeHtml {
  const c = d.certificate;
  if (!c) return html`secret <span class="muted">(set ${when(d.secret_set_at)})</span>`;
  if (c.revoked_at) return html`${badge('revoked')} certificate <span class="muted">revoked ${when(c.revoked_at)}, serial ${c.serial}</span>`;
  return html`certificate <span class="muted">until ${when(c.not_after)}, serial ${c.serial}, sha256 ${c.sha256.slice(0, 16)}…</span>`;
}

/** The alert rule set the device runs (fleet or config), the one it was last sent, and its last refusal. */
function ruleSetPanel(ctx: FleetContext, d: DeviceRecord, dl: (rows: Array<[string, unknown]>) => SafeHtml): SafeHtml {
  const r = d.rules;
  const sent = ctx.ruleSets.assignmentOf(d.id);
  const runs = !r ? '—' : r.source === 'fleet' ? html`<span id="rule-set-running">${r.name}@${r.version}</span> <span class="muted">sha256 ${r.sha256?.slice(0, 12) ?? ''}…</span>` : r.source === 'config' ? 'its config file' : 'none';
  return dl([
    ['running', runs],
    ['sent', sent ? html`${sent.name !== null ? `${sent.name}@${sent.version}` : 'withdrawn (config rules)'} <span class="muted">revision ${sent.revision}, by ${sent.assigned_by}</span>` : '—'],
    ['refused', r?.refused ? html`<span class="fail" id="rule-set-refused">${r.refused.name ?? '?'}@${r.refused.version ?? '?'}: ${r.refused.code} ${r.refused.message}</span>` : '—'],
  ]);
}

/** The history windows a device page offers (`?window=`), and its default. */
const WINDOWS: Record<string, number> = { '1h': 3_600_000, '6h': 6 * 3_600_000, '24h': 86_400_000, '7d': 7 * 86_400_000 };

/** Drift PSI of each kind and the outlier rate over time, one small chart each with its own thresholds. */
function driftHistory(ctx: FleetContext, id: string, window: string, t: Thresholds): SafeHtml {
  const points = ctx.devices.driftHistory(id, WINDOWS[window] ?? (WINDOWS['6h'] as number));
  const psiThresholds = [
    { value: t.drift_attention, label: `attention ${num(t.drift_attention, 2)}`, cls: 'warn' as const },
    { value: t.drift_trouble, label: `trouble ${num(t.drift_trouble, 2)}`, cls: 'fail' as const },
  ];
  const xRange: [number, number] | undefined = points.length ? [(points[0] as DriftPoint).ts, (points[points.length - 1] as DriftPoint).ts] : undefined;
  const series = (['class', 'brightness', 'contrast'] as const).map((k) =>
    timeChart({
      ...(xRange ? { xRange } : {}),
      title: `${k} PSI of ${id} over the last ${window}`,
      name: `${k} PSI`,
      points: points.flatMap((p) => {
        const v = p[`${k}_psi`];
        return v === null ? [] : [{ x: p.ts, y: v }];
      }),
      thresholds: psiThresholds,
    }),
  );
  series.push(
    timeChart({
      title: `outlier rate of ${id} over the last ${window}`,
      name: 'outlier rate',
      ...(xRange ? { xRange } : {}),
      points: points.map((p) => ({ x: p.ts, y: p.outlier_rate })),
      thresholds: [
        { value: t.outlier_attention, label: `attention ${pct(t.outlier_attention)}`, cls: 'warn' },
        { value: t.outlier_trouble, label: `trouble ${pct(t.outlier_trouble)}`, cls: 'fail' },
      ],
      format: (v) => `${Math.round(v * 100)}%`,
    }),
  );
  const links = Object.keys(WINDOWS).map((w) => (w === window ? html`<b>${w}</b>` : html`<a href="?window=${w}">${w}</a>`));
  return html`<p class="muted">Last ${links.map((l, i) => html`${i ? ' · ' : ''}${l}`)} · ${points.length} telemetry windows · times in UTC · thresholds from ${t.source}</p>${multiples(series, { label: `drift history of ${id}`, id: 'drift-history' })}`;
}

/**
 * A device's models, one row per model slot (a device may serve several: a detector beside a
 * classifier): its active, previous and shadow versions and where its deployment stands.
 */
function modelSlots(d: DeviceRecord): SafeHtml {
  const slots = deviceSlots(d);
  if (slots.length === 0) return html`<p class="muted">No model yet.</p>`;
  return html`<table class="grid-table"><thead><tr><th>model</th><th>active</th><th>previous</th><th>shadow</th><th>deployment</th></tr></thead><tbody>${slots.map(
    (s) => html`<tr data-model="${s.name}">
      <td>${s.name}</td>
      <td class="active">${s.active ? s.active.version : '—'}</td>
      <td class="previous">${s.previous ? s.previous.version : '—'}</td>
      <td class="shadow">${s.shadow ? s.shadow.version : '—'}</td>
      <td class="deployment">${s.deployment ? html`${badge(s.deployment.phase)} ${ref(s.deployment.target)}${s.deployment.rollout_id ? html` · <a href="/console/rollouts/${encodeURIComponent(s.deployment.rollout_id)}">${s.deployment.rollout_id}</a>` : ''}` : '—'}</td>
    </tr>`,
  )}</tbody></table><p class="muted">installed: ${d.models.installed.map(ref).join(', ') || '—'}</p>`;
}

/** One device: status, models, deployment phase, health, drift now and over time, its latest samples. */
export async function devicePage(ctx: FleetContext, id: string, url?: URL): Promise<PageResult> {
  const now = ctx.clock.now();
  const d = ctx.devices.get(id);
  const [row] = (await fleetOverviewOf(ctx)).devices.filter((x) => x.id === d.id);
  const t = row?.thresholds ?? thresholdsOf(null, '');
  const window = url?.searchParams.get('window') ?? '6h';
  const h = d.health;
  const drift = h
    ? barChart(
        (['class', 'brightness', 'contrast'] as const).map((k) => {
          const v = h.drift_psi[k];
          return { label: `${k} PSI`, value: v, ok: v === null ? null : v < t.drift_attention ? true : v >= t.drift_trouble ? false : null };
        }),
        { title: `drift PSI of ${d.id}`, refs: [{ value: t.drift_attention, label: num(t.drift_attention, 2) }, { value: t.drift_trouble, label: num(t.drift_trouble, 2) }] },
      )
    : html`<p class="muted">No telemetry yet.</p>`;
  const samples = ctx.ingest.query({ device: d.id, order: 'desc', limit: 8 }).items;
  const dl = (rows: Array<[string, unknown]>): SafeHtml => html`<dl class="kv">${rows.map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
  const body = html`
  <p><a href="/console/">Fleet</a> › ${row ? html`<a href="/console/sites/${encodeURIComponent(row.site)}">${row.site}</a>` : ''} › device</p>
  <h1>Device ${d.id} ${badge(d.state)} ${row ? badge(row.level) : ''}</h1>
  ${row?.reasons.length ? html`<p id="device-reasons"><span class="${row.level}">${row.reasons.join('; ')}</span></p>` : ''}
  <div class="cols">
    <section class="panel"><h2>Status</h2>${dl([
      ['state', badge(d.state)],
      ['last seen', ago(d.last_seen, now)],
      ['offline since', ago(d.offline_at, now)],
      ['agent', d.agent_version ?? '—'],
      ['tags', tags(d.tags)],
      ['registered', ago(d.created_at, now)],
      ['login', login(d)],
    ])}</section>
    <section class="panel" id="model-slots"><h2>Models</h2>${modelSlots(d)}</section>
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
    <section class="panel" id="rule-set"><h2>Alert rules</h2>${ruleSetPanel(ctx, d, dl)}</section>
  </div>
  <div class="cols">
    <section class="panel" id="health"><h2>Health</h2>${
      h
        ? dl([
            ['traffic', h.inference_rate_per_s === 0 ? 'no traffic' : `${num(h.inference_rate_per_s, 1)} /s, p95 ${num(h.latency_p95_ms, 1)} ms`],
            ['outlier rate', h.inference_rate_per_s === 0 ? '—' : pct(h.outlier_rate)],
            ['accuracy (labeled)', row ? accText(row.accuracy) : '—'],
            ['queue', `${h.queue.depth} samples, ${h.queue.bytes} bytes, ${h.queue.evicted_total} evicted`],
          ])
        : html`<p class="muted">No telemetry yet.</p>`
    }</section>
    <section class="panel" id="drift"><h2>Drift now (PSI)</h2>${drift}</section>
  </div>
  <section id="history"><h2>Drift over time</h2>${driftHistory(ctx, d.id, window, t)}</section>
  <section><h2>Latest samples</h2>${
    samples.length
      ? html`<div class="strip">${samples.map((s) => html`<figure><img src="/v1/samples/${encodeURIComponent(s.sample_id)}/blob" alt="sample ${s.sample_id}" width="72" height="72"><figcaption>${s.prediction.label} ${pct(s.confidence)}</figcaption></figure>`)}</div>`
      : html`<p class="muted">No samples from this device.</p>`
  }</section>`;
  return { title: `Device ${d.id}`, section: 'overview', body };
}
