import type { Logger } from 'pino';
import type { Random } from '../../shared/ids.js';
import { createIpcClient, ipcErrorText, QOS, type IpcClient, type IpcEndpoint } from '../greengrass/ipc-client.js';
import { nextDelay, type BackoffOptions } from './backoff.js';
import { uplinkError } from './errors.js';
import { systemTimers, type Timers } from './timers.js';
import type { MessageHandler, PublishCallback, PublishOptions, Uplink, UplinkEvent } from './types.js';

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

interface Sub {
  handlers: Set<MessageHandler>;
  /** The live SubscribeToIoTCore operation on the current connection, if any. */
  op?: { close(): Promise<void> } | undefined;
}

const asBuffer = (p: Uint8Array): Buffer => (Buffer.isBuffer(p) ? p : Buffer.from(p.buffer, p.byteOffset, p.byteLength));

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
export class GreengrassIpcUplink implements Uplink {
  readonly name = 'greengrass-ipc';
  private readonly log: Logger;
  private readonly timers: Timers;
  private readonly random: Random;
  private readonly backoff: BackoffOptions;
  private readonly make: (endpoint: IpcEndpoint) => IpcClient;
  private client: IpcClient | undefined;
  private session = 0;
  private connected = false;
  private started = false;
  private closing: Promise<void> | undefined;
  private attempt = 0;
  private retryTimer: unknown;
  private readonly subs = new Map<string, Sub>();
  private readonly pending = new Set<(err: Error) => void>();
  private readonly listeners: Record<UplinkEvent, Set<(info?: unknown) => void>> = { connected: new Set(), disconnected: new Set() };
  private firstResolve!: () => void;
  private firstReject!: (err: Error) => void;
  private firstSettled = false;
  private readonly first: Promise<void>;

  constructor(private readonly opts: GreengrassIpcUplinkOptions) {
    this.log = opts.logger.child({ component: 'uplink', uplink: 'greengrass-ipc' });
    this.timers = opts.timers ?? systemTimers;
    this.random = opts.random ?? Math.random;
    this.backoff = opts.backoff ?? { initialMs: 500, maxMs: 10_000 };
    this.make = opts.createClient ?? createIpcClient;
    this.first = new Promise<void>((res, rej) => {
      this.firstResolve = res;
      this.firstReject = rej;
    });
    this.first.catch(() => undefined);
  }

  connect(): Promise<void> {
    if (this.closing) return Promise.reject(uplinkError('closed', 'uplink is closed'));
    if (!this.started) {
      this.started = true;
      void this.openSession();
    }
    return this.first;
  }

  isConnected(): boolean {
    return this.connected;
  }

  publish(topic: string, payload: Uint8Array, opts?: PublishOptions): Promise<void> {
    return new Promise<void>((resolve, reject) => this.publishCallback(topic, payload, (err) => (err ? reject(err) : resolve()), opts));
  }

