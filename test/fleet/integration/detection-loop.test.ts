/**
 * Detection through the fleet's learning loop (issue 14): a base detector (trained small with
 * the local detector trainer) registered and running on a real agent at pit-3; the site's camera
 * drifts (light digits on dark paper, closer); the agent captures the frames with its predicted
 * boxes and sends them over MQTT to the fleet's real ingest; a labeler confirms or corrects the
 * boxes over HTTP; a learning-loop run cuts a dataset version with the boxes, fine-tunes with the
 * local detector trainer, scores mAP through the agent's decoder on the clean and field holdouts,
 * the gate compares mAP with the production detector, and the accepted candidate is rolled out to
 * the agent, which reports running it.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { loadOrCreateSigningKey } from '../../../fleet/adapters/fs/keys.js';
import { localTrainer } from '../../../fleet/adapters/trainers/local-trainer.js';
import type { BaseRef } from '../../../fleet/core/labels/dataset-schema.js';
import { SCENE_LABEL, sceneBaseSource } from '../../../fleet/demo/base-set.js';
import { startFleetService, type FleetService } from '../../../fleet/boot/service.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import * as S from '../../../fleet/edges/http/schemas.js';
import { makeScenes, type Scene } from '../../../fleet/ml/detector/scenes.js';
import { FEED } from '../../../fleet/ml/digits.js';
import { loadDigits } from '../../../fleet/ml/mnist-data.js';
import { outlierReason, type ModelRef } from '../../../shared/schemas/index.js';
import { captureLogger } from '../../helpers/agent.js';
import { tempDir } from '../../helpers/packages.js';
import { CALM_GATES, adminTokenOf, downloadPackage, explain, registerDevices, rolloutState, sameRef, startAgent, stopAgent, until, type FleetAgent } from './harness.js';

const MODEL = 'digit-detector';
const BASE: ModelRef = { name: MODEL, version: '1.0.0' };
const TRAIN_REF: BaseRef = { source: 'mnist-scenes', offset: 0, count: 750, split: 'train' };
const CLEAN_REF: BaseRef = { source: 'mnist-scenes', offset: 7000, count: 100, split: 'clean_holdout' };
const FRAMES = 100;

const tmp = tempDir('edgeloop-detloop-');
let svc: FleetService | undefined;
let dev: FleetAgent | undefined;
afterAll(async () => {
  if (dev) await stopAgent(dev).catch(() => undefined);
  await svc?.stop().catch(() => undefined);
  tmp.cleanup();
});

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
type Box = readonly [number, number, number, number];
const iou = (a: Box, b: Box): number => {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const inter = w * h;
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
};
/** Every true box found by one predicted box at IoU >= 0.5, and nothing else predicted: the labeler confirms. */
const predictionRight = (pred: ReadonlyArray<{ box: Box }>, truth: Scene['boxes']): boolean =>
  pred.length === truth.length && truth.every((t) => pred.some((p) => iou(p.box, [t.x1, t.y1, t.x2, t.y2]) >= 0.5));

