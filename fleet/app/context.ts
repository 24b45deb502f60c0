import type { Logger } from 'pino';
import type { Clock } from '../../shared/ids.js';
import type { Alerts } from './alerts/alerts.js';
import type { ArtifactStore } from './artifacts.js';
import type { AuditLog } from './audit.js';
import type { Users } from './users.js';
import type { DeviceCertificates } from './devices/certificates.js';
import type { DeviceRegistry } from './devices/registry.js';
import type { Datasets } from './labels/datasets.js';
import type { Labels } from './labels/labels.js';
import type { ModelRegistry } from './models/registry.js';
import type { RolloutManager } from './rollouts/manager.js';
import type { RuleSets } from './rules/rule-sets.js';
import type { SampleIngest } from './samples/ingest.js';
import type { LearningLoop } from './training/loop.js';
import type { TrainingRuns } from './training/runs.js';

/** The fleet database as the edges see it: only whether it answers (`/v1/healthz`). */
export interface StorageHealth {
  /** Read from the fleet database; throws `FLEET_STORAGE_FAILED` when it cannot. */
  ping(): void;
}

/**
 * Everything the fleet's edges (HTTP API, web console, CLI, MQTT handlers) work with. The
 * service builds it once; tests build it from the same classes over temp files.
 */
export interface FleetContext {
  /** Storage itself stays behind the services' repositories; this only says whether it answers. */
  storage: StorageHealth;
  artifacts: ArtifactStore;
  registry: ModelRegistry;
  devices: DeviceRegistry;
  /** Device X.509 certificates from the fleet CA: issue, revoke, the broker's check at connect. */
  certificates: DeviceCertificates;
  ingest: SampleIngest;
  labels: Labels;
  datasets: Datasets;
  rollouts: RolloutManager;
  /** Decision log of a rollout, newest first. */
  rolloutDecisions(id: string, limit?: number): unknown[];
  users: Users;
  /** Who did what: written by the services, read by `GET /v1/audit` and the console. */
  audit: AuditLog;
  /** Alerts raised by device rules: listed, acknowledged and resolved. */
  alerts: Alerts;
  /** Alert rule sets: pushed (signed versions), deployed to a selector, replayed over stored samples. */
  ruleSets: RuleSets;
  /** The learning loop, when models are configured for training (routes answer FLEET_TRAINING_NOT_CONFIGURED without it). */
  training?: LearningLoop;
  /** Training runs and trigger firings (the loop's own when it runs; read-only history otherwise). */
  trainingRuns: TrainingRuns;
  clock: Clock;
  log: Logger;
  /** The fleet's signing public key (PEM), handed to agents. */
  publicKeyPem: string;
  /** Where devices reach the broker and the HTTP API (known after listen); `mqtts`: the broker's TLS listener for certificate logins, when it runs. */
  urls: { mqtt: string; http: string; mqtts?: string };
}
