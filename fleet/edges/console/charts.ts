/**
 * Inline SVG charts, drawn on the server: no chart library, no script. Colours come from the
 * stylesheet through classes (`ok`, `fail`, `na`, `s0`..`s5`), so the charts follow the page.
 *
 * Every chart shows one signal against its own axis and thresholds (small multiples: counts and
 * ratios never share an axis), and every text stays inside the chart's box without touching
 * another one: labels are measured with {@link textWidth} (a bound for the 11 px console font)
 * and pushed apart by {@link spread}. The console test checks this in Chromium with getBBox.
 */
import { html, num } from './html.js';
import type { SafeHtml } from './html.js';

const f = (n: number): string => (Math.round(n * 10) / 10).toString();

/** Chart text is 11 px; 6.8 px a character bounds the console's sans-serif digits and letters. */
const CHAR_W = 6.8;
const LINE_H = 13;
export const textWidth = (s: string): number => s.length * CHAR_W;

/**
 * Positions at least `gap` apart, each as close to where it wants to be as possible, kept in
 * [lo, hi] (when they fit). Used for labels along one axis: thresholds 0.1 and 0.25 on a scale
 * to 4 would otherwise print over each other as "0.1.25".
 */
export function spread(wanted: readonly number[], gap: number, lo: number, hi: number): number[] {
  const order = wanted.map((v, i) => ({ v, i })).sort((a, b) => a.v - b.v);
  const out = new Array<number>(wanted.length);
  let prev = -Infinity;
  for (const o of order) {
    const p = Math.max(o.v, lo, prev + gap);
    out[o.i] = p;
    prev = p;
  }
  // Pushed past the end: shift the tail back, keeping the gaps.
  let next = Infinity;
  for (let k = order.length - 1; k >= 0; k--) {
    const i = (order[k] as { i: number }).i;
    const p = Math.min(out[i] as number, hi, next - gap);
    out[i] = p;
    next = p;
  }
  return out;
}

/** A round number at or above `v` (1, 2, 2.5, 5 × 10^k): the top of an axis. */
export function niceCeil(v: number): number {
  if (!(v > 0) || !Number.isFinite(v)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v - 1e-12) return m * p;
  return 10 * p;
}

/** A number short enough for an axis: 0.25, 3.7, 120, 1.2k. */
export function short(v: number): string {
  const a = Math.abs(v);
  if (a >= 10_000) return `${(v / 1000).toFixed(0)}k`;
  if (a >= 1000) return `${(v / 1000).toFixed(1)}k`;
  if (a >= 100 || Number.isInteger(v)) return v.toFixed(0);
  if (a >= 10) return v.toFixed(1);
  return String(Number(v.toPrecision(2)));
}

export interface Bar {
  label: string;
  value: number | null;
  /** Drawn as a tick across the bar. */
  threshold?: number | null;
  /** Colour: true ok, false fail, null/undefined neutral. */
  ok?: boolean | null;
}

/**
 * Horizontal bars from zero, one row per value, with each row's threshold as a tick and
 * optional reference lines across all rows (PSI 0.1 / 0.25), their labels spread apart. Use it
 * for values of one kind on one scale; for signals of different kinds, {@link gateBars}.
 */
