import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { sha256Hex } from '../../shared/ids.js';
import { deviceStatus, telemetry, type DesiredState, type DeviceStatus, type Telemetry } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { startTestAgent } from '../helpers/agent.js';
import { servePackages } from '../helpers/package-server.js';
import { imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
let broker: EmbeddedBroker;
let fleet: MqttClient;
let statuses: DeviceStatus[];
let telemetries: Telemetry[];
let server: Awaited<ReturnType<typeof servePackages>>;
let agent: Agent;
let url: string;
let revision = 0;

const DEVICE = 'test-device';
const ref = (version: string) => ({ name: 'pets', version });
const artifact = (key: string) => ({ model: ref(key.split('@')[1]!), base_url: `${server.url}/${key}`, manifest_sha256: sha256Hex(readFileSync(join(tmp.dir, key, 'manifest.json'))) });

const until = (cond: () => boolean, ms = 30_000): Promise<void> => waitUntil(cond, ms);

async function desire(d: Partial<DesiredState>): Promise<number> {
  revision++;
  const msg: DesiredState = { type: 'desired_state', v: 1, device_id: DEVICE, revision, issued_at: new Date().toISOString(), active: null, ...d };
  await fleet.publishAsync(topics.desired(DEVICE), JSON.stringify(msg), { qos: 1, retain: true });
  return revision;
}

/** Phases reported for a revision, repeats collapsed (a status also changes for other reasons). */
const phaseOf = (rev: number) =>
  statuses
    .filter((s) => s.deployment?.revision === rev)
    .map((s) => s.deployment!.phase)
    .filter((p, i, all) => i === 0 || all[i - 1] !== p);

beforeAll(async () => {
  tmp = tempDir();
  for (const [v, seed] of [['1.0.0', 1], ['1.1.0', 2], ['2.0.0', 3]] as const) await imagePackage(join(tmp.dir, `pets@${v}`), { version: v, seed });
  // A package whose model file was swapped after signing: the download must be refused.
  await imagePackage(join(tmp.dir, 'pets@9.0.0'), { version: '9.0.0', seed: 4 });
  const bad = join(tmp.dir, 'pets@9.0.0', 'model.onnx');
  (await import('node:fs')).writeFileSync(bad, readFileSync(join(tmp.dir, 'pets@1.0.0', 'model.onnx')));
  server = await servePackages(Object.fromEntries(['pets@1.0.0', 'pets@1.1.0', 'pets@2.0.0', 'pets@9.0.0'].map((k) => [k, join(tmp.dir, k)])), { token: 'device-secret', dropOnce: 'model.onnx' });
  broker = await startEmbeddedBroker();
  fleet = await mqtt.connectAsync(broker.url, { clientId: 'fleet-test' });
  statuses = [];
  telemetries = [];
  fleet.on('message', (topic, payload) => {
    if (topic === topics.status(DEVICE)) statuses.push(deviceStatus.parse(JSON.parse(payload.toString())));
    if (topic === topics.telemetry(DEVICE)) telemetries.push(telemetry.parse(JSON.parse(payload.toString())));
  });
  await fleet.subscribeAsync([topics.status(DEVICE), topics.telemetry(DEVICE)], { qos: 1 });
  ({ agent, url } = await startTestAgent(join(tmp.dir, 'data'), {
    models: { initial: join(tmp.dir, 'pets@1.0.0') },
    fleet_token: 'device-secret',
    uplink: { kind: 'mqtt', url: broker.url, telemetry_interval_s: 0.2, backoff_initial_ms: 200 },
  }));
  await until(() => statuses.some((s) => s.online));
});

afterAll(async () => {
  await agent.stop();
  await fleet.endAsync();
  await broker.close();
  await server.close();
  tmp.cleanup();
});

describe('desired state over MQTT, artifacts over HTTP', () => {
  it('downloads (resuming a dropped transfer), verifies, smoke-tests and activates a new version', async () => {
    const rev = await desire({ rollout_id: 'ro-1', active: artifact('pets@1.1.0') });
    await until(() => phaseOf(rev).includes('active'));
    expect(phaseOf(rev)).toEqual(['downloading', 'verifying', 'staged', 'active']);
    expect(agent.service.activeRef).toEqual(ref('1.1.0'));
    // The first GET of model.onnx was cut half-way; the next one asked for the rest.
    expect(server.requests.filter((r) => r.includes('model.onnx'))).toEqual([expect.stringMatching(/files\/model\.onnx$/), expect.stringMatching(/files\/model\.onnx bytes=\d+-$/)]);
    const last = statuses.at(-1)!;
    expect(last.models).toMatchObject({ active: ref('1.1.0'), previous: ref('1.0.0') });
    expect(last.deployment).toMatchObject({ rollout_id: 'ro-1', target: ref('1.1.0'), phase: 'active' });
  });

  it('reports failed with the error code for a tampered package, and keeps serving', async () => {
    const rev = await desire({ active: artifact('pets@9.0.0') });
    await until(() => phaseOf(rev).includes('failed'));
    const failed = statuses.filter((s) => s.deployment?.revision === rev).at(-1)!.deployment!;
    expect(failed).toMatchObject({ phase: 'failed', error_code: 'MODEL_HASH_MISMATCH' });
    expect(agent.service.activeRef).toEqual(ref('1.1.0'));
    const res = await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(1) });
    expect(res.status).toBe(200);
  });

  it('runs a candidate in shadow without changing answers, and reports agreement', async () => {
    const rev = await desire({ active: artifact('pets@1.1.0'), shadow: { ...artifact('pets@2.0.0'), sample_rate: 1 } });
    await until(() => phaseOf(rev).includes('shadow'));
    const before = telemetries.length;
    for (let i = 0; i < 20; i++) {
      const r = (await (await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(i) })).json()) as { model_version: string };
      expect(r.model_version).toBe('1.1.0');
    }
    await until(() => telemetries.slice(before).reduce((n, t) => n + (t.shadow?.count ?? 0), 0) >= 20);
    const withShadow = telemetries.slice(before).filter((t) => t.shadow && t.shadow.count > 0);
    expect(withShadow[0]!.shadow).toMatchObject({ model: ref('2.0.0'), agreement: expect.any(Number), latency_p95_ms: expect.any(Number) });
  });

  it('goes back to the last-known-good version without a download, and ignores a stale revision', async () => {
    const requestsBefore = server.requests.length;
    const rev = await desire({ active: artifact('pets@1.0.0') });
    await until(() => phaseOf(rev).includes('rolled_back'));
    expect(agent.service.activeRef).toEqual(ref('1.0.0'));
    expect(agent.service.shadowRef).toBeNull();
    expect(server.requests.length).toBe(requestsBefore);
    // A stale (older) revision arriving late changes nothing.
    const stale: DesiredState = { type: 'desired_state', v: 1, device_id: DEVICE, revision: 1, issued_at: new Date().toISOString(), active: artifact('pets@2.0.0') };
    await fleet.publishAsync(topics.desired(DEVICE), JSON.stringify(stale), { qos: 1 });
    await new Promise((r) => setTimeout(r, 300));
    expect(agent.service.activeRef).toEqual(ref('1.0.0'));
  });
});
