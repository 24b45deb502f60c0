import { join } from 'node:path';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../shared/ids.js';
import { openFsArtifactStore } from '../adapters/fs/artifact-store.js';
import { loadOrCreateFleetCa } from '../adapters/fs/fleet-ca.js';
import { fsPackageStaging } from '../adapters/fs/package-staging.js';
import { TieredArtifactStore } from '../adapters/fs/tiered-store.js';
import { openSqliteArtifactStore } from '../adapters/sqlite/artifact-store.js';
import { sqliteAlertsRepo } from '../adapters/sqlite/alerts-repo.js';
import { sqliteRuleSetsRepo } from '../adapters/sqlite/rule-sets-repo.js';
import { RuleSets, type RuleSetDelivery } from '../app/rules/rule-sets.js';
import { Alerts } from '../app/alerts/alerts.js';
import { sqliteAuditRepo } from '../adapters/sqlite/audit-repo.js';
import { sqliteDatasetsRepo } from '../adapters/sqlite/datasets-repo.js';
import { openFleetDb, sqliteStorageHealth, type FleetDb } from '../adapters/sqlite/db.js';
import { sqliteDevicesRepo } from '../adapters/sqlite/devices-repo.js';
import { sqliteModelsRepo } from '../adapters/sqlite/models-repo.js';
import { sqliteRevisions, sqliteRolloutRepo } from '../adapters/sqlite/rollout-repo.js';
import { sqliteSamplesRepo } from '../adapters/sqlite/samples-repo.js';
import { sqliteTrainingRunsRepo } from '../adapters/sqlite/training-runs-repo.js';
import { sqliteUsersRepo } from '../adapters/sqlite/users-repo.js';
import type { ArtifactStore } from '../app/artifacts.js';
import { AuditLog } from '../app/audit.js';
import type { FleetContext } from '../app/context.js';
import { DeviceCertificates, type CertificateAuthority } from '../app/devices/certificates.js';
import type { ScryptParams } from '../app/devices/credentials.js';
import { DeviceRegistry } from '../app/devices/registry.js';
import { Datasets } from '../app/labels/datasets.js';
import { boxLabelSource } from '../app/labels/box-source.js';
import { Labels } from '../app/labels/labels.js';
import { ModelRegistry } from '../app/models/registry.js';
import type { UploadLimits } from '../app/models/staging.js';
import type { RolloutBackend } from '../app/rollouts/backend.js';
import { RolloutManager } from '../app/rollouts/manager.js';
import { SampleIngest, type SampleIngestOptions } from '../app/samples/ingest.js';
import { TrainingRuns } from '../app/training/runs.js';
import { Users } from '../app/users.js';
import type { TargetDevice } from '../core/rollouts/event-schema.js';
import { modelWindowOf, slotActive } from '../core/devices/state.js';
import type { RolloutState } from '../core/rollouts/state-schema.js';
import { Teardown } from './teardown.js';

/** What a rollout backend gets from the fleet it is built into. */
export interface RolloutBackendEnv {
  /**
   * The fleet database, for a backend that keeps its own record there (the AWS ledger), so its
   * writes can share a transaction with the rollout steps the manager saves in it.
   */
  db: FleetDb;
  registry: ModelRegistry;
  /** Filled once the HTTP server listens. */
  urls: { http: string; mqtt: string };
  /** The current state of a rollout (for naming stages and reading their gates); null when unknown. */
  rollout(id: string): RolloutState | null;
  /** Next desired-state revision of a device: monotonic, persisted in the fleet database. */
  nextRevision(deviceId: string): number;
  clock: Clock;
  log: Logger;
}

export interface BuildFleetOptions {
  /** fleet.db, small-artifacts.db and artifacts/ live here. */
  dataDir: string;
  signingKey: { privateKeyPem: string; publicKeyPem: string };
  log: Logger;
  clock?: Clock;
  /** All artifacts in this store instead of the tiered DATA/ stores (S3 in AWS mode, a plain directory in tests). */
  artifacts?: ArtifactStore;
  /** The fleet CA that certifies devices; default the one in `dataDir/keys` (made on first use). */
  ca?: CertificateAuthority;
  /** Cost of device secret hashes (tests lower it). */
  deviceScrypt?: ScryptParams;
  /** The rollout backend: MQTT desired state, Greengrass deployments, a recorder in tests. */
  rolloutBackend(env: RolloutBackendEnv): RolloutBackend;
  /** Sample ingest limits (per device and in all); default the limits file's defaults. */
  ingest?: Pick<SampleIngestOptions, 'assembler' | 'deviceLimits'>;
  /** See RolloutManagerDeps.quietFlushMs. */
  quietFlushMs?: number;
  urls?: { http: string; mqtt: string };
  /** How rule sets reach devices (the service's MQTT client; known once it connects). */
  ruleSetDelivery?: () => RuleSetDelivery | null;
  /** Caps on uploaded model packages (default: app/models/staging.ts DEFAULT_UPLOAD_LIMITS). */
  uploadLimits?: Partial<UploadLimits>;
}

