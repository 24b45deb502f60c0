import { join } from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../../../fleet/edges/http/schemas.js';
import { CLASS_LABELS, imagePackage, tempDir } from '../../helpers/packages.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { call, openTestFleet, seedSamples, T0 } from '../http/context.js';
import type { SeedSample, TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium tests: ${skipReason}`);

const SCREENSHOT = '/tmp/edgeloop-labeling.png';
const PETS = { name: 'pets', version: '1.0.0' };

/** Eight pets samples from two cameras; the grid shows them in this order (arrival order). */
const SAMPLES: SeedSample[] = [
  { id: 'lab-01', device: 'cam-1', label: 'cat', score: 0.41 },
  { id: 'lab-02', device: 'cam-1', label: 'bird', score: 0.52 },
  { id: 'lab-03', device: 'cam-2', label: 'dog', score: 0.33 },
  { id: 'lab-04', device: 'cam-2', label: 'fish', score: 0.47 },
  { id: 'lab-05', device: 'cam-1', label: 'dog', score: 0.29 },
  { id: 'lab-06', device: 'cam-2', label: 'cat', score: 0.58 },
  { id: 'lab-07', device: 'cam-1', label: 'bird', score: 0.36 },
  { id: 'lab-08', device: 'cam-2', label: 'fish', score: 0.44 },
].map((s, i) => ({ ...s, labels: CLASS_LABELS, model: PETS, seed: i + 1, capturedAt: T0 + i * 1000, reasons: i % 3 === 0 ? ['low_confidence', 'drift'] : ['low_confidence'] }));

describe.skipIf(skipReason !== null)('web console in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;
  const pkgs = tempDir('edgeloop-console-e2e-');

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    await imagePackage(join(pkgs.dir, 'v1'), { seed: 1 });
    await f.ctx.registry.push(join(pkgs.dir, 'v1'), { actor: 'ada' });
    for (const [id, site] of [
      ['cam-1', 'pit-1'],
      ['cam-2', 'pit-2'],
    ] as const) {
      await f.ctx.devices.register(id, { tags: { site } });
    }
    await seedSamples(f.ctx, SAMPLES);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    pkgs.cleanup();
  });

  /** Page errors and console errors: every test ends with none. */
  let errors: string[] = [];

  async function logIn(token: string, path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 960 } })).newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${base}${path}`);
    // No session yet: the console sends us to the login form first.
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  const progress = async (page: Page): Promise<Record<string, string | undefined>> => page.$eval('#progress', (el) => ({ ...(el as unknown as { dataset: Record<string, string> }).dataset }));
  const focusedSample = async (page: Page): Promise<string | null> => page.$eval('.card.focused', (el) => el.getAttribute('data-sample'));
  const stateOf = async (page: Page, id: string): Promise<string | null> => page.$eval(`.card[data-sample="${id}"]`, (el) => el.getAttribute('data-state'));

  async function waitProgress(page: Page, want: { labeled: number; skipped: number }): Promise<void> {
    await page.waitForFunction(
      ({ labeled, skipped }) => {
        const el = globalThis as unknown as { document: { getElementById(id: string): { dataset: Record<string, string> } | null } };
        const p = el.document.getElementById('progress');
        return p?.dataset.labeled === String(labeled) && p?.dataset.skipped === String(skipped);
      },
      want,
      { timeout: 10_000 },
    );
  }

  it('labels by keyboard, updates the progress count, and exports exactly those labels', async () => {
    const page = await logIn(f.tokens.labeler, '/console/labeling');
    expect(await page.$$eval('.card', (els) => els.map((e) => e.getAttribute('data-sample')))).toEqual(SAMPLES.map((s) => s.id));
    expect(await progress(page)).toMatchObject({ labeled: '0', skipped: '0', unlabeled: '8', total: '8' });
    expect(await page.textContent('#progress')).toBe('0 labeled · 0 skipped · 8 to go (of 8)');
    // Every image arrived (the cookie authorises the <img> requests).
    await page.waitForFunction(() => {
      const d = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<{ complete: boolean; naturalWidth: number }> } }).document;
      return Array.from(d.querySelectorAll('.card img')).every((i) => i.complete && i.naturalWidth === 32);
    });
    expect(await focusedSample(page)).toBe('lab-01');

    await page.keyboard.press('1'); // lab-01: label index 1 of the pets labels = dog
    await page.keyboard.press('Enter'); // lab-02: confirm the prediction (bird)
    await page.keyboard.press('s'); // lab-03: skip
    await page.keyboard.press('c'); // lab-04: first letter = cat
    await waitProgress(page, { labeled: 3, skipped: 1 });
    expect(await page.textContent('#progress')).toBe('3 labeled · 1 skipped · 4 to go (of 8)');
    expect(await page.textContent('.card[data-sample="lab-01"] .current')).toBe('✓ dog');
    expect(await stateOf(page, 'lab-03')).toBe('skipped');
    expect(await focusedSample(page)).toBe('lab-05');

    await page.keyboard.press('u'); // undo lab-04's cat: focus goes back to it
    await waitProgress(page, { labeled: 2, skipped: 1 });
    await page.waitForFunction(() => (globalThis as unknown as { document: { querySelector(s: string): unknown } }).document.querySelector('.card.focused[data-sample="lab-04"][data-state="unlabeled"]') !== null);
    await page.keyboard.press('f'); // lab-04: fish
    await page.keyboard.press('ArrowRight'); // skip over lab-05 to lab-06
    await page.keyboard.press('2'); // lab-06: bird
    await waitProgress(page, { labeled: 4, skipped: 1 });
    await page.keyboard.press('Control+z'); // undo lab-06
    await waitProgress(page, { labeled: 3, skipped: 1 });
    expect(await stateOf(page, 'lab-06')).toBe('unlabeled');
    expect(await focusedSample(page)).toBe('lab-06');
    await page.keyboard.press('ArrowLeft');
    expect(await focusedSample(page)).toBe('lab-05');
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await page.fill('#dataset-name', 'keyboard-round');
    await page.click('#export');
    await page.waitForSelector('#export-result[data-dataset-id]');
    const id = await page.getAttribute('#export-result', 'data-dataset-id');
    expect(await page.textContent('#export-result')).toMatch(/Exported dataset [0-9a-f]{12} · 3 entries/);

    const ds = (await call(base, 'GET', `/v1/datasets/${id}`, { token: f.tokens.viewer })).json as { name: string; created_by: string; entries: Array<{ sample_id: string; label: string; labeled_by: string }> };
    expect(ds.name).toBe('keyboard-round');
    expect(ds.created_by).toBe('lena');
    expect(ds.entries.map((e) => [e.sample_id, e.label, e.labeled_by])).toEqual([
      ['lab-01', 'dog', 'lena'],
      ['lab-02', 'bird', 'lena'],
      ['lab-04', 'fish', 'lena'],
    ]);
    // What the keys did, as the history keeps it.
    const h4 = S.historyResponse.parse((await call(base, 'GET', '/v1/samples/lab-04/history', { token: f.tokens.viewer })).json);
    expect(h4.items.map((e) => [e.action, e.label, e.undone_at !== null])).toEqual([
      ['assign', 'cat', true],
      ['assign', 'fish', false],
    ]);
    expect(S.sampleRecord.parse((await call(base, 'GET', '/v1/samples/lab-03', { token: f.tokens.viewer })).json).label?.state).toBe('skipped');
    await page.close();
    expect(errors).toEqual([]);
  });

  it('filters the grid and keeps the progress count to the filter', async () => {
    const page = await logIn(f.tokens.labeler, '/console/labeling');
    await page.selectOption('select[name=device]', 'cam-2');
    await Promise.all([page.waitForURL(/device=cam-2/), page.click('#filters button[type=submit]')]);
    // cam-2 has lab-03 (skipped), lab-04 (labeled), lab-06, lab-08: the queue shows the unlabeled first, then the skipped one.
    expect(await page.$$eval('.card', (els) => els.map((e) => e.getAttribute('data-sample')))).toEqual(['lab-06', 'lab-08', 'lab-03']);
    expect(await progress(page)).toMatchObject({ labeled: '1', skipped: '1', total: '4' });
    await page.keyboard.press('Enter'); // lab-06: confirm cat
    await waitProgress(page, { labeled: 2, skipped: 1 });
    await page.close();
    expect(errors).toEqual([]);
  });

  it('pauses and resumes a rollout from its page', async () => {
    const id = f.ctx.rollouts.create({ model: PETS, selector: { site: 'pit-1' }, plan: { canary: { devices: { count: 1 } } }, actor: 'otto' }).state.id;
    const page = await logIn(f.tokens.operator, `/console/rollouts/${id}`);
    expect(await page.textContent('h1 .badge')).toBe('running');
    expect(await page.isDisabled('button[data-command=resume]')).toBe(true);
    await Promise.all([page.waitForEvent('load'), page.click('button[data-command=pause]')]);
    expect(await page.textContent('h1 .badge')).toBe('paused');
    expect(f.ctx.rollouts.get(id).state.status).toBe('paused');
    await Promise.all([page.waitForEvent('load'), page.click('button[data-command=resume]')]);
    expect(await page.textContent('h1 .badge')).toBe('running');
    expect(await page.$$('svg.chart')).not.toHaveLength(0);
    await page.close();
    expect(errors).toEqual([]);
  });
});
