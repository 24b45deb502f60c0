import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SIMULATED_LABELER } from '../../fleet/app/labels/labels.js';
import { runDemo } from '../../fleet/demo/run.js';
import { createFleetHttp } from '../../fleet/edges/server.js';
import { startFleetService } from '../../fleet/boot/service.js';
import { tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

/**
 * The shortened demo, headless, end to end with every real part (fleet service, six agent
 * processes, MQTT through the site links, the learning loop, rollouts). Smaller than the real
 * thing so it fits a test: a base CNN on 1,000 digits (2 epochs) fine-tuned by the local trainer
 * on 220 labels, a 300-digit clean holdout, and a gate loosened on the clean side (a model
 * trained in seconds may lose a few points on a clean class; the `loop` benchmark holds the
 * defaults). The field side of the gate is the default: the candidate must be better on the
 * drifted field holdout.
 */
describe('edgeloop demo --exit-when-done (shortened)', () => {
  it('runs the whole loop headless: drift, outage, simulated labels, retrain, gate, staged rollout, recovery, nothing lost', async () => {
    const lines: string[] = [];
    const report = await runDemo({
      dataDir: tmp.dir,
      exitWhenDone: true,
      timings: { rate: 4, baselineS: 5, outageAfterS: 2, outageS: 5, labelRate: 40, labelBudget: 320, retrainAfterLabels: 220, shadowBakeS: 3, canaryBakeS: 3, waveBakeS: 2, afterFrames: 12, telemetryS: 1, maxS: 420 },
      log: pino({ level: 'silent' }),
      say: (l) => lines.push(l),
      training: { trainCount: 1000, epochs: 2 },
      cleanHoldoutCount: 300,
      gate: { clean_drop_max_pts: 10, class_drop_max_pts: 40 },
    });
    const context = `${JSON.stringify(report, null, 1)}\n${lines.slice(-40).join('\n')}`;
    expect(report.problems, context).toEqual([]);
    expect(report.ok, context).toBe(true);
    // The console URL comes first, before any training.
    const consoleLine = lines.findIndex((l) => l.includes('/console/'));
    expect(consoleLine).toBeGreaterThanOrEqual(0);
    expect(consoleLine).toBeLessThan(lines.findIndex((l) => l.includes('base model')));

    const pit = report.sites['pit-3']!;
    for (const site of ['pit-3', 'ridge-1', 'plant-2']) expect(report.sites[site]!.before_drift!, site).toBeGreaterThan(0.6);
    expect(pit.during_drift!, context).toBeLessThan(pit.before_drift! - 0.3);
    expect(pit.frames.after_new_model).toBeGreaterThanOrEqual(24);
    expect(pit.after_new_model!, context).toBeGreaterThan(pit.during_drift! + 0.15);
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

    // The learning loop: label trigger, evaluated candidate that passed the gate, automatic staged rollout.
    expect(report.labels).toMatchObject({ by: SIMULATED_LABELER, simulated: true });
    expect(report.labels.used).toBeGreaterThanOrEqual(220);
    expect(report.labels.used).toBeLessThanOrEqual(320);
    expect(report.new_model).toMatchObject({ name: 'digits', version: '1.1.0', status: 'accepted' });
    expect(report.new_model!.field!).toBeGreaterThanOrEqual(report.new_model!.base_field! + 0.02);
    expect(report.gate).toMatchObject({ passed: true, baseline: 'production' });
    const retrain = report.rollouts.find((r) => r.model === 'digits@1.1.0')!;
    expect(retrain).toMatchObject({ status: 'completed', stages: ['shadow', 'canary', 'wave 1', 'wave 2'] });
    expect(report.recovery_s!).toBeGreaterThan(0);
    expect(report.drift.psi_peak['pit-3']!).toBeGreaterThan(report.drift.psi_peak['plant-2']! + 0.5);
    expect(report.base_model.cached).toBe(false);

    // Afterwards the fleet's own records say the labels were simulated: in the dataset version and on the console.
    const fleetDir = join(tmp.dir, 'fleet');
    const svc = await startFleetService({ dataDir: fleetDir, http: (ctx) => createFleetHttp(ctx), log: pino({ level: 'silent' }) });
    try {
      const dataset = await svc.ctx.datasets.getDataset(report.new_model!.dataset_version!);
      const field = dataset.entries;
      expect(field.length).toBe(report.labels.used);
      expect(new Set(field.map((e) => e.labeled_by))).toEqual(new Set([SIMULATED_LABELER]));
      const token = (await readFile(join(fleetDir, 'admin.token'), 'utf8')).trim();
      const login = await fetch(`${svc.urls.http}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, next: '/console/labeling' }) });
      const cookie = (login.headers.get('set-cookie') ?? '').split(';')[0]!;
      const page = await (await fetch(`${svc.urls.http}/console/labeling`, { headers: { cookie } })).text();
      expect(page).toContain('id="simulated-labels"');
      expect(page).toMatch(/Simulated: \d+ labels/);
    } finally {
      await svc.stop();
    }
  }, 480_000);
});
