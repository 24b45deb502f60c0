/**
 * The command trainer with a real torchvision training script (issue 14): the fleet exports a
 * dataset version with box labels in COCO layout, scripts/torchvision/train_and_pack.sh runs
 * scripts/torchvision/train_detector.py on DATASET_DIR unchanged (images + COCO JSON only),
 * which trains torchvision's SSDlite320 a couple of iterations on 2 cores (Debian's
 * python3-torch, random start), exports ONNX and packs it with `edgeloop pack`; the fleet
 * validates and registers the package, and an agent loads it and runs it on a frame.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTrainer } from '../../fleet/adapters/trainers/command-trainer.js';
import { loopModelConfig } from '../../fleet/app/training/config.js';
import type { RunStart } from '../../fleet/app/training/run-record.js';
import { datasetStep } from '../../fleet/app/training/steps/dataset.js';
import { prepareStep } from '../../fleet/app/training/steps/prepare.js';
import { pushStep } from '../../fleet/app/training/steps/push.js';
import { trainStep } from '../../fleet/app/training/steps/train.js';
import { tsxNodeArgs } from '../../shared/ts-entry.js';
import { startTestAgent } from '../helpers/agent.js';
import { DETECT_CLASSES, DETECTOR, detectSampleMessage, registerDetector, runStepDeps, seedDetectSamples } from '../helpers/detect-samples.js';
import { tempDir } from '../helpers/packages.js';
import { PYTHON, torchvisionSkipReason } from '../helpers/torchvision.js';
import { openTestFleet, type TestFleet } from '../fleet/http/context.js';

const skip = torchvisionSkipReason();
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const WRAPPER = join(ROOT, 'scripts/torchvision/train_and_pack.sh');

type Box = { label: string; box: [number, number, number, number] };
/** A handful of labeled frames of several sizes: red and blue squares where the boxes are. */
const LABELED: Record<string, { width: number; height: number; boxes: Box[] }> = {
  't-01': { width: 320, height: 240, boxes: [{ label: 'red', box: [20, 30, 120, 140] }, { label: 'blue', box: [180, 40, 300, 200] }] },
  't-02': { width: 400, height: 300, boxes: [{ label: 'blue', box: [50, 50, 200, 250] }] },
  't-03': { width: 256, height: 256, boxes: [{ label: 'red', box: [100, 100, 220, 220] }] },
  't-04': { width: 300, height: 200, boxes: [{ label: 'red', box: [10, 10, 90, 90] }, { label: 'blue', box: [150, 60, 280, 190] }] },
  't-05': { width: 320, height: 320, boxes: [{ label: 'blue', box: [30, 160, 150, 300] }] },
  't-06': { width: 240, height: 180, boxes: [{ label: 'red', box: [120, 20, 230, 170] }] },
};

let f: TestFleet;
let tmp: ReturnType<typeof tempDir>;

beforeAll(async () => {
  if (skip) return;
  tmp = tempDir('edgeloop-torchvision-train-');
  f = await openTestFleet();
  await registerDetector(f.ctx, tmp.dir);
  await f.ctx.devices.register('cam-1', { tags: { site: 'pit-1' } });
  await seedDetectSamples(
    f.ctx,
    Object.entries(LABELED).map(([id, s]) => ({ id, device: 'cam-1', width: s.width, height: s.height, detections: s.boxes.map((b) => ({ ...b, score: 0.4 })) })),
  );
  for (const [id, s] of Object.entries(LABELED)) await f.ctx.labels.assignBoxes(id, s.boxes, { actor: 'lena' });
}, 60_000);
afterAll(async () => {
  await f?.close();
  tmp?.cleanup();
});

