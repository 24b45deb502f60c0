import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mlpFieldTrainer } from '../../fleet/demo/mlp-adapter.js';
import { runDemo } from '../../fleet/demo/run.js';
import { tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

describe('edgeloop demo --exit-when-done (shortened)', () => {
  it('runs the whole loop headless: drift, outage, simulated labels, retrain, staged rollout, recovery, nothing lost', async () => {
    const lines: string[] = [];
    const report = await runDemo({
      dataDir: tmp.dir,
      exitWhenDone: true,
      timings: { rate: 4, baselineS: 6, outageAfterS: 2, outageS: 6, labelRate: 40, labelBudget: 200, retrainAfterLabels: 80, shadowBakeS: 3, canaryBakeS: 3, waveBakeS: 2, afterFrames: 12, telemetryS: 1, maxS: 150 },
      log: pino({ level: 'silent' }),
      say: (l) => lines.push(l),
      training: { trainCount: 2000, epochs: 4 },
      trainer: mlpFieldTrainer({ epochs: 4 }),
    });
    const context = `${JSON.stringify(report, null, 1)}\n${lines.slice(-30).join('\n')}`;
    expect(report.problems, context).toEqual([]);
    expect(report.ok, context).toBe(true);
    // The console URL comes first, before any training.
    const consoleLine = lines.findIndex((l) => l.includes('/console/'));
    expect(consoleLine).toBeGreaterThanOrEqual(0);
    expect(consoleLine).toBeLessThan(lines.findIndex((l) => l.includes('base model')));

    const pit = report.sites['pit-3']!;
    for (const site of ['pit-3', 'ridge-1', 'plant-2']) expect(report.sites[site]!.before_drift!, site).toBeGreaterThan(0.6);
    expect(pit.during_drift!).toBeLessThan(pit.before_drift! - 0.3);
    expect(pit.frames.after_new_model).toBeGreaterThanOrEqual(24);
    expect(pit.after_new_model!).toBeGreaterThan(pit.during_drift! + 0.15);
    // The sites that did not drift keep their accuracy on the new model.
    expect(report.sites['plant-2']!.after_new_model!).toBeGreaterThan(0.6);

    // Every captured sample arrived, the ones queued during the outage included.
    expect(report.samples.lost).toBe(0);
    expect(report.samples.backlog).toBe(0);
    expect(report.samples.received).toBe(report.samples.captured);
    expect(report.samples.forwarded).toBe(report.samples.captured);
    expect(report.outage).toMatchObject({ site: 'ridge-1', lost: 0 });
    expect(report.outage!.captured_during).toBeGreaterThan(0);
    expect(report.outage!.received_from_window).toBe(report.outage!.captured_during);
    expect(report.outage!.refused_connections).toBeGreaterThan(0);

    expect(report.labels).toMatchObject({ by: 'simulated-labeler', simulated: true });
    expect(report.labels.used).toBeGreaterThanOrEqual(80);
    expect(report.labels.used).toBeLessThanOrEqual(200);
    expect(report.new_model).toMatchObject({ name: 'digits', version: '1.1.0' });
    const retrain = report.rollouts.find((r) => r.model === 'digits@1.1.0')!;
    expect(retrain).toMatchObject({ status: 'completed', stages: ['shadow', 'canary', 'wave 1', 'wave 2'] });
    expect(report.recovery_s!).toBeGreaterThan(0);
    expect(report.drift.psi_peak['pit-3']!).toBeGreaterThan(report.drift.psi_peak['plant-2']! + 0.5);
    expect(report.base_model.cached).toBe(false);
  }, 170_000);
});
