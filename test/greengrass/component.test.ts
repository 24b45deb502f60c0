import { readFileSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectGreengrass } from '../../agent/greengrass/env.js';
import { createIpcClient } from '../../agent/greengrass/ipc-client.js';
import { startGreengrassAgent, type GreengrassRun } from '../../agent/greengrass/run.js';
import { sha256Hex } from '../../shared/ids.js';
import { canonicalJson, signManifest } from '../../shared/signing.js';
import { deviceStatus, type ComponentDesired, type DeviceStatus } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { servePackages } from '../helpers/package-server.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { GreengrassIpcServer } from './ipc-server.js';
import { mqttAclFromRecipe } from './recipe.js';
import { waitUntil } from '../helpers/wait.js';

const THING = 'gg-core-1';
const TOKEN = 'svcuid-component-test';
let tmp: ReturnType<typeof tempDir>;
let pkgs: Awaited<ReturnType<typeof servePackages>>;
let presigned: { url: string; requests: string[]; gate: { hold: boolean; release: () => void }; close: () => Promise<void> };
let ipc: GreengrassIpcServer;
let run: GreengrassRun;
const logLines: Array<Record<string, unknown>> = [];

const ref = (version: string) => ({ name: 'pets', version });
const manifestSha = (v: string): string => sha256Hex(readFileSync(join(tmp.dir, `pets@${v}`, 'manifest.json')));
const artifact = (v: string) => ({ model: ref(v), base_url: `${pkgs.url}/pets@${v}`, manifest_sha256: manifestSha(v) });

const until = (cond: () => boolean, ms = 30_000, what?: string): Promise<void> => waitUntil(cond, ms, what);

