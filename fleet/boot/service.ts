import { randomBytes } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { systemClock, type Clock } from '../../shared/ids.js';
import { closeHttpServer } from '../../shared/http-server.js';
import { loadOrCreateFleetCa, type FleetCa, type FleetCaFiles } from '../adapters/fs/fleet-ca.js';
import { loadOrCreateSigningKey } from '../adapters/fs/keys.js';
import { mqttDesiredStateBackend } from '../adapters/mqtt/desired-state-backend.js';
import { mqttRuleSetDelivery } from '../adapters/mqtt/rule-set-delivery.js';
import { startDeviceRouter } from '../adapters/mqtt/device-router.js';
import { startEmbeddedBroker, type EmbeddedBroker } from '../adapters/mqtt/embedded-broker.js';
import type { ArtifactStore } from '../app/artifacts.js';
import type { FleetContext } from '../app/context.js';
import type { DeviceCertificates } from '../app/devices/certificates.js';
import type { DeviceRegistry } from '../app/devices/registry.js';
import { TelemetryBatcher } from '../app/devices/telemetry-batcher.js';
import type { RolloutBackend } from '../app/rollouts/backend.js';
import type { RolloutManager } from '../app/rollouts/manager.js';
import type { BaseSetSource } from '../app/training/base-source.js';
import type { LoopSetup } from '../app/training/loop.js';
import { FleetError, FleetErrors } from '../errors.js';
import { buildFleet, type RolloutBackendEnv } from './build.js';
import { learningLoopFromContext } from './learning-loop.js';
import { ingestLimits, parseLimitsConfig, type FleetLimitsConfig } from './limits-config.js';
import { Teardown } from './teardown.js';

export type { RolloutBackendEnv };

export interface ServeOptions {
  dataDir: string;
  httpPort?: number;
  mqttPort?: number;
  /**
   * Port of the embedded broker's MQTT-over-TLS listener, where devices log in with a
   * certificate from the fleet CA (no password hash per connect); 0 picks a free port; not set:
   * no TLS listener.
   */
  mqttsPort?: number;
  /** The fleet CA's files, when the operator brings one (default: made on first use in DATA/keys). */
  ca?: FleetCaFiles;
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
  /** Limits on what devices may make the fleet hold (`serve --limits`); default the file's defaults. */
  limits?: FleetLimitsConfig;
  /** Desired states published per second at most (a rollout's notification rate); default no limit. */
  notifyPerSecond?: number;
  /** All artifacts (models, manifests, samples) in this store instead of DATA/ (S3 in AWS mode). */
  artifacts?: ArtifactStore;
  /**
   * Another rollout backend than MQTT desired state (AWS: Greengrass deployments, see
   * fleet/boot/aws.ts). Built before the rollout manager; `start`/`stop` run with the service.
   */
  rolloutBackend?: (env: RolloutBackendEnv) => ServiceRolloutBackend;
}

export interface ServiceRolloutBackend extends RolloutBackend {
  /** Called once the manager resumed: status polling and the like. */
  start?(rollouts: RolloutManager): void;
  stop?(): Promise<void>;
}

export interface FleetService {
  ctx: FleetContext;
  urls: { http: string; mqtt: string; mqtts?: string };
  /** Token of the `admin` user, written to `<data>/admin.token` on first start. */
  adminToken: string | null;
  stop(): Promise<void>;
}

/**
 * The fleet service on one machine: the fleet built by {@link buildFleet} (SQLite state,
 * content-addressed artifacts, services, the rollout manager), the embedded MQTT broker with
 * per-device access control (or an external broker), the device message router, the MQTT
 * desired-state backend (or another), the learning loop and the HTTP API. Each start step
 * registers its stop, so `stop()` shuts down in the reverse order, losing nothing, and a
 * failed start releases what it opened. A restart resumes every rollout where it stood.
 */
