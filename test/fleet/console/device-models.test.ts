import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { deviceStatus } from '../../../shared/schemas/index.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { openTestFleet, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium tests: ${skipReason}`);

const DET1 = { name: 'detector', version: '1.0.0' };
const DET2 = { name: 'detector', version: '2.0.0' };
const PPE1 = { name: 'ppe-classifier', version: '1.0.0' };
const PPE2 = { name: 'ppe-classifier', version: '2.0.0' };

/** A device serving two models (issue 14): the detector being rolled out, the classifier with a shadow candidate. */
const twoSlots = deviceStatus.parse({
  type: 'device_status',
  v: 1,
  device_id: 'cam-multi',
  ts: new Date(T0).toISOString(),
  online: true,
  agent_version: '0.1.0',
  models: { active: DET1, previous: null, installed: [DET1, DET2, PPE1, PPE2] },
  deployment: { revision: 7, rollout_id: 'ro-det', target: DET2, phase: 'verifying' },
  slots: [
    { name: 'detector', active: DET1, previous: null, shadow: null, installed: [DET1, DET2], deployment: { revision: 7, rollout_id: 'ro-det', target: DET2, phase: 'verifying' } },
    { name: 'ppe-classifier', active: PPE1, previous: null, shadow: PPE2, installed: [PPE1, PPE2], deployment: { revision: 6, rollout_id: 'ro-ppe', target: PPE2, phase: 'shadow' } },
  ],
});
/** An agent older than model slots: one model, no `slots`. */
const oneModel = deviceStatus.parse({ type: 'device_status', v: 1, device_id: 'cam-old', ts: new Date(T0).toISOString(), online: true, agent_version: '0.0.9', models: { active: DET1, previous: null, installed: [DET1] } });

describe.skipIf(skipReason !== null)('a device serving several models, in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    for (const id of ['cam-multi', 'cam-old']) await f.ctx.devices.register(id, { tags: { site: 'pit-3' } });
    f.clock.set(T0);
    f.ctx.devices.applyStatus(twoSlots);
    f.ctx.devices.applyStatus(oneModel);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  const errors: string[] = [];
  async function logIn(path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${base}${path}`);
    await page.fill('#token', f.tokens.viewer);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  it('lists each model slot on the device page: active, previous, shadow and deployment phase', async () => {
    const page = await logIn('/console/devices/cam-multi');
    const rows = await page.$$eval('#model-slots tbody tr', (trs) => trs.map((tr) => [tr.getAttribute('data-model'), ...Array.from(tr.querySelectorAll('td')).slice(1).map((td) => ((td as { textContent: string | null }).textContent ?? '').replace(/\s+/g, ' ').trim())]));
    expect(rows).toEqual([
      ['detector', '1.0.0', '—', '—', 'verifying detector@2.0.0 · ro-det'],
      ['ppe-classifier', '1.0.0', '—', '2.0.0', 'shadow ppe-classifier@2.0.0 · ro-ppe'],
    ]);
    expect(await page.getAttribute('#model-slots tr[data-model="ppe-classifier"] a', 'href')).toBe('/console/rollouts/ro-ppe');

    // An agent older than slots shows its one model as one slot.
    const old = await logIn('/console/devices/cam-old');
    expect(await old.$$eval('#model-slots tbody tr', (trs) => trs.map((tr) => tr.getAttribute('data-model')))).toEqual(['detector']);
    expect(errors).toEqual([]);
  });

  it('shows every model of each device in the devices table', async () => {
    const page = await logIn('/console/');
    expect(await page.locator('#devices tr[data-device="cam-multi"] td.models').innerText()).toBe('detector@1.0.0, ppe-classifier@1.0.0');
    expect(await page.locator('#devices tr[data-device="cam-old"] td.models').innerText()).toBe('detector@1.0.0');
    // The API says the same (GET /v1/devices/:id carries the slots as reported).
    const res = await fetch(`${base}/v1/devices/cam-multi`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { slots: Array<{ name: string }> }).slots.map((s) => s.name)).toEqual(['detector', 'ppe-classifier']);
    expect(errors).toEqual([]);
  });
});
