import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCampaign, type CampaignResult } from '../../chaos/campaign.js';
import { FAULT_KINDS } from '../../chaos/faults.js';
import { tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
beforeAll(() => {
  tmp = tempDir('edgeloop-chaos-');
});
afterAll(() => tmp.cleanup());

describe('fault campaign (npm run chaos, short)', () => {
  it('loses nothing, stores nothing twice, and every device converges, through every kind of fault', async () => {
    const lines: string[] = [];
    let r: CampaignResult;
    try {
      r = await runCampaign({ minutes: 1, agents: 3, seed: 13, faultEveryMs: 700, dir: tmp.dir, settleMs: 150_000, say: (l) => lines.push(l), log: pino({ level: 'silent' }) });
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${lines.join('\n')}`);
    }
    const why = JSON.stringify({ ...r, progress: lines.slice(-5) });
    expect(r.lost, why).toBe(0);
    // Exact, id by id: every returned id the fleet lacks is on its device's drop record.
    expect(r.by_count, why).toBe(0);
    expect(r.missing, why).toBeGreaterThan(0);
    expect(r.duplicated, why).toBe(0);
    expect(r.converged, why).toBe(true);
    for (const k of FAULT_KINDS) expect(r.faults[k], `${k}: ${why}`).toBeGreaterThan(0);
    // The faults did bite: the fill evicted, and the ledger counts captures.
    expect(r.evicted, why).toBeGreaterThan(0);
    expect(r.captured, why).toBeGreaterThan(100);
    expect(r.received + r.evicted, why).toBeGreaterThanOrEqual(r.captured);
    expect(r.rollouts, why).toBeGreaterThanOrEqual(2);
  }, 600_000); // a minute of faults, process starts from sources (tsx) and the settling, on a loaded 2-core host
});
