import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../agent/agent.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { sha256Hex } from '../../shared/ids.js';
import { deviceStatus, MAX_MODEL_SLOTS, telemetry, type DesiredState, type DeviceStatus, type ModelRef, type Telemetry } from '../../shared/schemas/index.js';
import { DesiredRouter } from '../../agent/deploy/router.js';
import type { DeployTarget } from '../../agent/deploy/controller.js';
import { topics } from '../../shared/topics.js';
import { captureLogger, startTestAgent } from '../helpers/agent.js';
import { servePackages } from '../helpers/package-server.js';
import { imagePackage, patternImage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

/** Desired states per model slot over MQTT: the per-model topics, and the single topic older fleets publish on. */
let tmp: ReturnType<typeof tempDir>;
let broker: EmbeddedBroker;
let fleet: MqttClient;
let statuses: DeviceStatus[];
let telemetries: Telemetry[];
let server: Awaited<ReturnType<typeof servePackages>>;
let agent: Agent;
let revision = 0;

const DEVICE = 'test-device';
const PACKAGES = ['pets@1.0.0', 'pets@2.0.0', 'ppe-classifier@1.0.0', 'ppe-classifier@2.0.0'];
const refOf = (key: string): ModelRef => ({ name: key.split('@')[0]!, version: key.split('@')[1]! });
const artifact = (key: string) => ({ model: refOf(key), base_url: `${server.url}/${key}`, manifest_sha256: sha256Hex(readFileSync(join(tmp.dir, key, 'manifest.json'))) });
const until = (what: string, cond: () => boolean, ms = 30_000): Promise<void> => waitUntil(cond, ms, what);

/** Publish a desired state (retained, as the fleet does) on `topic`; returns its revision. */
async function desire(topic: string, d: Partial<DesiredState>): Promise<number> {
  revision++;
  const msg: DesiredState = { type: 'desired_state', v: 1, device_id: DEVICE, revision, issued_at: new Date().toISOString(), active: null, ...d };
  await fleet.publishAsync(topic, JSON.stringify(msg), { qos: 1, retain: true });
  return revision;
}

const versions = (): Record<string, string | null> => Object.fromEntries(agent.slots.all().map((s) => [s.activeRef?.name, s.activeRef?.version ?? null]));
const slotPhase = (name: string, rev: number): string | undefined => statuses.findLast((s) => s.slots?.some((x) => x.name === name && x.deployment?.revision === rev))?.slots?.find((x) => x.name === name)?.deployment?.phase;

beforeAll(async () => {
  tmp = tempDir();
  for (const [i, key] of PACKAGES.entries()) {
    const { name, version } = refOf(key);
    await imagePackage(join(tmp.dir, key), { version, seed: i + 1, extra: { name } });
  }
  server = await servePackages(Object.fromEntries(PACKAGES.map((k) => [k, join(tmp.dir, k)])), { token: 'device-secret' });
  broker = await startEmbeddedBroker();
  fleet = await mqtt.connectAsync(broker.url, { clientId: 'fleet-test' });
  statuses = [];
  telemetries = [];
  fleet.on('message', (topic, payload) => {
    if (topic === topics.status(DEVICE)) statuses.push(deviceStatus.parse(JSON.parse(payload.toString())));
    if (topic === topics.telemetry(DEVICE)) telemetries.push(telemetry.parse(JSON.parse(payload.toString())));
  });
  await fleet.subscribeAsync([topics.status(DEVICE), topics.telemetry(DEVICE)], { qos: 1 });
  ({ agent } = await startTestAgent(join(tmp.dir, 'data'), {
    models: { initial: [join(tmp.dir, 'pets@1.0.0'), join(tmp.dir, 'ppe-classifier@1.0.0')] },
    fleet_token: 'device-secret',
    uplink: { kind: 'mqtt', url: broker.url, telemetry_interval_s: 0.2, backoff_initial_ms: 200 },
  }));
  await until('the agent is online', () => statuses.some((s) => s.online));
}, 120_000);

afterAll(async () => {
  await agent?.stop();
  await fleet?.endAsync();
  await broker?.close();
  await server?.close();
  tmp.cleanup();
});

describe('desired states per model slot', () => {
  it('applies a desired state without a model name (an older fleet, single topic) to the slot of the model it names, leaving the other slot alone', { timeout: 60_000 }, async () => {
    const rev = await desire(topics.desired(DEVICE), { rollout_id: 'ro-old', active: artifact('ppe-classifier@2.0.0') });
    await until('the classifier slot reports active', () => slotPhase('ppe-classifier', rev) === 'active');
    expect(versions()).toEqual({ pets: '1.0.0', 'ppe-classifier': '2.0.0' });
    const last = statuses.at(-1)!;
    // Top-level models are the first slot's (what older fleets read); every slot is listed.
    expect(last.models.active).toEqual({ name: 'pets', version: '1.0.0' });
    expect(last.slots?.map((s) => [s.name, s.active?.version, s.previous?.version ?? null])).toEqual([
      ['pets', '1.0.0', null],
      ['ppe-classifier', '2.0.0', '1.0.0'],
    ]);
  });

  it('applies per-model topics to their slot, and one slot goes back to its previous version while the other keeps its new one', { timeout: 60_000 }, async () => {
    const petsRev = await desire(topics.desiredModel(DEVICE, 'pets'), { rollout_id: 'ro-pets', model_name: 'pets', active: artifact('pets@2.0.0') });
    await until('the pets slot reports active', () => slotPhase('pets', petsRev) === 'active');
    expect(versions()).toEqual({ pets: '2.0.0', 'ppe-classifier': '2.0.0' });

    // The classifier's retained desired state on its own topic goes back to 1.0.0, still installed: no download.
    const back = await desire(topics.desiredModel(DEVICE, 'ppe-classifier'), { rollout_id: 'ro-old', model_name: 'ppe-classifier', active: artifact('ppe-classifier@1.0.0') });
    await until('the classifier slot reports rolled_back', () => slotPhase('ppe-classifier', back) === 'rolled_back');
    expect(versions()).toEqual({ pets: '2.0.0', 'ppe-classifier': '1.0.0' });
    // An older revision for pets (lower than the one it applied) changes nothing there.
    expect(statuses.at(-1)!.slots!.find((s) => s.name === 'pets')!.deployment).toMatchObject({ revision: petsRev, phase: 'active' });
  });

  it('ignores a desired state whose model differs from its topic', { timeout: 30_000 }, async () => {
    const before = statuses.length;
    await desire(topics.desiredModel(DEVICE, 'pets'), { model_name: 'ppe-classifier', active: artifact('ppe-classifier@2.0.0') });
    // A positive event first: the next telemetry window goes out after the message was handled.
    const seen = telemetries.length;
    await until('two more telemetry windows', () => telemetries.length >= seen + 2);
    expect(versions()).toEqual({ pets: '2.0.0', 'ppe-classifier': '1.0.0' });
    expect(statuses.slice(before).every((s) => s.slots?.find((x) => x.name === 'ppe-classifier')?.active?.version === '1.0.0')).toBe(true);
  });

  it('sends each model slot its own telemetry window, the first slot also at the top level', { timeout: 30_000 }, async () => {
    const img = await patternImage(5);
    const seen = telemetries.length;
    await agent.infer({ kind: 'image', bytes: img }, { source: 'http', model: 'ppe-classifier' });
    await agent.infer({ kind: 'image', bytes: img }, { source: 'http', model: 'ppe-classifier' });
    await agent.infer({ kind: 'image', bytes: img }, { source: 'http' });
    const sum = (name: string): number => telemetries.slice(seen).reduce((n, t) => n + (t.models?.find((w) => w.model.name === name)?.inference.count ?? 0), 0);
    await until('the three inferences counted in their models', () => sum('ppe-classifier') === 2 && sum('pets') === 1);
    for (const t of telemetries.slice(seen)) {
      expect(t.models?.map((w) => w.model)).toEqual([
        { name: 'pets', version: '2.0.0' },
        { name: 'ppe-classifier', version: '1.0.0' },
      ]);
      // The top level is the first slot's window, as fleets older than slots read it.
      expect({ model: t.model, count: t.inference.count }).toEqual({ model: t.models![0]!.model, count: t.models![0]!.inference.count });
    }
  });
});


describe('a device serving the most model slots its status can list', () => {
  it(`refuses a desired state for a ${MAX_MODEL_SLOTS + 1}th model (logged with AGENT_MODEL_SLOTS_FULL) and still routes one for a model it serves`, async () => {
    const { log, lines } = captureLogger();
    const served = Array.from({ length: MAX_MODEL_SLOTS }, (_, i) => `model-${i}`);
    const targeted: string[] = [];
    const target = (slot: string): DeployTarget => {
      targeted.push(slot);
      const no = (): Promise<never> => Promise.reject(new Error('not in this test'));
      return { activeRef: () => null, previousRef: () => null, appliedRevision: () => 0, recordRevision: () => Promise.resolve(), isInstalled: () => Promise.resolve(false), install: no, activateInstalled: no, prepareShadow: no, setShadow: () => undefined, shadowRef: () => null, report: () => undefined } as DeployTarget;
    };
    const router = new DesiredRouter(DEVICE, target, () => served[0]!, log, undefined, () => served);
    const msg = (name: string): DesiredState => ({ type: 'desired_state', v: 1, device_id: DEVICE, revision: 7, issued_at: new Date().toISOString(), model_name: name, active: null });
    await router.submit(msg('one-too-many'));
    expect(lines.find((l) => l['code'] === 'AGENT_MODEL_SLOTS_FULL')).toMatchObject({ model: 'one-too-many', max: MAX_MODEL_SLOTS });
    expect(targeted).toEqual([]);
    // One naming another model than its slot never reaches a controller.
    await router.submit({ ...msg('model-3'), active: { model: { name: 'model-4', version: '1.0.0' }, base_url: 'http://127.0.0.1:1/x', manifest_sha256: '0'.repeat(64) } });
    expect(lines.find((l) => l['msg'] === 'desired state for one model slot names another model; ignored')).toMatchObject({ model_slot: 'model-3', model: 'model-4@1.0.0' });
    expect(targeted).toEqual([]);
    // A desired state with no active model for a slot it serves reaches that slot's controller.
    await router.submit(msg('model-3'));
    expect(targeted).toEqual(['model-3']);
  });
});