/** Like S3 presigned GETs: the URL is the authorization; a request that also carries a bearer token is refused. */
async function servePresigned(dirs: Record<string, string>): Promise<typeof presigned> {
  const requests: string[] = [];
  const waiting: Array<() => void> = [];
  const gate = { hold: false, release: () => waiting.splice(0).forEach((f) => f()) };
  const server: Server = createServer((req, res) => {
    requests.push(`${req.url} auth=${req.headers.authorization ? 'yes' : 'no'}`);
    if (req.headers.authorization) return void res.writeHead(400).end('Only one auth mechanism allowed');
    const m = /^\/presigned\/([^/]+)\/(.+)\?X-Amz-Signature=ok$/.exec(req.url ?? '');
    const dir = m ? dirs[m[1]!] : undefined;
    if (!m || !dir) return void res.writeHead(403).end();
    const body = readFileSync(join(dir, decodeURIComponent(m[2]!)));
    const send = (): void => void res.writeHead(200, { 'content-length': body.length }).end(body);
    if (gate.hold && m[2] !== 'manifest.json') waiting.push(send);
    else send();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/presigned`;
  return { url, requests, gate, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function presignedArtifact(v: string) {
  const manifest = JSON.parse(readFileSync(join(tmp.dir, `pets@${v}`, 'manifest.json'), 'utf8')) as { files: Array<{ path: string }> };
  const urls: Record<string, string> = { 'manifest.json': `${presigned.url}/pets@${v}/manifest.json?X-Amz-Signature=ok` };
  for (const f of manifest.files) urls[`files/${f.path}`] = `${presigned.url}/pets@${v}/${f.path}?X-Amz-Signature=ok`;
  // base_url points at the token-protected fleet server: every file has its own URL, so it must not be used.
  return { ...artifact(v), urls };
}

function statuses(): DeviceStatus[] {
  return ipc.published.filter((p) => p.topic === topics.status(THING)).map((p) => deviceStatus.parse(JSON.parse(p.payload.toString())));
}

let revision = 0;
const desired = (d: Partial<ComponentDesired>): ComponentDesired => ({ v: 1, revision: ++revision, active: null, ...d });

beforeAll(async () => {
  tmp = tempDir('edgeloop-gg-');
  for (const v of ['1.0.0', '2.0.0', '3.0.0']) await imagePackage(join(tmp.dir, `pets@${v}`), { version: v, seed: Number(v[0]) });
  const dirs = Object.fromEntries(['1.0.0', '2.0.0', '3.0.0'].map((v) => [`pets@${v}`, join(tmp.dir, `pets@${v}`)]));
  pkgs = await servePackages(dirs, { token: 'device-token' });
  presigned = await servePresigned(dirs);
  ipc = await GreengrassIpcServer.start({
    socketPath: join(tmp.dir, 'nucleus.sock'),
    svcuid: TOKEN,
    componentName: 'com.edgeloop.Agent',
    mqttAcl: mqttAclFromRecipe(THING),
    configuration: {
      agent: { fleet_public_key: fleetKeys().publicKeyPem, fleet_token: 'device-token', http: { port: 0 }, inference: { warmup_runs: 0 }, uplink: { telemetry_interval_s: 3600 } },
      desired: desired({ active: artifact('1.0.0') }),
    },
  });
  const dest = new Writable({ write: (chunk: Buffer, _e, cb) => { for (const l of chunk.toString().split('\n')) if (l) logLines.push(JSON.parse(l) as Record<string, unknown>); cb(); } });
  const gg = detectGreengrass({ SVCUID: TOKEN, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: ipc.socketPath, AWS_IOT_THING_NAME: THING })!;
  run = await startGreengrassAgent({ gg, workDir: join(tmp.dir, 'work'), logDestination: dest, recheckAfterMs: 100 });
});

afterAll(async () => {
  await run?.stop();
  await ipc?.close();
  await pkgs?.close();
  await presigned?.close();
  tmp?.cleanup();
});

describe('agent as a Greengrass component (real SDK IPC client against the local nucleus emulation)', () => {
  it('detects Greengrass mode from the nucleus environment, and refuses half of it', () => {
    expect(detectGreengrass({})).toBeNull();
    expect(detectGreengrass({ SVCUID: 'x', AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: '/s', AWS_IOT_THING_NAME: 't' })).toEqual({ socketPath: '/s', authToken: 'x', thingName: 't', region: undefined });
    expect(() => detectGreengrass({ SVCUID: 'x' })).toThrow(expect.objectContaining({ code: 'AGENT_GREENGRASS_ENV_INCOMPLETE', message: expect.stringContaining('AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT') }));
  });

  it('starts from the component configuration: thing name as device id, data under the work dir, the configured model installed, RUNNING reported', async () => {
    expect(run.agent.config.device_id).toBe(THING);
    expect(run.agent.config.data_dir).toBe(join(tmp.dir, 'work', 'data'));
    await until(() => run.agent.service.activeRef?.version === '1.0.0', 30_000, 'model 1.0.0 active');
    await until(() => ipc.states.includes('RUNNING'), 5000, 'RUNNING');
    await until(() => statuses().some((s) => s.deployment?.phase === 'active' && s.deployment.target.version === '1.0.0'), 10_000, 'active status over IPC');
    // Status went out over PublishToIoTCore, retained, on the device's own topic (allowed by the recipe's accessControl).
    expect(ipc.published.find((p) => p.topic === topics.status(THING))?.retain).toBe(true);
    expect(ipc.operations).toEqual(expect.arrayContaining(['GetConfiguration', 'SubscribeToValidateConfigurationUpdates', 'SubscribeToConfigurationUpdate', 'SubscribeToComponentUpdates', 'SubscribeToIoTCore', 'UpdateState']));
    const res = await fetch(`${run.agent.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(5) });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { model_version: string }).model_version).toBe('1.0.0');
  });

  it('rejects an invalid deployment configuration with a reason naming every bad key, and changes nothing', async () => {
    const before = structuredClone(ipc.configuration);
    const r = await ipc.deployConfiguration('dep-bad', { merge: { agent: { http: { port: 'eighty' } }, desired: { revision: 99, active: { model: ref('9.0.0'), base_url: 'not a url', manifest_sha256: 'abc' } } } });
    expect(r.status).toBe('REJECTED');
    expect(r.message).toContain('desired.active.manifest_sha256');
    expect(r.message).toContain('desired.active.base_url');
    expect(r.message).toContain('agent.http.port');
    expect(ipc.reports.at(-1)).toMatchObject({ deploymentId: 'dep-bad', status: 'REJECTED' });
    expect(ipc.configuration).toEqual(before);
    expect(run.agent.service.activeRef?.version).toBe('1.0.0');
    expect(logLines.some((l) => l.msg === 'deployment configuration rejected' && l.code === 'AGENT_GREENGRASS_CONFIG_INVALID')).toBe(true);
  });

  it('installs a new desired model from a configuration update through the model store, from per-file (presigned) URLs without the bearer token', async () => {
    const r = await ipc.deployConfiguration('dep-v2', { reset: [['desired']], merge: { desired: desired({ rollout_id: 'ro-1', active: presignedArtifact('2.0.0') }) } });
    expect(r.status).toBe('SUCCEEDED');
    expect(ipc.reports.at(-1)).toMatchObject({ deploymentId: 'dep-v2', status: 'ACCEPTED' });
    await until(() => run.agent.service.activeRef?.version === '2.0.0', 30_000, 'model 2.0.0 active');
    await until(() => statuses().some((s) => s.deployment?.rollout_id === 'ro-1' && s.deployment.phase === 'active'), 10_000, 'rollout status');
    expect(presigned.requests.length).toBeGreaterThanOrEqual(2);
    expect(presigned.requests.every((q) => q.endsWith('auth=no'))).toBe(true);
    expect(pkgs.requests.filter((q) => q.includes('pets@2.0.0'))).toEqual([]);
    expect(run.agent.store.current.previous?.version).toBe('1.0.0');
  });

  it('takes the alert rule set from the configuration (rule_set), verified like the MQTT one; a tampered one is refused and the running one stays', async () => {
    const rules = { rules: [{ id: 'people', model: 'pets', labels: ['cat'] }] };
    const doc = signManifest({ name: 'gg-rules', version: 1, sha256: sha256Hex(canonicalJson(rules)), rules, created_at: new Date().toISOString() }, fleetKeys().privateKeyPem);
    const r = await ipc.deployConfiguration('dep-rules', { reset: [['rule_set']], merge: { rule_set: { revision: 1, rule_set: doc } } });
    expect(r.status).toBe('SUCCEEDED');
    await until(() => run.agent.status().rules?.name === 'gg-rules', 10_000, 'rule set in force');
    expect(run.agent.alerts?.engine.rules.map((x) => x.id)).toEqual(['people']);
    const bad = await ipc.deployConfiguration('dep-rules-bad', { reset: [['rule_set']], merge: { rule_set: { revision: 2, rule_set: { ...doc, rules: { rules: [] } } } } });
    expect(bad.status).toBe('SUCCEEDED');
    await until(() => run.agent.status().rules?.refused !== undefined, 10_000, 'refusal reported');
    expect(run.agent.status().rules).toMatchObject({ source: 'fleet', name: 'gg-rules', version: 1, refused: { code: 'AGENT_RULE_SET_REFUSED', revision: 2 } });
    expect(run.agent.alerts?.engine.rules.map((x) => x.id)).toEqual(['people']);
  });

  it('defers a component update while a model switch is in flight, then checkpoints the queue and lets it proceed', async () => {
    presigned.gate.hold = true;
    const r = await ipc.deployConfiguration('dep-v3', { reset: [['desired']], merge: { desired: desired({ active: presignedArtifact('3.0.0') }) } });
    expect(r.status).toBe('SUCCEEDED');
    await until(() => run.agent.busy().switches > 0, 10_000, 'install under way');
    const update = ipc.componentUpdate('dep-agent-update', { timeoutMs: 20_000, replyWindowMs: 2000 });
    await until(() => ipc.deferrals.some((d) => d.deploymentId === 'dep-agent-update' && d.recheckAfterMs > 0), 10_000, 'a deferral');
    expect(ipc.deferrals.find((d) => d.recheckAfterMs > 0)?.message).toContain('model switch');
    presigned.gate.hold = false;
    presigned.gate.release();
    const done = await update;
    expect(done.timedOut).toBe(false);
    expect(done.deferred).toBeGreaterThanOrEqual(1);
    expect(ipc.deferrals.at(-1)).toMatchObject({ deploymentId: 'dep-agent-update', recheckAfterMs: 0, message: 'idle; queue checkpointed' });
    expect(run.agent.service.activeRef?.version).toBe('3.0.0');
    // wal_checkpoint(TRUNCATE) left an empty WAL: the database file is complete by itself.
    expect(statSync(join(run.agent.config.data_dir, 'queue.db-wal')).size).toBe(0);
  });

  it('installs a model shipped as its own component from its unarchived artifacts (file:// base_url)', async () => {
    const dir = join(tmp.dir, 'packages', 'artifacts-unarchived', 'com.example.model.Pets', '4.0.0', 'pets');
    await imagePackage(dir, { version: '4.0.0', seed: 4 });
    const sha = sha256Hex(readFileSync(join(dir, 'manifest.json')));
    const r = await ipc.deployConfiguration('dep-v4', { reset: [['desired']], merge: { desired: desired({ active: { model: ref('4.0.0'), base_url: pathToFileURL(dir).href, manifest_sha256: sha } }) } });
    expect(r.status).toBe('SUCCEEDED');
    await until(() => run.agent.service.activeRef?.version === '4.0.0', 30_000, 'model 4.0.0 active');
  });

  it('adds a second model slot from desired_by_model, leaving the first model alone, and answers requests naming it over IPC', async () => {
    const dir = join(tmp.dir, 'packages', 'ppe-classifier@1.0.0');
    await imagePackage(dir, { version: '1.0.0', seed: 7, extra: { name: 'ppe-classifier' } });
    const sha = sha256Hex(readFileSync(join(dir, 'manifest.json')));
    const ppe = desired({ model_name: 'ppe-classifier', active: { model: { name: 'ppe-classifier', version: '1.0.0' }, base_url: pathToFileURL(dir).href, manifest_sha256: sha } });
    const r = await ipc.deployConfiguration('dep-ppe', { reset: [['desired_by_model', 'ppe-classifier']], merge: { desired_by_model: { 'ppe-classifier': ppe } } });
    expect(r.status).toBe('SUCCEEDED');
    await until(() => run.agent.slots.find('ppe-classifier')?.activeRef?.version === '1.0.0', 30_000, 'ppe-classifier 1.0.0 active');
    expect(run.agent.service.activeRef).toEqual(ref('4.0.0'));
    await until(() => statuses().some((s) => s.slots?.length === 2), 10_000, 'a status with both slots');

    const other = createIpcClient({ socketPath: ipc.socketPath, authToken: TOKEN });
    await other.connect();
    try {
      const got: Array<Record<string, unknown>> = [];
      const sub = other.subscribeToTopic({ topic: 'edgeloop/local/results' });
      sub.on('message', (m) => got.push(m.jsonMessage?.message as Record<string, unknown>));
      await sub.activate();
      const image = (await patternImage(9)).toString('base64');
      await other.publishToTopic({ topic: 'edgeloop/local/infer', publishMessage: { jsonMessage: { message: { request_id: 'm-1', image_b64: image, model: 'ppe-classifier' } } } });
      await other.publishToTopic({ topic: 'edgeloop/local/infer', publishMessage: { jsonMessage: { message: { request_id: 'm-2', image_b64: image, model: 'helmet' } } } });
      await until(() => got.length >= 2, 10_000, 'two answers');
      expect(got.find((g) => g.request_id === 'm-1')).toMatchObject({ type: 'infer_result', model_name: 'ppe-classifier', model_version: '1.0.0' });
      expect(got.find((g) => g.request_id === 'm-2')).toMatchObject({ type: 'error', error: { code: 'AGENT_MODEL_NAME_UNKNOWN' } });
    } finally {
      await other.close();
    }
  });

  it('answers inference requests from another component over IPC pub/sub, and a bad one with an error code', async () => {
    const other = createIpcClient({ socketPath: ipc.socketPath, authToken: TOKEN });
    await other.connect();
    try {
      const got: Array<Record<string, unknown>> = [];
      const sub = other.subscribeToTopic({ topic: 'edgeloop/local/results' });
      sub.on('message', (m) => got.push(m.jsonMessage?.message as Record<string, unknown>));
      await sub.activate();
      const image = (await patternImage(9)).toString('base64');
      await other.publishToTopic({ topic: 'edgeloop/local/infer', publishMessage: { jsonMessage: { message: { request_id: 'r-1', image_b64: image } } } });
      await other.publishToTopic({ topic: 'edgeloop/local/infer', publishMessage: { jsonMessage: { message: { request_id: 'r-2' } } } });
      await until(() => got.length >= 2, 10_000, 'two answers');
      expect(got.find((g) => g.request_id === 'r-1')).toMatchObject({ type: 'infer_result', model_version: run.agent.service.activeRef?.version });
      expect(got.find((g) => g.request_id === 'r-2')).toMatchObject({ type: 'error', error: { code: 'AGENT_INPUT_INVALID' } });
    } finally {
      await other.close();
    }
  });

  it('receives the fleet acks and desired state over SubscribeToIoTCore on its own topics only', () => {
    expect(ipc.operations.filter((o) => o === 'SubscribeToIoTCore').length).toBeGreaterThanOrEqual(2);
    expect(ipc.published.every((p) => p.topic.startsWith(`edgeloop/v1/devices/${THING}/`))).toBe(true);
  });
});

