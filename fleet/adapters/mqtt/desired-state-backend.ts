import type { MqttClient } from 'mqtt';
import type { DesiredState, ModelRef } from '../../../shared/schemas/index.js';
import { topics } from '../../../shared/topics.js';
import type { ArtifactLocation, RolloutBackend } from '../../app/rollouts/backend.js';
import type { DesiredChange } from '../../core/rollouts/state-schema.js';

export interface MqttBackendDeps {
  client: MqttClient;
  locate(model: ModelRef): ArtifactLocation;
  /** Next desired-state revision for a device (monotonic, persisted by the caller). */
  nextRevision(deviceId: string): number;
  now(): number;
  /**
   * Notification rate: desired states published per second at most, like IoT Jobs'
   * `maximumPerMinute`, so a wave of thousands of devices does not make them all download at
   * once. 0 or absent: every change of a step is published at once. Deliveries are serialised
   * by the manager, so a paced wave also delays the changes after it (a revert waits for the
   * wave's notifications in front of it, as in IoT Jobs).
   */
  maxPerSecond?: number;
  /** Waits between paced slices (passed in so tests can use fake time). Default setTimeout. */
  sleep?: (ms: number) => Promise<void>;
}

/**
 * Desired state per device and model slot as a retained QoS 1 message: a device that is offline
 * for days gets the latest one of each of its models when it reconnects (retained, one topic
 * per model name: `.../desired/NAME`), and its revision tells it whether it has applied it
 * already. The same message also goes to the device's single `.../desired` topic, which agents
 * older than model slots follow (one model each); an agent with slots gets both and applies the
 * revision once.
 */
export function mqttDesiredStateBackend(deps: MqttBackendDeps): RolloutBackend {
  return {
    name: 'mqtt',
    async deliver(rolloutId, changes) {
      const publish = (c: DesiredChange): Promise<unknown> => {
        const slot = c.model_name ?? c.active?.name ?? c.shadow?.model.name;
        const msg: DesiredState = {
          type: 'desired_state',
          v: 1,
          device_id: c.device_id,
          revision: deps.nextRevision(c.device_id),
          rollout_id: rolloutId,
          issued_at: new Date(deps.now()).toISOString(),
          ...(slot ? { model_name: slot } : {}),
          active: c.active ? { model: c.active, ...deps.locate(c.active) } : null,
          ...(c.shadow ? { shadow: { model: c.shadow.model, sample_rate: c.shadow.sample_rate, ...deps.locate(c.shadow.model) } } : {}),
        };
        const payload = JSON.stringify(msg);
        return Promise.all([
          ...(slot ? [deps.client.publishAsync(topics.desiredModel(c.device_id, slot), payload, { qos: 1, retain: true })] : []),
          deps.client.publishAsync(topics.desired(c.device_id), payload, { qos: 1, retain: true }),
        ]);
      };
      const rate = deps.maxPerSecond ?? 0;
      if (!(rate > 0)) {
        await Promise.all(changes.map(publish));
        return;
      }
      // Slices of ~100 ms worth of notifications: even pacing without a timer per message.
      const slice = Math.max(1, Math.round(rate / 10));
      const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
      const sent: Array<Promise<unknown>> = [];
      for (let i = 0; i < changes.length; i += slice) {
        if (i > 0) await sleep((slice * 1000) / rate);
        sent.push(...changes.slice(i, i + slice).map(publish));
      }
      await Promise.all(sent);
    },
  };
}
