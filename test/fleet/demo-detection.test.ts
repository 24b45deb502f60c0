import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { demoCmd } from '../../fleet/demo/command.js';
import { runDemo } from '../../fleet/demo/run.js';
import { tempDir } from '../helpers/packages.js';

const tmp = tempDir();
afterAll(() => tmp.cleanup());

/**
 * The detection edition, shortened, end to end through the fleet: six agent processes run the
 * base detector (trained small here: 750 digits in 300 scenes, one epoch), pit-3's cameras
 * drift, the agents capture frames with their predicted boxes, the simulated labeler draws the
 * true boxes over the fleet's box labels, the learning loop's label trigger fine-tunes, the gate
 * compares mAP, and the staged rollout moves every camera to the new detector. The figures are
 * mAP@0.5 of what the agents answered on the frames fed, against the boxes the scenes were
 * drawn with.
 */
describe('edgeloop demo --scene detection (shortened)', () => {
  it('the drift sinks the detector on pit-3; its box labels retrain it through the fleet, and the rollout recovers the site', async () => {
    const lines: string[] = [];
    const report = await runDemo({
      scene: 'detection',
      dataDir: tmp.dir,
      exitWhenDone: true,
      timings: { rate: 4, baselineS: 5, outageAfterS: 2, outageS: 5, labelRate: 40, labelBudget: 150, retrainAfterLabels: 100, shadowBakeS: 3, canaryBakeS: 3, waveBakeS: 2, afterFrames: 12, telemetryS: 1, maxS: 420 },
      log: pino({ level: 'silent' }),
      say: (l) => lines.push(l),
      training: { trainCount: 750, epochs: 1 },
      cleanHoldoutCount: 40,
    });
    const context = `${JSON.stringify(report, null, 1)}\n${lines.slice(-40).join('\n')}`;
    expect(report.problems, context).toEqual([]);
    expect(report.ok, context).toBe(true);
    expect(report).toMatchObject({ scene: 'detection', metric: 'map50' });

    const pit = report.sites['pit-3']!;
    expect(pit.before_drift!, context).toBeGreaterThan(0.3);
    expect(pit.during_drift!, context).toBeLessThan(pit.before_drift! - 0.1);
    expect(pit.frames.after_new_model).toBeGreaterThanOrEqual(24);
    expect(pit.after_new_model!, context).toBeGreaterThan(pit.during_drift! + 0.15);
    // The fine-tuned detector scored better on the field holdout than the base one, by the loop's own evaluation.
    expect(report.new_model!.field!, context).toBeGreaterThan(report.new_model!.base_field! + 0.02);
    // Box labels, not class labels: several boxes per labeled frame on average.
    expect(report.labels.used).toBeGreaterThanOrEqual(100);
    expect(report.labels.boxes!).toBeGreaterThan(report.labels.used);
    expect(report.rollouts.map((r) => r.status)).toEqual(['completed', 'completed']);
    expect(report.samples.lost).toBe(0);
    expect(report.recovery_s!).toBeGreaterThan(0);
    expect(lines.some((l) => /clean holdout mAP@0\.5 \d\.\d{3}/.test(l)), context).toBe(true);
  }, 480_000);

  it('refuses an unknown scene as a usage error', async () => {
    const io = { out: (): void => undefined, err: (): void => undefined };
    await expect(demoCmd(['--scene', 'segmentation'], io)).rejects.toMatchObject({ code: 'USAGE', message: expect.stringMatching(/--scene is classification or detection, got segmentation/) });
  });
});
