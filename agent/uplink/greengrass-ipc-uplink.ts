import type { Logger } from 'pino';
import type { Random } from '../../shared/ids.js';
import { createIpcClient, ipcErrorText, QOS, type IpcClient, type IpcEndpoint } from '../greengrass/ipc-client.js';
import type { BackoffOptions } from './backoff.js';
import { uplinkError } from './errors.js';
import { systemTimers, type Timers } from './timers.js';
import type { MessageHandler, PublishCallback, PublishOptions } from './types.js';
import { asBuffer, UplinkBase } from './uplink-base.js';

export interface GreengrassIpcUplinkOptions {
  endpoint: IpcEndpoint;
  logger: Logger;
  /** Reconnect backoff to the nucleus' socket. Default `{ initialMs: 500, maxMs: 10_000 }`. */
  backoff?: BackoffOptions;
  /** Give up on one publish after this long (the nucleus answers once IoT Core or its spooler took it). Default 30 000. */
  publishTimeoutMs?: number;
  timers?: Timers;
  random?: Random;
  /** For tests: how to build the SDK client. */
  createClient?: (endpoint: IpcEndpoint) => IpcClient;
}

/**
 * {@link Uplink} over Greengrass IPC: `PublishToIoTCore` / `SubscribeToIoTCore` (QoS 1)
 * through the nucleus' MQTT connection to AWS IoT Core, so the component needs no
 * certificate of its own; the recipe's `accessControl` for `aws.greengrass.ipc.mqttproxy`
 * decides which topics it may use.
 *
 * "Connected" means the IPC connection to the nucleus is up. The nucleus' own link to IoT
 * Core is not visible over IPC: while that is down the nucleus spools QoS 1 publishes (in
 * memory, 2.5 MB by default) and still answers them, so the forwarder's fleet-ack mode
 * (delete a sample only when the fleet says it stored it) is what keeps samples safe; with
 * `ack_mode: puback` a nucleus crash could lose what it had spooled.
 *
 * Each connection attempt is a fresh SDK client (an RpcClient connects once); subscriptions
 * are re-made after every connect. Nothing is buffered here: publishes reject at once while
 * disconnected and in-flight ones reject when the connection drops.
 */
export class GreengrassIpcUplink extends UplinkBase<IpcClient> {
  readonly name = 'greengrass-ipc';
  private readonly make: (endpoint: IpcEndpoint) => IpcClient;
  /**
   * The live SubscribeToIoTCore operation per filter on the current connection. Never read: it
   * holds the operations so the streams and their message listeners stay reachable while
   * subscribed, instead of depending on the SDK to keep them alive.
   */
  private readonly ops = new Map<string, { close(): Promise<void> }>();

  constructor(private readonly opts: GreengrassIpcUplinkOptions) {
    super({
      log: opts.logger.child({ component: 'uplink', uplink: 'greengrass-ipc' }),
      timers: opts.timers ?? systemTimers,
      random: opts.random ?? Math.random,
      backoff: opts.backoff ?? { initialMs: 500, maxMs: 10_000 },
      linkWord: 'IPC',
    });
    this.make = opts.createClient ?? createIpcClient;
  }

  protected send(client: IpcClient, topic: string, payload: Uint8Array, done: PublishCallback, opts?: PublishOptions): void {
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      untrack();
      this.timers.clearTimeout(timer);
      done(err);
    };
    const untrack = this.track((err) => finish(err));
    const timeoutMs = this.opts.publishTimeoutMs ?? 30_000;
    const timer = this.timers.setTimeout(() => finish(uplinkError('publish_failed', `the nucleus did not answer the publish to ${topic} within ${timeoutMs} ms`)), timeoutMs);
    let request: Promise<unknown>;
    try {
      request = client.publishToIoTCore({ topicName: topic, qos: QOS.AT_LEAST_ONCE, payload: asBuffer(payload), ...(opts?.retain ? { retain: true } : {}) });
    } catch (cause) {
      request = Promise.reject(cause as Error);
    }
    request.then(
      () => finish(),
      (cause: unknown) => finish(uplinkError('publish_failed', `publish to ${topic} failed: ${ipcErrorText(cause)}`, { cause })),
    );
  }

  async subscribe(topic: string, handler: MessageHandler): Promise<void> {
    const fresh = !this.subs.has(topic);
    const handlers = this.addHandler(topic, handler);
    const client = this.client;
    if (!fresh || !this.connected || !client) return;
    try {
      await this.subscribeOn(client, topic, handlers, this.session);
    } catch (err) {
      if (this.client === client && this.connected) {
        handlers.delete(handler);
        if (handlers.size === 0) this.subs.delete(topic);
        throw err;
      }
      // The connection dropped mid-subscribe: re-applied on the next connection.
    }
  }

  protected async endClient(client: IpcClient | undefined): Promise<void> {
    this.ops.clear();
    if (client) await client.close().catch(() => undefined);
  }

  protected discardClient(client: IpcClient): void {
    this.session++;
    this.ops.clear();
    void client.close().catch(() => undefined);
  }

  protected async openSession(): Promise<void> {
    const session = ++this.session;
    let client: IpcClient;
    try {
      client = this.make(this.opts.endpoint);
    } catch (err) {
      this.scheduleReconnect(ipcErrorText(err), false);
      return;
    }
    this.client = client;
    client.on('disconnection', (e) => {
      if (session === this.session) this.connectionLost(client, e?.reason ? String(e.reason.error_name ?? e.reason.message) : 'connection closed', 'IPC connection to the nucleus lost before it answered the publish');
    });
    try {
      await client.connect();
      if (session !== this.session) return;
      for (const [topic, handlers] of this.subs) await this.subscribeOn(client, topic, handlers, session).catch((err: unknown) => this.log.error({ topic, reason: ipcErrorText(err) }, 'resubscribe after connect failed'));
    } catch (err) {
      if (session !== this.session) return;
      this.client = undefined;
      void client.close().catch(() => undefined);
      this.scheduleReconnect(ipcErrorText(err), false);
      return;
    }
    if (session !== this.session) return;
    this.log.info({ socket: this.opts.endpoint.socketPath, attempts: this.attempt + 1, filters: this.subs.size }, 'uplink connected to the Greengrass nucleus');
    this.attempt = 0;
    this.markConnected({});
  }

  private async subscribeOn(client: IpcClient, topic: string, handlers: Set<MessageHandler>, session: number): Promise<void> {
    const op = client.subscribeToIoTCore({ topicName: topic, qos: QOS.AT_LEAST_ONCE });
    op.on('message', (m) => {
      const msg = m.message;
      if (!msg || session !== this.session) return;
      const payload = msg.payload === undefined ? Buffer.alloc(0) : Buffer.from(msg.payload as ArrayBuffer);
      this.deliver(handlers, msg.topicName, payload);
    });
    op.on('streamError', (err) => this.log.warn({ topic, reason: ipcErrorText(err) }, 'subscription stream error'));
    try {
      await op.activate();
    } catch (cause) {
      void op.close().catch(() => undefined);
      throw uplinkError('subscribe_refused', `the nucleus refused the subscription to ${topic}: ${ipcErrorText(cause)}`, { cause, details: { filters: [topic] } });
    }
    if (session === this.session) this.ops.set(topic, op);
  }
}