  publishCallback(topic: string, payload: Uint8Array, done: PublishCallback, opts?: PublishOptions): void {
    const client = this.client;
    if (!this.connected || !client) {
      const err = uplinkError('disconnected', `uplink is not connected (publish to ${topic})`);
      queueMicrotask(() => done(err));
      return;
    }
    let settled = false;
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      this.pending.delete(fail);
      this.timers.clearTimeout(timer);
      done(err);
    };
    const fail = (err: Error): void => finish(err);
    this.pending.add(fail);
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
    let sub = this.subs.get(topic);
    const fresh = !sub;
    if (!sub) {
      sub = { handlers: new Set() };
      this.subs.set(topic, sub);
    }
    sub.handlers.add(handler);
    const client = this.client;
    if (!fresh || !this.connected || !client) return;
    try {
      await this.subscribeOn(client, topic, sub, this.session);
    } catch (err) {
      if (this.client === client && this.connected) {
        sub.handlers.delete(handler);
        if (sub.handlers.size === 0) this.subs.delete(topic);
        throw err;
      }
      // The connection dropped mid-subscribe: re-applied on the next connection.
    }
  }

  on(event: UplinkEvent, fn: (info?: unknown) => void): () => void {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.session++;
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    const was = this.connected;
    this.client = undefined;
    this.connected = false;
    this.failPending('closed', 'uplink closed');
    if (!this.firstSettled) {
      this.firstSettled = true;
      this.firstReject(uplinkError('closed', 'uplink closed before it connected'));
    }
    if (was) this.emit('disconnected', { reason: 'closed' });
    for (const s of this.subs.values()) s.op = undefined;
    if (client) await client.close().catch(() => undefined);
    this.log.info('uplink closed');
  }

  private async openSession(): Promise<void> {
    const session = ++this.session;
    let client: IpcClient;
    try {
      client = this.make(this.opts.endpoint);
    } catch (err) {
      this.retry(session, ipcErrorText(err), false);
      return;
    }
    this.client = client;
    client.on('disconnection', (e) => {
      if (session === this.session) this.onLost(client, e?.reason ? String(e.reason.error_name ?? e.reason.message) : 'connection closed');
    });
    try {
      await client.connect();
      if (session !== this.session) return;
      for (const [topic, sub] of this.subs) await this.subscribeOn(client, topic, sub, session).catch((err: unknown) => this.log.error({ topic, reason: ipcErrorText(err) }, 'resubscribe after connect failed'));
    } catch (err) {
      if (session !== this.session) return;
      this.client = undefined;
      void client.close().catch(() => undefined);
      this.retry(session, ipcErrorText(err), false);
      return;
    }
    if (session !== this.session) return;
    this.connected = true;
    this.log.info({ socket: this.opts.endpoint.socketPath, attempts: this.attempt + 1, filters: this.subs.size }, 'uplink connected to the Greengrass nucleus');
    this.attempt = 0;
    if (!this.firstSettled) {
      this.firstSettled = true;
      this.firstResolve();
    }
    this.emit('connected', {});
  }

  private async subscribeOn(client: IpcClient, topic: string, sub: Sub, session: number): Promise<void> {
    const op = client.subscribeToIoTCore({ topicName: topic, qos: QOS.AT_LEAST_ONCE });
    op.on('message', (m) => {
      const msg = m.message;
      if (!msg || session !== this.session) return;
      const payload = msg.payload === undefined ? Buffer.alloc(0) : Buffer.from(msg.payload as ArrayBuffer);
      for (const h of sub.handlers) {
        try {
          h(msg.topicName, payload);
        } catch (err) {
          this.log.error({ err, topic: msg.topicName }, 'message handler threw; message dropped');
        }
      }
    });
    op.on('streamError', (err) => this.log.warn({ topic, reason: ipcErrorText(err) }, 'subscription stream error'));
    try {
      await op.activate();
    } catch (cause) {
      void op.close().catch(() => undefined);
      throw uplinkError('subscribe_refused', `the nucleus refused the subscription to ${topic}: ${ipcErrorText(cause)}`, { cause, details: { filters: [topic] } });
    }
    if (session === this.session) sub.op = op;
  }

  private onLost(client: IpcClient, reason: string): void {
    const was = this.connected;
    this.connected = false;
    this.client = undefined;
    this.session++;
    for (const s of this.subs.values()) s.op = undefined;
    this.failPending('disconnected', 'IPC connection to the nucleus lost before it answered the publish');
    void client.close().catch(() => undefined);
    if (was) this.emit('disconnected', { reason });
    if (this.closing) return;
    this.retry(this.session, reason, was);
  }

  private retry(session: number, reason: string, wasConnected: boolean): void {
    if (this.closing || session !== this.session) return;
    const delayMs = nextDelay(this.attempt, this.backoff, this.random);
    this.attempt++;
    this.log[wasConnected ? 'warn' : 'info']({ reason, delayMs, attempt: this.attempt }, wasConnected ? 'IPC connection lost; reconnecting after backoff' : 'IPC connect failed; retrying after backoff');
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closing) void this.openSession();
    }, delayMs);
  }

  private failPending(kind: 'disconnected' | 'closed', message: string): void {
    if (this.pending.size === 0) return;
    const all = [...this.pending];
    this.pending.clear();
    queueMicrotask(() => {
      for (const f of all) f(uplinkError(kind, message));
    });
  }

  private emit(event: UplinkEvent, info: unknown): void {
    for (const fn of this.listeners[event]) {
      try {
        fn(info);
      } catch (err) {
        this.log.error({ err, event }, 'uplink listener threw');
      }
    }
  }
}
