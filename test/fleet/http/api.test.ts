import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../../agent/config.js';
import { httpPackageSource } from '../../../agent/deploy/http-source.js';
import { readModelPackage } from '../../../agent/model/package.js';
import * as S from '../../../fleet/edges/http/schemas.js';
import { datasetManifest } from '../../../fleet/core/labels/dataset-schema.js';
import { sha256Hex } from '../../../shared/ids.js';
import { telemetry } from '../../../shared/schemas/index.js';
import { fleetKeys, imagePackage, tempDir } from '../../helpers/packages.js';
import { call, openTestFleet, pushDir, seedSamples, T0 } from './context.js';
import type { TestFleet } from './context.js';

let f: TestFleet;
let base: string;
const pkgs = tempDir('edgeloop-http-pkgs-');
const v1Dir = join(pkgs.dir, 'v1');
const v2Dir = join(pkgs.dir, 'v2');

beforeAll(async () => {
  f = await openTestFleet();
  base = await f.listen();
  await imagePackage(v1Dir, { seed: 1 });
  await imagePackage(v2Dir, {
    seed: 2,
    version: '1.1.0',
    extra: { lineage: { parent: { name: 'pets', version: '1.0.0' }, training_run: 'run-7' }, evaluation: { accuracy: 0.91, holdout: { n: 500 } } },
  });
});
afterAll(async () => {
  await f.close();
  pkgs.cleanup();
});

type Err = { error: { code: string; message: string; details?: Record<string, unknown> } };
const code = (r: { json: unknown }): string => (r.json as Err).error.code;

