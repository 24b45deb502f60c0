import { generateKeyPairSync } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteUsersRepo } from '../../../fleet/adapters/sqlite/users-repo.js';
import { Users } from '../../../fleet/app/users.js';
import { telemetry } from '../../../shared/schemas/index.js';
import { CLASS_LABELS, imagePackage, tempDir } from '../../helpers/packages.js';
import { call, openTestFleet, seedSamples, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';

let f: TestFleet;
let base: string;
let rolloutId: string;
const pkgs = tempDir('edgeloop-console-pkgs-');

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
  await imagePackage(join(pkgs.dir, 'v1'), { seed: 1 });
  await imagePackage(join(pkgs.dir, 'v2'), { seed: 2, version: '1.1.0', extra: { lineage: { parent: { name: 'pets', version: '1.0.0' } }, evaluation: { accuracy: 0.93 } } });
  await f.ctx.registry.push(join(pkgs.dir, 'v1'), { actor: 'ada' });
  await f.ctx.registry.push(join(pkgs.dir, 'v2'), { actor: 'ada' });
  await f.ctx.devices.register('cam-1', { tags: { site: 'pit-1' } });
  // Tags come from people: the pages must escape them.
  await f.ctx.devices.register('cam-2', { tags: { site: '<script>alert(1)</script>' } });
  // cam-2 logs in with a certificate, cam-1 with its secret.
  f.ctx.certificates.issue('cam-2', generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).publicKey.export({ type: 'spki', format: 'pem' }) as string, { actor: 'ada', days: 30 });
  f.ctx.devices.applyTelemetry(
    telemetry.parse({
      type: 'telemetry',
      v: 1,
      device_id: 'cam-1',
      ts: new Date(T0).toISOString(),
      window_s: 10,
      model: { name: 'pets', version: '1.0.0' },
      inference: { count: 100, errors: 0, rate_per_s: 10, latency_ms: { p50: 4, p95: 9, p99: 12 } },
      confidence_mean: 0.8,
      outliers: { count: 3, rate: 0.03, by_reason: {} },
      drift: { class_psi: 0.31, brightness_psi: 0.12, contrast_psi: null },
      queue: { depth: 5, bytes: 1024, quota_bytes: 1 << 20, evicted_total: 0, oldest_age_s: 3 },
    }),
  );
  rolloutId = f.ctx.rollouts.create({ model: { name: 'pets', version: '1.1.0' }, selector: { site: 'pit-1' }, plan: { canary: { devices: { count: 1 } } }, actor: 'otto' }).state.id;
  await seedSamples(f.ctx, [
    { id: 'p-1', device: 'cam-1', label: 'dog', score: 0.4, labels: CLASS_LABELS, model: { name: 'pets', version: '1.0.0' } },
    { id: 'p-2', device: 'cam-2', label: 'cat', score: 0.7, labels: CLASS_LABELS, model: { name: 'pets', version: '1.0.0' } },
  ]);
});
afterAll(async () => {
  await f.close();
  pkgs.cleanup();
});

async function login(token: string): Promise<string> {
  const res = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token, next: '/console/models' }) });
  expect(res.status).toBe(303);
  expect(res.headers.get('location')).toBe('/console/models');
  const cookie = res.headers.get('set-cookie') ?? '';
  expect(cookie).toMatch(/HttpOnly/);
  expect(cookie).toMatch(/SameSite=Strict/);
  expect(cookie).toMatch(/Path=\//);
  // Plain HTTP: no Secure (the browser would drop the cookie); and never the API token itself.
  expect(cookie).not.toMatch(/Secure/);
  expect(cookie).not.toContain(token);
  return cookie.split(';')[0] as string;
}

const get = async (path: string, cookie?: string): Promise<Response> => fetch(`${base}${path}`, { redirect: 'manual', headers: cookie ? { cookie } : {} });

