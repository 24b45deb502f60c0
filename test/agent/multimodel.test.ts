import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { parseAgentConfig } from '../../agent/config.js';
import { directorySource } from '../../agent/model/store.js';
import { packModel } from '../../fleet/adapters/fs/pack.js';
import { deviceStatus, inferResult, type InferResult } from '../../shared/schemas/index.js';
import { startTestAgent } from '../helpers/agent.js';
import { yoloV8Model } from '../helpers/detect-models.js';
import { CLASS_LABELS, fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';

/** A 128x64 frame with one red 16x16 square at (32, 16): the detector finds one `red` box there. */
async function redSquare(): Promise<Buffer> {
  const w = 128;
  const h = 64;
  const data = Buffer.alloc(w * h * 3);
  for (let y = 16; y < 32; y++) for (let x = 32; x < 48; x++) data.set([255, 0, 0], (y * w + x) * 3);
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
}

let tmp: ReturnType<typeof tempDir>;
let detDir: string;
let clsV1: string;
let clsV2: string;
let agent: Agent;
let url: string;

const classifier = (dir: string, version: string, seed: number): ReturnType<typeof imagePackage> => imagePackage(dir, { version, seed, extra: { name: 'ppe-classifier' } });

beforeAll(async () => {
  tmp = tempDir();
  const onnx = join(tmp.dir, 'v8.onnx');
  writeFileSync(onnx, yoloV8Model());
  detDir = join(tmp.dir, 'detector');
  await packModel({ onnxPath: onnx, outDir: detDir, name: 'detector', version: '1.0.0', labels: ['red', 'blue'], task: 'detection', detection: { decoder: 'yolo', padValue: 0 }, signKeyPem: fleetKeys().privateKeyPem });
  clsV1 = join(tmp.dir, 'cls-1');
  clsV2 = join(tmp.dir, 'cls-2');
  await classifier(clsV1, '1.0.0', 1);
  await classifier(clsV2, '2.0.0', 2);
  ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: [detDir, clsV1] }, outlier: { random_sample_rate: 0 }, outlier_by_model: { 'ppe-classifier': { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 1 } } }));
}, 120_000);
afterAll(async () => {
  await agent?.stop();
  tmp.cleanup();
});

const post = (img: Buffer, model?: string): Promise<Response> => fetch(`${url}/v1/infer${model === undefined ? '' : `?model=${encodeURIComponent(model)}`}`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: img });
const infer = async (img: Buffer, model?: string): Promise<InferResult> => {
  const res = await post(img, model);
  expect(res.status).toBe(200);
  return inferResult.parse(await res.json());
};