describe('auth', () => {
  it('serves healthz and openapi.json without a token', async () => {
    const h = await call(base, 'GET', '/v1/healthz');
    expect(h.status).toBe(200);
    expect(S.healthResponse.parse(h.json).time).toBe(new Date(T0).toISOString());
    expect((await call(base, 'GET', '/v1/openapi.json')).status).toBe(200);
  });

  it('answers 401 without a token or with an invalid one, and logs the rejection with code and reason', async () => {
    const none = await call(base, 'GET', '/v1/devices');
    expect(none.status).toBe(401);
    expect(none.json).toEqual({ error: { code: 'FLEET_AUTH_FAILED', message: expect.stringMatching(/bearer token is required/) } });
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const bad = await call(base, 'GET', '/v1/devices', { token: 'elt_not-a-token' });
    expect(bad.status).toBe(401);
    expect(code(bad)).toBe('FLEET_AUTH_FAILED');
    const line = f.logs.find((l) => l.component === 'http' && l.path === '/v1/devices' && l.code === 'FLEET_AUTH_FAILED');
    expect(line).toMatchObject({ level: 40, method: 'GET', status: 401, reason: expect.any(String), msg: 'request rejected' });
  });

  it('forbids a labeler to create a rollout (403 FLEET_FORBIDDEN)', async () => {
    const r = await call(base, 'POST', '/v1/rollouts', { token: f.tokens.labeler, body: { model: { name: 'pets', version: '1.0.0' }, selector: {} } });
    expect(r.status).toBe(403);
    expect(code(r)).toBe('FLEET_FORBIDDEN');
    expect((r.json as Err).error.message).toMatch(/labeler .* rollouts/);
  });

  it('lets a viewer read and nothing else', async () => {
    expect((await call(base, 'GET', '/v1/devices', { token: f.tokens.viewer })).status).toBe(200);
    expect((await call(base, 'GET', '/v1/models', { token: f.tokens.viewer })).status).toBe(200);
    expect((await call(base, 'GET', '/v1/me', { token: f.tokens.viewer })).json).toEqual({ name: 'vic', role: 'viewer' });
    for (const [path, body] of [
      ['/v1/devices', { name: 'cam-x' }],
      ['/v1/rollouts', { model: { name: 'pets', version: '1.0.0' }, selector: {} }],
      ['/v1/datasets', {}],
      ['/v1/labels/undo', {}],
      ['/v1/devices/cam-x/certificate', { public_key: 'x' }],
      ['/v1/devices/cam-x/certificate/revoke', {}],
    ] as const) {
      const r = await call(base, 'POST', path, { token: f.tokens.viewer, body });
      expect([path, r.status, code(r)]).toEqual([path, 403, 'FLEET_FORBIDDEN']);
    }
    const push = await pushDir(base, f.tokens.viewer, v1Dir);
    expect([push.status, code(push)]).toEqual([403, 'FLEET_FORBIDDEN']);
  });

  it('rejects bodies that are not JSON (415) or too large (413), and unknown routes (404)', async () => {
    const form = await call(base, 'POST', '/v1/devices', { token: f.tokens.operator, headers: { 'content-type': 'text/plain' } });
    expect(form.status).toBe(400); // no body at all: {} fails validation (name is required)
    const res = await fetch(`${base}/v1/devices`, { method: 'POST', headers: { authorization: `Bearer ${f.tokens.operator}`, 'content-type': 'text/plain' }, body: 'name=x' });
    expect(res.status).toBe(415);
    expect(((await res.json()) as Err).error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
    const big = await fetch(`${base}/v1/devices`, { method: 'POST', headers: { authorization: `Bearer ${f.tokens.operator}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', tags: { k: 'v'.repeat(2 * 1024 * 1024) } }) });
    expect(big.status).toBe(413);
    const syntax = await fetch(`${base}/v1/devices`, { method: 'POST', headers: { authorization: `Bearer ${f.tokens.operator}`, 'content-type': 'application/json' }, body: '{"name":' });
    expect(syntax.status).toBe(400);
    const none = await call(base, 'GET', '/v1/nothing', { token: f.tokens.admin });
    expect([none.status, code(none)]).toEqual([404, 'FLEET_NOT_FOUND']);
    const method = await call(base, 'POST', '/v1/healthz');
    expect((method.json as Err).error.message).toMatch(/GET is/);
  });
});

describe('devices', () => {
  it('registers a device and answers a config the agent accepts', async () => {
    const r = await call(base, 'POST', '/v1/devices', { token: f.tokens.operator, body: { name: 'cam-1', tags: { site: 'pit-1', line: 'a' } } });
    expect(r.status).toBe(201);
    const body = S.createDeviceResponse.parse(r.json);
    expect(body.device).toMatchObject({ id: 'cam-1', tags: { site: 'pit-1', line: 'a' }, state: 'offline' });
    const config = agentConfigSchema.parse(body.agent_config);
    expect(config.device_id).toBe('cam-1');
    expect(config.fleet_token).toBe(`cam-1.${body.secret}`);
    expect(config.fleet_public_key).toBe(fleetKeys().publicKeyPem);
    expect(config.uplink).toMatchObject({ kind: 'mqtt', url: 'mqtt://127.0.0.1:1883', username: 'cam-1', password: body.secret });
    expect(await f.ctx.devices.authenticateToken(config.fleet_token as string)).toBe('cam-1');

    const again = await call(base, 'POST', '/v1/devices', { token: f.tokens.admin, body: { name: 'cam-1' } });
    expect([again.status, code(again)]).toEqual([409, 'FLEET_DEVICE_EXISTS']);
    const invalid = await call(base, 'POST', '/v1/devices', { token: f.tokens.admin, body: { name: 'bad/name', extra: 1 } });
    expect(invalid.status).toBe(400);
    expect(code(invalid)).toBe('INPUT_INVALID');
    expect((invalid.json as Err).error.details?.issues).toEqual(expect.arrayContaining([expect.stringMatching(/^name:/), expect.stringMatching(/extra/)]));
  });

  it('lists devices by tag and state, and shows one', async () => {
    await call(base, 'POST', '/v1/devices', { token: f.tokens.operator, body: { name: 'cam-2', tags: { site: 'pit-2' } } });
    f.ctx.devices.applyTelemetry(
      telemetry.parse({
        type: 'telemetry',
        v: 1,
        device_id: 'cam-2',
        ts: new Date(T0).toISOString(),
        window_s: 10,
        model: null,
        inference: { count: 10, errors: 0, rate_per_s: 1, latency_ms: { p50: 1, p95: 2, p99: 3 } },
        confidence_mean: 0.8,
        outliers: { count: 1, rate: 0.1, by_reason: {} },
        drift: { class_psi: 0.3, brightness_psi: 0.05, contrast_psi: null },
        queue: { depth: 0, bytes: 0, quota_bytes: 1000, evicted_total: 0, oldest_age_s: null },
      }),
    );
    const all = S.deviceList.parse((await call(base, 'GET', '/v1/devices', { token: f.tokens.viewer })).json);
    expect(all.items.map((d) => d.id)).toEqual(['cam-1', 'cam-2']);
    const pit1 = S.deviceList.parse((await call(base, 'GET', '/v1/devices?tag=site:pit-1&tag=line:a', { token: f.tokens.viewer })).json);
    expect(pit1.items.map((d) => d.id)).toEqual(['cam-1']);
    const online = S.deviceList.parse((await call(base, 'GET', '/v1/devices?state=online', { token: f.tokens.viewer })).json);
    expect(online.items.map((d) => d.id)).toEqual(['cam-2']);
    const one = S.device.parse((await call(base, 'GET', '/v1/devices/cam-2', { token: f.tokens.viewer })).json);
    expect(one.health?.drift_psi.class).toBe(0.3);
    const missing = await call(base, 'GET', '/v1/devices/nope', { token: f.tokens.viewer });
    expect([missing.status, code(missing)]).toEqual([404, 'FLEET_DEVICE_UNKNOWN']);
    expect((await call(base, 'GET', '/v1/devices?state=sleeping', { token: f.tokens.viewer })).status).toBe(400);
  });
});

describe('models', () => {
  it('pushes, lists, shows and traces lineage', async () => {
    const first = await pushDir(base, f.tokens.operator, v1Dir);
    expect(first.status).toBe(201);
    expect(S.pushModelResponse.parse(first.json)).toMatchObject({ created: true, version: { ref: 'pets@1.0.0', pushed_by: 'otto' } });
    const same = await pushDir(base, f.tokens.admin, v1Dir);
    expect([same.status, (same.json as { created: boolean }).created]).toEqual([200, false]);
    expect((await pushDir(base, f.tokens.operator, v2Dir)).status).toBe(201);

    const list = S.modelList.parse((await call(base, 'GET', '/v1/models', { token: f.tokens.viewer })).json);
    expect(list.items.map((v) => v.ref)).toEqual(['pets@1.0.0', 'pets@1.1.0']);
    const v2 = S.modelVersion.parse((await call(base, 'GET', '/v1/models/pets/1.1.0', { token: f.tokens.viewer })).json);
    expect(v2.evaluation).toEqual({ accuracy: 0.91, holdout: { n: 500 } });
    const lineage = S.lineageResponse.parse((await call(base, 'GET', '/v1/models/pets/1.1.0/lineage', { token: f.tokens.viewer })).json);
    expect(lineage.items.map((e) => [e.version, e.training_run, e.missing])).toEqual([
      ['1.1.0', 'run-7', false],
      ['1.0.0', null, false],
    ]);

    mkdirSync(join(pkgs.dir, 'empty'), { recursive: true });
    const bad = await pushDir(base, f.tokens.operator, join(pkgs.dir, 'empty'));
    expect([bad.status, code(bad)]).toEqual([422, 'MODEL_PACKAGE_INVALID']);
    const missing = await call(base, 'GET', '/v1/models/pets/9.9.9', { token: f.tokens.viewer });
    expect([missing.status, code(missing)]).toEqual([404, 'FLEET_MODEL_NOT_FOUND']);
    const labeler = await pushDir(base, f.tokens.labeler, v1Dir);
    expect(labeler.status).toBe(403);
  });
});

describe('package download (what agents fetch)', () => {
  let deviceToken: string;
  const pkgBase = (): string => `${base}/v1/models/pets/1.0.0/package`;

  beforeAll(async () => {
    const r = S.createDeviceResponse.parse((await call(base, 'POST', '/v1/devices', { token: f.tokens.admin, body: { name: 'dl-1', tags: { site: 'dl' } } })).json);
    deviceToken = r.agent_config.fleet_token;
    // Its desired state names pets@1.0.0 (the canary of a rollout to its site): what it may download.
    const plan = { canary: { devices: { count: 1 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }] };
    expect((await call(base, 'POST', '/v1/rollouts', { token: f.tokens.operator, body: { id: 'dl-rollout', model: { name: 'pets', version: '1.0.0' }, selector: { site: 'dl' }, plan } })).status).toBe(201);
  });

  it('serves the signed manifest and files to a device token, with Range (206) and 416 past the end', async () => {
    const v = f.ctx.registry.get('pets', '1.0.0');
    const auth = { authorization: `Bearer ${deviceToken}` };
    const manifest = await fetch(`${pkgBase()}/manifest.json`, { headers: auth });
    expect(manifest.status).toBe(200);
    expect(sha256Hex(Buffer.from(await manifest.arrayBuffer()))).toBe(v.manifest_sha256);

    const model = v.files.find((x) => x.role === 'model');
    expect(model).toBeDefined();
    const whole = Buffer.from(await (await fetch(`${pkgBase()}/files/${model!.path}`, { headers: auth })).arrayBuffer());
    expect(sha256Hex(whole)).toBe(model!.sha256);

    const part = await fetch(`${pkgBase()}/files/${model!.path}`, { headers: { ...auth, range: 'bytes=100-' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 100-${model!.bytes - 1}/${model!.bytes}`);
    expect(Buffer.from(await part.arrayBuffer()).equals(whole.subarray(100))).toBe(true);
    const mid = await fetch(`${pkgBase()}/files/${model!.path}`, { headers: { ...auth, range: 'bytes=10-19' } });
    expect([mid.status, Buffer.from(await mid.arrayBuffer()).equals(whole.subarray(10, 20))]).toEqual([206, true]);
    const suffix = await fetch(`${pkgBase()}/files/${model!.path}`, { headers: { ...auth, range: 'bytes=-5' } });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(whole.subarray(-5))).toBe(true);

    const past = await fetch(`${pkgBase()}/files/${model!.path}`, { headers: { ...auth, range: `bytes=${model!.bytes}-` } });
    expect(past.status).toBe(416);
    expect(past.headers.get('content-range')).toBe(`bytes */${model!.bytes}`);
    expect(((await past.json()) as Err).error.code).toBe('INPUT_INVALID');

    const nofile = await fetch(`${pkgBase()}/files/nope.onnx`, { headers: auth });
    expect(nofile.status).toBe(404);
  });

  it('refuses a wrong device token and no token (401); a user may download too', async () => {
    const wrong = await fetch(`${pkgBase()}/manifest.json`, { headers: { authorization: `Bearer ${deviceToken.replace(/\.[^.]+$/, '.wrongsecret')}` } });
    expect(wrong.status).toBe(401);
    expect(((await wrong.json()) as Err).error.code).toBe('FLEET_AUTH_FAILED');
    const unknown = await fetch(`${pkgBase()}/manifest.json`, { headers: { authorization: 'Bearer ghost.c2VjcmV0' } });
    expect(unknown.status).toBe(401);
    expect((await fetch(`${pkgBase()}/manifest.json`)).status).toBe(401);
    expect((await fetch(`${pkgBase()}/manifest.json`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } })).status).toBe(200);
    // A device token opens package downloads only.
    expect((await call(base, 'GET', '/v1/devices', { token: deviceToken })).status).toBe(401);
  });

  it('refuses a device a package its desired state does not name (403 FLEET_PACKAGE_NOT_ASSIGNED, logged)', async () => {
    const auth = { authorization: `Bearer ${deviceToken}` };
    for (const path of ['/v1/models/pets/1.1.0/package/manifest.json', `/v1/models/pets/1.1.0/package/files/${f.ctx.registry.get('pets', '1.1.0').model_file}`]) {
      const r = await fetch(`${base}${path}`, { headers: auth });
      const body = (await r.json()) as Err;
      expect([r.status, body.error.code]).toEqual([403, 'FLEET_PACKAGE_NOT_ASSIGNED']);
      expect(body.error.details).toMatchObject({ device_id: 'dl-1', model: 'pets@1.1.0', assigned: ['pets@1.0.0'] });
    }
    expect(f.logs.find((l) => l.code === 'FLEET_PACKAGE_NOT_ASSIGNED')).toMatchObject({ actor: 'device:dl-1', status: 403, msg: 'request rejected' });
    // A user with read may still download any version (to look at it).
    expect((await fetch(`${base}/v1/models/pets/1.1.0/package/manifest.json`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } })).status).toBe(200);
  });

  it('is downloadable by the agent package source, and the result verifies on the device side', async () => {
    const v = f.ctx.registry.get('pets', '1.0.0');
    const dest = join(f.dir, 'agent-download');
    mkdirSync(dest, { recursive: true });
    const source = httpPackageSource({ baseUrl: pkgBase(), manifestSha256: v.manifest_sha256, token: deviceToken });
    writeFileSync(join(dest, 'manifest.json'), await source.readManifest());
    for (const file of v.files) {
      mkdirSync(dirname(join(dest, file.path)), { recursive: true });
      await source.fetchFile(file.path, join(dest, file.path));
    }
    const pkg = await readModelPackage(dest, { publicKeyPem: fleetKeys().publicKeyPem });
    expect(pkg.ref).toEqual({ name: 'pets', version: '1.0.0' });
    expect(pkg.signed).toBe(true);
  });
});

