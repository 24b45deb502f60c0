import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deviceStatus } from '../../../shared/schemas/index.js';
import { rolloutPlan } from '../../../fleet/core/rollouts/types.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { openTestFleet, T0 as FLEET_T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';
import { devices, EASY_GATES, Harness } from './helpers.js';

/** Twelve devices at three sites, four each. */
const fleet = devices(12).map((d, i) => ({ ...d, tags: { site: ['pit-3', 'ridge-1', 'plant-2'][i % 3] as string } }));

describe('canary placement that prefers the devices the change is for', () => {
  it('lands the canary on the preferred devices, whatever their hash order, and the waves take the rest', () => {
    for (const id of ['ro-a', 'ro-b', 'ro-c', 'ro-d', 'ro-e']) {
      const h = new Harness({ canary: { devices: { count: 2 }, bake_s: 0, prefer: { tag: { site: 'pit-3' } } }, waves: [{ devices: { count: 6 }, bake_s: 0 }, { devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, id);
      const r = h.start(fleet);
      const pit = fleet.filter((d) => d.tags.site === 'pit-3').map((d) => d.id);
      expect(h.onCandidate().every((d) => pit.includes(d)), id).toBe(true);
      expect(h.onCandidate()).toHaveLength(2);
      expect(r.decisions.find((x) => x.kind === 'started')?.reason).toContain('the canary prefers site=pit-3 (4 devices)');
      // The first wave takes the other two of pit-3 before any other site.
      h.healthyReports();
      h.tick(1);
      expect(h.onCandidate()).toEqual(expect.arrayContaining(pit));
    }
  });

  it('without a preference the order is the hash order, as before (the canary is not always the same site)', () => {
    const sites = new Set<string>();
    for (const id of ['ro-a', 'ro-b', 'ro-c', 'ro-d', 'ro-e', 'ro-f']) {
      const h = new Harness({ canary: { devices: { count: 1 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: EASY_GATES }, id);
      h.start(fleet);
      for (const d of h.onCandidate()) sites.add(fleet.find((x) => x.id === d)?.tags.site as string);
    }
    expect(sites.size).toBeGreaterThan(1);
  });

  it('refuses a preference without a tag, naming the key', () => {
    const r = rolloutPlan.safeParse({ canary: { devices: { count: 1 }, prefer: { tag: {} } } });
    expect(r.success).toBe(false);
    expect(JSON.stringify(r.error?.issues)).toContain('"canary","prefer","tag"');
  });
});

describe('canary preference through the fleet (registry tags, real SQLite)', () => {
  let f: TestFleet;
  const pkgs = tempDir('edgeloop-prefer-');
  beforeAll(async () => {
    f = await openTestFleet();
    await imagePackage(join(pkgs.dir, 'v1'), { seed: 1 });
    await f.ctx.registry.push(join(pkgs.dir, 'v1'), { actor: 'ada' });
    for (let i = 0; i < 9; i++) {
      const id = `cam-${i}`;
      await f.ctx.devices.register(id, { tags: { app: 'digits', site: ['pit-3', 'ridge-1', 'plant-2'][i % 3] as string } });
      f.ctx.devices.applyStatus(deviceStatus.parse({ type: 'device_status', v: 1, device_id: id, ts: new Date(FLEET_T0).toISOString(), online: true, agent_version: '0.1.0', models: { active: null, previous: null, installed: [] } }));
    }
  });
  afterAll(async () => {
    await f.close();
    pkgs.cleanup();
  });

  it('a plan with canary.prefer puts the canary at the preferred site', () => {
    const ro = f.ctx.rollouts.create({ model: { name: 'pets', version: '1.0.0' }, selector: { app: 'digits' }, plan: { canary: { devices: { count: 2 }, bake_s: 60, prefer: { tag: { site: 'pit-3' } } }, waves: [{ devices: { percent: 100 } }] }, actor: 'otto' });
    const canary = Object.entries(ro.state.devices).filter(([, d]) => d.assigned_stage === 0).map(([id]) => id);
    expect(canary).toHaveLength(2);
    for (const id of canary) expect(f.ctx.devices.get(id).tags.site).toBe('pit-3');
  });
});
