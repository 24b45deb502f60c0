/**
 * `alert_latency`: frame arrival (the start of the HTTP request carrying a 640x480 JPEG) to the
 * local MQTT action received by a subscriber on the site broker (aedes, loopback), through a real
 * agent: decode and resize (sharp), the model in its worker thread, the rule, the action's runner
 * and an MQTT QoS 1 publish. Beside it the model's raw `session.run` on the same thread settings,
 * interleaved run by run so machine noise hits both. Value = alert p99 - raw p99 (ms), target <= 20.
 */
import '../shared/no-telemetry.js'; // before onnxruntime-node loads, whatever the entry point
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import mqtt from 'mqtt';
import * as ort from 'onnxruntime-node';
import pino from 'pino';
import sharp from 'sharp';
import { Agent } from '../agent/agent.js';
import { parseAgentConfig } from '../agent/config.js';
import { packModel } from '../fleet/adapters/fs/pack.js';
import { startAedes } from '../test/helpers/broker.js';
import { mobilenetLikeModel } from '../test/helpers/models.js';
import { round, summary } from './stats.js';

const THREADS = 2;

async function photoJpeg(): Promise<Buffer> {
  const w = 640;
  const h = 480;
  const data = Buffer.alloc(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) data[(y * w + x) * 3 + c] = Math.round(128 + 100 * Math.sin(x / (20 + c * 7)) * Math.cos(y / 31) + ((x ^ y) & 16));
  return sharp(data, { raw: { width: w, height: h, channels: 3 } }).jpeg({ quality: 85 }).toBuffer();
}

export async function benchAlertLatency(opts: { iterations?: number } = {}) {
  const iterations = opts.iterations ?? 100;
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-alert-'));
  const broker = await startAedes();
  const sub = await mqtt.connectAsync(broker.url);
  let agent: Agent | null = null;
  const model = mobilenetLikeModel({ seed: 1 });
  const session = await ort.InferenceSession.create(model.bytes, {
    intraOpNumThreads: THREADS,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionProviders: ['cpu'],
    extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
  });
  try {
    writeFileSync(join(dir, 'model.onnx'), model.bytes);
    await packModel({ onnxPath: join(dir, 'model.onnx'), outDir: join(dir, 'pkg'), labels: Array.from({ length: 1000 }, (_, i) => `c${i}`), name: 'bench', version: '1.0.0', image: { width: 224, height: 224 } });
    const cfg = parseAgentConfig({
      device_id: 'bench',
      data_dir: join(dir, 'agent'),
      allow_unsigned: true,
      models: { initial: join(dir, 'pkg') },
      http: { port: 0 },
      inference: { intra_op_threads: THREADS, warmup_runs: 3 },
      outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 0 },
      // Fires on every frame: any label, no hold, no gap, no cooldown.
      alerts: {
        rules: [{ id: 'every-frame', model: 'bench', min_score: 0, gap_s: 0, cooldown_s: 0, severity: 'critical', actions: ['plc'] }],
        actions: { plc: { kind: 'mqtt', url: broker.url, topic: 'site/plc/{{rule}}', payload: '{"alarm":"{{rule}}","id":"{{alert_id}}"}', qos: 1 } },
      },
    });
    agent = await Agent.start(cfg, { log: pino({ level: 'silent' }) });
    const url = `${agent.httpUrl}/v1/infer`;
    const frame = await photoJpeg();
    let waiting: ((t: number) => void) | null = null;
    sub.on('message', () => waiting?.(performance.now()));
    await sub.subscribeAsync('site/plc/#', { qos: 1 });
    const x = Float32Array.from({ length: 3 * 224 * 224 }, (_, i) => Math.sin(i) * 0.5);
    const rawRun = async (): Promise<void> => void (await session.run({ [model.inputName]: new ort.Tensor('float32', x.slice(), [1, 3, 224, 224]) }));
    const alertOnce = async (): Promise<{ alert: number; answer: number }> => {
      const got = new Promise<number>((resolve) => (waiting = resolve));
      const t0 = performance.now();
      const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: frame });
      await res.arrayBuffer();
      const answered = performance.now();
      const t1 = await got;
      waiting = null;
      return { alert: t1 - t0, answer: answered - t0 };
    };
    // The site broker connection is up before timing starts; a few warm-up rounds of each.
    for (let i = 0; i < 200 && !agent.alertActions?.brokersConnected(); i++) await new Promise((r) => setTimeout(r, 25));
    for (let i = 0; i < 5; i++) {
      await alertOnce();
      await rawRun();
    }
    const alert: number[] = [];
    const answer: number[] = [];
    const after: number[] = [];
    const raw: number[] = [];
    for (let i = 0; i < iterations; i++) {
      const a = await alertOnce();
      alert.push(a.alert);
      answer.push(a.answer);
      after.push(a.alert - a.answer);
      const t = performance.now();
      await rawRun();
      raw.push(performance.now() - t);
    }
    const s = { alert: summary(alert), answer: summary(answer), after: summary(after), raw: summary(raw) };
    return {
      name: 'alert_latency',
      value: round(s.alert.p99 - s.raw.p99, 1),
      target: '<= 20 (ms over the raw p99)',
      threads: THREADS,
      jpeg: '640x480',
      alert_to_subscriber_ms: s.alert,
      http_answer_ms: s.answer,
      // The rules' own share: from the caller's answer to the subscriber (evaluation, runner, publish, broker).
      after_answer_ms: s.after,
      p50_over_raw_ms: round(s.alert.p50 - s.raw.p50, 1),
      raw_run_ms: s.raw,
    };
  } finally {
    await agent?.stop();
    await sub.endAsync();
    await broker.close();
    await session.release();
    rmSync(dir, { recursive: true, force: true });
  }
}
