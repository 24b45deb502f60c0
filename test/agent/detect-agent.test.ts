import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { main as agentMain } from '../../agent/cli/main.js';
import { CountHistory, boxStats, matchDetectionReasons } from '../../agent/outlier/detection.js';
import { DriftMonitor } from '../../agent/outlier/drift.js';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import { detectionOutlierPolicy, inferResult, sampleMeta, type InferResult } from '../../shared/schemas/index.js';
import type { Io } from '../../shared/cli.js';
import { startTestAgent } from '../helpers/agent.js';
import { yoloV8Model } from '../helpers/detect-models.js';
import { fleetKeys, tempDir } from '../helpers/packages.js';

type Sq = { x: number; y: number; size: number; rgb: [number, number, number] };
async function scene(w: number, h: number, squares: Sq[]): Promise<Buffer> {
  const data = Buffer.alloc(w * h * 3);
  for (const s of squares) for (let y = s.y; y < s.y + s.size; y++) for (let x = s.x; x < s.x + s.size; x++) data.set(s.rgb, (y * w + x) * 3);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}
const redAt = (x: number, y: number, v = 255): Sq => ({ x, y, size: 16, rgb: [v, 0, 0] });

let tmp: ReturnType<typeof tempDir>;
let agent: Agent;
let url: string;
let pkgDir: string;
beforeAll(async () => {
  tmp = tempDir();
  const onnx = join(tmp.dir, 'v8.onnx');
  writeFileSync(onnx, yoloV8Model());
  pkgDir = join(tmp.dir, 'pkg');
  await packModel({
    onnxPath: onnx,
    outDir: pkgDir,
    labels: ['red', 'blue'],
    task: 'detection',
    detection: { decoder: 'yolo', padValue: 0 },
    outlier: { random_sample_rate: 0, count_change: 2, uncertain_band: [0.25, 0.5], history: 20 },
    driftBaseline: { box_count: { edges: [0, 0.5, 1.5, 100], freqs: [0.1, 0.8, 0.1] }, window: 100 },
    signKeyPem: fleetKeys().privateKeyPem,
  });
  ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: pkgDir } }));
});
afterAll(async () => {
  await agent.stop();
  tmp.cleanup();
});

const post = async (img: Buffer): Promise<InferResult> => {
  const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: img });
  expect(res.status).toBe(200);
  return inferResult.parse(await res.json());
};

describe('a detector on the agent (HTTP API, capture, drift)', () => {
  it('answers with boxes in original pixels and counts, and captures the frames a detector should send back', async () => {
    // A camera that sees one red box per frame: no reason to keep any.
    for (let i = 0; i < 6; i++) {
      const r = await post(await scene(128, 64, [redAt(32, 16)]));
      expect(r.detections).toEqual([{ label: 'red', score: expect.any(Number), box: [32, 16, 48, 32] }]);
      expect(r.counts).toEqual({ red: 1 });
      expect(r).toMatchObject({ label: 'red', outlier: { captured: false, reasons: [] } });
    }
    // Nothing where the camera always finds something.
    const empty = await post(await scene(128, 64, []));
    expect(empty).toMatchObject({ label: '', score: 0, detections: [], counts: {}, outlier: { captured: true, reasons: ['nothing_found'] } });
    // Four boxes where there is usually one.
    const crowd = await post(await scene(128, 64, [redAt(0, 0), redAt(32, 16), redAt(64, 32), redAt(96, 48)]));
    expect(crowd.counts).toEqual({ red: 4 });
    expect(crowd.outlier).toMatchObject({ captured: true, reasons: ['count_change'] });
    // A dim square: a box scored inside the uncertainty band.
    const dim = await post(await scene(128, 64, [redAt(32, 16, 100)]));
    expect(dim.detections![0]!.score).toBeGreaterThanOrEqual(0.25);
    expect(dim.detections![0]!.score).toBeLessThan(0.5);
    expect(dim.outlier).toMatchObject({ captured: true, reasons: ['uncertain_box'] });

    // The captured sample keeps its predicted boxes.
    const items = agent.queue.lease(1000, 10);
    const metas = items.map((i) => sampleMeta.parse(i.meta));
    agent.queue.release(items.map((i) => i.id));
    const crowdMeta = metas.find((m) => m.sample_id === crowd.outlier.sample_id)!;
    expect(crowdMeta.reasons).toEqual(['count_change']);
    expect(crowdMeta.detections).toEqual(crowd.detections);
    expect(crowdMeta.detections).toHaveLength(4);

    // Box count drift sits beside the input statistics.
    expect(agent.service.driftReport()).toMatchObject({ box_count_psi: null, class_psi: null });
  });
});