describe('a component that cannot run', () => {
  it('reports ERRORED with the reason when its configuration is invalid at start', async () => {
    const t = tempDir('edgeloop-gg-bad-');
    const bad = await GreengrassIpcServer.start({ socketPath: join(t.dir, 'n.sock'), svcuid: TOKEN, componentName: 'com.edgeloop.Agent', configuration: { agent: { queue: { synchronous: 'SOMETIMES' } } } });
    try {
      const gg = detectGreengrass({ SVCUID: TOKEN, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: bad.socketPath })!;
      await expect(startGreengrassAgent({ gg, workDir: t.dir, logDestination: new Writable({ write: (_c, _e, cb) => cb() }) })).rejects.toMatchObject({ code: 'AGENT_GREENGRASS_CONFIG_INVALID', message: expect.stringContaining('agent.queue.synchronous') });
      await until(() => bad.states.includes('ERRORED'), 5000, 'ERRORED');
    } finally {
      await bad.close();
      t.cleanup();
    }
  });

  it('fails with AGENT_GREENGRASS_IPC_FAILED when the nucleus refuses its token', async () => {
    const t = tempDir('edgeloop-gg-tok-');
    const srv = await GreengrassIpcServer.start({ socketPath: join(t.dir, 'n.sock'), svcuid: 'the-real-one', componentName: 'c' });
    try {
      await expect(startGreengrassAgent({ gg: { socketPath: srv.socketPath, authToken: 'stale' }, workDir: t.dir, logDestination: new Writable({ write: (_c, _e, cb) => cb() }) })).rejects.toMatchObject({ code: 'AGENT_GREENGRASS_IPC_FAILED' });
    } finally {
      await srv.close();
      t.cleanup();
    }
  });
});
