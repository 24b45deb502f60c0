import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as S from '../../../fleet/edges/http/schemas.js';
import { CLASS_LABELS } from '../../helpers/packages.js';
import { call, openTestFleet, seedSamples } from './context.js';
import type { TestFleet } from './context.js';

let f: TestFleet;
let base: string;

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
});
afterAll(async () => {
  await f.close();
});

type Err = { error: { code: string; message: string } };
const code = (r: { json: unknown }): string => (r.json as Err).error.code;
const me = async (token: string): Promise<number> => (await call(base, 'GET', '/v1/me', { token })).status;

async function consoleLogin(token: string): Promise<string> {
  const res = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
  expect(res.status).toBe(303);
  return (res.headers.get('set-cookie') ?? '').split(';')[0] as string;
}

describe('people and roles', () => {
  it('lets an admin add a user of each role; only the hash is kept, the token is shown once', async () => {
    for (const role of ['operator', 'labeler', 'viewer'] as const) {
      const r = await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: `new-${role}`, role } });
      expect(r.status).toBe(201);
      const added = S.addUserResponse.parse(r.json);
      expect(added.user).toMatchObject({ name: `new-${role}`, role, created_by: 'ada', expires_at: null, revoked_at: null, active: true });
      expect((await call(base, 'GET', '/v1/me', { token: added.token })).json).toEqual({ name: `new-${role}`, role });
    }
    const list = S.userList.parse((await call(base, 'GET', '/v1/users', { token: f.tokens.admin })).json);
    expect(list.items.map((u) => u.name)).toEqual(expect.arrayContaining(['ada', 'new-operator', 'new-labeler', 'new-viewer']));
    expect(JSON.stringify(list)).not.toMatch(/elt_/);
  });

  it('keeps users to admins (403 FLEET_FORBIDDEN) and refuses a second user of the same name (409 FLEET_USER_EXISTS)', async () => {
    for (const token of [f.tokens.operator, f.tokens.labeler, f.tokens.viewer]) {
      const r = await call(base, 'POST', '/v1/users', { token, body: { name: 'sneaky', role: 'admin' } });
      expect([r.status, code(r)]).toEqual([403, 'FLEET_FORBIDDEN']);
      expect((await call(base, 'GET', '/v1/users', { token })).status).toBe(403);
    }
    const again = await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: 'otto', role: 'admin' } });
    expect([again.status, code(again)]).toEqual([409, 'FLEET_USER_EXISTS']);
    const bad = await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: '../x', role: 'root' } });
    expect([bad.status, code(bad)]).toEqual([400, 'INPUT_INVALID']);
  });

  it('expires a token at its expiry (401, logged with the reason)', async () => {
    const r = S.addUserResponse.parse((await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: 'temp', role: 'viewer', expires_in_s: 3600 } })).json);
    expect(r.user.expires_at).toBe(new Date(f.clock.now() + 3600_000).toISOString());
    const cookie = await consoleLogin(r.token);
    expect(await me(r.token)).toBe(200);
    f.clock.advance(3600_000);
    try {
      const late = await call(base, 'GET', '/v1/me', { token: r.token });
      expect([late.status, code(late)]).toEqual([401, 'FLEET_AUTH_FAILED']);
      // The session could not outlive the token either.
      expect((await fetch(`${base}/console/`, { redirect: 'manual', headers: { cookie } })).status).toBe(303);
      expect(f.logs.find((l) => l.component === 'users' && l.user === 'temp' && l.reason === 'expired')).toBeDefined();
      const listed = S.userList.parse((await call(base, 'GET', '/v1/users', { token: f.tokens.admin })).json).items.find((u) => u.name === 'temp');
      expect(listed?.active).toBe(false);
      // An expired user's name may be given again.
      expect((await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: 'temp', role: 'viewer' } })).status).toBe(201);
    } finally {
      f.clock.advance(-3600_000);
    }
  });

  it('revokes a user: its API token and every console session end at once', async () => {
    const r = S.addUserResponse.parse((await call(base, 'POST', '/v1/users', { token: f.tokens.admin, body: { name: 'leaver', role: 'operator' } })).json);
    const cookies = [await consoleLogin(r.token), await consoleLogin(r.token)];
    for (const cookie of cookies) expect((await fetch(`${base}/console/`, { redirect: 'manual', headers: { cookie } })).status).toBe(200);
    const revoked = await call(base, 'POST', '/v1/users/leaver/revoke', { token: f.tokens.admin });
    expect(revoked.status).toBe(200);
    expect(S.userInfo.parse(revoked.json)).toMatchObject({ name: 'leaver', active: false, revoked_at: expect.any(String) });
    expect(await me(r.token)).toBe(401);
    for (const cookie of cookies) expect((await fetch(`${base}/console/`, { redirect: 'manual', headers: { cookie } })).status).toBe(303);
    expect(f.logs.find((l) => l.msg === 'user revoked' && l.user === 'leaver')).toMatchObject({ actor: 'ada', sessions_ended: 2 });
    const unknown = await call(base, 'POST', '/v1/users/nobody/revoke', { token: f.tokens.admin });
    expect([unknown.status, code(unknown)]).toEqual([404, 'FLEET_USER_NOT_FOUND']);
    // A token cannot log in to the console once revoked.
    const login = await fetch(`${base}/console/login`, { method: 'POST', redirect: 'manual', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: r.token }) });
    expect(login.status).toBe(401);
  });
});

