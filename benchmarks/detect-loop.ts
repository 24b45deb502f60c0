/**
 * The detection demo once, headless (`edgeloop demo --scene detection --exit-when-done`): the
 * fleet service, six agent processes on the base detector, pit-3's cameras drift, their frames
 * come back with predicted boxes, the simulated labeler draws the true boxes, the learning loop
 * fine-tunes, the gate compares mAP, and the staged rollout moves every camera. `value` is
 * pit-3's mAP@0.5 on the new detector, from what the agents answered (target >= 0.7 and at least
 * 20 points above `drifted`, the base detector's during the drift); labels used and the recovery
 * time (drift onset to the new detector answering on every pit-3 camera) beside it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { runDemo } from '../fleet/demo/run.js';

export async function benchDetectLoop(o: { quick?: boolean; progress?(line: string): void } = {}): Promise<Record<string, unknown> & { name: string; value: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-detect-loop-'));
  try {
    const cpu0 = process.cpuUsage();
    const r = await runDemo({
      scene: 'detection',
      dataDir: dir,
      exitWhenDone: true,
      log: pino({ level: 'silent' }),
      say: o.progress ?? (() => undefined),
      ...(o.quick
        ? { timings: { rate: 4, baselineS: 5, outageAfterS: 2, outageS: 5, labelRate: 40, labelBudget: 150, retrainAfterLabels: 100, shadowBakeS: 3, canaryBakeS: 3, waveBakeS: 2, afterFrames: 12, telemetryS: 1, maxS: 420 }, training: { trainCount: 750, epochs: 1 }, cleanHoldoutCount: 40 }
        : {}),
    });
    const cpu = process.cpuUsage(cpu0);
    const pit = r.sites['pit-3']!;
    const value = pit.after_new_model ?? 0;
    const drifted = pit.during_drift ?? 0;
    const ok = r.ok && value >= 0.7 && value - drifted >= 0.2 && (r.new_model?.clean_delta_points ?? -100) >= -1 && r.samples.lost === 0;
    return {
      name: 'detect_loop',
      value: round(value),
      before_drift: pit.before_drift === null ? null : round(pit.before_drift),
      drifted: round(drifted),
      frames: pit.frames,
      other_sites_after: Object.fromEntries(Object.entries(r.sites).filter(([s]) => s !== 'pit-3').map(([s, m]) => [s, m.after_new_model === null ? null : round(m.after_new_model)])),
      clean_after: r.new_model?.clean == null ? null : round(r.new_model.clean),
      clean_delta_points: r.new_model?.clean_delta_points == null ? null : round(r.new_model.clean_delta_points, 2),
      field_holdout: r.new_model ? { base: r.new_model.base_field, new: r.new_model.field, map50_95: r.new_model.field_map50_95 } : null,
      labels_used: r.labels.used,
      boxes_used: r.labels.boxes,
      samples: r.samples,
      recovery_s: r.recovery_s === null ? null : round(r.recovery_s, 1),
      base_cached: r.base_model.cached,
      fine_tune_s: r.new_model?.train_s ?? null,
      cpu_s: round((cpu.user + cpu.system) / 1e6, 1),
      duration_s: round(r.duration_s, 1),
      rollouts: r.rollouts.map((x) => `${x.model} ${x.status}`),
      gate: r.gate,
      problems: r.problems,
      ok,
      target: 'value >= 0.70 and >= drifted + 0.20; clean_delta_points >= -1; lost = 0',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;