describe.skipIf(skip)('command trainer + a torchvision training script (issue 14)', () => {
  it('COCO export -> train_detector.py trains SSDlite (finite loss) -> edgeloop pack -> registered -> an agent loads it and runs it', { timeout: 120_000 }, async () => {
    const t0 = performance.now();
    const config = loopModelConfig.parse({ name: DETECTOR.name, labels: DETECT_CLASSES, trainer: 'command', params: { iterations: 2, batch: 2 }, holdout: { kind: 'hash', fraction: 0.2, salt: 'tv' } });
    const trainer = commandTrainer({
      command: '/bin/sh',
      args: [WRAPPER],
      datasetFormat: 'coco',
      env: { PATH: process.env.PATH, PYTHON, EDGELOOP: [process.execPath, ...tsxNodeArgs(import.meta.url), join(ROOT, 'fleet/main.ts')].join(' ') },
      workDir: tmp.dir,
      timeoutMs: 110_000,
    });
    const lines: Array<{ step: string; message: string; metrics?: Record<string, number> }> = [];
    const run = f.ctx.trainingRuns.start({ id: 'run_tv', model: config.name, trainer: 'command', params: config.params, seed: 7, trigger: { kind: 'manual', reason: 'test' }, actor: 'otto', parent: null });
    const start: RunStart = { run, config, trainer, parent: null, workDir: join(f.dir, 'work', 'run_tv'), signal: new AbortController().signal };
    const deps = runStepDeps(f.ctx, (step, message, extra) => lines.push({ step, message, ...(extra?.metrics ? { metrics: extra.metrics } : {}) }));
    const pushed = await pushStep(deps, await trainStep(deps, await datasetStep(deps, await prepareStep(deps, start))));
    const trainMs = performance.now() - t0;

    // The script read the COCO export and trained: two iterations, each with a finite loss.
    const messages = lines.map((l) => l.message);
    expect(messages).toContainEqual(expect.stringMatching(/^exported \d+ train and \d+ val images with \d+ boxes \(coco layout\)/));
    expect(messages).toContainEqual(expect.stringMatching(/^read [1-6] images with boxes, 2 classes from /));
    const losses = lines.filter((l) => /^iteration \d\/2: loss/.test(l.message)).map((l) => l.metrics?.loss);
    expect(losses).toHaveLength(2);
    for (const loss of losses) expect(Number.isFinite(loss) && loss! > 0).toBe(true);

    // Registered as the next version, torchvision's layout recorded.
    expect(pushed.candidate).toEqual({ name: DETECTOR.name, version: '1.1.0' });
    const v = f.ctx.registry.get(DETECTOR.name, '1.1.0');
    expect(v).toBeDefined();
    const manifest = JSON.parse((await f.ctx.registry.manifestBytes(DETECTOR.name, '1.1.0')).toString()) as { inputs: unknown[]; postprocessing: unknown; lineage: unknown; labels: string[] };
    expect(manifest.inputs[0]).toMatchObject({ shape: [3, expect.any(String), expect.any(String)], dims: [3, 320, 320], batch_dim: false });
    expect(manifest.postprocessing).toMatchObject({ decoder: { name: 'boxes-scores', boxes: 'boxes', scores: 'scores', classes: 'labels', class_offset: -1 } });
    expect(manifest.labels).toEqual(DETECT_CLASSES);
    expect(manifest.lineage).toMatchObject({ training_run: 'run_tv', trainer: 'command' });

    // An agent loads the registered package as the registry serves it (its signature checked) and runs it on a frame.
    const pkgDir = join(tmp.dir, 'registered');
    mkdirSync(pkgDir, { recursive: true });
    writeFileSync(join(pkgDir, 'manifest.json'), await f.ctx.registry.manifestBytes(DETECTOR.name, '1.1.0'));
    for (const file of v.files) writeFileSync(join(pkgDir, file.path), await f.ctx.artifacts.get(file.sha256));
    const { agent, url } = await startTestAgent(join(tmp.dir, 'agent'), { models: { initial: [pkgDir] } });
    try {
      const frame = await detectSampleMessage({ id: 'probe', device: 'cam-1', width: 500, height: 280, detections: [{ label: 'red', score: 1, box: [40, 40, 200, 220] }] });
      const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: Buffer.from(frame.blob_b64, 'base64') });
      expect(res.status).toBe(200);
      const r = (await res.json()) as { model_version: string; detections: Array<{ label: string; box: number[] }> };
      expect(r.model_version).toBe('1.1.0');
      expect(Array.isArray(r.detections)).toBe(true);
      for (const d of r.detections) {
        expect(DETECT_CLASSES).toContain(d.label);
        expect(d.box[2]! <= 500 && d.box[3]! <= 280).toBe(true);
      }
    } finally {
      await agent.stop();
    }
    console.log(`torchvision command-trainer run: ${(trainMs / 1000).toFixed(1)} s (COCO export, 2 iterations with losses ${losses.map((l) => l!.toFixed(3)).join(", ")}, ONNX export, pack, validate, register)`);
  });
});
