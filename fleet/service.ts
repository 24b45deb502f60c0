import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../shared/ids.js';
import { closeHttpServer } from '../shared/http-server.js';
import { deviceStatus, telemetry, type SampleAck } from '../shared/schemas/index.js';
import { deviceIdFromTopic, topics } from '../shared/topics.js';
import { FleetError } from './errors.js';
import { parseJsonWith } from '../shared/validate.js';
import { openFsArtifactStore } from './artifacts/fs-store.js';
import { openSqliteArtifactStore } from './artifacts/sqlite-store.js';
import { TieredArtifactStore } from './artifacts/tiered-store.js';
import type { ArtifactStore } from './artifacts/types.js';
import { Users } from './auth/users.js';
import type { FleetContext } from './context.js';
import { DeviceRegistry } from './devices/registry.js';
import { TelemetryBatcher } from './devices/telemetry-batcher.js';
import { loadOrCreateSigningKey } from './keys.js';
import { Datasets } from './labels/datasets.js';
import { Labels } from './labels/labels.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './mqtt/embedded-broker.js';
import { ModelRegistry } from './registry/registry.js';
import { mqttDesiredStateBackend, type RolloutBackend } from './rollouts/backend.js';
import type { RolloutState } from './rollouts/state-schema.js';
import type { TargetDevice } from './rollouts/event-schema.js';
import { RolloutManager } from './rollouts/manager.js';
import { sqliteRevisions, sqliteRolloutRepo } from './rollouts/sqlite-repo.js';
import { SampleIngest } from './samples/ingest.js';
import { openFleetDb } from './store/db.js';
import { learningLoopFromContext, type BaseSetSource, type LoopSetup } from './training/loop.js';

export interface ServeOptions {
  dataDir: string;
  httpPort?: number;
  mqttPort?: number;
  host?: string;
  /** Use an external broker (mosquitto, AWS IoT...) instead of the embedded one. */
  brokerUrl?: string;
  brokerUsername?: string;
  brokerPassword?: string;
  /** Client certificate (PEM) for an external broker that wants mutual TLS, such as AWS IoT Core. */
  brokerTls?: { cert: string; key: string; ca?: string };
  /** The HTTP API (built separately so the service does not depend on it in tests). */
  http?: (ctx: FleetContext) => Server;
  log: Logger;
  clock?: Clock;
  tickMs?: number;
  /**
   * The learning loop (trainers, base set, per-model training configuration). Its work
   * directory defaults to `<data>/training`; the policy ticks every `tickMs` (default 10 s).
   */
  training?: Omit<LoopSetup, 'workDir' | 'signKeyPem' | 'base'> & {
    /** The base-set source, or a function of the context (sources that read the service's artifact store). */
    base: BaseSetSource | ((ctx: FleetContext) => BaseSetSource);
    workDir?: string;
    tickMs?: number;
  };
  /** Desired states published per second at most (a rollout's notification rate); default no limit. */
  notifyPerSecond?: number;
  /** All artifacts (models, manifests, samples) in this store instead of DATA/ (S3 in AWS mode). */
  artifacts?: ArtifactStore;
  /**
   * Another rollout backend than MQTT desired state (AWS: Greengrass deployments, see
   * fleet/aws/serve.ts). Built before the rollout manager; `start`/`stop` run with the service.
   */
  rolloutBackend?: (env: RolloutBackendEnv) => ServiceRolloutBackend;
}

/** What a replacement rollout backend gets from the service. */
export interface RolloutBackendEnv {
  registry: ModelRegistry;
  /** Filled once the HTTP server listens. */
  urls: { http: string; mqtt: string };
  /** The current state of a rollout (for naming stages and reading their gates). */
  rollout(id: string): RolloutState | null;
  clock: Clock;
  log: Logger;
}

export interface ServiceRolloutBackend extends RolloutBackend {
  /** Called once the manager resumed: status polling and the like. */
  start?(rollouts: RolloutManager): void;
  stop?(): Promise<void>;
}

export interface FleetService {
  ctx: FleetContext;
  urls: { http: string; mqtt: string };
  /** Token of the `admin` user, written to `<data>/admin.token` on first start. */
  adminToken: string | null;
  stop(): Promise<void>;
}

/**
 * The fleet service on one machine: SQLite state, content-addressed artifacts, the
 * embedded MQTT broker with per-device access control (or an external broker), the device
 * message handlers (telemetry, status, samples with acks), the rollout manager with its
 * MQTT desired-state backend, and the HTTP API. `stop()` shuts down in an order that loses
 * nothing; a restart resumes every rollout where it stood.
 */