export function barChart(bars: Bar[], o: { title: string; refs?: Array<{ value: number; label: string }>; max?: number; width?: number }): SafeHtml {
  const valueText = (b: Bar): string => `${num(b.value)}${typeof b.threshold === 'number' ? ` / ${num(b.threshold)}` : ''}`;
  const labelW = Math.max(60, ...bars.map((b) => textWidth(b.label))) + 10;
  const valueW = Math.max(50, ...bars.map((b) => textWidth(valueText(b)))) + 12;
  const width = Math.max(o.width ?? 0, labelW + 160 + valueW);
  const plotW = width - labelW - valueW;
  const rowH = 24;
  const top = o.refs?.length ? 18 : 4;
  const height = top + bars.length * rowH + 4;
  const values = bars.flatMap((b) => [b.value, b.threshold].filter((v): v is number => typeof v === 'number' && Number.isFinite(v)));
  for (const r of o.refs ?? []) values.push(r.value);
  const lo = Math.min(0, ...values);
  const hi = o.max ?? Math.max(lo + 1e-9, ...values.map((v) => v * 1.1));
  const x = (v: number): number => labelW + ((Math.min(Math.max(v, lo), hi) - lo) / (hi - lo)) * plotW;
  const zero = x(0);
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const v = b.value;
    const cls = b.ok === true ? 'ok' : b.ok === false ? 'fail' : 'na';
    const bar = v === null || !Number.isFinite(v) ? '' : html`<rect class="bar ${cls}" x="${f(Math.min(zero, x(v)))}" y="${y + 5}" width="${f(Math.max(1, Math.abs(x(v) - zero)))}" height="${rowH - 10}"><title>${b.label}: ${num(v)}</title></rect>`;
    const tick = typeof b.threshold === 'number' ? html`<line class="threshold" x1="${f(x(b.threshold))}" x2="${f(x(b.threshold))}" y1="${y + 1}" y2="${y + rowH - 1}"><title>threshold ${num(b.threshold)}</title></line>` : '';
    return html`<g class="row"><text class="label" x="2" y="${y + rowH / 2 + 4}">${b.label}</text>${bar}${tick}<text class="value" x="${width - 4}" y="${y + rowH / 2 + 4}" text-anchor="end">${valueText(b)}</text></g>`;
  });
  const refs = o.refs ?? [];
  // Labels centred on their line, spread so none touches another or leaves the plot.
  const at = spread(
    refs.map((r) => x(r.value)),
    Math.max(0, ...refs.map((r) => textWidth(r.label))) + 6,
    labelW + Math.max(0, ...refs.map((r) => textWidth(r.label) / 2)),
    width - valueW - Math.max(0, ...refs.map((r) => textWidth(r.label) / 2)),
  );
  const refMarks = refs.map(
    (r, i) => html`<line class="ref" x1="${f(x(r.value))}" x2="${f(x(r.value))}" y1="${top - 2}" y2="${height}"></line><text class="ref-label" x="${f(at[i] as number)}" y="${top - 6}" text-anchor="middle">${r.label}</text>`,
  );
  return html`<svg class="chart bars" viewBox="0 0 ${f(width)} ${height}" width="${f(width)}" height="${height}" role="img" aria-label="${o.title}"><title>${o.title}</title>
<line class="axis" x1="${f(zero)}" x2="${f(zero)}" y1="${top}" y2="${height - 2}"></line>${refMarks}${rows}</svg>`;
}

/**
 * Gate signals against their thresholds, one small bar chart per signal on its own scale: a
 * latency in ms and an agreement ratio never share an axis.
 */
export function gateBars(bars: Bar[], o: { title: string }): SafeHtml {
  if (bars.length === 0) return html`<p class="muted">No signal values yet.</p>`;
  return html`<div class="multiples" role="group" aria-label="${o.title}">${bars.map((b) => barChart([b], { title: `${b.label} against its threshold`, width: 300 }))}</div>`;
}

export interface Series {
  name: string;
  points: Array<{ x: number; y: number }>;
  threshold?: number | null;
}

export interface Threshold {
  value: number;
  label: string;
  /** `warn` (attention) or `fail` (trouble): the line's colour. */
  cls?: 'warn' | 'fail';
}

const hhmm = (ms: number): string => new Date(ms).toISOString().slice(11, 16);
const mmdd = (ms: number): string => new Date(ms).toISOString().slice(5, 10);
/** An x label: the time of day within a day's span, the date beyond (all UTC; the page says so). */
const timeLabel = (ms: number, span: number): string => (span > 86_400_000 ? `${mmdd(ms)} ${hhmm(ms)}` : hhmm(ms));

/**
 * One signal over time in a small chart of its own: its own y axis from 0 to a round number
 * above its values and thresholds, its thresholds as dashed lines labelled at the right edge
 * inside the plot (spread apart vertically), the first and last time under the axis.
 */
