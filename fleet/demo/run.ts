import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { systemClock } from '../../shared/ids.js';
import { SampleSink } from '../ingest/sample-sink.js';
import { loadOrCreateSigningKey } from '../keys.js';
import { startEmbeddedBroker } from '../mqtt/embedded-broker.js';
import { loadDigits } from '../training/mnist-data.js';
import { startAgentProcess, type AgentProcess } from './agent-process.js';
import { buildBaseModel } from './base-model.js';
import { renderDigitPng, type CameraDrift } from './digits.js';

export interface DemoOptions {
  dataDir: string;
  /** Seconds to run; 0 = until stop() (Ctrl-C). */
  durationS: number;
  cameras: number;
  /** Images per second per camera. */
  rate: number;
  /** When the drifting camera starts to drift, as a fraction of the duration (or seconds when running open-ended). */
  driftAfterS: number;
  log: Logger;
  say(line: string): void;
  /** Abort signal for an open-ended run (Ctrl-C). */
  signal?: AbortSignal;
  /** Smaller training for tests (defaults: 8000 digits, the recipe's epochs). */
  training?: { trainCount?: number; epochs?: number };
}

export interface CameraReport {
  device_id: string;
  drifting: boolean;
  fed: number;
  results: number;
  errors: number;
  accuracy_before_drift: number | null;
  accuracy_during_drift: number | null;
  captured: number;
  http: string | null;
}

export interface DemoReport {
  model: { name: string; version: string; cached: boolean; holdout_accuracy: number | null };
  cameras: CameraReport[];
  samples: { captured: number; received: number; duplicates: number; rejected: number; lost: number; backlog: number };
  drift_psi: Record<string, number | null>;
  duration_s: number;
}

const DRIFT: CameraDrift = { rotateDeg: 35, blurSigma: 1.2, dim: 0.45 };
/** Digits after the training and holdout ranges: the cameras see images the model never saw. */
const FEED_OFFSET = 9000;
const FEED_COUNT = 1000;

interface Camera {
  id: string;
  dir: string;
  results: string;
  agent: AgentProcess;
  http: string | null;
  drifting: boolean;
  fed: number;
  truth: Map<string, { label: number; drifted: boolean }>;
}

async function readResults(path: string): Promise<Array<{ file: string; label?: string; error?: unknown; outlier?: { captured: boolean } }>> {
  const text = await readFile(path, 'utf8').catch(() => '');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { file: string; label?: string; error?: unknown; outlier?: { captured: boolean } });
}

/**
 * The local demo: a signing key, the base digit model (trained once, cached), an embedded
 * broker with the fleet's sample sink, and real agent processes watching camera folders fed
 * with MNIST digits rendered as camera frames. One camera drifts (rotation, blur, dimming)
 * part-way: its confidence drops, outliers flow back, PSI rises.
 */
export async function runDemo(o: DemoOptions): Promise<DemoReport> {
  const t0 = Date.now();
  const data = resolve(o.dataDir);
  await mkdir(data, { recursive: true });
  const key = await loadOrCreateSigningKey(join(data, 'keys'));
  o.say(`[1/4] fleet signing key ${key.keyId.slice(0, 12)} (${key.created ? 'created' : 'existing'})`);
  const model = await buildBaseModel({ dir: join(data, 'models', 'digits-1.0.0'), signKeyPem: key.privateKeyPem, ...o.training, onProgress: (l) => o.say(`      ${l}`) });
  o.say(`[2/4] base model digits@${model.manifest.version} ${model.cached ? '(cached)' : 'trained'} at ${model.dir}`);

  const broker = await startEmbeddedBroker();
  const sink = new SampleSink({ url: broker.url, dir: join(data, 'fleet', 'samples'), clock: systemClock, log: o.log.child({ component: 'sink' }) });
  await sink.start();
  o.say(`[3/4] embedded MQTT broker at ${broker.url}; samples land in ${join(data, 'fleet', 'samples')}`);

  const cameras: Camera[] = [];
  try {
    for (let i = 0; i < o.cameras; i++) {
      const id = `cam-${i + 1}`;
      const dir = join(data, 'cameras', id);
      await rm(join(dir, 'agent'), { recursive: true, force: true });
      await mkdir(join(dir, 'inbox'), { recursive: true });
      const results = join(dir, 'results.jsonl');
      await rm(results, { force: true });
      const config = {
        device_id: id,
        tags: { site: 'demo' },
        data_dir: join(dir, 'agent'),
        fleet_public_key: key.publicKeyPath,
        models: { initial: model.dir },
        inference: { intra_op_threads: 1, warmup_runs: 2 },
        http: { port: 0 },
        watch: { enabled: true, dir: join(dir, 'inbox'), results_file: results, after: 'delete', poll_ms: 100 },
        uplink: { kind: 'mqtt', url: broker.url, telemetry_interval_s: 2, ack_timeout_ms: 10_000 },
        log: { level: 'info' },
      };
      await writeFile(join(dir, 'agent.json'), JSON.stringify(config, null, 2));
      cameras.push({ id, dir, results, agent: startAgentProcess(join(dir, 'agent.json')), http: null, drifting: i === o.cameras - 1 && o.cameras > 1, fed: 0, truth: new Map() });
    }
    for (const c of cameras) c.http = (await c.agent.ready).http;
    o.say(`[4/4] ${cameras.length} agents running; feeding ${o.rate} images/s per camera`);
    for (const c of cameras) o.say(`      ${c.id}: ${c.http}/healthz  ${c.http}/metrics  results ${c.results}${c.drifting ? '  (this camera drifts)' : ''}`);

    const digits = loadDigits({ count: FEED_COUNT, offset: FEED_OFFSET });
    let tick = 0;
    let lastReport = Date.now();
    const started = Date.now();
    const deadline = o.durationS > 0 ? started + o.durationS * 1000 : Infinity;
    while (Date.now() < deadline && !o.signal?.aborted) {
      const driftOn = (Date.now() - started) / 1000 >= o.driftAfterS;
      for (const c of cameras) {
        const n = (tick * cameras.length + cameras.indexOf(c)) % FEED_COUNT;
        const drifted = c.drifting && driftOn;
        const name = `frame-${String(c.fed).padStart(6, '0')}.png`;
        const png = await renderDigitPng(digits.images[n]!, drifted ? DRIFT : {});
        // Write under a dot-name then rename: the watcher never sees a half-written frame.
        await writeFile(join(c.dir, 'inbox', `.${name}`), png);
        await rename(join(c.dir, 'inbox', `.${name}`), join(c.dir, 'inbox', name));
        c.truth.set(name, { label: digits.labels[n]!, drifted });
        c.fed++;
      }
      tick++;
      if (Date.now() - lastReport >= 5000) {
        lastReport = Date.now();
        o.say(await progressLine(cameras, sink, driftOn));
      }
      await new Promise((r) => setTimeout(r, 1000 / o.rate));
    }
    o.say('stopping: waiting for the cameras to finish their last frames and the uplinks to drain...');
    await waitFor(async () => (await Promise.all(cameras.map(async (c) => (await readResults(c.results)).length >= c.fed))).every(Boolean), 20_000);
    return await report(cameras, sink, model, t0, async () => {
      await waitFor(async () => (await backlog(cameras)) === 0, 20_000);
    });
  } finally {
    await Promise.all(cameras.map((c) => c.agent.stop()));
    await sink.stop();
    await broker.close();
  }
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !(await cond())) await new Promise((r) => setTimeout(r, 200));
}