describe('several named models on one agent', () => {
  it('answers ?model=NAME from that model, the first model without it, and 404 naming the models for an unknown one', async () => {
    const frame = await redSquare();
    const det = await infer(frame, 'detector');
    expect(det).toMatchObject({ model_name: 'detector', model_version: '1.0.0', counts: { red: 1 } });
    expect(det.detections).toEqual([{ label: 'red', score: expect.any(Number), box: [32, 16, 48, 32] }]);

    const cls = await infer(await patternImage(3), 'ppe-classifier');
    expect(cls).toMatchObject({ model_name: 'ppe-classifier', model_version: '1.0.0' });
    expect(CLASS_LABELS).toContain(cls.label);
    expect(cls.detections).toBeUndefined();
    // Its own outlier policy (outlier_by_model): every answer is kept as a random sample, the detector's are not.
    expect(cls.outlier).toMatchObject({ captured: true, reasons: ['random'] });
    expect(det.outlier.reasons).not.toContain('random');

    // No ?model=: the first model (the first of models.initial).
    expect(await infer(frame)).toMatchObject({ model_name: 'detector' });

    const unknown = await post(frame, 'helmet');
    expect(unknown.status).toBe(404);
    const body = (await unknown.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('AGENT_MODEL_NAME_UNKNOWN');
    expect(body.error.message).toContain('detector, ppe-classifier');

    // A JSON body may name the model too; a query and a body naming two models is refused.
    const json = (body: Record<string, unknown>, q = ''): Promise<Response> => fetch(`${url}/v1/infer${q}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const b64 = (await patternImage(3)).toString('base64');
    const viaBody = await json({ image_b64: b64, model: 'ppe-classifier' });
    expect(viaBody.status).toBe(200);
    expect(inferResult.parse(await viaBody.json())).toMatchObject({ model_name: 'ppe-classifier', label: cls.label, score: cls.score });
    const clash = await json({ image_b64: b64, model: 'ppe-classifier' }, '?model=detector');
    expect(clash.status).toBe(400);
    expect(((await clash.json()) as { error: { code: string } }).error.code).toBe('INPUT_INVALID');

    const health = (await (await fetch(`${url}/healthz`)).json()) as { models: Array<{ name: string; version: string }> };
    expect(health.models.map((m) => `${m.name}@${m.version}`)).toEqual(['detector@1.0.0', 'ppe-classifier@1.0.0']);
  });

  it('reports every slot in its status, and installs and rolls back one slot while the other keeps its version', async () => {
    const slots = (): Array<{ name: string; active: string | null; previous: string | null }> =>
      deviceStatus.parse(agent.status()).slots!.map((s) => ({ name: s.name, active: s.active ? `${s.active.name}@${s.active.version}` : null, previous: s.previous ? s.previous.version : null }));
    expect(slots()).toEqual([
      { name: 'detector', active: 'detector@1.0.0', previous: null },
      { name: 'ppe-classifier', active: 'ppe-classifier@1.0.0', previous: null },
    ]);

    await agent.install(directorySource(clsV2));
    expect(slots()).toEqual([
      { name: 'detector', active: 'detector@1.0.0', previous: null },
      { name: 'ppe-classifier', active: 'ppe-classifier@2.0.0', previous: '1.0.0' },
    ]);
    expect(await infer(await patternImage(3), 'ppe-classifier')).toMatchObject({ model_version: '2.0.0' });
    // The status' top-level models stay the first slot's, for fleets older than slots.
    expect(agent.status().models.active).toEqual({ name: 'detector', version: '1.0.0' });

    await agent.rollback('ppe-classifier');
    expect(slots()).toEqual([
      { name: 'detector', active: 'detector@1.0.0', previous: null },
      { name: 'ppe-classifier', active: 'ppe-classifier@1.0.0', previous: '2.0.0' },
    ]);
    expect(await infer(await redSquare(), 'detector')).toMatchObject({ model_version: '1.0.0', counts: { red: 1 } });
  });

  it('comes back with every slot after a restart, the first still the default', async () => {
    await agent.stop();
    ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), { models: { initial: [detDir, clsV1] } }));
    expect(agent.slots.serving().map((r) => `${r.name}@${r.version}`)).toEqual(['detector@1.0.0', 'ppe-classifier@1.0.0']);
    expect(await infer(await redSquare())).toMatchObject({ model_name: 'detector' });
  });

  it('refuses two initial packages of one model name, naming both', async () => {
    const other = join(tmp.dir, 'cls-2-copy');
    await classifier(other, '3.0.0', 3);
    await expect(startTestAgent(join(tmp.dir, 'dup'), { models: { initial: [clsV1, other] } })).rejects.toMatchObject({ code: 'AGENT_MODEL_NAME_DUPLICATE', message: expect.stringContaining(other) });
  });
});

describe('a detector -> classifier pipeline', () => {
  it('classifies the crop of each box of the chosen labels and attaches the answer to the box', { timeout: 60_000 }, async () => {
    const { agent: piped, url: pipedUrl } = await startTestAgent(join(tmp.dir, 'pipeline'), {
      models: { initial: [detDir, clsV1] },
      outlier: { random_sample_rate: 0 },
      pipelines: [{ detector: 'detector', classifier: 'ppe-classifier', labels: ['red'] }],
    });
    try {
      // A red square at (32, 16) and a blue one at (80, 32), 16 px each.
      const w = 128;
      const h = 64;
      const data = Buffer.alloc(w * h * 3);
      for (let y = 16; y < 32; y++) for (let x = 32; x < 48; x++) data.set([255, 0, 0], (y * w + x) * 3);
      for (let y = 32; y < 48; y++) for (let x = 80; x < 96; x++) data.set([0, 0, 255], (y * w + x) * 3);
      const frame = await sharp(data, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
      const res = await fetch(`${pipedUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: frame });
      expect(res.status).toBe(200);
      const r = inferResult.parse(await res.json());
      expect(r.model_name).toBe('detector');
      const red = r.detections!.find((d) => d.label === 'red')!;
      const blue = r.detections!.find((d) => d.label === 'blue')!;
      expect(red.box).toEqual([32, 16, 48, 32]);
      // The classifier's answer on the red box's crop, asked directly, is the one attached.
      const crop = await sharp(frame).extract({ left: 32, top: 16, width: 16, height: 16 }).png().toBuffer();
      const direct = inferResult.parse(await (await fetch(`${pipedUrl}/v1/infer?model=ppe-classifier`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: crop })).json());
      expect(direct.model_name).toBe('ppe-classifier');
      expect(red.classification).toEqual({ model: 'ppe-classifier', version: '1.0.0', label: direct.label, score: direct.score });
      // Blue boxes are not in the pipeline's labels.
      expect(blue.classification).toBeUndefined();
    } finally {
      await piped.stop();
    }
  });

  it('refuses a pipeline into its own model and two pipelines from one detector, naming them', () => {
    expect(() => parseAgentConfig({ pipelines: [{ detector: 'detector', classifier: 'detector' }, { detector: 'x', classifier: 'a' }, { detector: 'x', classifier: 'b' }] })).toThrow(
      expect.objectContaining({ code: 'AGENT_CONFIG_INVALID', message: expect.stringMatching(/pipelines\[0\]: detector and classifier are the same model \(detector\)[\s\S]*pipelines\[2\]: model x already has a pipeline/) }),
    );
  });
});
