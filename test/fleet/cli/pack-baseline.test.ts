import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DriftMonitor } from '../../../agent/outlier/drift.js';
import { main as fleetMain } from '../../../fleet/edges/cli/main.js';
import { binOf } from '../../../shared/inference/drift-stats.js';
import { imageToTensor } from '../../../shared/inference/preprocess.js';
import type { ModelManifest } from '../../../shared/schemas/index.js';
import { heatmapModel } from '../../helpers/detect-models.js';
import { io } from '../../helpers/fleet-cli.js';
import { dynamicColourModel } from '../../helpers/models.js';
import { tempDir } from '../../helpers/packages.js';

const solid = (w: number, h: number, rgb: [number, number, number]): Promise<Buffer> => sharp({ create: { width: w, height: h, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();

/** White squares (size 16) on black, 64x64: what the heatmap fixture detects one box per square of. */
async function squares(at: Array<[number, number]>): Promise<Buffer> {
  const data = Buffer.alloc(64 * 64 * 3);
  for (const [x0, y0] of at) for (let y = y0; y < y0 + 16; y++) for (let x = x0; x < x0 + 16; x++) data.fill(255, (y * 64 + x) * 3, (y * 64 + x) * 3 + 3);
  return sharp(data, { raw: { width: 64, height: 64, channels: 3 } }).png().toBuffer();
}

async function pack(args: string[]): Promise<{ code: number; manifest: ModelManifest | null; stderr: string[] }> {
  const o = io();
  const code = await fleetMain(['pack', ...args], o);
  return { code, stderr: o.stderr, manifest: code === 0 ? (JSON.parse(readFileSync(join(args[args.indexOf('--out') + 1]!, 'manifest.json'), 'utf8')) as ModelManifest) : null };
}

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir('edgeloop-pack-baseline-');
});
afterAll(() => tmp.cleanup());

describe('pack --baseline: the drift baseline from reference images (issue 14)', () => {
  it('a classifier: class shares from the model, brightness and contrast as the device measures them; a file that is no image is skipped and named', async () => {
    const onnx = join(tmp.dir, 'colour.onnx');
    writeFileSync(onnx, dynamicColourModel().bytes);
    const labels = join(tmp.dir, 'colour.txt');
    writeFileSync(labels, 'red\nblue\n');
    const ref = join(tmp.dir, 'ref-colour');
    mkdirSync(ref);
    const images: Buffer[] = [];
    for (let i = 0; i < 6; i++) images.push(await solid(40 + i, 30, [200 + i * 5, 20, 10]));
    for (let i = 0; i < 4; i++) images.push(await solid(50, 20 + i, [10, 30, 180 + i * 10]));
    images.forEach((b, i) => writeFileSync(join(ref, `f${String(i).padStart(2, '0')}.png`), b));
    writeFileSync(join(ref, 'broken.jpg'), Buffer.from('not a jpeg at all'));
    writeFileSync(join(ref, 'notes.txt'), 'ignored: not an image extension');
    const r = await pack([onnx, '--labels', labels, '--out', join(tmp.dir, 'colour-pkg'), '--width', '32', '--height', '32', '--golden', `${join(ref, 'f00.png')}=red`, '--baseline', ref]);
    expect(r.code).toBe(0);
    expect(r.stderr).toEqual([expect.stringMatching(/^warning: --baseline: 1 of 11 files skipped \(not images the device could read\): broken\.jpg \(/), expect.stringMatching(/^warning: --baseline: only 10 images; drift figures/)]);
    const b = r.manifest!.drift_baseline!;
    expect(b.class_distribution).toEqual([0.6, 0.4]);
    // The same statistics the agent takes of each input (shared preprocessing), binned on the baseline's edges.
    const p = r.manifest!.preprocessing as Parameters<typeof imageToTensor>[1];
    const want = new Array<number>(b.brightness!.freqs.length).fill(0);
    for (const img of images) want[binOf(b.brightness!.edges, (await imageToTensor(img, p)).stats.brightness)]! += 1 / images.length;
    b.brightness!.freqs.forEach((f, i) => expect(f).toBeCloseTo(want[i]!, 10));
    expect(b.contrast!.freqs.reduce((a, c) => a + c, 0)).toBeCloseTo(1, 10);
    expect(b.box_count).toBeUndefined();

    // On the device: the same mix stays quiet, a site that only sees blue drifts.
    const same = new DriftMonitor(b, 2, 10);
    const blue = new DriftMonitor(b, 2, 10);
    for (let i = 0; i < 50; i++) {
      same.observe(i % 10 < 6 ? 0 : 1);
      blue.observe(1);
    }
    expect(same.report().class_psi).toBeLessThan(0.01);
    expect(blue.report().class_psi).toBeGreaterThan(0.25);
  });

  it("a detector: boxes per frame, box scores and sizes from the decoder's boxes", async () => {
    const onnx = join(tmp.dir, 'heat.onnx');
    writeFileSync(onnx, heatmapModel());
    const labels = join(tmp.dir, 'heat.txt');
    writeFileSync(labels, 'square\n');
    const ref = join(tmp.dir, 'ref-heat');
    mkdirSync(ref);
    // 3 frames with one square, 1 with two, 1 with none.
    const frames: Array<Array<[number, number]>> = [[[8, 8]], [[40, 8]], [[8, 40]], [[4, 4], [40, 40]], []];
    for (const [i, at] of frames.entries()) writeFileSync(join(ref, `s${i}.png`), await squares(at));
    const r = await pack([onnx, '--task', 'detection', '--decoder', 'heatmap', '--labels', labels, '--out', join(tmp.dir, 'heat-pkg'), '--golden', join(ref, 's0.png'), '--baseline', ref]);
    expect(r.code).toBe(0);
    const b = r.manifest!.drift_baseline!;
    const share = (h: { edges: number[]; freqs: number[] }, x: number): number => h.freqs[binOf(h.edges, x)]!;
    expect([share(b.box_count!, 0), share(b.box_count!, 1), share(b.box_count!, 2)]).toEqual([0.2, 0.6, 0.2]);
    // Five boxes, each 16x16 on 64x64: sqrt(256 / 4096) = 0.25; white maps to a heat of 1.
    expect(share(b.box_size!, 0.25)).toBe(1);
    expect(share(b.box_score!, 1)).toBe(1);
    // The frame with nothing found has no class; four frames have a best box, all of class 0.
    expect(b.class_distribution).toEqual([1]);
  });

  it('refuses reference files none of which is an image (FLEET_PACK_BASELINE_EMPTY), and a path that is not there', async () => {
    const onnx = join(tmp.dir, 'colour.onnx');
    const labels = join(tmp.dir, 'colour.txt');
    const bad = join(tmp.dir, 'bad.png');
    writeFileSync(bad, 'nope');
    const none = await pack([onnx, '--labels', labels, '--out', join(tmp.dir, 'bad-pkg'), '--width', '32', '--height', '32', '--baseline', bad]);
    expect(none.code).not.toBe(0);
    expect(none.stderr.join('\n')).toMatch(/FLEET_PACK_BASELINE_EMPTY: --baseline: none of the 1 files is an image the model can read/);
    const missing = await pack([onnx, '--labels', labels, '--out', join(tmp.dir, 'bad-pkg'), '--width', '32', '--height', '32', '--baseline', join(tmp.dir, 'nowhere')]);
    expect(missing.stderr.join('\n')).toMatch(/--baseline .*nowhere: no such file or directory/);
  });
});
