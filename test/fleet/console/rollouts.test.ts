import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { deviceStatus, telemetry } from '../../../shared/schemas/index.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { chartGeometry, outside, overlaps } from '../../helpers/svg-geometry.js';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { openTestFleet, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium tests: ${skipReason}`);

const V1 = { name: 'pets', version: '1.0.0' };
const V2 = { name: 'pets', version: '1.1.0' };

describe.skipIf(skipReason !== null)('rollout truth, in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;
  let id: string;
  const pkgs = tempDir('edgeloop-console-rollouts-');

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    await imagePackage(join(pkgs.dir, 'v1'), { seed: 1 });
    await imagePackage(join(pkgs.dir, 'v2'), { seed: 2, version: '1.1.0' });
    await f.ctx.registry.push(join(pkgs.dir, 'v1'), { actor: 'ada' });
    await f.ctx.registry.push(join(pkgs.dir, 'v2'), { actor: 'ada' });
    for (const d of ['cam-1', 'cam-2', 'cam-3']) await f.ctx.devices.register(d, { tags: { site: 'pit-1' } });
    // cam-1 and cam-2 run 1.0.0 and are online; cam-3 never connected.
    for (const d of ['cam-1', 'cam-2']) {
      f.ctx.devices.applyStatus(deviceStatus.parse({ type: 'device_status', v: 1, device_id: d, ts: new Date(T0).toISOString(), online: true, agent_version: '0.1.0', models: { active: V1, previous: null, installed: [V1] } }));
      f.ctx.devices.applyTelemetry(
        telemetry.parse({
          type: 'telemetry', v: 1, device_id: d, ts: new Date(T0).toISOString(), window_s: 10, model: V1,
          inference: { count: 0, errors: 0, rate_per_s: 0, latency_ms: { p50: 0, p95: 0, p99: 0 } }, confidence_mean: null,
          outliers: { count: 0, rate: 0, by_reason: {} }, drift: { class_psi: null, brightness_psi: null, contrast_psi: null },
          queue: { depth: 0, bytes: 0, quota_bytes: 1 << 20, evicted_total: 0, oldest_age_s: null },
        }),
      );
    }
    // No bake and no reporting minimum: every stage passes at once, before any device confirmed.
    id = f.ctx.rollouts.create({ model: V2, selector: { site: 'pit-1' }, plan: { canary: { devices: { count: 1 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }], gates: { min_devices_reporting: 0, min_reporting_ratio: 0 } }, actor: 'otto' }).state.id;
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    pkgs.cleanup();
  });

  async function logIn(path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(`${base}${path}`);
    await page.fill('#token', f.tokens.viewer);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  it('does not call a rollout completed while targeted devices have not confirmed: shows who is outstanding and why', async () => {
    // The machine passed every stage...
    expect(f.ctx.rollouts.get(id).state.status).toBe('completed');
    const page = await logIn(`/console/rollouts/${id}`);
    // ...but a person reads "converging", with the devices that have not confirmed.
    expect(await page.locator('#rollout-status').innerText()).toBe('converging');
    expect(await page.locator('#converging').innerText()).toContain('3 of 3 targeted devices have not confirmed pets@1.1.0');
    const rows = await page.$$eval('#outstanding tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-device'), tr.querySelector('.why')?.textContent ?? '']));
    expect(rows).toEqual([
      ['cam-1', 'online, but has not reported pets@1.1.0 yet (runs pets@1.0.0)'],
      ['cam-2', 'online, but has not reported pets@1.1.0 yet (runs pets@1.0.0)'],
      ['cam-3', 'never connected: gets it when it first connects'],
    ]);
    // Stages without bake time say so instead of "0 s".
    expect(await page.$$eval('#stages tbody tr td:last-child', (tds) => tds.map((td) => td.textContent))).toEqual(['none', 'none']);
    for (const g of await chartGeometry(page)) {
      expect(outside(g)).toEqual([]);
      expect(overlaps(g)).toEqual([]);
    }
    await page.goto(`${base}/console/rollouts`);
    expect(await page.locator(`#rollouts tr:has(a[href="/console/rollouts/${id}"])`).innerText()).toMatch(/converging\s+3 not confirmed/);
  });

  it('calls it completed once every targeted device confirmed or was explicitly excluded', async () => {
    for (const d of ['cam-1', 'cam-2']) {
      f.clock.advance(1000);
      // As the fleet's status handler does: the registry and the rollout manager both hear it (a
      // completed rollout no longer takes reports; the registry's record is what confirms).
      const st = deviceStatus.parse({ type: 'device_status', v: 1, device_id: d, ts: new Date(f.clock.now()).toISOString(), online: true, agent_version: '0.1.0', models: { active: V2, previous: V1, installed: [V2] }, deployment: { revision: 1, rollout_id: id, target: V2, phase: 'active' } });
      f.ctx.devices.applyStatus(st);
      f.ctx.rollouts.onStatus(st);
    }
    f.ctx.rollouts.flush();
    // cam-3 never connected: still converging until an operator takes it out.
    let page = await logIn(`/console/rollouts/${id}`);
    expect(await page.locator('#rollout-status').innerText()).toBe('converging');
    expect(await page.locator('#converging').innerText()).toContain('1 of 3 targeted devices have not confirmed');
    // Excluding a device that confirmed changes nothing and says so.
    const refused = await fetch(`${base}/v1/rollouts/${id}/exclude`, { method: 'POST', headers: { authorization: `Bearer ${f.tokens.operator}`, 'content-type': 'application/json' }, body: JSON.stringify({ devices: ['cam-1'] }) });
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { message: string } }).error.message).toContain('none of cam-1 is an unconfirmed device');
    const run = await runFleetCli(['rollouts', 'exclude', id, '--outstanding', '--url', base, '--token', f.tokens.operator]);
    expect(run).toMatchObject({ code: 0 });
    expect(run.out).toContain('devices_excluded: 1 devices excluded by');
    expect(run.out).toContain('cam-3');
    page = await logIn(`/console/rollouts/${id}`);
    expect(await page.locator('#rollout-status').innerText()).toBe('completed');
    expect(await page.locator('#outstanding').count()).toBe(0);
    expect(await page.locator('#rollout-devices tr:has(a[href="/console/devices/cam-3"])').innerText()).toContain('excluded: excluded by');
    // The rollout itself stopped listening at completion; the devices table says where it knows it from.
    expect(await page.locator('#rollout-devices tr:has(a[href="/console/devices/cam-2"])').innerText()).toContain('active pets@1.1.0 (device status)');
    const api = (await (await fetch(`${base}/v1/rollouts/${id}`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } })).json()) as { rollout: { display_status: string; devices: { outstanding: number; installed: number } } };
    // cam-1 and cam-2 count as installed by their own status, as they count as confirmed.
    expect(api.rollout).toMatchObject({ display_status: 'completed', devices: { outstanding: 0, installed: 2 } });
  });
});
