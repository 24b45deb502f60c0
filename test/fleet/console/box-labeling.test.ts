import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../../../fleet/edges/http/schemas.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { registerDetector, seedDetectSamples } from '../../helpers/detect-samples.js';
import { tempDir } from '../../helpers/packages.js';
import { call, openTestFleet } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the box editor Chromium tests: ${skipReason}`);

const SCREENSHOT = '/tmp/edgeloop-box-editor.png';
type Box = [number, number, number, number];
/** The page's document, as far as these checks read it (the project has no DOM types). */
type Doc = { querySelectorAll(s: string): ArrayLike<unknown>; querySelector(s: string): { textContent: string | null } | null; getElementById(id: string): { complete: boolean; naturalWidth: number } | null };

/** A 1600x1200 frame: shown smaller than that, so every pointer position goes through the display scale. */
const FRAME = { width: 1600, height: 1200 };
const A: Box = [100, 100, 500, 400];
const B: Box = [900, 300, 1300, 800];
const C: Box = [1200, 900, 1500, 1150];

describe.skipIf(skipReason !== null)('box labeling in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;
  const tmp = tempDir('edgeloop-box-console-');
  let errors: string[] = [];

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    await registerDetector(f.ctx, tmp.dir);
    await f.ctx.devices.register('cam-1', { tags: { site: 'pit-1' } });
    await seedDetectSamples(f.ctx, [
      {
        id: 'box-1',
        device: 'cam-1',
        ...FRAME,
        detections: [
          { label: 'red', score: 0.45, box: A },
          { label: 'blue', score: 0.38, box: B },
          { label: 'red', score: 0.3, box: C },
        ],
      },
      { id: 'box-2', device: 'cam-1', width: 640, height: 480, format: 'jpeg', detections: [{ label: 'blue', score: 0.5, box: [10, 20, 300, 200] }] },
      { id: 'box-3', device: 'cam-1', width: 320, height: 240, detections: [{ label: 'red', score: 0.7, box: [5, 5, 50, 50] }] },
    ]);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
    tmp.cleanup();
  });

  async function logIn(token: string, path: string): Promise<Page> {
    const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(m.text());
    });
    await page.goto(`${base}${path}`);
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${base}${path}`), page.click('#login-form button[type=submit]')]);
    return page;
  }

  const labelOf = async (id: string) => S.sampleRecord.parse((await call(base, 'GET', `/v1/samples/${id}`, { token: f.tokens.viewer })).json).label;
  const editorCount = async (page: Page): Promise<string | undefined> => page.$eval('#box-editor', (el) => (el as unknown as { dataset: Record<string, string> }).dataset.boxes);

  it('moves, resizes, deletes and adds boxes with the mouse and keys, saves them in image pixels, and the page undo reverts the label', async () => {
    const page = await logIn(f.tokens.labeler, '/console/labeling');
    // The grid draws the predicted boxes with class and score on the card.
    await page.waitForFunction(() => (globalThis as unknown as { document: Doc }).document.querySelectorAll('.card[data-sample="box-1"] svg.boxes rect.be-body').length === 3);
    expect((await page.$$eval('.card[data-sample="box-1"] svg.boxes text', (els) => els.map((e) => e.textContent))).sort()).toEqual(['blue 38%', 'red 30%', 'red 45%']);

    await page.keyboard.press('Enter'); // the focused card (box-1) opens in the editor
    await page.waitForSelector('#box-editor:not([hidden])');
    await page.waitForFunction(() => {
      const img = (globalThis as unknown as { document: Doc }).document.getElementById('be-img');
      return img !== null && img.complete && img.naturalWidth === 1600;
    });
    expect(await editorCount(page)).toBe('3');
    const r = (await page.locator('#be-svg').boundingBox())!;
    const scale = r.width / FRAME.width; // screen pixels per image pixel
    expect(scale).toBeLessThan(0.8);
    expect(r.height / FRAME.height).toBeCloseTo(scale, 2);
    const at = (x: number, y: number): [number, number] => [r.x + x * scale, r.y + y * scale];
    async function drag(from: [number, number], to: [number, number]): Promise<void> {
      await page.mouse.move(...at(...from));
      await page.mouse.down();
      await page.mouse.move(...at(...to), { steps: 6 });
      await page.mouse.up();
    }

    // Move A by (+200, +100) image pixels: drag its body.
    await drag([300, 250], [500, 350]);
    // Resize B: select it, then drag its bottom-right handle.
    await page.mouse.click(...at(1100, 550));
    await page.waitForSelector('#box-editor[data-selected="1"]');
    await drag([1300, 800], [1400, 1000]);
    // Delete C: select it, Delete.
    await page.mouse.click(...at(1350, 1020));
    await page.waitForSelector('#box-editor[data-selected="2"]');
    await page.keyboard.press('Delete');
    expect(await editorCount(page)).toBe('2');
    // Add a box of class 1 (blue): the key picks the class, a drag on an empty area draws it.
    await page.keyboard.press('1');
    await drag([100, 700], [400, 1100]);
    expect(await editorCount(page)).toBe('3');
    // An edit undone inside the editor: delete the new box, Ctrl+Z brings it back.
    await page.keyboard.press('Backspace');
    expect(await editorCount(page)).toBe('2');
    await page.keyboard.press('Control+z');
    expect(await editorCount(page)).toBe('3');
    await page.screenshot({ path: SCREENSHOT });

    await page.keyboard.press('Enter'); // save
    await page.waitForSelector('.card[data-sample="box-1"][data-state="labeled"]');
    expect(await page.isHidden('#box-editor')).toBe(true);
    expect(await page.textContent('.card[data-sample="box-1"] .current')).toBe('✓ 3 boxes');

    const label = await labelOf('box-1');
    expect(label).toMatchObject({ state: 'labeled', by: 'lena', value: null, boxes: { frame: FRAME } });
    const saved = label!.boxes!.boxes;
    expect(saved.map((b) => b.label)).toEqual(['red', 'blue', 'blue']);
    // Within two screen pixels of where the pointer went, in image pixels.
    const tol = 2 / scale;
    const want: Box[] = [
      [300, 200, 700, 500],
      [900, 300, 1400, 1000],
      [100, 700, 400, 1100],
    ];
    saved.forEach((b, i) => b.box.forEach((v, k) => expect(Math.abs(v - want[i]![k]!), `box ${i} coordinate ${k}: ${v}`).toBeLessThanOrEqual(tol)));
    // B's untouched corner did not move at all.
    expect(saved[1]!.box.slice(0, 2)).toEqual([900, 300]);

    // The page's undo (editor closed) reverts the saved box label like a class label.
    await page.keyboard.press('Control+z');
    await page.waitForSelector('.card[data-sample="box-1"][data-state="unlabeled"]');
    expect(await labelOf('box-1')).toBeNull();
    const h = S.historyResponse.parse((await call(base, 'GET', '/v1/samples/box-1/history', { token: f.tokens.viewer })).json);
    expect(h.items.map((e) => [e.action, e.actor, e.boxes?.boxes.length, e.undone_by])).toEqual([['assign', 'lena', 3, 'lena']]);
    await page.close();
    expect(errors).toEqual([]);
  });

  it('accepts all predicted boxes with one key, and says "nothing here" with none', async () => {
    const page = await logIn(f.tokens.labeler, '/console/labeling');
    await page.click('.card[data-sample="box-2"] img');
    await page.waitForSelector('#box-editor:not([hidden])');
    expect(await editorCount(page)).toBe('1');
    await page.keyboard.press('a');
    await page.waitForSelector('.card[data-sample="box-2"][data-state="labeled"]');
    expect((await labelOf('box-2'))?.boxes).toEqual({ frame: { width: 640, height: 480 }, boxes: [{ label: 'blue', box: [10, 20, 300, 200] }] });

    // Reopen: the editor starts from the saved boxes. A 640x480 frame is shown larger than it is:
    // a box drawn there is still saved in its own pixels.
    await page.click('.card[data-sample="box-2"] img');
    await page.waitForSelector('#box-editor:not([hidden])');
    expect(await editorCount(page)).toBe('1');
    const r = (await page.locator('#be-svg').boundingBox())!;
    const scale = r.width / 640;
    expect(scale).toBeGreaterThan(1.2);
    await page.click('#be-clear');
    await page.keyboard.press('0'); // red
    await page.mouse.move(r.x + 100 * scale, r.y + 150 * scale);
    await page.mouse.down();
    await page.mouse.move(r.x + 400 * scale, r.y + 300 * scale, { steps: 5 });
    await page.mouse.up();
    // The card read '1 box' already (the accepted box): wait for the save itself.
    await Promise.all([page.waitForResponse((res) => res.url().endsWith('/v1/samples/box-2/boxes') && res.request().method() === 'POST' && res.status() === 200), page.keyboard.press('Enter')]);
    const drawn = (await labelOf('box-2'))!.boxes!.boxes;
    expect(drawn.map((b) => b.label)).toEqual(['red']);
    drawn[0]!.box.forEach((v, k) => expect(Math.abs(v - [100, 150, 400, 300][k]!)).toBeLessThanOrEqual(2 / scale));

    // "Nothing here" then Enter saves an empty list.
    await page.click('.card[data-sample="box-2"] img');
    await page.waitForSelector('#box-editor:not([hidden])');
    await page.click('#be-clear');
    expect(await editorCount(page)).toBe('0');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => (globalThis as unknown as { document: Doc }).document.querySelector('.card[data-sample="box-2"] .current')?.textContent === '✓ nothing here');
    expect((await labelOf('box-2'))?.boxes?.boxes).toEqual([]);
    await page.close();
    expect(errors).toEqual([]);
  });

  it('works from the keyboard alone: select, move, resize, add, class, save', async () => {
    const page = await logIn(f.tokens.labeler, '/console/labeling');
    // box-1 was undone above: unlabeled, first in the queue, focused.
    await page.waitForSelector('.card.focused[data-sample="box-1"][data-state="unlabeled"]');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#box-editor:not([hidden])');
    expect(await editorCount(page)).toBe('3');
    await page.keyboard.press('Tab'); // A
    await page.waitForSelector('#box-editor[data-selected="0"]');
    for (let i = 0; i < 3; i++) await page.keyboard.press('Shift+ArrowRight'); // +30 px
    await page.keyboard.press('ArrowDown'); // +1 px
    await page.keyboard.press('Control+Shift+ArrowRight'); // 10 px wider
    await page.keyboard.press('Control+ArrowUp'); // 1 px shorter
    await page.keyboard.press('0'); // A stays red
    await page.keyboard.press('Tab'); // B
    await page.keyboard.press('Tab'); // C
    await page.keyboard.press('Delete');
    await page.keyboard.press('n'); // a new box in the middle, then make it blue
    await page.keyboard.press('1');
    expect(await editorCount(page)).toBe('3');
    await page.keyboard.press('Enter');
    await page.waitForSelector('.card[data-sample="box-1"][data-state="labeled"]');
    expect((await labelOf('box-1'))?.boxes?.boxes).toEqual([
      { label: 'red', box: [130, 101, 540, 400] },
      { label: 'blue', box: B },
      { label: 'blue', box: [600, 450, 1000, 750] },
    ]);
    await page.close();
    expect(errors).toEqual([]);
  });

  it('a viewer sees the boxes but gets no editor', async () => {
    const page = await logIn(f.tokens.viewer, '/console/labeling');
    await page.waitForSelector('.card[data-sample="box-3"] svg.boxes rect.be-body');
    expect(await page.$('#box-editor')).toBeNull();
    // Enter on a detection card does not label for a viewer.
    await page.keyboard.press('Enter');
    await page.waitForSelector('#flash:not([hidden])');
    expect(await page.textContent('#flash')).toBe('Your role may not label.');
    expect(await labelOf('box-3')).toBeNull();
    await page.close();
    expect(errors).toEqual([]);
  });
});
