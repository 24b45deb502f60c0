import type { MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { deviceStatus, telemetry, type SampleAck, type SampleNack } from '../../../shared/schemas/index.js';
import { deviceIdFromTopic, topics } from '../../../shared/topics.js';
import { parseJsonWith } from '../../../shared/validate.js';
import type { TelemetryBatcher } from '../../app/devices/telemetry-batcher.js';
import type { DeviceRegistry } from '../../app/devices/registry.js';
import type { RolloutManager } from '../../app/rollouts/manager.js';
import type { SampleIngest } from '../../app/samples/ingest.js';

export interface DeviceRouterDeps {
  client: MqttClient;
  ingest: Pick<SampleIngest, 'acceptPayload'>;
  devices: Pick<DeviceRegistry, 'applyStatus'>;
  telemetry: Pick<TelemetryBatcher, 'add' | 'flush'>;
  rollouts: Pick<RolloutManager, 'onTelemetry' | 'onStatus'>;
  log: Logger;
}

export interface DeviceRouter {
  /** Stop taking messages, wait for those being handled, flush the telemetry batch. */
  stop(): Promise<void>;
}

type Handler = (d: DeviceRouterDeps, device: string, payload: Buffer) => Promise<void> | void;

/** One handler per device topic; every message validated, a bad one logged and dropped, never fatal. */
const handlers: Record<'samples' | 'telemetry' | 'status', Handler> = {
  async samples(d, device, payload) {
    // A rejection is logged by the ingest (once); here it is only answered.
    const r = await d.ingest.acceptPayload(device, payload);
    if (r.status === 'rejected' && r.nack) {
      const nack: SampleNack = { type: 'sample_nack', v: 1, sample_ids: r.nack.sampleIds, code: r.error.code, scope: r.nack.scope, retry_after_ms: r.nack.retryAfterMs, message: r.error.message.slice(0, 512) };
      d.client.publish(topics.acks(device), JSON.stringify(nack), { qos: 1 });
    }
    if (r.ack.length) {
      const ack: SampleAck = { type: 'sample_ack', v: 1, sample_ids: r.ack };
      d.client.publish(topics.acks(device), JSON.stringify(ack), { qos: 1 });
    }
  },
  telemetry(d, device, payload) {
    const t = parseJsonWith(telemetry, payload, 'INPUT_INVALID', 'telemetry');
    if (t.device_id !== device) throw new Error(`telemetry names ${t.device_id} on ${device}'s topic`);
    // Folded in batches (one commit per ~100 ms); the rollout manager sees each message at once.
    d.telemetry.add(t);
    d.rollouts.onTelemetry(t);
  },
  status(d, device, payload) {
    const s = parseJsonWith(deviceStatus, payload, 'INPUT_INVALID', 'device status');
    if (s.device_id !== device) throw new Error(`status names ${s.device_id} on ${device}'s topic`);
    d.devices.applyStatus(s);
    d.rollouts.onStatus(s);
  },
};

function kindOf(topic: string, device: string): keyof typeof handlers | null {
  if (topic === topics.samples(device)) return 'samples';
  if (topic === topics.telemetry(device)) return 'telemetry';
  if (topic === topics.status(device)) return 'status';
  return null;
}

/**
 * Routes the devices' MQTT messages (samples with their acks, telemetry, status) to the
 * fleet's services. Subscribes on start; `stop` detaches before the client ends.
 */
export async function startDeviceRouter(d: DeviceRouterDeps): Promise<DeviceRouter> {
  const inFlight = new Set<Promise<void>>();
  const onMessage = (topic: string, payload: Buffer): void => {
    const device = deviceIdFromTopic(topic);
    const kind = device ? kindOf(topic, device) : null;
    if (!device || !kind) return;
    // The handler's synchronous part runs now, in arrival order (an async IIFE, not a microtask later).
    const p = (async () => handlers[kind](d, device, payload))()
      .catch((err: unknown) => d.log.warn({ device, topic, reason: (err as Error).message }, 'device message rejected'))
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
  };
  d.client.on('message', onMessage);
  await d.client.subscribeAsync([topics.allSamples, topics.allTelemetry, topics.allStatus], { qos: 1 });
  return {
    async stop() {
      d.client.off('message', onMessage);
      await Promise.all([...inFlight]);
      d.telemetry.flush();
    },
  };
}