describe('rollouts', () => {
  let id: string;
  const plan = { canary: { devices: { count: 1 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }] };

  beforeAll(async () => {
    for (const name of ['r-1', 'r-2', 'r-3']) await call(base, 'POST', '/v1/devices', { token: f.tokens.admin, body: { name, tags: { site: 'ro' } } });
  });

  it('creates a rollout and shows its stages, gates and decisions', async () => {
    const r = await call(base, 'POST', '/v1/rollouts', { token: f.tokens.operator, body: { model: { name: 'pets', version: '1.1.0' }, selector: { site: 'ro' }, plan } });
    expect(r.status).toBe(201);
    const d = S.rolloutDetail.parse(r.json);
    id = d.rollout.id;
    expect(d.rollout).toMatchObject({ model: { name: 'pets', version: '1.1.0' }, status: 'running', stage_name: 'canary', created_by: 'otto', devices: { target: 3, assigned: 1 } });
    expect(d.stages.map((s) => s.name)).toEqual(['canary', 'wave 1']);
    expect(d.gates?.status).toBe('waiting');
    expect(d.commands).toEqual(['pause', 'abort', 'rollback', 'promote', 'exclude']);
    expect(d.decisions.map((x) => x.kind)).toEqual(expect.arrayContaining(['started', 'stage_started']));
    await f.ctx.rollouts.settled();
    expect(f.deliveries.filter((x) => x.rollout === id).flatMap((x) => x.changes.map((c) => c.active?.version))).toEqual(['1.1.0']);

    const list = S.rolloutList.parse((await call(base, 'GET', '/v1/rollouts', { token: f.tokens.viewer })).json);
    expect(list.items.map((x) => x.id)).toEqual(['dl-rollout', id]);
    const one = S.rolloutDetail.parse((await call(base, 'GET', `/v1/rollouts/${id}`, { token: f.tokens.viewer })).json);
    expect(one.rollout.id).toBe(id);
  });

  it('commands a rollout; a command its status does not allow is 409', async () => {
    const pause = await call(base, 'POST', `/v1/rollouts/${id}/pause`, { token: f.tokens.operator });
    expect(pause.status).toBe(200);
    expect(S.rolloutDetail.parse(pause.json).rollout.status).toBe('paused');
    const again = await call(base, 'POST', `/v1/rollouts/${id}/pause`, { token: f.tokens.operator });
    expect([again.status, code(again)]).toEqual([409, 'FLEET_CONFLICT']);
    expect((again.json as Err).error.message).toMatch(/the rollout is paused/);

    expect(S.rolloutDetail.parse((await call(base, 'POST', `/v1/rollouts/${id}/resume`, { token: f.tokens.operator })).json).rollout.status).toBe('running');
    // The canary's gates wait for reports: promote needs force.
    const promote = await call(base, 'POST', `/v1/rollouts/${id}/promote`, { token: f.tokens.operator });
    expect([promote.status, code(promote)]).toEqual([409, 'FLEET_CONFLICT']);
    expect((promote.json as Err).error.message).toMatch(/force/);
    const forced = S.rolloutDetail.parse((await call(base, 'POST', `/v1/rollouts/${id}/promote`, { token: f.tokens.operator, body: { force: true } })).json);
    expect(forced.rollout.stage_name).toBe('wave 1');
    expect(forced.decisions.map((x) => x.kind)).toContain('gate_overridden');

    const abort = await call(base, 'POST', `/v1/rollouts/${id}/abort`, { token: f.tokens.admin });
    expect(S.rolloutDetail.parse(abort.json).rollout.status).toBe('aborted');
    const resume = await call(base, 'POST', `/v1/rollouts/${id}/resume`, { token: f.tokens.operator });
    expect([resume.status, code(resume)]).toEqual([409, 'FLEET_CONFLICT']);
    const labeler = await call(base, 'POST', `/v1/rollouts/${id}/rollback`, { token: f.tokens.labeler });
    expect(labeler.status).toBe(403);
    const missing = await call(base, 'POST', '/v1/rollouts/ro_nope/pause', { token: f.tokens.operator });
    expect(missing.status).toBe(404);
  });

  it('refuses an unknown model (404) and an invalid plan (400, every issue)', async () => {
    const unknown = await call(base, 'POST', '/v1/rollouts', { token: f.tokens.operator, body: { model: { name: 'pets', version: '7.0.0' }, selector: {} } });
    expect([unknown.status, code(unknown)]).toEqual([404, 'FLEET_MODEL_NOT_FOUND']);
    const invalid = await call(base, 'POST', '/v1/rollouts', { token: f.tokens.operator, body: { model: { name: 'pets', version: '1.0.0' }, selector: {}, plan: { canary: { devices: { percent: 0 } }, on_gate_failure: 'explode' } } });
    expect(invalid.status).toBe(400);
    expect((invalid.json as Err).error.details?.issues).toEqual(expect.arrayContaining([expect.stringMatching(/^plan\.canary\.devices/), expect.stringMatching(/^plan\.on_gate_failure/)]));
  });
});

