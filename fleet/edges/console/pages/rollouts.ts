import type { z } from 'zod';
import { allowed } from '../../../app/users.js';
import type { User } from '../../../app/users.js';
import type { FleetContext } from '../../../app/context.js';
import { detailOf, summaryOf } from '../../../app/read-models/rollouts.js';
import type { rolloutDetail } from '../../../app/read-models/rollouts.js';
import { activeAllowance, resolveAllowance, stagesOf } from '../../../core/rollouts/stages.js';
import { rolloutCommand } from '../../../core/rollouts/types.js';
import type { Allowance } from '../../../core/rollouts/types.js';
import { slotActive } from '../../../core/devices/state.js';
import { gateBars, lineChart, progressBar } from '../charts.js';
import type { Series } from '../charts.js';
import { ago, badge, html, num, ref } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

type Detail = z.output<typeof rolloutDetail>;

/** A bake time as people say it: none, 45 s, 10 min, 1.5 h. */
const bakeText = (ms: number): string => (ms === 0 ? 'none' : ms < 120_000 ? `${num(ms / 1000, 0)} s` : ms < 7_200_000 ? `${num(ms / 60_000, 0)} min` : `${num(ms / 3_600_000, 1)} h`);

const allowanceText = (a: Allowance | null): string => (a === null ? '—' : 'count' in a ? `${a.count} devices` : `${a.percent}%`);
const selectorText = (s: Record<string, string>): string => Object.entries(s).map(([k, v]) => `${k}=${v}`).join(', ') || 'all devices';

export function rolloutsPage(ctx: FleetContext): PageResult {
  const now = ctx.clock.now();
  const items = ctx.rollouts.list().map((r) => summaryOf(r, ctx));
  const body = html`
  <h1>Rollouts</h1>
  ${items.length === 0
    ? html`<p class="muted">No rollouts yet.</p>`
    : html`<table class="grid-table" id="rollouts"><thead><tr><th>rollout</th><th>model</th><th>status</th><th>stage</th><th>target</th><th>devices</th><th>created</th></tr></thead><tbody>
      ${items.map(
        (r) => html`<tr>
          <td><a href="/console/rollouts/${encodeURIComponent(r.id)}">${r.id}</a></td>
          <td>${ref(r.model)}</td>
          <td>${badge(r.display_status, r.display_status === 'converging' ? 'attention' : r.display_status)}${r.devices.outstanding && r.display_status !== 'aborted' && r.display_status !== 'rolled_back' ? html` <span class="muted">${r.devices.outstanding} not confirmed</span>` : ''}</td>
          <td>${r.stage_name ?? '—'}</td>
          <td>${selectorText(r.selector)}</td>
          <td>${progressBar(
            [
              { value: r.devices.installed, cls: 'ok', label: 'installed' },
              { value: Math.max(0, r.devices.assigned - r.devices.installed - r.devices.failed), cls: 'pending', label: 'assigned' },
              { value: r.devices.failed, cls: 'fail', label: 'failed' },
            ],
            r.devices.target,
            140,
          )} ${r.devices.installed}/${r.devices.target}</td>
          <td>${ago(r.created_at, now)} by ${r.created_by}</td>
        </tr>`,
      )}
    </tbody></table>`}`;
  return { title: 'Rollouts', section: 'rollouts', body };
}

