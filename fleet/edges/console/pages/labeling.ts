import type { User } from '../../../app/users.js';
import { allowed } from '../../../app/users.js';
import type { FleetContext } from '../../../app/context.js';
import { queryCoercer } from '../../web/query.js';
import { SIMULATED_LABELER } from '../../../app/labels/labels.js';
import { sampleFilterSchema } from '../../../app/samples/filter.js';
import type { SampleRecord } from '../../../app/samples/types.js';
import { OUTLIER_REASONS } from '../../../../shared/schemas/index.js';
import type { Detection } from '../../../../shared/schemas/index.js';
import type { BoxAnnotation, FrameSize } from '../../../core/labels/boxes.js';
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

/** What the box editor needs of a detection sample: the image size, the predicted boxes, the current box label. */
interface BoxSample {
  frame: FrameSize | null;
  predicted: Detection[];
  current: BoxAnnotation | null;
}

/** A detector's sample: the device sent its predicted boxes (possibly none). */
const isDetection = (s: SampleRecord): boolean => s.meta.detections !== undefined;

/** Box-editor data of the detection samples on the page, by sample id; the frame is the stored image's, which the API checks boxes against. */
async function boxSamples(ctx: FleetContext, samples: SampleRecord[]): Promise<Record<string, BoxSample>> {
  const out: Record<string, BoxSample> = {};
  for (const s of samples.filter(isDetection)) {
    out[s.sample_id] = { frame: await ctx.labels.imageFrame(s), predicted: s.meta.detections ?? [], current: s.label?.boxes ?? null };
  }
  return out;
}

function card(s: SampleRecord, now: number): SafeHtml {
  const state = s.label?.state ?? 'unlabeled';
  const detections = s.meta.detections;
  const img = html`<img src="/v1/samples/${encodeURIComponent(s.sample_id)}/blob" alt="sample ${s.sample_id}">`;
  return html`<article class="card" data-sample="${s.sample_id}" data-model="${s.model.name}@${s.model.version}" data-predicted="${s.prediction.label}" data-state="${state}" data-task="${detections ? 'detection' : 'classification'}">
    ${detections ? html`<div class="thumb">${img}<svg class="boxes" aria-hidden="true"></svg></div>` : img}
    ${
      detections
        ? html`<div class="pred"><span class="pred-label">${detections.length === 1 ? '1 box' : `${detections.length} boxes`}</span>${detections.length ? html` <span class="conf">best ${s.prediction.label} ${pct(s.confidence)}</span>` : ''}</div>`
        : html`<div class="pred"><span class="pred-label">${s.prediction.label}</span> <span class="conf">${pct(s.confidence)}</span></div>`
    }
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

/** The box editor, opened over the grid for one detection sample at a time (console.js drives it). */
function boxEditor(): SafeHtml {
  return html`<section id="box-editor" class="box-editor" hidden aria-label="box editor">
    <div class="be-head">
      <b id="be-title"></b>
      <label>class <select id="be-class"></select></label>
      <button type="button" id="be-accept" title="save the predicted boxes as they are (a)">Accept all</button>
      <button type="button" id="be-clear" title="remove every box: nothing in this image">Nothing here</button>
      <button type="button" id="be-save" title="save these boxes (Enter)">Save</button>
      <button type="button" id="be-close" title="close without saving (Esc)">Close</button>
      <span id="be-status" class="muted"></span>
    </div>
    <div class="be-stage" id="be-stage"><img id="be-img" alt="sample being labeled" draggable="false"><svg id="be-svg" role="application" aria-label="boxes"></svg></div>
    <div class="help">Drag on an empty area: new box of the selected class · drag a box: move · drag a corner: resize · <kbd>0</kbd>–<kbd>9</kbd>: class of the selected box · <kbd>Tab</kbd>: next box · arrows: move it (<kbd>Shift</kbd>: 10 px) · <kbd>Ctrl</kbd>+arrows: resize it · <kbd>n</kbd>: new box · <kbd>Delete</kbd>/<kbd>Backspace</kbd>: remove · <kbd>Ctrl</kbd>+<kbd>Z</kbd>: undo an edit · <kbd>Enter</kbd>: save · <kbd>a</kbd>: accept all · <kbd>Esc</kbd>: close</div>
  </section>`;
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
  const boxes = await boxSamples(ctx, items);
  const hasBoxes = Object.keys(boxes).length > 0;
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
    ${hasBoxes ? html`<div>Detection samples: <kbd>Enter</kbd> or a click opens the box editor (drag on the image: new box · drag a box: move · drag a corner: resize · <kbd>0</kbd>–<kbd>9</kbd> class · <kbd>Delete</kbd> remove · <kbd>Enter</kbd> save · <kbd>a</kbd> accept all · <kbd>Ctrl</kbd>+<kbd>Z</kbd> undo an edit · <kbd>Esc</kbd> close)</div>` : ''}
    ${keymap(sets)}
    ${canLabel ? '' : html`<div class="fail-text">Role ${user.role} may look but not label.</div>`}
  </div>
  ${jsonBlock('label-sets', sets)}
  ${jsonBlock('label-filter', filter)}
  ${hasBoxes ? jsonBlock('box-samples', boxes) : ''}
  ${hasBoxes && canLabel ? boxEditor() : ''}
  <section id="labeling" data-can-label="${String(canLabel)}">
    ${items.length ? html`<div class="cards" id="grid">${items.map((s) => card(s, ctx.clock.now()))}</div>` : html`<p class="muted" id="empty">Nothing left to label with these filters.</p>`}
  </section>
  ${items.length === BATCH ? html`<p><a href="${url.pathname}${url.search}" id="next-batch">Next batch →</a></p>` : ''}`;
  return { title: 'Labeling', section: 'labeling', body };
}