export async function startFleetService(o: ServeOptions): Promise<FleetService> {
  const log = o.log;
  const clock = o.clock ?? systemClock;
  const limits = o.limits ?? parseLimitsConfig();
  const dir = resolve(o.dataDir);
  await mkdir(dir, { recursive: true });
  const key = await loadOrCreateSigningKey(join(dir, 'keys'));
  const ca = await loadOrCreateFleetCa(join(dir, 'keys'), o.ca ?? {}, clock.now());
  if (ca.created) log.info({ ca: ca.certFile }, 'fleet CA created');
  const down = new Teardown(log);
  return down.start(async () => {
    // The fleet's own MQTT identity: a fresh secret per start, known only to this process.
    const fleetSecret = randomBytes(24).toString('base64url');
    // Devices are refused until the fleet is built (a moment at start); they retry.
    let devices: DeviceRegistry | null = null;
    let certificates: DeviceCertificates | null = null;
    let broker: EmbeddedBroker | null = null;
    let mqttUrl = o.brokerUrl ?? '';
    let mqttsUrl: string | undefined;
    if (!o.brokerUrl) {
      const b = await startEmbeddedBroker({
        port: o.mqttPort ?? 0,
        host: o.host ?? '127.0.0.1',
        log: log.child({ component: 'broker' }),
        maxPacketBytes: limits.broker.max_packet_bytes,
        authenticate: async (username, password, clientId, remote) => {
          if (username === 'fleet' && password?.toString() === fleetSecret && clientId.startsWith('edgeloop-fleet')) return { kind: 'fleet' };
          if (!username || !password || !devices) return null;
          const v = await devices.check(username, password.toString(), remote);
          if (!v.ok && v.reason !== 'invalid') log.warn({ component: 'broker', remote, username: username.slice(0, 128), reason: v.reason, retry_after_ms: v.retryAfterMs, code: FleetErrors.AUTH_THROTTLED.code }, 'MQTT login refused without checking: too many failures');
          return v.ok ? { kind: 'device', id: username } : null;
        },
        ...(o.mqttsPort !== undefined
          ? {
              tls: {
                port: o.mqttsPort,
                ca: ca.caPem,
                ...serverCert(ca, o.host ?? '127.0.0.1'),
                authenticate: (peer, clientId, remote) => {
                  if (!certificates) return { ok: false, reason: 'starting' };
                  const v = certificates.check(peer.commonName, peer.sha256, remote, clientId);
                  return v.ok ? { ok: true, identity: { kind: 'device', id: peer.commonName } } : { ok: false, reason: v.reason };
                },
                sourceWaitMs: (remote) => certificates?.waitMs(remote) ?? 0,
                handshakeFailed: (remote) => certificates?.handshakeFailed(remote),
              },
            }
          : {}),
      });
      down.push('broker', () => b.close());
      broker = b;
      mqttUrl = b.url;
      mqttsUrl = b.tlsUrl;
    }
    const client = await connectFleetClient(o, broker ? fleetSecret : null, mqttUrl, log);
    down.push('mqtt client', () => client.endAsync());

    const ruleSetDelivery = mqttRuleSetDelivery(client);
    const urls: { mqtt: string; http: string; mqtts?: string } = { mqtt: mqttUrl, http: '', ...(mqttsUrl ? { mqtts: mqttsUrl } : {}) };
    let custom: ServiceRolloutBackend | undefined;
    const fleet = await buildFleet({
      dataDir: dir,
      signingKey: key,
      ca,
      log,
      clock,
      urls,
      ...(o.artifacts ? { artifacts: o.artifacts } : {}),
      // Telemetry windows are saved at most a second (plus a tick) late; see quietFlushMs.
      quietFlushMs: 1000,
      ingest: ingestLimits(limits),
      ruleSetDelivery: () => ruleSetDelivery,
      rolloutBackend: (env) => {
        custom = o.rolloutBackend?.(env);
        return (
          custom ??
          mqttDesiredStateBackend({
            client,
            now: () => clock.now(),
            ...(o.notifyPerSecond ? { maxPerSecond: o.notifyPerSecond } : {}),
            nextRevision: env.nextRevision,
            locate: (m) => ({ base_url: `${urls.http}/v1/models/${m.name}/${m.version}/package`, manifest_sha256: env.registry.get(m.name, m.version).manifest_sha256 }),
          })
        );
      },
    });
    down.push('fleet', () => fleet.close());
    const ctx = fleet.ctx;
    devices = ctx.devices;
    certificates = ctx.certificates;
    // A revoked certificate must not keep a live session either.
    if (broker) {
      const b = broker;
      ctx.certificates.onRevoked((id) => {
        if (b.disconnect(id)) log.info({ component: 'broker', device_id: id }, 'device disconnected: its certificate was revoked');
      });
    }

    let adminToken: string | null = null;
    if (ctx.users.count() === 0) {
      adminToken = ctx.users.issue('admin', 'admin').token;
      await writeFile(join(dir, 'admin.token'), `${adminToken}\n`, { mode: 0o600 });
    }

    if (o.training) {
      const { tickMs: trainingTickMs, workDir, base, ...setup } = o.training;
      const loop = learningLoopFromContext(ctx, { ...setup, base: typeof base === 'function' ? base(ctx) : base, workDir: workDir ?? join(dir, 'training'), signKeyPem: key.privateKeyPem });
      ctx.training = loop;
      // Abort a running trainer and record the run before the stores close.
      down.push('learning loop', () => loop.stop());
      loop.startTicking(trainingTickMs ?? 10_000);
    }

    const router = await startDeviceRouter({ client, ingest: ctx.ingest, devices: ctx.devices, telemetry: new TelemetryBatcher(ctx.devices, { log }), rollouts: ctx.rollouts, log });
    down.push('device router', () => router.stop());

    if (o.http) {
      const srv = o.http(ctx);
      await new Promise<void>((r, j) => {
        srv.once('error', j);
        srv.listen(o.httpPort ?? 0, o.host ?? '127.0.0.1', () => r());
      });
      // Keep-alive sockets (browsers, agents fetching packages) would hold the stop for their timeout.
      down.push('http', () => closeHttpServer(srv));
      urls.http = `http://${o.host ?? '127.0.0.1'}:${(srv.address() as AddressInfo).port}`;
    }
    await ctx.rollouts.resume();
    const backend = custom;
    if (backend) {
      backend.start?.(ctx.rollouts);
      down.push('rollout backend', () => backend.stop?.());
    }
    const ticker = setInterval(() => ctx.rollouts.tick(), o.tickMs ?? 1000);
    ticker.unref();
    down.push('rollout ticker', () => clearInterval(ticker));
    await writeFile(join(dir, 'fleet.json'), `${JSON.stringify({ http: urls.http, mqtt: urls.mqtt, ...(urls.mqtts ? { mqtts: urls.mqtts } : {}), ca_cert: ca.certFile, public_key: key.publicKeyPath, pid: process.pid }, null, 2)}\n`);
    log.info({ http: urls.http, mqtt: urls.mqtt, ...(urls.mqtts ? { mqtts: urls.mqtts } : {}), data: dir }, 'fleet service started');
    return { ctx, urls, adminToken, stop: () => down.run() };
  });
}

