import { mkdir, readFile } from 'node:fs/promises';
import { basename, extname, join } from 'node:path';
import sharp from 'sharp';
import type { Detection } from '../../shared/schemas/index.js';

const COLOURS = ['#ff3b30', '#34c759', '#0a84ff', '#ffcc00', '#af52de', '#ff9500', '#5ac8fa', '#ff2d55'];

const escapeXml = (s: string): string => s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** An SVG of the boxes, the image's size: one coloured rectangle and a `label score` tag per box (colour by label). */
function boxesSvg(width: number, height: number, detections: readonly Detection[]): string {
  const labels = [...new Set(detections.map((d) => d.label))].sort();
  const stroke = Math.max(2, Math.round(Math.min(width, height) / 200));
  const font = Math.max(10, Math.round(Math.min(width, height) / 30));
  const parts = detections.map((d) => {
    const [x1, y1, x2, y2] = d.box;
    const colour = COLOURS[labels.indexOf(d.label) % COLOURS.length]!;
    const ty = y1 > font + 2 ? y1 - 3 : y1 + font;
    return `<rect x="${x1}" y="${y1}" width="${Math.max(0, x2 - x1)}" height="${Math.max(0, y2 - y1)}" fill="none" stroke="${colour}" stroke-width="${stroke}"/><text x="${x1 + 2}" y="${ty}" font-family="sans-serif" font-size="${font}" fill="${colour}" stroke="#000" stroke-width="0.5">${escapeXml(d.label)} ${d.score.toFixed(2)}</text>`;
  });
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">${parts.join('')}</svg>`;
}

/**
 * The image with its boxes drawn (sharp composite of an SVG overlay), written as PNG to
 * `DIR/<name>.png` for a person to look at; returns the path.
 */
export async function drawDetections(file: string, detections: readonly Detection[], dir: string): Promise<string> {
  const bytes = await readFile(file);
  const meta = await sharp(bytes).metadata();
  const width = meta.width ?? 0;
  const height = meta.height ?? 0;
  await mkdir(dir, { recursive: true });
  const out = join(dir, `${basename(file, extname(file))}.png`);
  await sharp(bytes)
    .composite([{ input: Buffer.from(boxesSvg(width, height, detections)), top: 0, left: 0 }])
    .png()
    .toFile(out);
  return out;
}
