import type { User } from '../../../app/users.js';
import { allowed } from '../../../app/users.js';
import type { FleetContext } from '../../../app/context.js';
import { queryCoercer } from '../../web/query.js';
import { SIMULATED_LABELER } from '../../../app/labels/labels.js';
import { sampleFilterSchema } from '../../../app/samples/filter.js';
import type { SampleRecord } from '../../../app/samples/types.js';
import { OUTLIER_REASONS } from '../../../../shared/schemas/index.js';
import { parseWith } from '../../../../shared/validate.js';
import { ago, html, jsonBlock, pct } from '../html.js';
import type { SafeHtml } from '../html.js';
import type { PageResult } from './types.js';

/** The filters the labeling page offers: a subset of the library's sample filter, same schema. */
const labelingFilter = sampleFilterSchema.pick({ device: true, reason: true, model: true, minConfidence: true, maxConfidence: true });
const coerceFilter = queryCoercer(labelingFilter);

/** Cards per page; the next batch is a reload. */
const BATCH = 24;

/**
 * Labels a key can assign on a model's samples. From the registered manifest when there is
 * one (`indexed`: digit N is the label at index N unless a label is the digit itself);
 * otherwise the labels seen in the samples' predictions (a digit is then the label itself).
 */
async function labelSets(ctx: FleetContext, samples: SampleRecord[]): Promise<Record<string, { labels: string[]; indexed: boolean }>> {
  const out: Record<string, { labels: string[]; indexed: boolean }> = {};
  for (const s of samples) {
    const key = `${s.model.name}@${s.model.version}`;
    if (out[key]) continue;
    if (ctx.registry.find(s.model.name, s.model.version)) {
      out[key] = { labels: (await ctx.registry.manifest(s.model.name, s.model.version)).labels, indexed: true };
    } else {
      const seen = new Set<string>();
      for (const x of samples) if (x.model.name === s.model.name && x.model.version === s.model.version) for (const t of [x.prediction, ...x.prediction.topk]) seen.add(t.label);
      out[key] = { labels: [...seen].sort(), indexed: false };
    }
  }
  return out;
}

function card(s: SampleRecord, now: number): SafeHtml {
  const state = s.label?.state ?? 'unlabeled';
  return html`<article class="card" data-sample="${s.sample_id}" data-model="${s.model.name}@${s.model.version}" data-predicted="${s.prediction.label}" data-state="${state}">
    <img src="/v1/samples/${encodeURIComponent(s.sample_id)}/blob" alt="sample ${s.sample_id}">
    <div class="pred"><span class="pred-label">${s.prediction.label}</span> <span class="conf">${pct(s.confidence)}</span></div>
    <div class="meta"><span class="device">${s.device_id}</span>${s.site ? html` <span class="muted">${s.site}</span>` : ''}</div>
    <div class="reasons">${s.reasons.map((r) => html`<span class="reason">${r}</span>`)}</div>
    <div class="meta muted">${s.model.name}@${s.model.version} · captured ${ago(s.captured_at, now)}</div>
    <div class="current" data-label="">${state === 'skipped' ? 'skipped' : ''}</div>
  </article>`;
}

function keymap(sets: Record<string, { labels: string[]; indexed: boolean }>): SafeHtml {
  return html`${Object.entries(sets).map(
    ([model, s]) => html`<div class="keymap"><b>${model}</b>: ${s.indexed ? s.labels.slice(0, 10).map((l, i) => html`<kbd>${i}</kbd> ${l} `) : html`<kbd>0</kbd>–<kbd>9</kbd> the digit `}
      ${s.labels.filter((l) => /^[a-z]/i.test(l) && !/^[su]/i.test(l)).length ? html`· letters: ${s.labels.filter((l) => /^[a-z]/i.test(l) && !/^[su]/i.test(l)).map((l) => html`<kbd>${l[0]?.toLowerCase()}</kbd> ${l} `)}` : ''}</div>`,
  )}`;
}

