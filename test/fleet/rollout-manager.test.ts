import mqtt, { type MqttClient } from 'mqtt';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mqttDesiredStateBackend } from '../../fleet/adapters/mqtt/desired-state-backend.js';
import { RolloutManager, memoryRolloutRepo, type RolloutRepo } from '../../fleet/app/rollouts/manager.js';
import type { TargetDevice } from '../../fleet/core/rollouts/event-schema.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { SimulatedDevices } from '../helpers/device-sim.js';
import { deviceStatus, telemetry, type ModelRef } from '../../shared/schemas/index.js';
import { systemClock } from '../../shared/ids.js';
import { waitUntil } from '../helpers/wait.js';
import { captureLogger } from '../helpers/agent.js';

const V1: ModelRef = { name: 'digits', version: '1.0.0' };
const V2: ModelRef = { name: 'digits', version: '2.0.0' };
const N = 30;

let broker: EmbeddedBroker;
let fleet: MqttClient;

beforeAll(async () => {
  broker = await startEmbeddedBroker();
  fleet = await mqtt.connectAsync(broker.url, { clientId: 'edgeloop-fleet-test' });
});
afterAll(async () => {
  await fleet.endAsync();
  await broker.close();
});

const until = (cond: () => boolean, ms = 30_000): Promise<void> => waitUntil(cond, ms);

/** A fleet side wired as the service wires it: backend over MQTT, device messages into the manager. */
function wire(prefix: string, repo: RolloutRepo) {
  const revisions = new Map<string, number>();
  const ids = Array.from({ length: N }, (_, i) => `${prefix}-${i}`);
  const manager = new RolloutManager({
    repo,
    backend: mqttDesiredStateBackend({
      client: fleet,
      locate: (m) => ({ base_url: `http://fleet.invalid/v1/models/${m.name}/${m.version}`, manifest_sha256: '0'.repeat(64) }),
      nextRevision: (id) => {
        const r = (revisions.get(id) ?? 0) + 1;
        revisions.set(id, r);
        return r;
      },
      now: () => Date.now(),
    }),
    resolveTargets: (): TargetDevice[] => ids.map((id) => ({ id, active: V1, baseline: { count: 1000, errors: 0, latency_p95_ms: 8, confidence_mean: 0.9, outlier_rate: 0.05 } })),
    clock: systemClock,
    log: pino({ level: 'silent' }),
  });
  const onMessage = (topic: string, payload: Buffer): void => {
    if (!topic.startsWith(`edgeloop/v1/devices/${prefix}-`)) return;
    const body = JSON.parse(payload.toString()) as { type: string };
    if (body.type === 'telemetry') manager.onTelemetry(telemetry.parse(body));
    if (body.type === 'device_status') manager.onStatus(deviceStatus.parse(body));
  };
  fleet.on('message', onMessage);
  return { ids, manager, stop: () => fleet.off('message', onMessage) };
}

const plan = { canary: { devices: { percent: 10 }, bake_s: 0.3 }, waves: [{ devices: { percent: 50 }, bake_s: 0.3 }, { devices: { percent: 100 }, bake_s: 0.3 }] };

