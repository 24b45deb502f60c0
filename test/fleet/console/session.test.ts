import type { Browser, BrowserContext } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { CLASS_LABELS } from '../../helpers/packages.js';
import { openTestFleet, seedSamples } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

const skipReason = chromiumSkipReason();
if (skipReason) console.info(`[console] skipping the headless Chromium session tests: ${skipReason}`);

describe.skipIf(skipReason !== null)('console sessions in headless Chromium', () => {
  let f: TestFleet;
  let base: string;
  let browser: Browser;

  beforeAll(async () => {
    f = await openTestFleet();
    base = await f.listen();
    await seedSamples(f.ctx, [{ id: 'ses-1', device: 'cam-1', label: 'dog', score: 0.4, labels: CLASS_LABELS, model: { name: 'pets', version: '1.0.0' } }]);
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await f?.close();
  });

  async function logIn(token: string): Promise<BrowserContext> {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${base}/console/`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
    // The page tells people how to get a token, with a command that exists.
    expect(await page.textContent('.login')).toContain('edgeloop users add NAME --role');
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${base}/console/`), page.click('#login-form button[type=submit]')]);
    return context;
  }

  it('logs in to a server-side session (the cookie holds no token, the script none either) and logs out for good', async () => {
    const context = await logIn(f.tokens.operator);
    const page = context.pages()[0]!;
    const cookies = await context.cookies();
    expect(cookies).toHaveLength(1);
    const cookie = cookies[0]!;
    expect(cookie).toMatchObject({ name: 'edgeloop_session', httpOnly: true, sameSite: 'Strict', path: '/', secure: false });
    expect(cookie.value).not.toContain(f.tokens.operator);
    expect(await page.evaluate(() => JSON.stringify((globalThis as unknown as { localStorage: { length: number } }).localStorage.length))).toBe('0');
    expect(await page.getAttribute('.who', 'data-user')).toBe('otto');
    // Operators see the audit log in the navigation.
    await Promise.all([page.waitForURL(`${base}/console/audit`), page.click('nav a[href="/console/audit"]')]);
    expect(await page.textContent('h1')).toBe('Audit log');

    await Promise.all([page.waitForURL(`${base}/console/login`), page.click('form.logout button')]);
    expect(await context.cookies()).toEqual([]);
    // The old cookie, replayed, opens nothing: logout ended the session on the server.
    const replay = await fetch(`${base}/console/`, { redirect: 'manual', headers: { cookie: `${cookie.name}=${cookie.value}` } });
    expect(replay.status).toBe(303);
    await context.close();
  });

  it('ends an open console session when its user is revoked: the next page and the next write are refused', async () => {
    const { token } = f.ctx.users.issue('temp-labeler', 'labeler', { actor: 'ada' });
    const context = await logIn(token);
    const page = context.pages()[0]!;
    await page.goto(`${base}/console/labeling`);
    expect(await page.$$eval('.card', (els) => els.length)).toBe(1);
    f.ctx.users.revoke('temp-labeler', { actor: 'ada' });
    // A keystroke's label write now fails: the script says the session ended.
    await page.keyboard.press('Enter');
    await page.waitForSelector('#flash:not([hidden])');
    expect(await page.textContent('#flash')).toContain('session has ended');
    expect(f.ctx.ingest.get('ses-1').label).toBeNull();
    await page.goto(`${base}/console/labeling`);
    expect(new URL(page.url()).pathname).toBe('/console/login');
    await context.close();
  });
});
