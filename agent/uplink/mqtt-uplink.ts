import mqtt from 'mqtt';
import type { IClientOptions, IClientPublishOptions, MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { systemClock } from '../../shared/ids.js';
import type { Clock, Random } from '../../shared/ids.js';
import type { BackoffOptions } from './backoff.js';
import { uplinkError } from './errors.js';
import { AgentErrors } from '../errors.js';
import { systemTimers } from './timers.js';
import type { Timers } from './timers.js';
import { topicMatches } from './topic-match.js';
import type { MessageHandler, PublishCallback, PublishOptions } from './types.js';
import { asBuffer, UplinkBase } from './uplink-base.js';
import type { WillMessage } from './will.js';

/** TLS material for mutual TLS (AWS IoT Core): file contents, read by the caller at start. */
export interface MqttTlsOptions {
  /** CA bundle (Amazon Root CA 1 for AWS IoT Core). */
  ca?: Uint8Array;
  /** Device certificate (PEM). */
  cert?: Uint8Array;
  /** Device private key (PEM). */
  key?: Uint8Array;
  /** SNI name when connecting by IP or through a custom domain. */
  servername?: string;
  /** ALPN, e.g. `['x-amzn-mqtt-ca']` to reach AWS IoT Core MQTT on port 443. */
  alpnProtocols?: string[];
  /** Default true; only tests against self-signed brokers turn it off. */
  rejectUnauthorized?: boolean;
}

/** Options of {@link MqttUplink}. Validated by the agent config layer, not here. */
export interface MqttUplinkOptions {
  /** `mqtt://host:1883` or `mqtts://<prefix>-ats.iot.<region>.amazonaws.com:8883`. */
  url: string;
  /** AWS IoT Core: the thing name, so policies can use `${iot:Connection.Thing.ThingName}`. */
  clientId: string;
  /** Parent logger; the uplink logs through a child `{ component: 'uplink' }`. */
  logger: Logger;
  /** Retry of a refused or failed subscription while connected (the uplink is degraded meanwhile). Default 5 s doubling to 5 min. */
  resubscribeBackoff?: { initialMs: number; maxMs: number };
  /**
   * false = persistent session: the broker keeps our subscriptions and queues QoS 1
   * messages for us (fleet acks) while we are offline. AWS IoT Core keeps such sessions
   * for 1 hour by default. Default true.
   */
  clean?: boolean;
  /** Keepalive in seconds. Default 30 (AWS IoT Core accepts 30..1200). */
  keepaliveS?: number;
  /** Give up on a CONNECT without CONNACK after this long. Default 10 000. */
  connectTimeoutMs?: number;
  /** Reconnect backoff. Default `{ initialMs: 1000, maxMs: 60_000, minMs: 1000 }`. */
  backoff?: BackoffOptions;
  /**
   * A connection that lasted this long resets the backoff to its first step. Shorter ones
   * keep growing it, so a broker that accepts and then drops us at once (a duplicate
   * client id on AWS IoT Core, a policy violation) is not hammered. Default 30 000.
   */
  stableAfterMs?: number;
  /** Wait this long for in-flight publishes when closing before cutting the socket. Default 2000. */
  closeTimeoutMs?: number;
  tls?: MqttTlsOptions;
  username?: string;
  password?: string;
  /** Last will, built at each connection attempt (the will is fixed per CONNECT). */
  will?: () => WillMessage | undefined;
  clock?: Clock;
  timers?: Timers;
  random?: Random;
}

/** Shared publish options: mqtt.js copies them, so no object per message. */
const QOS1: Readonly<IClientPublishOptions> = Object.freeze({ qos: 1, retain: false });
const QOS1_RETAIN: Readonly<IClientPublishOptions> = Object.freeze({ qos: 1, retain: true });

/** Host and port only: a URL may carry credentials, which must not reach the log. */
function safeEndpoint(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}`;
  } catch {
    return '(unparseable url)';
  }
}

/**
 * {@link Uplink} over mqtt.js, QoS 1.
 *
 * Reconnection is ours, not mqtt.js's: its fixed `reconnectPeriod` would have a whole fleet
 * retry in lock step after a broker outage and breaks AWS IoT Core's one-CONNECT-per-second
 * rule when set low. Each attempt is a fresh mqtt.js client with `reconnectPeriod: 0`;
 * between attempts we wait {@link nextDelay} (exponential, full jitter). mqtt.js only
 * re-applies subscriptions itself when its own reconnect is on, so we re-subscribe every
 * filter after each CONNACK, before reporting `connected`.
 *
 * Nothing is buffered in memory: mqtt.js's offline queue would lose everything on a crash
 * (MQTT.js #398, #607), and the forwarder keeps samples in SQLite until acked. So publish
 * rejects at once while disconnected, `queueQoSZero` is off, and publishes in flight when
 * a connection drops reject (the forwarder releases their leases and resends).
 */
export class MqttUplink extends UplinkBase<MqttClient> {
  readonly name = 'mqtt';
  private readonly clock: Clock;
  private readonly stableAfterMs: number;
  private readonly closeTimeoutMs: number;
  private readonly endpoint: string;
  private connectedAt = 0;
  /** Filters SUBACKed on the current connection. */
  private subscribedNow = new Set<string>();
  /** Filters the broker refused (or did not answer) on the current connection, retried with backoff. */
  private failedFilters = new Set<string>();
  private degradedReason: string | null = null;
  private resubscribeTimer: unknown;
  private resubscribeAttempt = 0;

  constructor(private readonly opts: MqttUplinkOptions) {
    super({
      log: opts.logger.child({ component: 'uplink' }),
      timers: opts.timers ?? systemTimers,
      random: opts.random ?? Math.random,
      backoff: opts.backoff ?? { initialMs: 1000, maxMs: 60_000, minMs: 1000 },
      linkWord: 'uplink',
    });
    this.clock = opts.clock ?? systemClock;
    this.stableAfterMs = opts.stableAfterMs ?? 30_000;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 2000;
    this.endpoint = safeEndpoint(opts.url);
  }

  protected override logFields(): Record<string, unknown> {
    return { endpoint: this.endpoint };
  }

  protected send(client: MqttClient, topic: string, payload: Uint8Array, done: PublishCallback, opts?: PublishOptions): void {
    const untrack = this.track(done);
    let sync = true;
    try {
      client.publish(topic, asBuffer(payload), opts?.retain ? QOS1_RETAIN : QOS1, (err) => {
        // Already failed when the connection dropped: mqtt.js may still call back later.
        if (!untrack()) return;
        const failure = err ? uplinkError('publish_failed', `publish to ${topic} failed: ${err.message}`, { cause: err }) : undefined;
        // mqtt.js calls back synchronously when it refuses at once (client disconnecting).
        if (sync) queueMicrotask(() => done(failure));
        else done(failure);
      });
    } catch (cause) {
      // A throw must reach `done` like any other failure, never the caller's loop.
      if (untrack()) {
        const failure = uplinkError('publish_failed', `publish to ${topic} failed: ${(cause as Error).message}`, { cause });
        queueMicrotask(() => done(failure));
      }
    }
    sync = false;
  }

  degraded(): string | null {
    return this.degradedReason;
  }

  async subscribe(topic: string, handler: MessageHandler): Promise<void> {
    const handlers = this.addHandler(topic, handler);
    const client = this.client;
    // While connecting, onConnected picks the new filter up; while offline, the next connection does.
    if (!this.connected || !client || this.subscribedNow.has(topic)) return;
    await this.subscribeOn(client, [topic], this.session).catch((err: unknown) => {
      if (this.client === client && client.connected) {
        handlers.delete(handler);
        throw err;
      }
      // The connection dropped mid-SUBSCRIBE: the filter is remembered and re-applied on reconnect.
    });
  }

  /** DISCONNECT cleanly when connected (suppresses the will), cut the socket otherwise or on timeout. */
  protected endClient(client: MqttClient | undefined): Promise<void> {
    this.clearResubscribe();
    return new Promise<void>((resolve) => {
      if (!client) {
        resolve();
        return;
      }
      if (!client.connected) {
        client.end(true, {}, () => resolve());
        return;
      }
      const timer = this.timers.setTimeout(() => {
        client.stream?.destroy();
        resolve();
      }, this.closeTimeoutMs);
      client.end(false, {}, () => {
        this.timers.clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Stop mqtt.js's keepalive and connect timers for this dead client. */
  protected discardClient(client: MqttClient): void {
    client.end(true);
  }

  protected openSession(): void {
    const session = ++this.session;
    const will = this.opts.will?.();
    const tls = this.opts.tls;
    const options: IClientOptions = {
      clientId: this.opts.clientId,
      clean: this.opts.clean ?? true,
      keepalive: this.opts.keepaliveS ?? 30,
      connectTimeout: this.opts.connectTimeoutMs ?? 10_000,
      protocolVersion: 4,
      // Our backoff replaces mqtt.js's fixed-period reconnect (see the class comment).
      reconnectPeriod: 0,
      queueQoSZero: false,
      resubscribe: false,
      username: this.opts.username,
      password: this.opts.password,
      will: will && { topic: will.topic, payload: asBuffer(will.payload), qos: 1, retain: will.retain },
      ca: tls?.ca && asBuffer(tls.ca),
      cert: tls?.cert && asBuffer(tls.cert),
      key: tls?.key && asBuffer(tls.key),
      servername: tls?.servername,
      ALPNProtocols: tls?.alpnProtocols,
      rejectUnauthorized: tls?.rejectUnauthorized ?? true,
    };
    this.log.debug({ endpoint: this.endpoint, clientId: this.opts.clientId, attempt: this.attempt }, 'connecting');
    const client = mqtt.connect(this.opts.url, options);
    this.client = client;
    this.subscribedNow = new Set();
    this.failedFilters = new Set();
    this.resubscribeAttempt = 0;
    this.clearResubscribe();
    let lastError: Error | undefined;
    let closed = false;
    client.on('connect', (connack) => {
      // Nagle off: QoS 1 publishes and their PUBACKs are small writes in both directions, and
      // with Nagle a full window can wait for the peer's delayed ACK (40 ms on Linux) before the
      // next segment leaves. Measured in the drain benchmark: gaps of 42-44 ms between publishes,
      // ~2.5k msgs/s against the bare client's 20k+ on loopback.
      setNoDelay(client);
      if (session === this.session) void this.onConnected(client, session, connack.sessionPresent);
    });
    client.on('message', (topic, payload) => this.dispatch(topic, payload));
    // mqtt.js emits 'error' before 'close'; keep it for the log line that explains the retry.
    client.on('error', (err) => {
      lastError = err;
    });
    client.on('close', () => {
      if (closed) return;
      closed = true;
      if (session === this.session) this.onClosed(client, lastError);
    });
  }

  private async onConnected(client: MqttClient, session: number, sessionPresent: boolean): Promise<void> {
    await this.subscribeMissing(client, session);
    if (session !== this.session || !client.connected) return;
    this.connectedAt = this.clock.now();
    this.log.info({ endpoint: this.endpoint, clientId: this.opts.clientId, sessionPresent, attempts: this.attempt + 1, filters: this.subs.size }, 'uplink connected');
    // Connected even when a filter failed: publishing works, and the failure is reported as
    // degraded and retried rather than hidden.
    this.markConnected({ sessionPresent });
  }

  /**
   * Subscribe every filter not in place on this connection. A filter the broker refuses (its
   * policy) or that fails (a timeout) makes the uplink degraded (logged with a code, shown in
   * health and telemetry) and is retried with backoff while the connection lasts; a device
   * must not look connected while it is deaf to its acks or desired state.
   */
  private async subscribeMissing(client: MqttClient, session: number): Promise<void> {
    try {
      // Loop: a subscribe() call made while we were re-subscribing must not be missed.
      for (;;) {
        const missing = [...this.subs.keys()].filter((t) => !this.subscribedNow.has(t) && !this.failedFilters.has(t));
        if (missing.length === 0) break;
        await this.subscribeOn(client, missing, session);
      }
    } catch (err) {
      if (session !== this.session || !client.connected) return;
      for (const t of this.subs.keys()) if (!this.subscribedNow.has(t)) this.failedFilters.add(t);
      this.log.warn({ err }, 'subscribing failed');
    }
    if (session !== this.session || !client.connected) return;
    if (this.failedFilters.size === 0) {
      if (this.degradedReason !== null) this.log.info({ filters: this.subs.size }, 'uplink subscriptions restored; no longer degraded');
      this.degradedReason = null;
      this.resubscribeAttempt = 0;
      return;
    }
    const filters = [...this.failedFilters];
    this.degradedReason = `subscription to ${filters.join(', ')} failed: the fleet's acks or desired states cannot reach this device`;
    const { initialMs, maxMs } = this.opts.resubscribeBackoff ?? { initialMs: 5000, maxMs: 300_000 };
    const delayMs = Math.min(maxMs, initialMs * 2 ** Math.min(this.resubscribeAttempt++, 10));
    this.log.error({ code: AgentErrors.UPLINK_DEGRADED.code, filters, retry_in_ms: delayMs }, 'uplink degraded: subscription failed; retrying');
    this.clearResubscribe();
    this.resubscribeTimer = this.timers.setTimeout(() => {
      this.resubscribeTimer = undefined;
      if (session !== this.session || !client.connected) return;
      this.failedFilters = new Set();
      void this.subscribeMissing(client, session);
    }, delayMs);
  }

  private clearResubscribe(): void {
    if (this.resubscribeTimer !== undefined) this.timers.clearTimeout(this.resubscribeTimer);
    this.resubscribeTimer = undefined;
  }

  private async subscribeOn(client: MqttClient, filters: string[], session: number): Promise<void> {
    const granted = await client.subscribeAsync(Object.fromEntries(filters.map((t) => [t, { qos: 1 as const }])));
    if (session !== this.session) return;
    const refused: string[] = [];
    for (const g of granted) {
      if (g.qos === 128) refused.push(g.topic);
      else this.subscribedNow.add(g.topic);
    }
    // Refused filters wait for the retry, so the subscribe loop ends.
    for (const t of refused) this.failedFilters.add(t);
    if (refused.length > 0) throw uplinkError('subscribe_refused', `broker refused subscription to ${refused.join(', ')}`, { details: { filters: refused } });
  }

  private onClosed(client: MqttClient, lastError: Error | undefined): void {
    const wasConnected = this.connected;
    const upForMs = wasConnected ? this.clock.now() - this.connectedAt : 0;
    if (upForMs >= this.stableAfterMs) this.attempt = 0;
    const reason = lastError?.message ?? 'connection closed';
    this.connectionLost(client, reason, 'connection lost before the broker acknowledged the publish', { upForMs: wasConnected ? upForMs : undefined });
  }

  private dispatch(topic: string, payload: Buffer): void {
    for (const [filter, handlers] of this.subs) {
      if (topicMatches(filter, topic)) this.deliver(handlers, topic, payload);
    }
  }
}

/** TCP_NODELAY on the client's socket (TCP or TLS); other transports (WebSocket) have none to set. */
function setNoDelay(client: MqttClient): void {
  const stream = (client as unknown as { stream?: { setNoDelay?: (on: boolean) => unknown } }).stream;
  stream?.setNoDelay?.(true);
}