describe('detection outliers and drift (pure)', () => {
  const policy = detectionOutlierPolicy.parse({ random_sample_rate: 0, count_change: 2 });
  it('judges a frame against the camera habit; no habit, no count reasons', () => {
    const h = new CountHistory(10);
    const none = boxStats([], { width: 100, height: 100 });
    expect(matchDetectionReasons(none, policy, h.habit, () => 0.5)).toEqual([]);
    for (let i = 0; i < 5; i++) h.observe(1);
    expect(h.habit).toEqual({ frames: 5, meanCount: 1, foundShare: 1 });
    expect(matchDetectionReasons(none, policy, h.habit, () => 0.5)).toEqual(['nothing_found']);
    const three = boxStats([0.9, 0.3, 0.95].map((score) => ({ score, box: [0, 0, 10, 40] })), { width: 100, height: 100 });
    expect(three.sizes).toEqual([0.2, 0.2, 0.2]);
    expect(matchDetectionReasons(three, policy, h.habit, () => 0.5)).toEqual(['uncertain_box', 'count_change']);
    // The random slice only of frames with no other reason.
    const calm = boxStats([{ score: 0.9, box: [0, 0, 1, 1] }], { width: 10, height: 10 });
    expect(matchDetectionReasons(calm, { ...policy, random_sample_rate: 0.5 }, h.habit, () => 0.1)).toEqual(['random']);
    // The ring forgets: ten empty frames later, an empty frame is the habit.
    for (let i = 0; i < 10; i++) h.observe(0);
    expect(matchDetectionReasons(none, policy, h.habit, () => 0.5)).toEqual([]);
  });

  it('box count, score and size PSI against the baseline', () => {
    const edges = [0, 0.5, 1];
    const d = new DriftMonitor({ box_score: { edges, freqs: [0.5, 0.5] }, box_size: { edges, freqs: [0.5, 0.5] }, box_count: { edges: [0, 1, 2, 10], freqs: [0.2, 0.6, 0.2] }, window: 100 }, 2, 10);
    expect(d.report()).toMatchObject({ box_count_psi: null, box_score_psi: null, box_size_psi: null });
    for (let i = 0; i < 20; i++) d.observeBoxes({ count: 1, scores: [0.9], sizes: [0.1] });
    const r = d.report();
    // Every box scored high and was small: the score and size distributions moved, as far as one another.
    expect(r.box_score_psi).toBeGreaterThan(1);
    expect(r.box_size_psi).toBeCloseTo(r.box_score_psi!, 10);
    // A classifier's report has no box fields.
    expect(Object.keys(new DriftMonitor({ window: 10 }, 2).report())).toEqual(['class_psi', 'brightness_psi', 'contrast_psi', 'window']);
  });
});

describe('edgeloop-agent infer --draw', () => {
  it('writes the image with its boxes drawn, at the original size', async () => {
    const img = join(tmp.dir, 'cam1.png');
    writeFileSync(img, await scene(128, 64, [redAt(32, 16)]));
    const out = join(tmp.dir, 'drawn');
    const lines: string[] = [];
    const o: Io = { out: (l) => lines.push(l), err: (l) => lines.push(l) };
    expect(await agentMain(['infer', '--model', pkgDir, '--allow-unsigned', '--draw', out, img], o)).toBe(0);
    expect(lines[0]).toMatch(/cam1\.png: 1 box \(red 1\) red 0\.\d+ \[32,16,48,32\] .* -> .*drawn\/cam1\.png/);
    const drawn = readFileSync(join(out, 'cam1.png'));
    const { data, info } = await sharp(drawn).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    expect([info.width, info.height]).toEqual([128, 64]);
    // The input has no green anywhere; the outline (the first colour, #ff3b30) does.
    const green = (x: number, y: number): number => data[(y * 128 + x) * info.channels + 1]!;
    let outline = 0;
    for (let y = 18; y < 30; y++) outline = Math.max(outline, green(31, y), green(32, y));
    expect(outline).toBeGreaterThan(45);
    expect(green(80, 40)).toBe(0);
  });
});
