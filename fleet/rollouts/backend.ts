import type { MqttClient } from 'mqtt';
import type { DesiredState, ModelRef } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import type { DesiredChange } from './state-schema.js';

/** Where a model version's package can be fetched, as a device needs it. */
export interface ArtifactLocation {
  base_url: string;
  manifest_sha256: string;
}

/**
 * Delivers desired states to devices. The embedded default publishes them over MQTT
 * (retained per device); a Greengrass backend turns them into deployments. A new backend is
 * a new adapter: the rollout machine and manager do not change.
 */
export interface RolloutBackend {
  readonly name: string;
  deliver(rolloutId: string, changes: readonly DesiredChange[]): Promise<void>;
}

export interface MqttBackendDeps {
  client: MqttClient;
  locate(model: ModelRef): ArtifactLocation;
  /** Next desired-state revision for a device (monotonic, persisted by the caller). */
  nextRevision(deviceId: string): number;
  now(): number;
}

/**
 * Desired state per device as a retained QoS 1 message: a device that is offline for days
 * gets the latest one when it reconnects (retained), and its revision tells it whether it
 * has applied it already.
 */
export function mqttDesiredStateBackend(deps: MqttBackendDeps): RolloutBackend {
  return {
    name: 'mqtt',
    async deliver(rolloutId, changes) {
      await Promise.all(
        changes.map((c) => {
          const msg: DesiredState = {
            type: 'desired_state',
            v: 1,
            device_id: c.device_id,
            revision: deps.nextRevision(c.device_id),
            rollout_id: rolloutId,
            issued_at: new Date(deps.now()).toISOString(),
            active: c.active ? { model: c.active, ...deps.locate(c.active) } : null,
            ...(c.shadow ? { shadow: { model: c.shadow.model, sample_rate: c.shadow.sample_rate, ...deps.locate(c.shadow.model) } } : {}),
          };
          return deps.client.publishAsync(topics.desired(c.device_id), JSON.stringify(msg), { qos: 1, retain: true });
        }),
      );
    },
  };
}