async function health(c: Camera): Promise<{ queue?: { depth: number } } | null> {
  if (!c.http) return null;
  try {
    return (await (await fetch(`${c.http}/healthz`)).json()) as { queue?: { depth: number } };
  } catch {
    return null;
  }
}

async function backlog(cameras: Camera[]): Promise<number> {
  const hs = await Promise.all(cameras.map(health));
  return hs.reduce((a, h) => a + (h?.queue?.depth ?? 0), 0);
}

async function scoreCamera(c: Camera): Promise<CameraReport> {
  const rows = await readResults(c.results);
  const acc = (drifted: boolean): number | null => {
    const mine = rows.filter((r) => r.label !== undefined && c.truth.get(r.file)?.drifted === drifted);
    return mine.length ? mine.filter((r) => Number(r.label) === c.truth.get(r.file)!.label).length / mine.length : null;
  };
  return {
    device_id: c.id,
    drifting: c.drifting,
    fed: c.fed,
    results: rows.length,
    errors: rows.filter((r) => r.error).length,
    accuracy_before_drift: acc(false),
    accuracy_during_drift: acc(true),
    captured: rows.filter((r) => r.outlier?.captured).length,
    http: c.http,
  };
}

async function progressLine(cameras: Camera[], sink: SampleSink, driftOn: boolean): Promise<string> {
  const parts = await Promise.all(
    cameras.map(async (c) => {
      const s = await scoreCamera(c);
      const psi = sink.telemetry.get(c.id)?.drift.brightness_psi;
      const acc = c.drifting && driftOn ? s.accuracy_during_drift : s.accuracy_before_drift;
      return `${c.id} ${s.results}/${s.fed} acc ${acc === null ? '-' : `${(acc * 100).toFixed(0)}%`} outliers ${s.captured} psi ${psi == null ? '-' : psi.toFixed(2)}`;
    }),
  );
  return `  ${parts.join(' | ')} | fleet received ${sink.stats.received} samples${driftOn && cameras.some((c) => c.drifting) ? ' | DRIFT ON' : ''}`;
}

async function report(cameras: Camera[], sink: SampleSink, model: { manifest: { name: string; version: string }; cached: boolean; holdoutAccuracy?: number }, t0: number, drain: () => Promise<void>): Promise<DemoReport> {
  await drain();
  const cams = await Promise.all(cameras.map(scoreCamera));
  const captured = cams.reduce((a, c) => a + c.captured, 0);
  const left = await backlog(cameras);
  return {
    model: { name: model.manifest.name, version: model.manifest.version, cached: model.cached, holdout_accuracy: model.holdoutAccuracy ?? null },
    cameras: cams,
    samples: { captured, received: sink.stats.received, duplicates: sink.stats.duplicates, rejected: sink.stats.rejected, lost: Math.max(0, captured - sink.stats.received - left), backlog: left },
    drift_psi: Object.fromEntries(cameras.map((c) => [c.id, sink.telemetry.get(c.id)?.drift.brightness_psi ?? null])),
    duration_s: (Date.now() - t0) / 1000,
  };
}
