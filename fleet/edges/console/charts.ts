/**
 * Inline SVG charts, drawn on the server: no chart library, no script. Colours come from the
 * stylesheet through classes (`ok`, `fail`, `na`, `s0`..`s5`), so the charts follow the page.
 */
import { html, num } from './html.js';
import type { SafeHtml } from './html.js';

const f = (n: number): string => (Math.round(n * 10) / 10).toString();

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
 * optional reference lines across all rows (PSI 0.1 / 0.25).
 */
export function barChart(bars: Bar[], o: { title: string; refs?: Array<{ value: number; label: string }>; max?: number }): SafeHtml {
  const labelW = 180;
  const valueW = 70;
  const plotW = 300;
  const rowH = 24;
  const top = o.refs?.length ? 16 : 4;
  const height = top + bars.length * rowH + 4;
  const width = labelW + plotW + valueW;
  const values = bars.flatMap((b) => [b.value, b.threshold].filter((v): v is number => typeof v === 'number' && Number.isFinite(v)));
  for (const r of o.refs ?? []) values.push(r.value);
  const lo = Math.min(0, ...values);
  const hi = o.max ?? Math.max(lo + 1e-9, ...values.map((v) => v * 1.15));
  const x = (v: number): number => labelW + ((v - lo) / (hi - lo)) * plotW;
  const zero = x(0);
  const rows = bars.map((b, i) => {
    const y = top + i * rowH;
    const v = b.value;
    const cls = b.ok === true ? 'ok' : b.ok === false ? 'fail' : 'na';
    const bar = v === null || !Number.isFinite(v) ? '' : html`<rect class="bar ${cls}" x="${f(Math.min(zero, x(v)))}" y="${y + 5}" width="${f(Math.max(1, Math.abs(x(v) - zero)))}" height="${rowH - 10}"><title>${b.label}: ${num(v)}</title></rect>`;
    const tick = typeof b.threshold === 'number' ? html`<line class="threshold" x1="${f(x(b.threshold))}" x2="${f(x(b.threshold))}" y1="${y + 1}" y2="${y + rowH - 1}"><title>threshold ${num(b.threshold)}</title></line>` : '';
    return html`<g class="row"><text class="label" x="0" y="${y + rowH / 2 + 4}">${b.label}</text>${bar}${tick}<text class="value" x="${width - valueW + 6}" y="${y + rowH / 2 + 4}">${num(v)}${typeof b.threshold === 'number' ? html` / ${num(b.threshold)}` : ''}</text></g>`;
  });
  const refs = (o.refs ?? []).map((r) => html`<line class="ref" x1="${f(x(r.value))}" x2="${f(x(r.value))}" y1="${top - 2}" y2="${height}"></line><text class="ref-label" x="${f(x(r.value))}" y="${top - 5}">${r.label}</text>`);
  return html`<svg class="chart bars" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${o.title}"><title>${o.title}</title>
<line class="axis" x1="${f(zero)}" x2="${f(zero)}" y1="${top}" y2="${height - 2}"></line>${refs}${rows}</svg>`;
}

export interface Series {
  name: string;
  points: Array<{ x: number; y: number }>;
  threshold?: number | null;
}

const clock = (ms: number): string => new Date(ms).toISOString().slice(11, 19);

/** Values over time, one line per series, each with its threshold dashed in the same colour. */
export function lineChart(series: Series[], o: { title: string; width?: number; height?: number }): SafeHtml {
  const width = o.width ?? 560;
  const height = o.height ?? 200;
  const pad = { l: 48, r: 12, t: 10, b: 24 };
  const xs = series.flatMap((s) => s.points.map((p) => p.x));
  const ys = series.flatMap((s) => [...s.points.map((p) => p.y), ...(typeof s.threshold === 'number' ? [s.threshold] : [])]);
  if (xs.length === 0) return html`<p class="muted">No signal values yet.</p>`;
  const x0 = Math.min(...xs);
  const x1 = Math.max(...xs, x0 + 1);
  const y0 = Math.min(0, ...ys);
  const y1 = Math.max(y0 + 1e-9, ...ys.map((y) => (y > 0 ? y * 1.1 : y)));
  const X = (v: number): number => pad.l + ((v - x0) / (x1 - x0)) * (width - pad.l - pad.r);
  const Y = (v: number): number => height - pad.b - ((v - y0) / (y1 - y0)) * (height - pad.t - pad.b);
  const lines = series.map((s, i) => {
    const cls = `s${i % 6}`;
    const pts = s.points.map((p) => `${f(X(p.x))},${f(Y(p.y))}`).join(' ');
    const dots = s.points.map((p) => html`<circle class="dot ${cls}" cx="${f(X(p.x))}" cy="${f(Y(p.y))}" r="3"><title>${s.name} ${num(p.y)} at ${clock(p.x)}</title></circle>`);
    const th = typeof s.threshold === 'number' ? html`<line class="th ${cls}" x1="${pad.l}" x2="${width - pad.r}" y1="${f(Y(s.threshold))}" y2="${f(Y(s.threshold))}"></line>` : '';
    return html`<g>${th}<polyline class="line ${cls}" points="${pts}"></polyline>${dots}</g>`;
  });
  const legend = series.map((s, i) => html`<span class="key s${i % 6}">${s.name}${typeof s.threshold === 'number' ? html` (threshold ${num(s.threshold)})` : ''}</span>`);
  return html`<figure class="chart-figure"><svg class="chart lines" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" role="img" aria-label="${o.title}"><title>${o.title}</title>
<line class="axis" x1="${pad.l}" x2="${pad.l}" y1="${pad.t}" y2="${height - pad.b}"></line>
<line class="axis" x1="${pad.l}" x2="${width - pad.r}" y1="${f(Y(0))}" y2="${f(Y(0))}"></line>
<text class="tick" x="${pad.l - 6}" y="${f(Y(y1)) + 4}" text-anchor="end">${num(y1, 2)}</text>
<text class="tick" x="${pad.l - 6}" y="${f(Y(y0)) + 4}" text-anchor="end">${num(y0, 2)}</text>
<text class="tick" x="${pad.l}" y="${height - 6}">${clock(x0)}</text>
<text class="tick" x="${width - pad.r}" y="${height - 6}" text-anchor="end">${clock(x1)}</text>
${lines}</svg><figcaption>${legend}</figcaption></figure>`;
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