/** Stage by stage: the allowance, how many devices hold the candidate, installed and failed. */
function stageProgress(d: Detail): SafeHtml {
  const state = d.state;
  const stages = stagesOf(state.plan);
  const devices = Object.values(state.devices);
  const target = d.rollout.devices.target;
  const rows = stages.map((s) => {
    const inStage = s.kind === 'shadow' ? devices.filter((x) => x.shadow_stage === s.index) : devices.filter((x) => x.assigned_stage !== null && x.assigned_stage <= s.index);
    const installed = inStage.filter((x) => (s.kind === 'shadow' ? x.shadow_installed_at !== null : x.installed_at !== null)).length;
    const failed = inStage.filter((x) => x.failure !== null).length;
    const allowance = s.kind === 'shadow' && s.shadow ? resolveAllowance(s.shadow.devices, target) : activeAllowance(stages, s.index, target);
    const where = s.index < state.stage || state.status === 'completed' ? 'done' : s.index === state.stage ? 'current' : 'next';
    return html`<tr class="stage ${where}" data-stage="${s.index}">
      <td>${s.name}</td><td>${badge(where)}</td>
      <td>${allowanceText(s.kind === 'shadow' ? (s.shadow?.devices ?? null) : s.devices)} → ${allowance}</td>
      <td>${
        where === 'next'
          ? ''
          : progressBar(
              [
                { value: installed, cls: 'ok', label: 'installed' },
                { value: Math.max(0, inStage.length - installed - failed), cls: 'pending', label: 'assigned, not installed' },
                { value: failed, cls: 'fail', label: 'failed' },
              ],
              Math.max(allowance, inStage.length),
            )
      }</td>
      <td class="num">${where === 'next' ? '—' : html`${installed}/${allowance}${failed ? html` <span class="fail-text">${failed} failed</span>` : ''}`}</td>
      <td class="num">${s.bake_ms === 0 ? 'none' : bakeText(s.bake_ms)}</td>
    </tr>`;
  });
  return html`<table class="grid-table" id="stages"><thead><tr><th>stage</th><th></th><th>allowance</th><th>progress</th><th class="num">installed</th><th class="num">bake</th></tr></thead><tbody>${rows}</tbody></table>`;
}

/** Each gate signal over the decisions that carried it, oldest first. */
function signalHistory(d: Detail): SafeHtml {
  const byName = new Map<string, Series>();
  for (const dec of [...d.decisions].reverse()) {
    for (const s of dec.signals ?? []) {
      if (typeof s.value !== 'number' || typeof s.threshold !== 'number') continue;
      const series = byName.get(s.name) ?? { name: s.name, points: [], threshold: s.threshold };
      series.points.push({ x: dec.at, y: s.value });
      series.threshold = s.threshold;
      byName.set(s.name, series);
    }
  }
  return lineChart([...byName.values()], { title: 'gate signals over time' });
}

function controls(d: Detail, user: User): SafeHtml {
  const may = allowed(user.role, 'rollouts');
  // exclude names devices: the CLI and the API take it, a button could not say which.
  const buttons = rolloutCommand.options.filter((c) => c !== 'exclude').map(
    (c) => html`<button type="button" class="cmd ${c}" data-command="${c}" data-rollout="${d.rollout.id}" ${!may || !d.commands.includes(c) ? 'disabled' : ''}>${c[0]?.toUpperCase()}${c.slice(1)}</button>`,
  );
  return html`<div class="controls" id="controls">${buttons}${may ? '' : html`<span class="muted">role ${user.role} cannot command rollouts</span>`}</div>`;
}

