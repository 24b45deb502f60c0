/**
 * The learning loop end to end: the headless demo (`edgeloop demo --exit-when-done`) with the
 * fleet service, six real agent processes, a drifting site, an uplink outage, simulated labels,
 * a retrain and a staged rollout. `value` is pit-3's accuracy on the new model (target >= 0.90
 * and at least 25 points above `drifted`, its accuracy on the base model during the drift).
 * The base model is cached in `.data/bench-loop` after the first run, like the demo's.
 */
import { resolve } from 'node:path';
import pino from 'pino';
import type { DemoTimings } from '../fleet/demo/options.js';
import { runDemo } from '../fleet/demo/run.js';

export interface LoopBenchOptions {
  dataDir?: string;
  timings?: Partial<DemoTimings>;
  progress?(line: string): void;
}

/** Quick: shorter baseline and outage, smaller afterwards window (a smoke check, not the figure). */
export const LOOP_QUICK: Partial<DemoTimings> = { baselineS: 15, outageAfterS: 5, outageS: 20, shadowBakeS: 8, canaryBakeS: 8, waveBakeS: 5, afterFrames: 60 };

export async function benchLoop(o: LoopBenchOptions = {}): Promise<Record<string, unknown> & { name: string; value: number }> {
  const report = await runDemo({
    dataDir: resolve(o.dataDir ?? '.data/bench-loop'),
    exitWhenDone: true,
    timings: { maxS: 900, ...o.timings },
    log: pino({ level: 'error' }, pino.destination(2)),
    say: o.progress ?? (() => undefined),
  });
  const pit = report.sites['pit-3'];
  const value = pit?.after_new_model ?? 0;
  const drifted = pit?.during_drift ?? null;
  const cleanDelta = report.new_model?.clean_delta_points ?? null;
  const ok =
    report.ok &&
    value >= 0.9 &&
    drifted !== null &&
    value - drifted >= 0.25 &&
    cleanDelta !== null &&
    cleanDelta >= -1 &&
    report.labels.used <= 600 &&
    report.samples.lost === 0 &&
    report.recovery_s !== null &&
    report.recovery_s <= 300;
  return {
    name: 'loop',
    value: round(value),
    drifted: drifted === null ? null : round(drifted),
    clean_delta: cleanDelta === null ? null : round(cleanDelta, 2),
    labels_used: report.labels.used,
    lost: report.samples.lost,
    recovery_s: report.recovery_s === null ? null : round(report.recovery_s, 1),
    captured: report.samples.captured,
    received: report.samples.received,
    outage_lost: report.outage?.lost ?? null,
    gate: report.gate,
    trainer: report.new_model?.trainer ?? null,
    duration_s: round(report.duration_s, 1),
    problems: report.problems,
    ok,
    target: 'value >= 0.90 and >= drifted + 0.25; clean_delta >= -1; labels_used <= 600; lost = 0; recovery_s <= 300',
  };
}

const round = (x: number, d = 4): number => Math.round(x * 10 ** d) / 10 ** d;
