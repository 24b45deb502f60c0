import '../shared/no-telemetry.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { benchEnqueue } from './enqueue.js';
import { benchEventLoop } from './event-loop.js';
import { benchEndToEnd, benchInference } from './inference.js';

const HELP = `Usage: npm run bench -- [--json] [--only name,name] [--quick]

Benchmarks print ratios against the raw library measured in the same run:
  inference   agent inference / raw session.run, p50 (target <= 1.05); handoff_us: the worker hop per request
  end_to_end  JPEG -> result / (sharp + raw run), p50 (target <= 1.25)
  detect      JPEG -> boxes for a YOLOv8n-sized head [1,84,8400] / (sharp letterbox + raw run + the same
              decode and NMS on the main thread), p50 (target <= 1.15); p99 ratio beside it
  event_loop  event-loop delay p99 in ms during saturated inference (target <= 5)
  enqueue     durable captures/s / raw batched inserts/s (target >= 0.5)
  drain       backlog drain msgs/s / bare mqtt.js QoS 1 msgs/s (target >= 0.8)
  ingest      fleet sample ingest/s / raw better-sqlite3 inserts/s (target >= 0.3)
  telemetry   telemetry folded into the device registry in batches, msgs/s / the registry's UPSERT
              run raw in transactions of the same size (target >= 0.5); per-message commits beside it
  rollout_scale  peak RSS MB of the fleet process (its own, as deployed) through a canary + 2-wave rollout to 1,000 simulated MQTT
              devices (target < 500, every device converged; --quick: 100 devices)
  alert_latency  frame arrival (HTTP, 640x480 JPEG) to the local MQTT alert action at a site subscriber,
              p50/p99 beside the model's raw run; value = alert p99 - raw p99 in ms (target <= 20)
  connect_cost  a real device's first MQTT connect with its certificate / with its secret, medians under a
              flood of 60 bogus password logins/s (target < 1); quiet medians and ratios beside it
  loop        the headless demo: pit-3 accuracy after the loop (target >= 0.90, +25 points over
              drifted; clean_delta >= -1, labels_used <= 600, lost = 0, recovery_s <= 300)
  detect_loop  the detection demo once, through the fleet and six agents: pit-3's mAP@0.5 of the agents'
              answers on the new detector (target >= 0.70 and +20 points over drifted;
              clean_delta_points >= -1; lost = 0); labels and boxes used, recovery_s
  camera      frames processed/s from a 1080p 25 fps MJPEG stream / the camera's configured fps
              (target >= 0.95); cpu_ratio: agent CPU per frame (Node + its ffmpeg) / ffmpeg decoding alone
  train       wall seconds to train + pack the base digit model with the local trainer (target <= 120,
              accuracy >= 0.97 on the clean holdout); then a fine-tune on 300 drifted field labels
--json prints one JSON object per line; --quick runs shorter (for a smoke check).`;

type Bench = (quick: boolean) => Promise<Record<string, unknown> & { name: string; value: number }>;

const benches: Record<string, Bench> = {
  inference: (q) => benchInference({ iterations: q ? 20 : 100 }),
  end_to_end: (q) => benchEndToEnd({ iterations: q ? 20 : 100 }),
  detect: async (q) => (await import('./detect.js')).benchDetect({ iterations: q ? 20 : 100 }),
  event_loop: (q) => benchEventLoop({ durationMs: q ? 1500 : 5000 }),
  enqueue: async (q) => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-'));
    try {
      return (await benchEnqueue({ dir, durationMs: q ? 1500 : 6000 })) as unknown as Record<string, unknown> & { name: string; value: number };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  ingest: async (q) => {
    const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-'));
    try {
      const { benchIngest } = await import('./ingest.js');
      return (await benchIngest({ dir, ...(q ? { samples: 2000 } : {}) })) as unknown as Record<string, unknown> & { name: string; value: number };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
  telemetry: async (q) => (await import('./telemetry.js')).benchTelemetry(q ? { devices: 100, perDevice: 5 } : {}),
  drain: async (q) => {
    const { benchDrain } = await import('./drain.js');
    return (await benchDrain(q ? { messages: 1000 } : {})) as unknown as Record<string, unknown> & { name: string; value: number };
  },
  alert_latency: async (q) => (await import('./alert-latency.js')).benchAlertLatency({ iterations: q ? 30 : 200 }),
  loop: async (q) => {
    const { benchLoop, LOOP_QUICK } = await import('./loop.js');
    return benchLoop({ ...(q ? { timings: LOOP_QUICK } : {}), progress: (line) => void process.stderr.write(`${line}\n`) });
  },
  detect_loop: async (q) => (await import('./detect-loop.js')).benchDetectLoop({ quick: q, progress: (l) => void process.stderr.write(`${l}\n`) }),
  train: async (q) => (await import('./train.js')).benchTrain({ fineTune: !q, ...(q ? { trainCount: 2000, holdoutCount: 500, epochs: 2 } : {}), progress: (l) => void process.stderr.write(`${l}\n`) }),
  connect_cost: async (q) => (await import('./connect-cost.js')).benchConnectCost(q ? { devices: 4 } : {}),
  camera: async (q) => (await import('./camera.js')).benchCamera(q ? { seconds: 6 } : {}),
  rollout_scale: async (q) => {
    const { benchRolloutScale } = await import('./rollout-scale.js');
    const progress = (line: string): void => void process.stderr.write(`${line}\n`);
    return (await benchRolloutScale(q ? { devices: 100, bakeS: 2, telemetryIntervalMs: 2000, progress } : { progress })) as unknown as Record<string, unknown> & { name: string; value: number };
  },
};

async function main(): Promise<number> {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, only: { type: 'string' }, quick: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const names = values.only ? values.only.split(',') : Object.keys(benches);
  for (const name of names) {
    const bench = benches[name];
    if (!bench) {
      console.error(`unknown benchmark ${name}; known: ${Object.keys(benches).join(', ')}`);
      return 2;
    }
    if (!values.json) process.stderr.write(`running ${name}...\n`);
    const r = await bench(values.quick ?? false);
    if (values.json) console.log(JSON.stringify(r));
    else console.log(`${r.name.padEnd(12)} value ${r.value}  (target ${String(r.target ?? '-')})\n  ${JSON.stringify(r)}`);
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
