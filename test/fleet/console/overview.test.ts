import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { deviceStatus, telemetry } from '../../../shared/schemas/index.js';
import { barChart } from '../../../fleet/edges/console/charts.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { chartGeometry, outside, overlaps } from '../../helpers/svg-geometry.js';
import { openTestFleet, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium tests: ${skipReason}`);

const MODEL = { name: 'pets', version: '1.0.0' };

function tele(device: string, at: number, o: { rate?: number; outliers?: number; cls?: number | null; brightness?: number | null; contrast?: number | null } = {}): ReturnType<typeof telemetry.parse> {
  return telemetry.parse({
    type: 'telemetry',
    v: 1,
    device_id: device,
    ts: new Date(at).toISOString(),
    window_s: 10,
    model: MODEL,
    inference: { count: Math.round((o.rate ?? 2) * 10), errors: 0, rate_per_s: o.rate ?? 2, latency_ms: { p50: 4, p95: 8, p99: 12 } },
    confidence_mean: 0.9,
    outliers: { count: 1, rate: o.outliers ?? 0.02, by_reason: {} },
    drift: { class_psi: o.cls ?? 0.02, brightness_psi: o.brightness ?? 0.01, contrast_psi: o.contrast ?? 0.01 },
    queue: { depth: 0, bytes: 0, quota_bytes: 1 << 20, evicted_total: 0, oldest_age_s: null },
  });
}

function status(device: string, at: number): ReturnType<typeof deviceStatus.parse> {
  return deviceStatus.parse({ type: 'device_status', v: 1, device_id: device, ts: new Date(at).toISOString(), online: true, agent_version: '0.1.0', models: { active: MODEL, previous: null, installed: [MODEL] } });
}

describe.skipIf(skipReason !== null)('overview by site, in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;
  const pkgs = tempDir('edgeloop-console-overview-');
  const shots = tempDir('edgeloop-console-shots-');

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    // The model's own drift setting: trouble at input PSI 0.5 (the demo's digit models ship it).
    await imagePackage(join(pkgs.dir, 'v1'), { seed: 1, extra: { outlier: { drift_psi: 0.5 } } });
    await f.ctx.registry.push(join(pkgs.dir, 'v1'), { actor: 'ada' });
    for (const [id, site] of [
      ['pit-3-cam-1', 'pit-3'],
      ['pit-3-cam-2', 'pit-3'],
      ['ridge-1-cam-1', 'ridge-1'],
      ['plant-2-cam-1', 'plant-2'],
      ['plant-2-cam-2', 'plant-2'],
    ] as const) {
      await f.ctx.devices.register(id, { tags: { site } });
    }
    // Two hours of telemetry, a window a minute: pit-3-cam-1's brightness drifts for the last
    // half hour (to PSI 3.7, as in the demo); its class PSI only moderately (0.125).
    const start = T0 - 2 * 3_600_000;
    for (let t = start; t <= T0; t += 60_000) {
      const drifting = t > T0 - 30 * 60_000;
      f.clock.set(t);
      f.ctx.devices.applyTelemetryBatch([
        tele('pit-3-cam-1', t, drifting ? { brightness: 0.5 + (3.2 * (t - (T0 - 30 * 60_000))) / (30 * 60_000), cls: 0.125, outliers: 0.2 } : {}),
        tele('pit-3-cam-2', t),
        tele('ridge-1-cam-1', t, { rate: 0 }),
        tele('plant-2-cam-1', t),
      ]);
    }
    f.clock.set(T0);
    for (const id of ['pit-3-cam-1', 'pit-3-cam-2', 'ridge-1-cam-1', 'plant-2-cam-1']) f.ctx.devices.applyStatus(status(id, T0));
    // plant-2-cam-2 never connected; the rest were heard from 20 s ago.
    f.clock.set(T0 + 20_000);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    pkgs.cleanup();
    shots.cleanup();
  });

  let errors: string[] = [];
  async function logIn(path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${base}${path}`);
    await page.fill('#token', f.tokens.viewer);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  /** The rendered background colour of the first element a selector finds, as [r, g, b]. */
  const background = async (page: Page, selector: string): Promise<number[]> =>
    (await page.$eval(selector, (el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor)).match(/\d+/g)?.slice(0, 3).map(Number) ?? [];
  const reddish = ([r, g, b]: number[]): boolean => (r ?? 0) > (g ?? 0) + 20 && (r ?? 0) > (b ?? 0) + 20;

  it('puts the drifting site first, with its reason and the model’s own threshold, coloured as trouble', async () => {
    const page = await logIn('/console/');
    const first = page.locator('#needs-attention li').first();
    expect(await first.getAttribute('data-device')).toBe('pit-3-cam-1');
    expect(await first.getAttribute('data-level')).toBe('trouble');
    // Worst PSI of any kind (brightness, not the class PSI the old page showed), against the manifest's drift_psi.
    expect(await first.innerText()).toMatch(/pit-3 › pit-3-cam-1: brightness PSI 3\.70 ≥ 0\.50; outlier rate 20\.0% ≥ 15\.0%/);
    expect(reddish(await background(page, '#needs-attention li.trouble'))).toBe(true);

    const sites = await page.$$eval('#sites tbody tr', (rows) => rows.map((r) => [r.getAttribute('data-site'), r.getAttribute('data-level')]));
    expect(sites).toEqual([
      ['pit-3', 'trouble'],
      ['plant-2', 'trouble'],
      ['ridge-1', 'ok'],
    ]);
    const pit = page.locator('#sites tr[data-site="pit-3"]');
    expect(await pit.locator('td').nth(4).innerText()).toBe('brightness 3.70');
    expect(reddish(await background(page, '#sites tr[data-site="pit-3"] .badge.trouble'))).toBe(true);
    // plant-2: one device online, one that never connected, which is trouble and says so.
    expect(await page.locator('#sites tr[data-site="plant-2"] td').nth(2).innerText()).toBe('1');
    expect(await page.locator('#sites tr[data-site="plant-2"] td').nth(3).innerText()).toBe('1');
    expect(await page.locator('#needs-attention li[data-device="plant-2-cam-2"]').innerText()).toContain('never connected');
    expect(errors).toEqual([]);
    const shot = join(shots.dir, 'overview.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(statSync(shot).size).toBeGreaterThan(10_000);
  });

  it('shows offline as not-ok, idle devices as "no traffic", and times relative with the absolute time and zone on hover', async () => {
    const page = await logIn('/console/');
    const offline = await background(page, 'tr[data-device="plant-2-cam-2"] .badge.offline');
    expect(reddish(offline)).toBe(true);
    const idle = await page.locator('#devices tr[data-device="ridge-1-cam-1"]').innerText();
    expect(idle).toContain('no traffic');
    expect(idle).not.toMatch(/0\.0\/s|p95 0\.0/);
    const seen = page.locator('#devices tr[data-device="pit-3-cam-1"] time');
    expect(await seen.innerText()).toBe('20 s ago');
    expect(await seen.getAttribute('title')).toBe('2025-03-01 10:00:00 UTC');
    // Every time on the pages a person reads has its absolute form and zone on hover.
    for (const path of ['/console/', '/console/devices/pit-3-cam-1', '/console/sites/pit-3', '/console/models']) {
      await page.goto(`${base}${path}`);
      const titles = await page.$$eval('time', (ts) => ts.map((t) => t.getAttribute('title') ?? ''));
      for (const t of titles) expect(t, path).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
    }
    expect(errors).toEqual([]);
  });

  it('drills down from a site to its devices and to a device with its PSI history, one signal per chart, no text overlapping or outside', async () => {
    const page = await logIn('/console/');
    await Promise.all([page.waitForURL(`${base}/console/sites/pit-3`), page.click('#sites a[href="/console/sites/pit-3"]')]);
    expect(await page.$$eval('#devices tbody tr', (rows) => rows.map((r) => r.getAttribute('data-device')))).toEqual(['pit-3-cam-1', 'pit-3-cam-2']);
    await Promise.all([page.waitForURL(`${base}/console/devices/pit-3-cam-1`), page.click('#devices a[href="/console/devices/pit-3-cam-1"]')]);
    const charts = await chartGeometry(page);
    const history = charts.filter((c) => / over the last 6h$/.test(c.label));
    expect(history.map((c) => c.label)).toEqual(['class PSI of pit-3-cam-1 over the last 6h', 'brightness PSI of pit-3-cam-1 over the last 6h', 'contrast PSI of pit-3-cam-1 over the last 6h', 'outlier rate of pit-3-cam-1 over the last 6h']);
    // Two hours a minute apart: 121 points in each PSI chart's polyline.
    const points = await page.$$eval('#drift-history svg polyline', (ls) => ls.map((l) => (l.getAttribute('points') ?? '').split(' ').length));
    expect(points).toEqual([121, 121, 121, 121]);
    // Each chart has its own axis: the brightness chart reaches 5 (above 3.7), the contrast chart to its 0.5 threshold.
    const ticks = (label: string): string[] => (history.find((c) => c.label.startsWith(label))?.texts ?? []).map((t) => t.text);
    expect(ticks('brightness PSI')).toEqual(expect.arrayContaining(['0', '2.5', '5']));
    expect(ticks('contrast PSI')).toEqual(expect.arrayContaining(['0', '0.25', '0.5']));
    expect(ticks('brightness PSI')).toEqual(expect.arrayContaining(['attention 0.25', 'trouble 0.50']));
    for (const c of charts) {
      expect(c.texts.length, c.label).toBeGreaterThan(1);
      expect(outside(c)).toEqual([]);
      expect(overlaps(c)).toEqual([]);
    }
    const shot = join(shots.dir, 'device.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(existsSync(shot)).toBe(true);
    // The 7-day window is another read of the same stored history.
    await page.goto(`${base}/console/devices/pit-3-cam-1?window=7d`);
    expect((await chartGeometry(page)).filter((c) => c.label.endsWith('over the last 7d'))).toHaveLength(4);
    expect(errors).toEqual([]);
  });

  it('never prints thresholds 0.1 and 0.25 over each other ("0.1.25"), nor a value past the border', async () => {
    // The case from the issue: class PSI 0.125 and brightness PSI 3.7 on one scale with both references.
    const chart = barChart(
      [
        { label: 'class PSI', value: 0.125, threshold: 0.25 },
        { label: 'brightness PSI', value: 3.7, threshold: 0.25, ok: false },
        { label: 'contrast PSI', value: 0.0123456, threshold: 0.25, ok: true },
      ],
      { title: 'drift', refs: [{ value: 0.1, label: '0.1' }, { value: 0.25, label: '0.25' }] },
    );
    const css = readFileSync(new URL('../../../fleet/edges/console/static/console.css', import.meta.url), 'utf8');
    const page = await (await browser.newContext()).newPage();
    await page.setContent(`<!doctype html><style>${css}</style><body>${chart.value}</body>`);
    const [c] = await chartGeometry(page);
    expect(c?.texts.map((t) => t.text)).toEqual(expect.arrayContaining(['0.1', '0.25', '3.700 / 0.250']));
    expect(outside(c as NonNullable<typeof c>)).toEqual([]);
    expect(overlaps(c as NonNullable<typeof c>)).toEqual([]);
  });

  it('answers the same overview on the API', async () => {
    const res = await fetch(`${base}/v1/sites`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { sites: Array<{ site: string; level: string; worst_psi: { kind: string; value: number } | null }>; attention: Array<{ device: string }> };
    expect(body.sites[0]).toMatchObject({ site: 'pit-3', level: 'trouble', worst_psi: { kind: 'brightness', value: 3.7 } });
    expect(body.attention[0]?.device).toBe('pit-3-cam-1');
  });
});
