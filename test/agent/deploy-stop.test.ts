/**
 * A deployment in flight when the agent stops (a fleet rollout reaching a device as it shuts
 * down, as in the demo's last wave): the model that finishes loading is released (its worker
 * threads end, so the process can exit), no failure is reported to the fleet for it, and the
 * revision is not recorded, so the retained desired state applies again after the restart.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { sha256Hex } from '../../shared/ids.js';
import { deviceStatus, type DesiredState, type DeviceStatus } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { startTestAgent } from '../helpers/agent.js';
import { servePackages } from '../helpers/package-server.js';
import { imagePackage, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';

const DEVICE = 'test-device';
const tmp = tempDir();
let broker: EmbeddedBroker | undefined;
let fleet: MqttClient | undefined;
let server: Awaited<ReturnType<typeof servePackages>> | undefined;
afterAll(async () => {
  server?.release();
  await fleet?.endAsync();
  await broker?.close();
  await server?.close();
  tmp.cleanup();
});

/** Worker threads alive in this process (each inference pool's workers hold a MessagePort). */
const workerPorts = (): number => process.getActiveResourcesInfo().filter((r) => r === 'MessagePort').length;

describe('a deployment in flight when the agent stops', () => {
  it('releases the model that loads during the stop, reports no failure, and applies again after the restart', { timeout: 120_000 }, async () => {
    for (const [v, seed] of [['1.0.0', 1], ['1.1.0', 2]] as const) await imagePackage(join(tmp.dir, `pets@${v}`), { version: v, seed });
    // The new version's model file is held by the server until the agent is stopping.
    server = await servePackages({ 'pets@1.1.0': join(tmp.dir, 'pets@1.1.0') }, { token: 'device-secret', hold: 'model.onnx' });
    broker = await startEmbeddedBroker();
    fleet = await mqtt.connectAsync(broker.url, { clientId: 'fleet-test' });
    const statuses: DeviceStatus[] = [];
    fleet.on('message', (topic, payload) => {
      if (topic === topics.status(DEVICE)) statuses.push(deviceStatus.parse(JSON.parse(payload.toString())));
    });
    await fleet.subscribeAsync(topics.status(DEVICE), { qos: 1 });
    const config = {
      models: { initial: join(tmp.dir, 'pets@1.0.0') },
      fleet_token: 'device-secret',
      uplink: { kind: 'mqtt' as const, url: broker.url, telemetry_interval_s: 0.2, backoff_initial_ms: 200 },
    };
    const before = workerPorts();
    let { agent } = await startTestAgent(join(tmp.dir, 'data'), config);
    await waitUntil(() => statuses.some((s) => s.online), 30_000);

    const desired: DesiredState = {
      type: 'desired_state',
      v: 1,
      device_id: DEVICE,
      revision: 1,
      issued_at: new Date().toISOString(),
      active: { model: { name: 'pets', version: '1.1.0' }, base_url: `${server.url}/pets@1.1.0`, manifest_sha256: sha256Hex(readFileSync(join(tmp.dir, 'pets@1.1.0', 'manifest.json'))) },
    };
    await fleet.publishAsync(topics.desired(DEVICE), JSON.stringify(desired), { qos: 1, retain: true });
    await server.held;
    // The stop begins while the model file is still on its way; then the download completes.
    const stopping = agent.stop();
    server.release();
    await stopping;

    // The agent's last word is its offline status: the interrupted deployment is not a failure.
    await waitUntil(() => statuses.some((s) => !s.online), 30_000);
    expect(statuses.filter((s) => s.deployment?.revision === 1 && s.deployment.phase === 'failed')).toEqual([]);
    expect(agent.service.activeRef).toBeNull();
    // Every worker thread the agent started (1.0.0's and the one loaded during the stop) ended.
    await waitUntil(() => workerPorts() === before, 30_000);

    // Restarted on the same data: the retained desired state applies, as it was never recorded.
    ({ agent } = await startTestAgent(join(tmp.dir, 'data'), config));
    try {
      await waitUntil(() => statuses.some((s) => s.deployment?.revision === 1 && s.deployment.phase === 'active'), 60_000);
      expect(agent.service.activeRef).toEqual({ name: 'pets', version: '1.1.0' });
    } finally {
      await agent.stop();
    }
  });
});