describe('a detector through the learning loop: drift, box labels, retrain, mAP gate, rollout', () => {
  it('pit-3 frames come back with their boxes, are relabeled, and the fine-tuned detector is gated on mAP and rolled out', { timeout: 400_000 }, async () => {
    const trainer = localTrainer();
    const base = sceneBaseSource();
    const dataDir = join(tmp.dir, 'fleet');
    // The fleet service as the harness starts it, plus its learning loop.
    svc = await startFleetService({
      dataDir,
      log: captureLogger('warn').log,
      tickMs: 100,
      http: createFleetHttp,
      httpPort: 0,
      mqttPort: 0,
      training: {
        trainers: { local: trainer },
        base,
        models: [
          {
            name: MODEL,
            trainer: 'local',
            seed: 1,
            // The fine-tune recipe with a few more epochs: 60-odd labeled frames are few.
            params: { epochs: 4 },
            base: [TRAIN_REF, CLEAN_REF],
            // Manual runs only: the test starts the run once the labels are in.
            triggers: { labels: null, drift: null, schedule: null },
            // Latency of two same-sized detectors on a shared 2-core box is noise: a small slack.
            gate: { latency_slack_ms: 5, class_min_samples: 1 },
            evaluation: { warmup: 1 },
            auto_promote: {
              selector: { site: 'pit-3' },
              plan: { canary: { devices: { count: 1 }, bake_s: 0.5 }, waves: [{ devices: { percent: 100 }, bake_s: 0.5 }], gates: { ...CALM_GATES, min_samples_per_device: 2, max_outlier_rate_increase: 1 } },
            },
          },
        ],
        tickMs: 60_000,
      },
    });
    const token = await adminTokenOf(dataDir);
    const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
      const res = await fetch(`${svc!.urls.http}${path}`, { method, headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) }, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      return { status: res.status, json: await res.json() };
    };

    // The base detector: trained small on the base set's scenes, signed with the fleet's key and registered.
    const key = await loadOrCreateSigningKey(join(dataDir, 'keys'));
    const baseRun = await trainer.train({
      model: BASE,
      datasetVersion: 'base-scenes',
      train: await base.examples(TRAIN_REF),
      labels: [SCENE_LABEL],
      parent: null,
      params: { task: 'detection', size: 64, epochs: 2 },
      seed: 1,
      outputDir: join(tmp.dir, 'base'),
      signKeyPem: key.privateKeyPem,
    });
    await svc.ctx.registry.push(baseRun.packageDir, { actor: 'test' });
    const initial = await downloadPackage(svc, token, BASE, join(tmp.dir, 'download-base'));

    // One pit-3 camera on the base detector, capturing every frame it sees (each under its first reason, none rate-limited).
    [dev] = await registerDevices(svc, 1, { prefix: 'pit-3-cam', tags: { site: 'pit-3' }, root: join(tmp.dir, 'devices') });
    await startAgent(svc, dev!, { initial, config: { outlier: { random_sample_rate: 1, rate_limits: Object.fromEntries(outlierReason.options.map((r) => [r, { per_minute: 100_000, burst: 1000 }])) } } });

    // The drift: the camera now sees light digits on dark paper, 30% closer.
    const frames = makeScenes(loadDigits(FEED), FRAMES, 77, { width: 96, height: 96, minDigits: 1, maxDigits: 4, minSize: 20, maxSize: 40, drift: { invert: true, zoom: 1.3 } });
    const truth = new Map(frames.map((f) => [sha(f.png), f]));
    for (const f of frames) {
      const res = await fetch(`${dev!.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: f.png });
      expect(res.status).toBe(200);
      await res.arrayBuffer();
    }
    const stored = (): Array<z.infer<typeof S.sampleRecord>> => S.samplePage.parse(svc!.ctx.ingest.query({ limit: 500 })).items.filter((s) => truth.has(s.blob.sha256));
    await until(`the ${FRAMES} drifted frames stored by the fleet`, () => new Set(stored().map((s) => s.blob.sha256)).size === FRAMES, 60_000).catch((err: Error) => {
      const all = svc!.ctx.ingest.query({ limit: 500 }).items;
      throw new Error(`${err.message}: ${all.length} samples stored (${all.slice(0, 3).map((s) => `${s.blob.sha256.slice(0, 8)} ${s.reasons.join(',')}`).join('; ')}); agent said ${JSON.stringify(dev!.lines.slice(-5))}`);
    });

    // The labeler: confirms the predicted boxes where they are right, draws the true ones where not.
    let confirmed = 0;
    let corrected = 0;
    const labeled = new Set<string>();
    for (const s of stored()) {
      const scene = truth.get(s.blob.sha256)!;
      if (labeled.has(s.blob.sha256)) continue;
      labeled.add(s.blob.sha256);
      expect(s.model).toEqual(BASE);
      const predicted = s.meta.detections ?? [];
      if (predictionRight(predicted, scene.boxes)) {
        expect((await api('POST', `/v1/samples/${s.sample_id}/confirm`)).status).toBe(200);
        confirmed++;
      } else {
        const r = await api('POST', `/v1/samples/${s.sample_id}/boxes`, { boxes: scene.boxes.map((b) => ({ label: SCENE_LABEL, box: [b.x1, b.y1, b.x2, b.y2] })) });
        expect(r.status).toBe(200);
        corrected++;
      }
    }
    expect(confirmed + corrected).toBe(FRAMES);
    // The drift is real: the base detector got most drifted frames wrong.
    expect(corrected).toBeGreaterThan(FRAMES / 2);

    // The camera keeps seeing frames while the fleet trains, as a camera does: the rollout's
    // gates compare the candidate with the device's recent window of the base detector (a device
    // idle right before the rollout has no baseline, and its canary waits for one).
    let watching = true;
    const traffic = (async () => {
      for (let i = 0; watching && dev?.agent; i++) {
        await fetch(`${dev.url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: frames[i % frames.length]!.png }).then((r) => r.arrayBuffer()).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    try {
      // The learning-loop run: dataset version with boxes, fine-tune, mAP on both holdouts, gate, rollout.
      const run = await svc.ctx.training!.trainNow({ model: MODEL, actor: 'test' });
      const m = run.metrics as Record<string, number>;
      expect(run.status, JSON.stringify({ confirmed, corrected, metrics: m, gate: run.gate })).toBe('accepted');
      const cand: ModelRef = { name: MODEL, version: '1.1.0' };
      const v = svc.ctx.registry.get(MODEL, '1.1.0');
      expect(v.lineage).toMatchObject({ training_run: run.id, dataset_version: run.dataset_version, parent: BASE });
      // The dataset version holds the box labels.
      const ds = await svc.ctx.datasets.getDataset(run.dataset_version!);
      expect(ds.entries.filter((e) => e.boxes).length).toBe(FRAMES);
      // The report: both detectors scored by mAP on the same holdouts; the candidate better on pit-3's.
      const report = (await svc.ctx.trainingRuns.report(run.id)) as { candidate: { task: string; field: { map50: number; count?: number } }; production: { task: string; field: { map50: number } } };
      expect(report.candidate.task).toBe('detection');
      expect(report.production.task).toBe('detection');
      expect(report.candidate.field.map50).toBeGreaterThan(report.production.field.map50 + 0.05);

      // The automatic rollout moves the camera to the candidate: the agent downloads, verifies and
      // switches to 1.1.0 and reports it, and the canary's gates (the candidate's windows against
      // the base detector's) pass, the wave has no device left to move, and the rollout completes.
      expect(run.rollout_id).toBeTruthy();
      await until('the agent reports running the candidate', () => sameRef(svc!.ctx.devices.get(dev!.id).models.active, cand), 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${explain(svc!, run.rollout_id!)}`);
      });
      await until('the rollout completes', () => rolloutState(svc!, run.rollout_id!).status === 'completed', 120_000).catch((err: Error) => {
        throw new Error(`${err.message}\n${explain(svc!, run.rollout_id!)}`);
      });
      expect(sameRef(dev!.agent!.service.activeRef, cand)).toBe(true);
    } finally {
      watching = false;
      await traffic;
    }
  });
});