describe('console pages', () => {
  it('sends a visitor without a session to the login page, and refuses a wrong token', async () => {
    const res = await get('/console/labeling?device=cam-1');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/console/login?next=${encodeURIComponent('/console/labeling?device=cam-1')}`);
    expect((await get('/console/login')).status).toBe(200);
    const bad = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'token=elt_wrong&next=/console/' });
    expect(bad.status).toBe(401);
    expect(await bad.text()).toContain('That token is not valid');
    expect((await fetch(`${base}/`, { redirect: 'manual' })).headers.get('location')).toBe('/console/');
  });

  it('renders every page for a signed-in user, escaped, with a strict CSP', async () => {
    const cookie = await login(f.tokens.viewer);
    const pages: Array<[string, string[]]> = [
      ['/console/', ['cam-1', 'Needs attention', 'id="sites"', 'model versions']],
      ['/console/devices/cam-1', ['Drift now (PSI)', 'Drift over time', 'class PSI', '<svg', 'Latest samples', '<dt>login</dt><dd>secret <span class="muted">(set 20', ' UTC)</span>']],
      ['/console/devices/cam-2', ['<dt>login</dt><dd>certificate <span class="muted">until 20', ' UTC, serial ', f.ctx.devices.get('cam-2').certificate!.serial]],
      ['/console/rollouts', [rolloutId, 'pets@1.1.0']],
      [`/console/rollouts/${rolloutId}`, ['data-command="pause"', 'Stages', 'canary', 'Decisions', 'role viewer cannot command rollouts']],
      ['/console/models', ['pets', '1.1.0', 'accuracy']],
      ['/console/models/pets/1.1.0', ['id="lineage"', 'href="/console/models/pets/1.0.0"', 'accuracy', '0.9300']],
      ['/console/labeling', ['id="grid"', 'data-sample="p-1"', '/v1/samples/p-1/blob', '0 labeled']],
    ];
    for (const [path, wanted] of pages) {
      const res = await get(path, cookie);
      expect([path, res.status]).toEqual([path, 200]);
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
      const text = await res.text();
      for (const w of wanted) expect(text, `${path} shows ${w}`).toContain(w);
      expect(text).not.toContain('<script>alert(1)</script>');
    }
    expect(await (await get('/console/', cookie)).text()).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    // A viewer sees the labeling page but gets no export button.
    expect(await (await get('/console/labeling', cookie)).text()).not.toContain('id="export"');
    const missing = await get('/console/devices/nope', cookie);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain('FLEET_DEVICE_UNKNOWN');
  });

  it('lets the session cookie read (pages, images), write only with its CSRF header, and ends it at logout', async () => {
    const cookie = await login(f.tokens.labeler);
    const blob = await get('/v1/samples/p-1/blob', cookie);
    expect(blob.status).toBe(200);
    expect(blob.headers.get('content-type')).toBe('image/png');
    const write = await fetch(`${base}/v1/samples/p-1/confirm`, { method: 'POST', headers: { cookie } });
    expect(write.status).toBe(401);
    const page = await (await get('/console/labeling', cookie)).text();
    const csrf = /<meta name="edgeloop-csrf" content="([^"]+)">/.exec(page)?.[1];
    expect(csrf).toBeDefined();
    expect((await fetch(`${base}/v1/samples/p-1/confirm`, { method: 'POST', headers: { cookie, 'x-edgeloop-csrf': 'wrong' } })).status).toBe(401);
    expect((await fetch(`${base}/v1/samples/p-1/confirm`, { method: 'POST', headers: { cookie, 'x-edgeloop-csrf': csrf as string } })).status).toBe(200);
    expect((await call(base, 'POST', '/v1/samples/p-1/confirm', { token: f.tokens.labeler })).status).toBe(200);
    const logout = await fetch(`${base}/console/logout`, { method: 'POST', redirect: 'manual', headers: { cookie } });
    expect(logout.headers.get('set-cookie')).toMatch(/Max-Age=0/);
    // The session ended on the server: a copy of the cookie kept elsewhere no longer works.
    expect((await get('/console/labeling', cookie)).status).toBe(303);
    expect((await get('/v1/samples/p-1/blob', cookie)).status).toBe(401);
  });

  it('marks the cookie Secure behind a TLS-terminating proxy', async () => {
    const res = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded', 'x-forwarded-proto': 'https' }, body: new URLSearchParams({ token: f.tokens.viewer }) });
    expect(res.headers.get('set-cookie')).toMatch(/; Secure$/);
  });

  it('serves its script and stylesheet', async () => {
    const js = await get('/console/static/console.js');
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await js.text()).toContain('initLabeling');
    const css = await get('/console/static/console.css');
    expect(css.headers.get('content-type')).toMatch(/^text\/css/);
    const again = await fetch(`${base}/console/static/console.css`, { headers: { 'if-none-match': css.headers.get('etag') ?? '' } });
    expect(again.status).toBe(304);
  });
});

describe('console when the fleet database fails', () => {
  it('a storage failure during a session lookup answers 507 FLEET_STORAGE_FAILED, not the login page', async () => {
    const cookie = await login(f.tokens.viewer);
    const real = f.ctx.users;
    // The users repository over a database that is closed under it: every lookup fails in SQLite.
    const broken = openFleetDb({ path: join(pkgs.dir, 'broken.db') });
    f.ctx.users = new Users({ repo: sqliteUsersRepo(broken), clock: f.ctx.clock });
    broken.close();
    try {
      const page = await get('/console/models', cookie);
      expect(page.status).toBe(507);
      expect(page.headers.get('location')).toBeNull();
      const text = await page.text();
      expect(text).toContain('FLEET_STORAGE_FAILED');
      expect(text).not.toContain('id="login-form"');
      const form = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: f.tokens.viewer, next: '/console/' }) });
      expect(form.status).toBe(507);
      expect(await form.text()).not.toContain('That token is not valid');
      const api = await call(base, 'GET', '/v1/me', { token: f.tokens.viewer });
      expect([api.status, (api.json as { error: { code: string } }).error.code]).toEqual([507, 'FLEET_STORAGE_FAILED']);
    } finally {
      f.ctx.users = real;
    }
    expect((await get('/console/models', cookie)).status).toBe(200);
  });
});