export function rolloutPage(ctx: FleetContext, id: string, user: User): PageResult {
  const now = ctx.clock.now();
  const d = detailOf(ctx, ctx.rollouts.get(id));
  const r = d.rollout;
  const g = d.gates;
  const stages = stagesOf(d.state.plan);
  const devices = Object.entries(d.state.devices);
  // A completed rollout no longer hears reports; the device's own status still says what it runs.
  const runsNow = (id: string): boolean => {
    const dev = ctx.devices.find(id);
    const a = dev ? slotActive(dev, d.rollout.model.name) : null;
    return a?.name === d.rollout.model.name && a.version === d.rollout.model.version;
  };
  const body = html`
  <h1>Rollout ${r.id} <span id="rollout-status">${badge(r.display_status, r.display_status === 'converging' ? 'attention' : r.display_status)}</span></h1>
  ${r.display_status === 'converging' ? html`<p class="attention" id="converging">Every stage passed, but ${r.devices.outstanding} of ${r.devices.target} targeted devices have not confirmed ${ref(r.model)} yet: the rollout completes when they do.</p>` : ''}
  <p class="lead">${ref(r.model)} to ${selectorText(r.selector)} · created ${ago(r.created_at, now)} by ${r.created_by}${d.state.pause ? html` · paused (${d.state.pause.by}): ${d.state.pause.reason}` : ''}</p>
  ${controls(d, user)}
  <section><h2>Stages</h2>${stageProgress(d)}</section>
  <section id="gates"><h2>Gates of ${r.stage_name ?? '—'} ${g ? badge(g.status) : ''}</h2>
    ${g
      ? html`<p>${g.reason}</p>
        ${gateBars(
          g.signals.filter((s) => typeof s.value === 'number').map((s) => ({ label: s.name, value: s.value as number, threshold: s.threshold ?? null, ok: s.ok ?? null })),
          { title: 'gate signals against their thresholds' },
        )}
        <table class="grid-table signals"><thead><tr><th>signal</th><th class="num">value</th><th class="num">threshold</th><th>verdict</th><th class="num">devices</th></tr></thead><tbody>
        ${g.signals.map((s) => html`<tr><td>${s.name}</td><td class="num">${typeof s.value === 'number' ? num(s.value) : (s.value ?? '—')}</td><td class="num">${num(s.threshold)}</td><td>${s.ok === true ? badge('ok') : s.ok === false ? badge('fail') : badge('n/a', 'na')}</td><td class="num">${s.devices ?? '—'}</td></tr>`)}
        </tbody></table>`
      : html`<p class="muted">Not started.</p>`}
  </section>
  <section><h2>Signals over time</h2>${signalHistory(d)}</section>
  ${d.outstanding.length && r.status !== 'aborted' && r.status !== 'rolled_back'
    ? html`<section><h2>Outstanding (${d.outstanding.length})</h2>
    <table class="grid-table" id="outstanding"><thead><tr><th>device</th><th>stage</th><th>state</th><th>last report</th><th>why</th></tr></thead><tbody>
    ${d.outstanding.map((o) => html`<tr data-device="${o.device_id}"><td><a href="/console/devices/${encodeURIComponent(o.device_id)}">${o.device_id}</a></td><td>${o.stage ?? '—'}</td><td>${badge(o.state)}</td><td>${o.reported ? html`${badge(o.reported.phase)} ${o.reported.model} ${ago(o.reported.at, now)}` : '—'}</td><td class="why">${o.why}</td></tr>`)}
    </tbody></table></section>`
    : ''}
  <section><h2>Devices</h2>
    <table class="grid-table" id="rollout-devices"><thead><tr><th>device</th><th>stage</th><th>desired</th><th>reported</th><th>before</th><th>failure</th></tr></thead><tbody>
    ${devices.map(
      ([devId, x]) => html`<tr>
        <td><a href="/console/devices/${encodeURIComponent(devId)}">${devId}</a></td>
        <td>${x.assigned_stage !== null ? (stages[x.assigned_stage]?.name ?? x.assigned_stage) : x.shadow_stage !== null ? `shadow` : x.excluded_reason ? '' : '—'}${x.excluded_reason ? html` <span class="muted">excluded: ${x.excluded_reason}</span>` : ''}</td>
        <td>${x.desired ? html`${ref(x.desired.active)}${x.desired.shadow ? html` + shadow ${ref(x.desired.shadow.model)}` : ''}` : '—'}</td>
        <td>${x.reported ? html`${badge(x.reported.phase)} ${ref(x.reported.model)}` : runsNow(devId) ? html`${badge('active')} ${ref(r.model)} <span class="muted">(device status)</span>` : '—'}</td>
        <td>${ref(x.last_known_good)}</td>
        <td>${x.failure ? html`<span class="fail-text">${x.failure.reason}</span>${x.failure.acknowledged ? ' (acknowledged)' : ''}` : ''}</td>
      </tr>`,
    )}
    </tbody></table>
  </section>
  <section><h2>Decisions</h2>
    <table class="grid-table" id="decisions"><thead><tr><th>time</th><th>decision</th><th>stage</th><th>reason</th></tr></thead><tbody>
    ${d.decisions.map((x) => html`<tr><td>${ago(x.at, now)}</td><td>${badge(x.kind)}</td><td>${x.stage_name ?? ''}</td><td>${x.device_id ? html`<b>${x.device_id}</b> ` : ''}${x.reason}${x.actor ? html` <span class="muted">(${x.actor})</span>` : ''}</td></tr>`)}
    </tbody></table>
  </section>`;
  return { title: `Rollout ${r.id}`, section: 'rollouts', body };
}