describe('samples, labels, datasets', () => {
  beforeAll(async () => {
    await seedSamples(f.ctx, [
      { id: 's-1', device: 'cam-1', label: '7', score: 0.41, capturedAt: T0 + 1 },
      { id: 's-2', device: 'cam-1', label: '1', score: 0.62, capturedAt: T0 + 2 },
      { id: 's-3', device: 'cam-2', label: '7', score: 0.33, capturedAt: T0 + 3, reasons: ['drift'] },
      { id: 's-4', device: 'cam-2', label: '4', score: 0.55, capturedAt: T0 + 4 },
      { id: 's-5', device: 'cam-1', label: '9', score: 0.2, capturedAt: T0 + 5 },
    ]);
  });

  it('queries samples with filters and cursors, and serves one sample and its image', async () => {
    const page1 = S.samplePage.parse((await call(base, 'GET', '/v1/samples?device=cam-1&limit=2', { token: f.tokens.viewer })).json);
    expect(page1.items.map((s) => s.sample_id)).toEqual(['s-1', 's-2']);
    expect(page1.next_cursor).not.toBeNull();
    const page2 = S.samplePage.parse((await call(base, 'GET', `/v1/samples?device=cam-1&limit=2&cursor=${page1.next_cursor}`, { token: f.tokens.viewer })).json);
    expect(page2.items.map((s) => s.sample_id)).toEqual(['s-5']);
    const confident = S.samplePage.parse((await call(base, 'GET', '/v1/samples?minConfidence=0.5&order=desc', { token: f.tokens.viewer })).json);
    expect(confident.items.map((s) => s.sample_id)).toEqual(['s-4', 's-2']);
    // `label=7` stays the label "7", not a number.
    const sevens = S.samplePage.parse((await call(base, 'GET', '/v1/samples?label=7&reason=drift', { token: f.tokens.viewer })).json);
    expect(sevens.items.map((s) => s.sample_id)).toEqual(['s-3']);
    const bad = await call(base, 'GET', '/v1/samples?colour=red&limit=0', { token: f.tokens.viewer });
    expect([bad.status, code(bad)]).toEqual([400, 'INPUT_INVALID']);

    const one = S.sampleRecord.parse((await call(base, 'GET', '/v1/samples/s-3', { token: f.tokens.viewer })).json);
    expect(one).toMatchObject({ device_id: 'cam-2', reasons: ['drift'], prediction: { label: '7' } });
    const blob = await fetch(`${base}/v1/samples/s-3/blob`, { headers: { authorization: `Bearer ${f.tokens.viewer}` } });
    expect(blob.status).toBe(200);
    expect(blob.headers.get('content-type')).toBe('image/png');
    const bytes = Buffer.from(await blob.arrayBuffer());
    expect(sha256Hex(bytes)).toBe(one.blob.sha256);
    expect(bytes.subarray(1, 4).toString()).toBe('PNG');
    const missing = await call(base, 'GET', '/v1/samples/nope', { token: f.tokens.viewer });
    expect([missing.status, code(missing)]).toEqual([404, 'FLEET_SAMPLE_NOT_FOUND']);
  });

  it('labels, confirms, skips, undoes, and keeps the history', async () => {
    const t = { token: f.tokens.labeler };
    expect(S.sampleRecord.parse((await call(base, 'POST', '/v1/samples/s-1/label', { ...t, body: { label: '1' } })).json).label).toMatchObject({ state: 'labeled', value: '1', by: 'lena' });
    expect(S.sampleRecord.parse((await call(base, 'POST', '/v1/samples/s-2/confirm', t)).json).label?.value).toBe('1');
    expect(S.sampleRecord.parse((await call(base, 'POST', '/v1/samples/s-3/skip', t)).json).label?.state).toBe('skipped');
    expect(S.sampleRecord.parse((await call(base, 'POST', '/v1/samples/s-4/label', { ...t, body: { label: '9' } })).json).label?.value).toBe('9');
    const undo = S.undoResponse.parse((await call(base, 'POST', '/v1/labels/undo', t)).json);
    expect(undo.undone).toMatchObject({ sample_id: 's-4', action: 'assign', label: '9', undone_by: 'lena' });
    expect(undo.sample?.label).toBeNull();

    const history = S.historyResponse.parse((await call(base, 'GET', '/v1/samples/s-4/history', { token: f.tokens.viewer })).json);
    expect(history.items.map((e) => [e.action, e.label, e.undone_at !== null])).toEqual([['assign', '9', true]]);
    const progress = S.labelProgress.parse((await call(base, 'GET', '/v1/labels/progress', { token: f.tokens.viewer })).json);
    expect(progress).toEqual({ total: 5, labeled: 2, skipped: 1, unlabeled: 2 });
    const cam1 = S.labelProgress.parse((await call(base, 'GET', '/v1/labels/progress?device=cam-1', { token: f.tokens.viewer })).json);
    expect(cam1).toEqual({ total: 3, labeled: 2, skipped: 0, unlabeled: 1 });
    const next = S.sampleList.parse((await call(base, 'GET', '/v1/labels/next?n=2', { token: f.tokens.viewer })).json);
    expect(next.items.map((s) => s.sample_id)).toEqual(['s-4', 's-5']);

    const empty = await call(base, 'POST', '/v1/samples/s-5/label', { ...t, body: { label: '  ' } });
    expect([empty.status, code(empty)]).toEqual([400, 'INPUT_INVALID']);
    const missing = await call(base, 'POST', '/v1/samples/nope/confirm', t);
    expect(missing.status).toBe(404);
    // The operator has no label permission.
    expect((await call(base, 'POST', '/v1/samples/s-5/skip', { token: f.tokens.operator })).status).toBe(403);
  });

  it('exports immutable dataset versions', async () => {
    const t = { token: f.tokens.labeler };
    const first = await call(base, 'POST', '/v1/datasets', { ...t, body: { name: 'round-1' } });
    expect(first.status).toBe(201);
    const ds1 = S.exportDatasetResponse.parse(first.json).dataset;
    expect(ds1.entries.map((e) => [e.sample_id, e.label])).toEqual([
      ['s-1', '1'],
      ['s-2', '1'],
    ]);
    const same = await call(base, 'POST', '/v1/datasets', { ...t, body: { name: 'again' } });
    expect(same.status).toBe(200);
    expect(S.exportDatasetResponse.parse(same.json)).toMatchObject({ created: false, dataset: { id: ds1.id, name: 'round-1' } });

    // Relabel: a new version; the first one does not change.
    await call(base, 'POST', '/v1/samples/s-1/label', { ...t, body: { label: '7' } });
    const ds2 = S.exportDatasetResponse.parse((await call(base, 'POST', '/v1/datasets', { ...t, body: {} })).json).dataset;
    expect(ds2.id).not.toBe(ds1.id);
    const old = datasetManifest.parse((await call(base, 'GET', `/v1/datasets/${ds1.id}`, { token: f.tokens.viewer })).json);
    expect(old).toEqual(ds1);
    const list = S.datasetList.parse((await call(base, 'GET', '/v1/datasets', { token: f.tokens.viewer })).json);
    expect(list.items.map((d) => d.id)).toEqual([ds1.id, ds2.id]);

    const filtered = await call(base, 'POST', '/v1/datasets', { ...t, body: { filters: { device: 'cam-2' } } });
    expect([filtered.status, code(filtered)]).toEqual([400, 'INPUT_INVALID']);
    const bad = await call(base, 'GET', `/v1/datasets/${'0'.repeat(64)}`, { token: f.tokens.viewer });
    expect([bad.status, code(bad)]).toEqual([404, 'FLEET_DATASET_NOT_FOUND']);
  });
});