export async function startFleetService(o: ServeOptions): Promise<FleetService> {
  const log = o.log;
  const clock = o.clock ?? systemClock;
  const dir = resolve(o.dataDir);
  await mkdir(dir, { recursive: true });
  const key = await loadOrCreateSigningKey(join(dir, 'keys'));
  const db = openFleetDb({ path: join(dir, 'fleet.db'), clock });
  const large = await openFsArtifactStore({ dir: join(dir, 'artifacts') });
  const small = openSqliteArtifactStore({ path: join(dir, 'small-artifacts.db') });
  // Small blobs (samples) in SQLite, group-committed; large ones (models) as files.
  const artifacts: ArtifactStore = o.artifacts ?? new TieredArtifactStore({ small, large });
  const registry = new ModelRegistry({ db, artifacts, signingKey: { privateKeyPem: key.privateKeyPem, publicKeyPem: key.publicKeyPem }, log: log.child({ component: 'registry' }) });
  const devices = new DeviceRegistry({ db });
  const ingest = new SampleIngest({ db, artifacts, logger: log.child({ component: 'ingest' }) });
  const labels = new Labels({ db });
  const datasets = new Datasets({ db, artifacts });
  const users = new Users(db);
  let adminToken: string | null = null;
  if (users.count() === 0) {
    adminToken = users.issue('admin', 'admin').token;
    await writeFile(join(dir, 'admin.token'), `${adminToken}\n`, { mode: 0o600 });
  }

  // The fleet's own MQTT identity: a fresh secret per start, known only to this process.
  const fleetSecret = randomBytes(24).toString('base64url');
  let broker: EmbeddedBroker | null = null;
  let mqttUrl = o.brokerUrl ?? '';
  if (!o.brokerUrl) {
    broker = await startEmbeddedBroker({
      port: o.mqttPort ?? 0,
      host: o.host ?? '127.0.0.1',
      log: log.child({ component: 'broker' }),
      authenticate: async (username, password, clientId) => {
        if (username === 'fleet' && password?.toString() === fleetSecret && clientId.startsWith('edgeloop-fleet')) return { kind: 'fleet' };
        if (!username || !password) return null;
        return (await devices.authenticate(username, password.toString())) ? { kind: 'device', id: username } : null;
      },
    });
    mqttUrl = broker.url;
  }
  let client: MqttClient;
  try {
    client = await mqtt.connectAsync(mqttUrl, {
      clientId: `edgeloop-fleet-${randomBytes(4).toString('hex')}`,
      ...(broker ? { username: 'fleet', password: fleetSecret } : o.brokerUsername ? { username: o.brokerUsername, password: o.brokerPassword } : {}),
      // AWS IoT Core authenticates the fleet by its X.509 certificate (mutual TLS).
      ...(!broker && o.brokerTls ? { cert: o.brokerTls.cert, key: o.brokerTls.key, ...(o.brokerTls.ca ? { ca: o.brokerTls.ca } : {}) } : {}),
      reconnectPeriod: 1000,
    });
  } catch (err) {
    // A refusal the client does not retry (TLS: unknown CA, bad certificate; CONNACK: not
    // authorized): say which broker and why, and leave nothing open.
    const reason = `${(err as NodeJS.ErrnoException).code ?? (err as Error).name}: ${(err as Error).message.trim()}`;
    const e = new FleetError('BROKER_CONNECT_FAILED', `cannot connect to the MQTT broker ${mqttUrl}: ${reason}`, { cause: err, details: { url: mqttUrl } });
    log.error({ url: mqttUrl, code: e.code, reason }, 'cannot connect to the MQTT broker');
    await broker?.close();
    small.close();
    db.close();
    throw e;
  }

  const urls = { mqtt: mqttUrl, http: '' };
  const repo = sqliteRolloutRepo(db);
  const custom = o.rolloutBackend?.({
    registry,
    urls,
    rollout: (id) => {
      try {
        return rollouts.get(id).state;
      } catch {
        return null;
      }
    },
    clock,
    log: log.child({ component: 'rollout-backend' }),
  });
  const rollouts: RolloutManager = new RolloutManager({
    repo,
    clock,
    // Telemetry windows are saved at most a second (plus a tick) late; see quietFlushMs.
    quietFlushMs: 1000,
    log: log.child({ component: 'rollouts' }),
    backend: custom ?? mqttDesiredStateBackend({
      client,
      now: () => clock.now(),
      ...(o.notifyPerSecond ? { maxPerSecond: o.notifyPerSecond } : {}),
      nextRevision: sqliteRevisions(db),
      locate: (m) => ({ base_url: `${urls.http}/v1/models/${m.name}/${m.version}/package`, manifest_sha256: registry.get(m.name, m.version).manifest_sha256 }),
    }),
    resolveTargets: (selector) =>
      devices.list({ tags: selector }).map((d): TargetDevice => {
        const t = d.telemetry;
        return {
          id: d.id,
          active: d.models.active,
          ...(t && t.model && t.inference.count > 0
            ? { baseline: { count: t.inference.count, errors: t.inference.errors, latency_p95_ms: t.inference.latency_ms.p95, confidence_mean: t.confidence_mean, outlier_rate: t.outliers.rate } }
            : {}),
        };
      }),
  });

  const ctx: FleetContext = { db, artifacts, registry, devices, ingest, labels, datasets, rollouts, rolloutDecisions: (id, limit) => repo.decisions(id, limit), users, clock, log, publicKeyPem: key.publicKeyPem, urls };
  if (o.training) {
    const { tickMs: trainingTickMs, workDir, base, ...setup } = o.training;
    ctx.training = learningLoopFromContext(ctx, { ...setup, base: typeof base === 'function' ? base(ctx) : base, workDir: workDir ?? join(dir, 'training'), signKeyPem: key.privateKeyPem });
    ctx.training.startTicking(trainingTickMs ?? 10_000);
  }

  // Telemetry shares a commit per ~100 ms (see TelemetryBatcher); the rollout manager sees each message at once.
  const telemetryBatch = new TelemetryBatcher(devices, { log });
  // Device messages: every one validated; a bad one is logged and dropped, never fatal.
  client.on('message', (topic, payload) => {
    const device = deviceIdFromTopic(topic);
    if (!device) return;
    void handle(device, topic, payload).catch((err: unknown) => log.warn({ device, topic, reason: (err as Error).message }, 'device message rejected'));
  });
  const handle = async (device: string, topic: string, payload: Buffer): Promise<void> => {
    if (topic === topics.samples(device)) {
      const r = await ingest.acceptPayload(device, payload);
      if (r.status === 'rejected') log.warn({ device, sample: r.sampleId, code: r.error.code, reason: r.error.message }, 'sample rejected');
      if (r.ack.length) {
        const ack: SampleAck = { type: 'sample_ack', v: 1, sample_ids: r.ack };
        client.publish(topics.acks(device), JSON.stringify(ack), { qos: 1 });
      }
    } else if (topic === topics.telemetry(device)) {
      const t = parseJsonWith(telemetry, payload, 'INPUT_INVALID', 'telemetry');
      if (t.device_id !== device) throw new Error(`telemetry names ${t.device_id} on ${device}'s topic`);
      telemetryBatch.add(t);
      rollouts.onTelemetry(t);
    } else if (topic === topics.status(device)) {
      const s = parseJsonWith(deviceStatus, payload, 'INPUT_INVALID', 'device status');
      if (s.device_id !== device) throw new Error(`status names ${s.device_id} on ${device}'s topic`);
      devices.applyStatus(s);
      rollouts.onStatus(s);
    }
  };
  await client.subscribeAsync([topics.allSamples, topics.allTelemetry, topics.allStatus], { qos: 1 });

  let server: Server | null = null;
  if (o.http) {
    server = o.http(ctx);
    const srv = server;
    await new Promise<void>((r, j) => {
      srv.once('error', j);
      srv.listen(o.httpPort ?? 0, o.host ?? '127.0.0.1', () => r());
    });
    urls.http = `http://${o.host ?? '127.0.0.1'}:${(srv.address() as AddressInfo).port}`;
  }
  await rollouts.resume();
  custom?.start?.(rollouts);
  const ticker = setInterval(() => rollouts.tick(), o.tickMs ?? 1000);
  ticker.unref();
  await writeFile(join(dir, 'fleet.json'), `${JSON.stringify({ http: urls.http, mqtt: urls.mqtt, public_key: key.publicKeyPath, pid: process.pid }, null, 2)}\n`);
  log.info({ http: urls.http, mqtt: urls.mqtt, data: dir }, 'fleet service started');

  return {
    ctx,
    urls,
    adminToken,
    stop: async () => {
      clearInterval(ticker);
      // Abort a running trainer and record the run before the stores close.
      await ctx.training?.stop();
      // Keep-alive sockets (browsers, agents fetching packages) would hold the stop for their timeout.
      if (server) await closeHttpServer(server);
      await custom?.stop?.();
      await rollouts.settled();
      await client.endAsync();
      telemetryBatch.flush();
      rollouts.flush();
      await ingest.flush();
      await broker?.close();
      small.close();
      db.close();
    },
  };
}
