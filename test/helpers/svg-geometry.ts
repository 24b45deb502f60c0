import type { Page } from 'playwright-core';

/** One rendered text of a chart: its content and box (getBBox, in the svg's user units). */
export interface TextBox {
  text: string;
  x: number;
  y: number;
  w: number;
  h: number;
}

export interface ChartGeometry {
  label: string;
  /** The svg's viewBox: the chart's border. */
  box: { w: number; h: number };
  texts: TextBox[];
}

/**
 * Every `svg.chart` on the page with the rendered box of each of its texts, as Chromium laid
 * them out (getBBox: the real font, not the server's estimate). A string, so the test's
 * TypeScript needs no DOM types.
 */
const MEASURE = `[...document.querySelectorAll('svg.chart')].map((svg) => {
  const vb = svg.viewBox.baseVal;
  const texts = [...svg.querySelectorAll('text')].filter((t) => t.textContent.trim() !== '').map((t) => {
    const b = t.getBBox();
    return { text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height };
  });
  return { label: svg.getAttribute('aria-label') || '', box: { w: vb.width, h: vb.height }, texts };
})`;

export const chartGeometry = async (page: Page): Promise<ChartGeometry[]> => (await page.evaluate(MEASURE)) as ChartGeometry[];

/** Texts of a chart that stick out of its border (0.5 unit of slack for anti-aliasing). */
export function outside(c: ChartGeometry): string[] {
  return c.texts.filter((t) => t.x < -0.5 || t.y < -0.5 || t.x + t.w > c.box.w + 0.5 || t.y + t.h > c.box.h + 0.5).map((t) => `${c.label}: "${t.text}" at ${t.x.toFixed(1)},${t.y.toFixed(1)} +${t.w.toFixed(1)}x${t.h.toFixed(1)} outside ${c.box.w}x${c.box.h}`);
}

/** Pairs of texts of a chart whose boxes overlap (by more than half a unit each way). */
export function overlaps(c: ChartGeometry): string[] {
  const out: string[] = [];
  for (let i = 0; i < c.texts.length; i++) {
    for (let j = i + 1; j < c.texts.length; j++) {
      const a = c.texts[i] as TextBox;
      const b = c.texts[j] as TextBox;
      const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
      const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
      if (w > 0.5 && h > 0.5) out.push(`${c.label}: "${a.text}" overlaps "${b.text}"`);
    }
  }
  return out;
}
