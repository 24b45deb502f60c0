/**
 * The `Uplink` port: how the agent talks to the fleet. Transport-agnostic on purpose, so
 * the same forwarder runs over mqtt.js (AWS IoT Core, the fleet's embedded broker,
 * mosquitto) today and over Greengrass IPC (`PublishToIoTCore`) later.
 */

/** Per-publish options. Every publish is at-least-once (MQTT QoS 1 or its equivalent). */
export interface PublishOptions {
  /** Ask the broker to keep this message for later subscribers (device status). */
  retain?: boolean;
}

/** Receives a message on a subscribed topic filter. Must not throw (throws are logged and dropped). */
export type MessageHandler = (topic: string, payload: Uint8Array) => void;

/** Completion of a {@link Uplink.publishCallback}: no argument on success. */
export type PublishCallback = (err?: Error) => void;

/** Connection lifecycle events. */
export type UplinkEvent = 'connected' | 'disconnected';

export interface Uplink {
  /** Short name for logs and stats (`mqtt`, `greengrass-ipc`). */
  readonly name: string;
  /**
   * Start connecting and keep reconnecting (with backoff) until `close()`. Resolves at the
   * first successful connection, once subscriptions are in place; rejects only if `close()`
   * is called first. Callers that must not wait (an agent starting offline) need not await
   * it and can listen for `connected` instead.
   */
  connect(): Promise<void>;
  /** Stop reconnecting and disconnect. Pending publishes reject. Idempotent. */
  close(): Promise<void>;
  /** True while connected and subscriptions are in place: publishes can succeed. */
  isConnected(): boolean;
  /**
   * Why the uplink is connected but not whole (a subscription the broker refused or did not
   * answer: the device would be deaf to its acks or desired state), or null. Retried with
   * backoff while connected; reported in health, telemetry and the log.
   */
  degraded?(): string | null;
  /**
   * Resolves when the transport has accepted the message (QoS 1 PUBACK for MQTT); rejects
   * on failure. Rejects at once while disconnected: messages are never buffered in memory
   * here, durability is the SQLite queue's job.
   */
  publish(topic: string, payload: Uint8Array, opts?: PublishOptions): Promise<void>;
  /**
   * Optional callback form of {@link publish}, for the forwarder's drain, which publishes
   * thousands of messages a second: no Promise and reaction job per message. Same meaning:
   * `done` is called exactly once, never synchronously, with no argument when the transport
   * accepted the message and with the error `publish` would reject with otherwise.
   */
  publishCallback?(topic: string, payload: Uint8Array, done: PublishCallback, opts?: PublishOptions): void;
  /**
   * Add a handler for a topic filter (MQTT wildcards `+` and `#` allowed). Remembered and
   * re-applied on every reconnect. While disconnected it resolves at once and takes effect
   * on the next connection.
   */
  subscribe(topic: string, handler: MessageHandler): Promise<void>;
  /** Listen for connection changes; returns a function that removes the listener. */
  on(event: UplinkEvent, fn: (info?: unknown) => void): () => void;
}
