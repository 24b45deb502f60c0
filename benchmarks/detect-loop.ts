/**
 * The detection loop once (`edgeloop demo --scene detection`, fleet/demo/detection.ts): a base
 * detector trained by the local trainer on digit scenes, pit-3's cameras drift, its labeled
 * frames fine-tune the detector, the gate compares mAP. `value` is pit-3's mAP@0.5 on the new
 * detector (target >= 0.7 and at least 20 points above `drifted`, its mAP@0.5 on the base
 * detector during the drift); labels used and the recovery time (drift onset to the gate's
 * acceptance) beside it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DETECTION_DRIFT_SITE, runDetectionDemo } from '../fleet/demo/detection.js';

export async function benchDetectLoop(o: { quick?: boolean; progress?(line: string): void } = {}): Promise<Record<string, unknown> & { name: string; value: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-detect-loop-'));
  try {
    const cpu0 = process.cpuUsage();
    const r = await runDetectionDemo({ dataDir: dir, say: o.progress ?? (() => undefined), ...(o.quick ? { baseScenes: 400, holdoutScenes: 40, labelBudget: 60, baseEpochs: 1 } : {}) });
    const cpu = process.cpuUsage(cpu0);
    const pit = r.sites[DETECTION_DRIFT_SITE]!;
    const value = pit.after_new_model ?? 0;
    const ok = r.ok && value >= 0.7 && value - pit.during_drift >= 0.2 && (r.new_model?.clean_delta_points ?? -100) >= -1;
    return {
      name: 'detect_loop',
      value: round(value),
      before_drift: round(pit.before_drift),
      drifted: round(pit.during_drift),
      clean_after: r.new_model ? round(r.new_model.clean_map50) : null,
      clean_delta_points: r.new_model ? round(r.new_model.clean_delta_points, 2) : null,
      field_map50_95: r.new_model ? round(r.new_model.field_map50_95) : null,
      labels_used: r.labels_used.frames,
      boxes_used: r.labels_used.boxes,
      recovery_s: r.recovery_s === null ? null : round(r.recovery_s, 1),
      base_train_s: round(r.base_model.train_s, 1),
      fine_tune_s: r.new_model ? round(r.new_model.train_s, 1) : null,
      cpu_s: round((cpu.user + cpu.system) / 1e6, 1),
      duration_s: round(r.duration_s, 1),
      gate: r.gate,
      ok,
      target: 'value >= 0.70 and >= drifted + 0.20; clean_delta_points >= -1',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;