/** The broker's TLS certificate, made fresh by the fleet CA at every start for the listen address and the usual local names. */
function serverCert(ca: FleetCa, host: string): { cert: string; key: string } {
  const c = ca.issueServer([host]);
  return { cert: c.certPem, key: c.keyPem };
}

/** The fleet's own MQTT connection; a refusal the client does not retry becomes FLEET_BROKER_CONNECT_FAILED. */
async function connectFleetClient(o: ServeOptions, embeddedSecret: string | null, url: string, log: Logger): Promise<MqttClient> {
  try {
    return await mqtt.connectAsync(url, {
      clientId: `edgeloop-fleet-${randomBytes(4).toString('hex')}`,
      ...(embeddedSecret ? { username: 'fleet', password: embeddedSecret } : o.brokerUsername ? { username: o.brokerUsername, password: o.brokerPassword } : {}),
      // AWS IoT Core authenticates the fleet by its X.509 certificate (mutual TLS).
      ...(!embeddedSecret && o.brokerTls ? { cert: o.brokerTls.cert, key: o.brokerTls.key, ...(o.brokerTls.ca ? { ca: o.brokerTls.ca } : {}) } : {}),
      reconnectPeriod: 1000,
    });
  } catch (err) {
    // A refusal the client does not retry (TLS: unknown CA, bad certificate; CONNACK: not
    // authorized): say which broker and why; the caller's teardown closes what was opened.
    const reason = `${(err as NodeJS.ErrnoException).code ?? (err as Error).name}: ${(err as Error).message.trim()}`;
    const e = new FleetError('BROKER_CONNECT_FAILED', `cannot connect to the MQTT broker ${url}: ${reason}`, { cause: err, details: { url } });
    log.error({ url, code: e.code, reason }, 'cannot connect to the MQTT broker');
    throw e;
  }
}
