import { alertQuery, type StoredAlert } from '../../../app/alerts/alerts.js';
import type { FleetContext } from '../../../app/context.js';
import { allowed, type User } from '../../../app/users.js';
import { parseWith } from '../../../../shared/validate.js';
import { queryCoercer } from '../../web/query.js';
import { badge, html, when, type SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

const coerce = queryCoercer(alertQuery);

const SEVERITY_BADGE = { critical: 'bad', warning: 'warn', info: 'na' } as const;

const option = (value: string, current: string | undefined): SafeHtml => html`<option value="${value}" ${value === (current ?? '') ? 'selected' : ''}>${value || 'any'}</option>`;

function card(a: StoredAlert, canAct: boolean): SafeHtml {
  const state = a.resolved ? `resolved by ${a.resolved.by} ${when(a.resolved.at)}` : a.acknowledged ? `acknowledged by ${a.acknowledged.by} ${when(a.acknowledged.at)}` : 'open';
  return html`<div class="card alert" data-alert="${a.alert_id}" data-state="${a.resolved ? 'resolved' : a.acknowledged ? 'acknowledged' : 'open'}">
    <a href="/v1/samples/${encodeURIComponent(a.sample_id)}/blob"><img src="/v1/samples/${encodeURIComponent(a.sample_id)}/blob" alt="frame of alert ${a.alert_id}"></a>
    <div>${badge(a.severity, SEVERITY_BADGE[a.severity])} <strong>${a.rule}</strong></div>
    <div>${a.label} ${Math.round(a.score * 100)}%${a.count > 1 ? ` x${a.count}` : ''}</div>
    <div class="muted"><a href="/console/devices/${encodeURIComponent(a.device_id)}">${a.device_id}</a>${a.camera ? ` / ${a.camera}` : ''}${a.site ? ` (site ${a.site})` : ''}</div>
    <div class="muted">${when(a.raised_at)}</div>
    <div class="alert-state">${state}</div>
    ${canAct && !a.resolved
      ? html`<div>${a.acknowledged ? '' : html`<button data-alert-command="ack" data-alert-id="${a.alert_id}">Acknowledge</button> `}<button data-alert-command="resolve" data-alert-id="${a.alert_id}">Resolve</button></div>`
      : ''}
  </div>`;
}

/** Alerts raised by device rules, newest first, with their frames, filters, and acknowledge / resolve for operators. */
export function alertsPage(ctx: FleetContext, url: URL, user: User): PageResult {
  const q = parseWith(alertQuery, coerce(url.searchParams), 'INPUT_INVALID', 'query');
  const page = ctx.alerts.list(q);
  const canAct = allowed(user.role, 'alerts');
  const next = new URLSearchParams(url.searchParams);
  if (page.next_before !== null) next.set('before', page.next_before);
  const body = html`
  <h1>Alerts</h1>
  <form class="filters" method="get" action="/console/alerts" id="alert-filters">
    <label>site <input name="site" value="${q.site ?? ''}"></label>
    <label>severity <select name="severity">${['', 'critical', 'warning', 'info'].map((s) => option(s, q.severity))}</select></label>
    <label>rule <input name="rule" value="${q.rule ?? ''}"></label>
    <label>device <input name="device" value="${q.device ?? ''}"></label>
    <label>from <input name="from" placeholder="2026-12-03T00:00:00Z" value="${q.from === undefined ? '' : String(q.from)}"></label>
    <label>to <input name="to" value="${q.to === undefined ? '' : String(q.to)}"></label>
    <label>state <select name="state">${['all', 'open', 'acknowledged', 'resolved'].map((s) => html`<option value="${s}" ${s === q.state ? 'selected' : ''}>${s}</option>`)}</select></label>
    <button type="submit">Filter</button>
  </form>
  ${page.items.length === 0
    ? html`<p class="muted" id="alerts-empty">No alerts${q.before ? ' before this point' : ''}.</p>`
    : html`<div class="cards" id="alerts">${page.items.map((a) => card(a, canAct))}</div>`}
  ${page.next_before !== null ? html`<p><a href="/console/alerts?${next.toString()}" id="alerts-older">Older alerts</a></p>` : ''}`;
  return { title: 'Alerts', section: 'alerts', body };
}