export function timeChart(s: { title: string; name: string; points: Array<{ x: number; y: number }>; thresholds?: Threshold[]; width?: number; height?: number; format?: (v: number) => string; xLabel?: (x: number) => string; xRange?: [number, number] }): SafeHtml {
  const width = s.width ?? 300;
  const height = s.height ?? 140;
  const fmt = s.format ?? short;
  const points = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y));
  const ths = (s.thresholds ?? []).filter((t) => Number.isFinite(t.value));
  // All zero (no failures against a limit of 0): an axis to 1, not to 1e-9.
  const peak = Math.max(...points.map((p) => p.y), ...ths.map((t) => t.value), 0);
  const top = peak > 0 ? niceCeil(peak) : 1;
  const yTicks = [0, top / 2, top];
  const pad = { l: Math.max(...yTicks.map((v) => textWidth(fmt(v)))) + 10, r: 8 + Math.max(0, ...ths.map((t) => textWidth(t.label))) + 6, t: 26, b: 22 };
  const plotR = width - pad.r;
  const plotB = height - pad.b;
  const title = html`<text class="chart-title" x="2" y="12">${s.name}</text>`;
  if (points.length === 0) {
    return html`<svg class="chart series" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${s.title}"><title>${s.title}</title>${title}<text class="tick" x="${pad.l}" y="${f(height / 2)}">no data yet</text></svg>`;
  }
  // Small multiples of one window share it (xRange), so their times line up.
  const x0 = s.xRange?.[0] ?? Math.min(...points.map((p) => p.x));
  const x1 = Math.max(x0 + 1, s.xRange?.[1] ?? Math.max(...points.map((p) => p.x)));
  const X = (v: number): number => pad.l + ((v - x0) / (x1 - x0)) * (plotR - pad.l);
  const Y = (v: number): number => plotB - (Math.min(Math.max(v, 0), top) / top) * (plotB - pad.t);
  const tickYs = spread(yTicks.map((v) => Y(v) + 4), LINE_H, pad.t + 4, plotB + 4);
  const ticks = yTicks.map((v, i) => html`<line class="grid" x1="${f(pad.l)}" x2="${f(plotR)}" y1="${f(Y(v))}" y2="${f(Y(v))}"></line><text class="tick" x="${f(pad.l - 4)}" y="${f(tickYs[i] as number)}" text-anchor="end">${fmt(v)}</text>`);
  const thYs = spread(ths.map((t) => Y(t.value) + 4), LINE_H, pad.t + 4, plotB);
  const thMarks = ths.map(
    (t, i) => html`<line class="th ${t.cls ?? 'warn'}" x1="${f(pad.l)}" x2="${f(plotR)}" y1="${f(Y(t.value))}" y2="${f(Y(t.value))}"><title>${t.label}</title></line><text class="th-label ${t.cls ?? 'warn'}" x="${f(plotR + 4)}" y="${f(thYs[i] as number)}">${t.label}</text>`,
  );
  const pts = points.map((p) => `${f(X(p.x))},${f(Y(p.y))}`).join(' ');
  const last = points[points.length - 1] as { x: number; y: number };
  const span = x1 - x0;
  const xLabels = s.xLabel ? [s.xLabel(x0), s.xLabel(x1)] : [timeLabel(x0, span), timeLabel(x1, span)];
  // The two time labels sit at the ends; on a narrow chart the second one goes when they would touch.
  const showEnd = textWidth(xLabels[0] as string) + textWidth(xLabels[1] as string) + 8 < plotR - pad.l + pad.r;
  return html`<svg class="chart series" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${s.title}"><title>${s.title}</title>${title}
<text class="value-now" x="${width - 2}" y="12" text-anchor="end">now ${fmt(last.y)}</text>
${ticks}
<line class="axis" x1="${f(pad.l)}" x2="${f(pad.l)}" y1="${pad.t}" y2="${plotB}"></line>
<line class="axis" x1="${f(pad.l)}" x2="${f(plotR)}" y1="${plotB}" y2="${plotB}"></line>
${thMarks}
<polyline class="line s0" points="${pts}"></polyline>
${points.length <= 60 ? points.map((p) => html`<circle class="dot s0" cx="${f(X(p.x))}" cy="${f(Y(p.y))}" r="2"><title>${s.name} ${num(p.y)} at ${new Date(p.x).toISOString().replace('T', ' ').slice(0, 19)} UTC</title></circle>`) : ''}
<text class="tick" x="${f(pad.l)}" y="${height - 6}">${xLabels[0]}</text>
${showEnd ? html`<text class="tick" x="${f(plotR)}" y="${height - 6}" text-anchor="end">${xLabels[1]}</text>` : ''}
</svg>`;
}

/** Small multiples: one {@link timeChart} per series, side by side, wrapping. */
export function multiples(charts: SafeHtml[], o: { label: string; id?: string }): SafeHtml {
  return html`<div class="multiples" role="group" aria-label="${o.label}"${o.id ? html` id="${o.id}"` : ''}>${charts}</div>`;
}

/** Values over time, one small chart per series with its own threshold and axis. */
export function lineChart(series: Series[], o: { title: string }): SafeHtml {
  if (series.every((s) => s.points.length === 0)) return html`<p class="muted">No signal values yet.</p>`;
  return multiples(
    series.map((s) => timeChart({ title: `${s.name} over time`, name: s.name, points: s.points, thresholds: typeof s.threshold === 'number' ? [{ value: s.threshold, label: `limit ${short(s.threshold)}`, cls: 'fail' }] : [] })),
    { label: o.title },
  );
}

/** A thin horizontal progress bar: parts of a whole, left to right. */
export function progressBar(parts: Array<{ value: number; cls: string; label: string }>, total: number, width = 220): SafeHtml {
  const h = 12;
  let x = 0;
  const rects = parts.map((p) => {
    const w = total > 0 ? (p.value / total) * width : 0;
    const r = html`<rect class="${p.cls}" x="${f(x)}" y="0" width="${f(w)}" height="${h}"><title>${p.label}: ${p.value}</title></rect>`;
    x += w;
    return r;
  });
  return html`<svg class="progress" viewBox="0 0 ${width} ${h}" width="${width}" height="${h}" role="img" aria-label="progress"><rect class="track" x="0" y="0" width="${width}" height="${h}"></rect>${rects}</svg>`;
}