describe('openapi.json', () => {
  /** Every route the API serves, as the brief lists them. */
  const ROUTES = [
    'GET /v1/healthz',
    'GET /v1/openapi.json',
    'GET /v1/me',
    'GET /v1/devices',
    'GET /v1/devices/{id}',
    'POST /v1/devices',
    'POST /v1/devices/{id}/certificate',
    'POST /v1/devices/{id}/certificate/revoke',
    'GET /v1/models',
    'GET /v1/models/{name}/{version}',
    'GET /v1/models/{name}/{version}/lineage',
    'POST /v1/models',
    'GET /v1/models/{name}/{version}/package/manifest.json',
    'GET /v1/models/{name}/{version}/package/files/{path}',
    'GET /v1/rollouts',
    'GET /v1/rollouts/{id}',
    'POST /v1/rollouts',
    'POST /v1/rollouts/{id}/pause',
    'POST /v1/rollouts/{id}/resume',
    'POST /v1/rollouts/{id}/abort',
    'POST /v1/rollouts/{id}/rollback',
    'POST /v1/rollouts/{id}/promote',
    'POST /v1/rollouts/{id}/exclude',
    'GET /v1/samples',
    'GET /v1/samples/stats',
    'GET /v1/samples/{id}',
    'GET /v1/samples/{id}/blob',
    'POST /v1/samples/{id}/label',
    'POST /v1/samples/{id}/boxes',
    'POST /v1/samples/{id}/confirm',
    'POST /v1/samples/{id}/skip',
    'POST /v1/labels/undo',
    'GET /v1/samples/{id}/history',
    'GET /v1/sites',
    'GET /v1/labels/progress',
    'GET /v1/labels/next',
    'POST /v1/datasets',
    'GET /v1/datasets',
    'GET /v1/datasets/{id}',
    'POST /v1/training/runs',
    'GET /v1/training/runs',
    'GET /v1/training/runs/{id}',
    'GET /v1/training/runs/{id}/report',
    'GET /v1/training/triggers',
    'GET /v1/training/models',
    'GET /v1/models/{name}/{version}/lineage/full',
    'GET /v1/users',
    'POST /v1/users',
    'POST /v1/users/{name}/revoke',
    'GET /v1/audit',
    'GET /v1/alerts',
    'GET /v1/alerts/{id}',
    'POST /v1/alerts/{id}/ack',
    'POST /v1/alerts/{id}/resolve',
    'GET /v1/rule-sets',
    'POST /v1/rule-sets',
    'POST /v1/rule-sets/test',
    'POST /v1/rule-sets/withdraw',
    'GET /v1/rule-sets/{name}/{version}',
    'POST /v1/rule-sets/{name}/{version}/deploy',
  ];

  type Op = { 'x-roles': string[]; security: unknown[]; parameters: Array<{ name: string; in: string }>; requestBody?: { content: Record<string, { schema: unknown }> }; responses: Record<string, { content?: Record<string, { schema: { $ref?: string } }> }> };
  type Doc = { openapi: string; paths: Record<string, Record<string, Op>>; components: { schemas: Record<string, unknown> } };

  it('lists every route with method, path, roles, request and response schemas', async () => {
    const doc = (await call(base, 'GET', '/v1/openapi.json')).json as Doc;
    expect(doc.openapi).toBe('3.1.0');
    const listed = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect([...listed].sort()).toEqual([...ROUTES].sort());
    const op = (route: string): Op => {
      const [method, path] = route.split(' ') as [string, string];
      return doc.paths[path]?.[method.toLowerCase()] as Op;
    };
    expect(op('POST /v1/rollouts')['x-roles']).toEqual(['admin', 'operator']);
    expect(op('POST /v1/samples/{id}/label')['x-roles']).toEqual(['admin', 'labeler']);
    expect(op('GET /v1/devices')['x-roles']).toEqual(['admin', 'operator', 'labeler', 'viewer']);
    expect(op('GET /v1/models/{name}/{version}/package/files/{path}')['x-roles']).toEqual(['device', 'admin', 'operator', 'labeler', 'viewer']);
    expect(op('GET /v1/healthz').security).toEqual([]);
    expect(op('POST /v1/users')['x-roles']).toEqual(['admin']);
    expect(op('GET /v1/audit')['x-roles']).toEqual(['admin', 'operator']);
    expect(op('POST /v1/rule-sets')['x-roles']).toEqual(['admin', 'operator']);
    expect(op('POST /v1/rule-sets/{name}/{version}/deploy')['x-roles']).toEqual(['admin', 'operator']);
    expect(op('POST /v1/rule-sets/test')['x-roles']).toEqual(['admin', 'operator', 'labeler', 'viewer']);
    expect(op('POST /v1/alerts/{id}/ack')['x-roles']).toEqual(['admin', 'operator']);
    // Models arrive as uploads: a tar body, never a path.
    expect(Object.keys(op('POST /v1/models').requestBody?.content ?? {})).toEqual(['application/x-tar']);
    expect(op('POST /v1/models').responses['413']).toBeDefined();
    expect(op('POST /v1/rollouts').requestBody?.content['application/json']?.schema).toEqual({ $ref: '#/components/schemas/CreateRollout' });
    expect(op('GET /v1/rollouts/{id}').responses['200']?.content?.['application/json']?.schema).toEqual({ $ref: '#/components/schemas/RolloutDetail' });
    expect(op('POST /v1/devices').responses['201']).toBeDefined();
    expect(op('POST /v1/devices/{id}/certificate').requestBody?.content['application/json']?.schema).toEqual({ $ref: '#/components/schemas/IssueCertificate' });
    expect(op('GET /v1/samples').parameters.map((p) => p.name)).toEqual(expect.arrayContaining(['device', 'reason', 'minConfidence', 'limit', 'cursor']));
    expect(op('GET /v1/models/{name}/{version}').parameters).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'name', in: 'path' })]));
    // Every $ref resolves.
    const refs = JSON.stringify(doc).match(/"#\/components\/schemas\/[A-Za-z]+"/g) ?? [];
    for (const r of new Set(refs)) expect(doc.components.schemas).toHaveProperty(r.slice(22, -1));
    // The plan is the library's schema: its defaults are documented.
    expect(JSON.stringify(doc.components.schemas.CreateRollout)).toContain('"#/components/schemas/RolloutPlan"');
    expect(JSON.stringify(doc.components.schemas.RolloutPlan)).toContain('min_shadow_agreement');
  });
});