describe('rollout manager over MQTT with simulated devices', () => {
  it('rolls canary then waves to every device, and survives a fleet restart mid-rollout', async () => {
    await fleet.subscribeAsync('edgeloop/v1/devices/+/+', { qos: 1 });
    const repo = memoryRolloutRepo();
    const a = wire('ok', repo);
    const sims = new SimulatedDevices({ url: broker.url, devices: a.ids.map((id) => ({ id, active: V1 })), telemetryIntervalMs: 100 });
    await sims.start();
    let manager = a.manager;
    const ticker = setInterval(() => manager.tick(), 50);
    try {
      const r = manager.create({ model: V2, selector: { site: 'x' }, plan, actor: 'test' });
      await until(() => manager.get(r.state.id).state.stage >= 1);
      // The fleet restarts: a new manager over the same stored rollouts continues where it stood.
      a.stop();
      const b = wire('ok', repo);
      manager = b.manager;
      expect(await manager.resume()).toBe(1);
      await until(() => manager.get(r.state.id).state.status === 'completed');
      b.stop();
      expect(a.ids.map((id) => sims.activeOf(id)?.version)).toEqual(a.ids.map(() => '2.0.0'));
      const kinds = repo.decisions.map((d) => d.kind);
      expect(kinds).toEqual(expect.arrayContaining(['started', 'stage_started', 'gate_passed', 'completed']));
    } finally {
      clearInterval(ticker);
      await sims.stop();
    }
  });

  it('aborts on a confidence drop and reverts every touched device', async () => {
    const repo = memoryRolloutRepo();
    const w = wire('bad', repo);
    const sims = new SimulatedDevices({
      url: broker.url,
      devices: w.ids.map((id) => ({ id, active: V1 })),
      telemetryIntervalMs: 100,
      quality: (_id, m) => (m.version === '2.0.0' ? { confidence: 0.55 } : { confidence: 0.9 }),
    });
    await sims.start();
    const touched = new Set<string>();
    const watch = (topic: string, payload: Buffer): void => {
      const m = /^edgeloop\/v1\/devices\/(bad-\d+)\/desired$/.exec(topic);
      if (m && (JSON.parse(payload.toString()) as { active: { model: ModelRef } | null }).active?.model.version === '2.0.0') touched.add(m[1]!);
    };
    fleet.on('message', watch);
    const ticker = setInterval(() => w.manager.tick(), 50);
    try {
      const r = w.manager.create({ model: V2, selector: { site: 'y' }, plan: { ...plan, gates: { on_failure: { confidence_drop: 'abort' } } }, actor: 'test' });
      await until(() => w.manager.get(r.state.id).state.status === 'aborted');
      await w.manager.settled();
      await until(() => w.ids.every((id) => sims.activeOf(id)?.version === '1.0.0'));
      const failed = repo.decisions.find((d) => d.kind === 'gate_failed');
      expect(failed?.reason).toMatch(/confidence/);
      // The gate tripped in the canary: only the canary's 10% ever got the candidate.
      expect(touched.size).toBeGreaterThan(0);
      expect(touched.size).toBeLessThanOrEqual(Math.ceil(N * 0.1));
    } finally {
      fleet.off('message', watch);
      clearInterval(ticker);
      w.stop();
      await sims.stop();
    }
  });

  it('paces desired states at the notification rate: slices of a tenth of a second, every device notified', async () => {
    const got = new Set<string>();
    const onMessage = (topic: string): void => {
      const m = /^edgeloop\/v1\/devices\/(paced-\d+)\/desired$/.exec(topic);
      if (m) got.add(m[1]!);
    };
    fleet.on('message', onMessage);
    await fleet.subscribeAsync('edgeloop/v1/devices/+/desired', { qos: 1 });
    const sleeps: number[] = [];
    const backend = mqttDesiredStateBackend({
      client: fleet,
      locate: () => ({ base_url: 'http://fleet.invalid/v1/models/digits/2.0.0', manifest_sha256: '0'.repeat(64) }),
      nextRevision: () => 1,
      now: () => Date.now(),
      maxPerSecond: 40,
      sleep: (ms) => {
        sleeps.push(ms);
        return new Promise((r) => setTimeout(r, ms));
      },
    });
    const t0 = Date.now();
    await backend.deliver('ro_paced', Array.from({ length: 20 }, (_, i) => ({ device_id: `paced-${i}`, active: V2, shadow: null })));
    const took = Date.now() - t0;
    await until(() => got.size === 20);
    fleet.off('message', onMessage);
    // 40/s: slices of 4, 100 ms apart, so 20 devices take four waits.
    expect(sleeps).toEqual([100, 100, 100, 100]);
    expect(took).toBeGreaterThanOrEqual(390);
    // QoS 1 is at least once, and this broker also holds the earlier test's overlapping
    // subscription, so a device may see its message twice; every one of them saw it.
    expect([...got].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `paced-${i}`).sort());
  });
});

describe('rollout manager delivery retries', () => {
  it('re-delivers desired states that failed, with backoff, without a restart, until they go through', async () => {
    const delivered: string[][] = [];
    let failuresLeft = 2;
    const { log, lines } = captureLogger();
    const manager = new RolloutManager({
      repo: memoryRolloutRepo(),
      backend: {
        name: 'flaky',
        deliver: async (_id, changes) => {
          if (failuresLeft-- > 0) throw new Error('broker unreachable');
          delivered.push(changes.map((c) => c.device_id));
        },
      },
      resolveTargets: (): TargetDevice[] => ['d-1', 'd-2'].map((id) => ({ id, active: V1 })),
      clock: systemClock,
      log,
      deliveryRetry: { initialMs: 20, maxMs: 100 },
    });
    try {
      manager.create({ model: V2, selector: {}, plan: { canary: { devices: { count: 2 }, bake_s: 60 }, waves: [{ devices: { percent: 100 }, bake_s: 60 }] }, actor: 'test' });
      await until(() => delivered.length > 0, 10_000);
      expect(delivered[0]?.sort()).toEqual(['d-1', 'd-2']);
      const failures = lines.filter((l) => l.code === 'FLEET_DELIVERY_FAILED');
      expect(failures.map((l) => [l.attempt, l.retry_in_ms])).toEqual([
        [1, 20],
        [2, 40],
      ]);
      expect(manager.pendingRetries).toBe(0);
    } finally {
      manager.close();
    }
  });
});