export interface Fleet {
  ctx: FleetContext;
  /** Flush what the services hold and close the stores, in the reverse order of opening. */
  close(): Promise<void>;
}

/**
 * The fleet's composition root: storage, services and the rollout manager, wired once, for
 * the service (boot/service.ts adds the broker, the device router and HTTP) and for tests,
 * which get exactly the service's wiring. A failure at any step closes what was opened.
 */
export async function buildFleet(o: BuildFleetOptions): Promise<Fleet> {
  const clock = o.clock ?? systemClock;
  const log = o.log;
  const down = new Teardown(log);
  return down.start(async () => {
    const db = openFleetDb({ path: join(o.dataDir, 'fleet.db'), clock });
    down.push('database', () => db.close());
    let artifacts = o.artifacts;
    if (!artifacts) {
      const large = await openFsArtifactStore({ dir: join(o.dataDir, 'artifacts') });
      const small = openSqliteArtifactStore({ path: join(o.dataDir, 'small-artifacts.db') });
      down.push('small artifact store', () => small.close());
      // Small blobs (samples) in SQLite, group-committed; large ones (models) as files.
      artifacts = new TieredArtifactStore({ small, large });
    }
    const audit = new AuditLog({ repo: sqliteAuditRepo(db), clock, log: log.child({ component: 'audit' }) });
    // Uploaded packages are unpacked inside the data directory, never where a caller says.
    const staging = await fsPackageStaging({ dir: join(o.dataDir, 'uploads'), ...(o.uploadLimits ? { limits: o.uploadLimits } : {}) });
    const registry = new ModelRegistry({ repo: sqliteModelsRepo(db), clock, artifacts, signingKey: o.signingKey, log: log.child({ component: 'registry' }), audit, staging });
    const devicesRepo = sqliteDevicesRepo(db);
    const devices = new DeviceRegistry({ repo: devicesRepo, clock, ...(o.deviceScrypt ? { scrypt: o.deviceScrypt } : {}) });
    const ca = o.ca ?? (await loadOrCreateFleetCa(join(o.dataDir, 'keys')));
    const certificates = new DeviceCertificates({ repo: devicesRepo, ca, clock, audit });
    const samples = sqliteSamplesRepo(db);
    const alertsRepo = sqliteAlertsRepo(db);
    const ingest = new SampleIngest({ samples, devices: devicesRepo, artifacts, clock, logger: log.child({ component: 'ingest' }), alerts: alertsRepo, ...o.ingest });
    down.push('sample ingest', () => ingest.flush());
    const urls = o.urls ?? { mqtt: '', http: '' };
    const repo = sqliteRolloutRepo(db);
    const backend = o.rolloutBackend({ db, registry, urls, rollout: (id) => rollouts.find(id)?.state ?? null, nextRevision: sqliteRevisions(db), clock, log: log.child({ component: 'rollout-backend' }) });
    const rollouts: RolloutManager = new RolloutManager({
      repo,
      clock,
      ...(o.quietFlushMs !== undefined ? { quietFlushMs: o.quietFlushMs } : {}),
      log: log.child({ component: 'rollouts' }),
      audit,
      backend,
      // A rollout moves one model slot per device: its baseline is that model's active version and window.
      resolveTargets: (selector, modelName) =>
        devices.list({ tags: selector }).map((d): TargetDevice => {
          const active = slotActive(d, modelName);
          const t = d.telemetry ? modelWindowOf(d.telemetry, active?.name ?? modelName) : null;
          return {
            id: d.id,
            active,
            tags: d.tags,
            ...(t && active && t.inference.count > 0
              ? { baseline: { count: t.inference.count, errors: t.inference.errors, latency_p95_ms: t.inference.latency_ms.p95, confidence_mean: t.confidence_mean, outlier_rate: t.outliers.rate } }
              : {}),
          };
        }),
    });
    down.push('rollouts', async () => {
      rollouts.close();
      await rollouts.settled();
      rollouts.flush();
    });
    const ctx: FleetContext = {
      storage: sqliteStorageHealth(db),
      artifacts,
      registry,
      devices,
      certificates,
      ingest,
      labels: new Labels({ samples, clock, audit, boxes: boxLabelSource(artifacts, registry) }),
      datasets: new Datasets({ repo: sqliteDatasetsRepo(db), samples, artifacts, clock }),
      rollouts,
      rolloutDecisions: (id, limit) => repo.decisions(id, limit),
      users: new Users({ repo: sqliteUsersRepo(db), clock, audit, log: log.child({ component: 'users' }) }),
      audit,
      alerts: new Alerts({ repo: alertsRepo, clock, audit }),
      ruleSets: new RuleSets({ repo: sqliteRuleSetsRepo(db), devices, samples: ingest, clock, audit, log: log.child({ component: 'rule-sets' }), signingKey: o.signingKey, delivery: o.ruleSetDelivery ?? (() => null) }),
      trainingRuns: new TrainingRuns({ repo: sqliteTrainingRunsRepo(db), clock, artifacts }),
      clock,
      log,
      publicKeyPem: o.signingKey.publicKeyPem,
      urls,
    };
    return { ctx, close: () => down.run() };
  });
}
