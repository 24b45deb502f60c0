import type { Logger } from 'pino';
import type { Random } from '../../shared/ids.js';
import { nextDelay, type BackoffOptions } from './backoff.js';
import { uplinkError } from './errors.js';
import type { Timers } from './timers.js';
import type { MessageHandler, PublishCallback, PublishOptions, Uplink, UplinkEvent } from './types.js';

interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
  reject: (err: Error) => void;
  settled: boolean;
}

function deferred(): Deferred {
  let resolve!: () => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const d: Deferred = {
    promise,
    settled: false,
    resolve: () => {
      d.settled = true;
      resolve();
    },
    reject: (err) => {
      d.settled = true;
      reject(err);
    },
  };
  // Nobody may be awaiting connect(); an unobserved rejection must not crash the process.
  promise.catch(() => undefined);
  return d;
}

/** Wrap without copying: the transports want a Buffer, callers hand us Uint8Array views. */
export function asBuffer(payload: Uint8Array): Buffer {
  return Buffer.isBuffer(payload) ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
}

export interface UplinkBaseOptions {
  /** The uplink's own child logger. */
  log: Logger;
  timers: Timers;
  random: Random;
  backoff: BackoffOptions;
  /** First word of the retry log lines (`<word> connection lost; …`, `<word> connect failed; …`). */
  linkWord: string;
}

/**
 * The connection lifecycle both uplinks share: one session per connection attempt (events
 * of an older session are ignored), the first-connect promise, reconnect after
 * {@link nextDelay} backoff, publishes refused at once while disconnected and failed when
 * the connection drops, the `connected`/`disconnected` events, handler dispatch, close.
 * A transport supplies how to open a session, send one publish, subscribe and end a client.
 */
export abstract class UplinkBase<C> implements Uplink {
  abstract readonly name: string;
  protected readonly log: Logger;
  protected readonly timers: Timers;
  protected client: C | undefined;
  /** Incremented per attempt and on close; events from an older client are ignored. */
  protected session = 0;
  protected connected = false;
  protected closing: Promise<void> | undefined;
  protected attempt = 0;
  /** Handlers per topic filter, re-applied after every connect. */
  protected readonly subs = new Map<string, Set<MessageHandler>>();
  private readonly random: Random;
  private readonly backoff: BackoffOptions;
  private readonly linkWord: string;
  private started = false;
  private retryTimer: unknown;
  private readonly firstConnect = deferred();
  private readonly pending = new Set<(err: Error) => void>();
  private readonly listeners: Record<UplinkEvent, Set<(info?: unknown) => void>> = { connected: new Set(), disconnected: new Set() };

  constructor(base: UplinkBaseOptions) {
    this.log = base.log;
    this.timers = base.timers;
    this.random = base.random;
    this.backoff = base.backoff;
    this.linkWord = base.linkWord;
  }

  /** Start one connection attempt as session `++this.session`. */
  protected abstract openSession(): void | Promise<void>;
  /** Send one publish on a connected client; register it with {@link track} until it is answered. */
  protected abstract send(client: C, topic: string, payload: Uint8Array, done: PublishCallback, opts?: PublishOptions): void;
  /** On close: end the client (if any) and drop per-connection state. */
  protected abstract endClient(client: C | undefined): Promise<void>;
  /** On a lost connection: stop the dead client's timers and drop per-connection state. */
  protected abstract discardClient(client: C): void;
  abstract subscribe(topic: string, handler: MessageHandler): Promise<void>;

  /** Fields every lifecycle log line carries (e.g. the endpoint). */
  protected logFields(): Record<string, unknown> {
    return {};
  }

  connect(): Promise<void> {
    if (this.closing) return Promise.reject(uplinkError('closed', 'uplink is closed'));
    if (!this.started) {
      this.started = true;
      void this.openSession();
    }
    return this.firstConnect.promise;
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
    this.send(client, topic, payload, done, opts);
  }

  on(event: UplinkEvent, fn: (info?: unknown) => void): () => void {
    this.listeners[event].add(fn);
    return () => this.listeners[event].delete(fn);
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  /**
   * Register an in-flight publish: `fail` is called if the connection drops or the uplink
   * closes first. The returned function unregisters it and says whether it was still
   * registered (false: it has already been failed).
   */
  protected track(fail: (err: Error) => void): () => boolean {
    // A wrapper per publish: callers may pass the same callback for many publishes.
    const entry = (err: Error): void => fail(err);
    this.pending.add(entry);
    return () => this.pending.delete(entry);
  }

  /** Add a handler for a filter; returns the filter's handler set. */
  protected addHandler(topic: string, handler: MessageHandler): Set<MessageHandler> {
    let handlers = this.subs.get(topic);
    if (!handlers) {
      handlers = new Set();
      this.subs.set(topic, handlers);
    }
    handlers.add(handler);
    return handlers;
  }

  /** Hand a message to handlers; one that throws loses this message, not the others. */
  protected deliver(handlers: Iterable<MessageHandler>, topic: string, payload: Buffer): void {
    for (const handler of handlers) {
      try {
        handler(topic, payload);
      } catch (err) {
        this.log.error({ err, topic }, 'message handler threw; message dropped');
      }
    }
  }

  /** The session is up and subscribed: settle connect() and tell the listeners. */
  protected markConnected(info: Record<string, unknown>): void {
    this.connected = true;
    if (!this.firstConnect.settled) this.firstConnect.resolve();
    this.emit('connected', info);
  }

  /** The current session's connection went away (or never came up): fail in-flight publishes, report, retry. */
  protected connectionLost(client: C, reason: string, lostMessage: string, fields?: Record<string, unknown>): void {
    const wasConnected = this.connected;
    this.connected = false;
    this.client = undefined;
    this.rejectPending('disconnected', lostMessage);
    this.discardClient(client);
    if (wasConnected) this.emit('disconnected', { reason });
    this.scheduleReconnect(reason, wasConnected, fields);
  }

  /** Wait the next backoff step, then open a new session (unless closing). */
  protected scheduleReconnect(reason: string, wasConnected: boolean, fields?: Record<string, unknown>): void {
    if (this.closing) return;
    const delayMs = nextDelay(this.attempt, this.backoff, this.random);
    this.attempt++;
    this.log[wasConnected ? 'warn' : 'info'](
      { ...this.logFields(), reason, delayMs, attempt: this.attempt, ...fields },
      wasConnected ? `${this.linkWord} connection lost; reconnecting after backoff` : `${this.linkWord} connect failed; retrying after backoff`,
    );
    this.retryTimer = this.timers.setTimeout(() => {
      this.retryTimer = undefined;
      if (!this.closing) void this.openSession();
    }, delayMs);
  }

  private async shutdown(): Promise<void> {
    this.session++;
    if (this.retryTimer !== undefined) this.timers.clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    const client = this.client;
    const wasConnected = this.connected;
    this.client = undefined;
    this.connected = false;
    this.rejectPending('closed', 'uplink closed');
    if (!this.firstConnect.settled) this.firstConnect.reject(uplinkError('closed', 'uplink closed before it connected'));
    if (wasConnected) this.emit('disconnected', { reason: 'closed' });
    await this.endClient(client);
    this.log.info(this.logFields(), 'uplink closed');
  }

  private rejectPending(kind: 'disconnected' | 'closed', message: string): void {
    if (this.pending.size === 0) return;
    const pending = [...this.pending];
    this.pending.clear();
    // In a microtask, as a Promise rejection would: listeners of the `disconnected` event
    // emitted right after this (the forwarder releasing unsent leases) run first.
    queueMicrotask(() => {
      for (const fail of pending) fail(uplinkError(kind, message));
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
