import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runDemo } from '../../fleet/demo/run.js';
import { tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir();
});
afterAll(() => tmp.cleanup());

describe('edgeloop demo (shortened)', () => {
  it('trains, starts real agents, feeds cameras, drifts one, and accounts for every sample', async () => {
    const lines: string[] = [];
    const report = await runDemo({
      dataDir: tmp.dir,
      durationS: 8,
      cameras: 2,
      rate: 4,
      driftAfterS: 3,
      log: pino({ level: 'silent' }),
      say: (l) => lines.push(l),
      training: { trainCount: 2000, epochs: 4 },
    });
    expect(lines.some((l) => l.includes('/healthz'))).toBe(true);
    expect(report.model).toMatchObject({ name: 'digits', version: '1.0.0', cached: false });
    for (const c of report.cameras) {
      expect(c.results).toBe(c.fed);
      expect(c.errors).toBe(0);
      expect(c.accuracy_before_drift!).toBeGreaterThan(0.6);
    }
    const drifting = report.cameras.find((c) => c.drifting)!;
    const steady = report.cameras.find((c) => !c.drifting)!;
    expect(drifting.accuracy_during_drift!).toBeLessThan(steady.accuracy_before_drift! - 0.2);
    expect(report.samples).toMatchObject({ lost: 0, backlog: 0 });
    expect(report.samples.received).toBe(report.samples.captured);

    // A second run reuses the cached model.
    const again = await runDemo({ dataDir: tmp.dir, durationS: 1, cameras: 1, rate: 2, driftAfterS: 100, log: pino({ level: 'silent' }), say: () => undefined });
    expect(again.model.cached).toBe(true);
  });
});
