import type { DesiredChange } from '../../core/rollouts/state-schema.js';

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