describe('audit log', () => {
  it('records who did what (labels, rollouts and their commands, user changes), newest first with paging', async () => {
    await seedSamples(f.ctx, [{ id: 'au-1', device: 'cam-a', label: 'dog', score: 0.4, labels: CLASS_LABELS }]);
    expect((await call(base, 'POST', '/v1/samples/au-1/label', { token: f.tokens.labeler, body: { label: 'cat' } })).status).toBe(200);
    const ro = f.ctx.rollouts.create({ id: 'au-ro', model: { name: 'pets', version: '1.0.0' }, selector: { site: 'audit' }, plan: {}, actor: 'otto' });
    expect((await call(base, 'POST', `/v1/rollouts/${ro.state.id}/abort`, { token: f.tokens.operator, body: {} })).status).toBe(200);

    const page = S.auditPage.parse((await call(base, 'GET', '/v1/audit?limit=3', { token: f.tokens.operator })).json);
    expect(page.items.map((e) => [e.actor, e.action, e.target])).toEqual([
      ['otto', 'rollout.abort', 'au-ro'],
      ['otto', 'rollout.create', 'au-ro'],
      ['lena', 'label.assign', 'au-1'],
    ]);
    expect(page.items[2]?.details).toEqual({ label: 'cat' });
    expect(page.next_before).toBe(page.items[2]?.seq);
    const older = S.auditPage.parse((await call(base, 'GET', `/v1/audit?before=${page.next_before}&limit=500`, { token: f.tokens.admin })).json);
    expect(older.items.every((e) => e.seq < (page.next_before as number))).toBe(true);
    expect(older.items.filter((e) => e.action === 'user.revoke').map((e) => [e.actor, e.target])).toEqual([['ada', 'leaver']]);
    expect(older.items.filter((e) => e.action === 'user.add').map((e) => e.target)).toEqual(expect.arrayContaining(['new-operator', 'leaver', 'temp']));
    expect(older.next_before).toBeNull();
    const ada = S.auditPage.parse((await call(base, 'GET', '/v1/audit?actor=ada', { token: f.tokens.admin })).json);
    expect(new Set(ada.items.map((e) => e.actor))).toEqual(new Set(['ada']));
  });

  it('is for admins and operators only, on the API and the console', async () => {
    for (const token of [f.tokens.labeler, f.tokens.viewer]) {
      const r = await call(base, 'GET', '/v1/audit', { token });
      expect([r.status, code(r)]).toEqual([403, 'FLEET_FORBIDDEN']);
    }
    const viewer = await consoleLogin(f.tokens.viewer);
    expect((await fetch(`${base}/console/audit`, { headers: { cookie: viewer } })).status).toBe(403);
    expect(await (await fetch(`${base}/console/`, { headers: { cookie: viewer } })).text()).not.toContain('/console/audit');
    const operator = await consoleLogin(f.tokens.operator);
    const html = await (await fetch(`${base}/console/audit`, { headers: { cookie: operator } })).text();
    expect(html).toContain('data-action="rollout.abort"');
    expect(html).toContain('Audit log');
  });
});