/** Current labels given by the demo's simulated labeler (0 outside the demo). */
function simulatedLabels(ctx: FleetContext): number {
  return ctx.labels.labeledBy(SIMULATED_LABELER);
}

export async function labelingPage(ctx: FleetContext, url: URL, user: User): Promise<PageResult> {
  const filter = parseWith(labelingFilter, coerceFilter(url.searchParams), 'INPUT_INVALID', 'labeling filter');
  const items = ctx.labels.next(filter, BATCH);
  const progress = ctx.labels.progress(filter);
  const sets = await labelSets(ctx, items);
  const canLabel = allowed(user.role, 'label');
  const devices = ctx.devices.list().map((d) => d.id);
  const models = [...new Set(ctx.registry.list().map((v) => v.name))];
  const simulated = simulatedLabels(ctx);
  const option = (value: string, current: string | undefined): SafeHtml => html`<option value="${value}" ${value === (current ?? '') ? 'selected' : ''}>${value || 'any'}</option>`;
  const body = html`
  <h1>Labeling</h1>
  ${simulated ? html`<div class="banner simulated" id="simulated-labels">Simulated: ${simulated} labels here were given by <b>${SIMULATED_LABELER}</b>, the demo's labeler that answers from the ground truth of the frames it fed the cameras, not by a person.</div>` : ''}
  <form class="filters" method="get" action="/console/labeling" id="filters">
    <label>device <select name="device">${['', ...devices].map((d) => option(d, filter.device))}</select></label>
    <label>reason <select name="reason">${['', ...OUTLIER_REASONS].map((r) => option(r, filter.reason))}</select></label>
    <label>model <input name="model" list="model-names" value="${filter.model ?? ''}" size="10"><datalist id="model-names">${models.map((m) => html`<option value="${m}">`)}</datalist></label>
    <label>confidence <input name="minConfidence" type="number" min="0" max="1" step="0.01" value="${filter.minConfidence ?? ''}" placeholder="min"> – <input name="maxConfidence" type="number" min="0" max="1" step="0.01" value="${filter.maxConfidence ?? ''}" placeholder="max"></label>
    <button type="submit">Apply</button> <a href="/console/labeling">clear</a>
  </form>
  <div class="labeling-bar">
    <div id="progress" data-labeled="${progress.labeled}" data-skipped="${progress.skipped}" data-unlabeled="${progress.unlabeled}" data-total="${progress.total}">${progress.labeled} labeled · ${progress.skipped} skipped · ${progress.unlabeled} to go (of ${progress.total})</div>
    <div class="export">${canLabel ? html`<input id="dataset-name" placeholder="dataset name (optional)" size="18"> <button type="button" id="export">Export dataset</button>` : ''} <span id="export-result"></span></div>
  </div>
  <div class="help">
    <div><kbd>0</kbd>–<kbd>9</kbd> or a label's first letter: assign · <kbd>Enter</kbd> confirm the prediction · <kbd>s</kbd> skip · <kbd>u</kbd> / <kbd>Ctrl</kbd>+<kbd>Z</kbd> undo · arrows: move</div>
    ${keymap(sets)}
    ${canLabel ? '' : html`<div class="fail-text">Role ${user.role} may look but not label.</div>`}
  </div>
  ${jsonBlock('label-sets', sets)}
  ${jsonBlock('label-filter', filter)}
  <section id="labeling" data-can-label="${String(canLabel)}">
    ${items.length ? html`<div class="cards" id="grid">${items.map((s) => card(s, ctx.clock.now()))}</div>` : html`<p class="muted" id="empty">Nothing left to label with these filters.</p>`}
  </section>
  ${items.length === BATCH ? html`<p><a href="${url.pathname}${url.search}" id="next-batch">Next batch →</a></p>` : ''}`;
  return { title: 'Labeling', section: 'labeling', body };
}
