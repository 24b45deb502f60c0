/**
 * A local Greengrass nucleus IPC server for tests: it speaks the eventstream RPC protocol on
 * a Unix socket, so the real aws-iot-device-sdk-v2 `greengrasscoreipc` client (aws-crt's
 * native eventstream RPC) connects to it exactly as it connects to the nucleus.
 *
 * Protocol (aws-c-event-stream RPC, as the SDK's eventstream_rpc.js and the crt use it):
 * - frames: eventstream binary messages (prelude with lengths and CRC32, headers, payload,
 *   message CRC32), encoded and decoded with @smithy/eventstream-codec;
 * - every frame carries `:message-type` (0 application message, 1 application error, 4
 *   connect, 5 connect ack, 6 protocol error), `:message-flags` (1 connection accepted, 2
 *   terminate stream) and `:stream-id` (0 = the connection itself);
 * - handshake: the client sends CONNECT with `:version` 0.1.0 and `{"authToken": SVCUID}`;
 *   the server answers CONNECT_ACK with the accepted flag, or without it and hangs up;
 * - one stream per operation: the first message on a new stream id names the operation in
 *   the `operation` header (`aws.greengrass#PublishToIoTCore`); payloads are JSON; answers
 *   carry `service-model-type` (the response, event or error shape). A request-response
 *   answer terminates its stream; a subscription answers once and then sends events on the
 *   same stream until either side sends the terminate-stream flag.
 *
 * Emulated nucleus behaviour: IoT Core pub/sub with an in-memory topic table (retained
 * messages kept per topic, MQTT wildcards), an authorization table like the recipe's
 * `accessControl` for `aws.greengrass.ipc.mqttproxy`, the component configuration store
 * with validation (`SubscribeToValidateConfigurationUpdates` + validity reports, timeout as
 * `configurationValidationPolicy`) and update events, component update notifications with
 * deferral (`DeferComponentUpdate`, `recheckAfterMs`), and lifecycle states from
 * `UpdateState`.
 */
import { EventEmitter } from 'node:events';
import { unlinkSync } from 'node:fs';
import net from 'node:net';
import { EventStreamCodec } from '@smithy/eventstream-codec';
import type { MessageHeaders } from '@smithy/types';
import { topicMatches } from '../../agent/uplink/topic-match.js';

const utf8 = {
  toUtf8: (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('utf8'),
  fromUtf8: (s: string): Uint8Array => Buffer.from(s, 'utf8'),
};
const codec = new EventStreamCodec(utf8.toUtf8, utf8.fromUtf8);

const MT = { application: 0, error: 1, connect: 4, connectAck: 5, protocolError: 6 } as const;
const FLAG = { accepted: 1, terminate: 2 } as const;
const NS = 'aws.greengrass#';

/** Which topics a component may use over `aws.greengrass.ipc.mqttproxy` (recipe accessControl, variables resolved). */
export interface MqttAcl {
  publish: string[];
  subscribe: string[];
}

export interface IpcServerOptions {
  socketPath: string;
  /** The token the nucleus gave the component (SVCUID); a CONNECT with another is refused. */
  svcuid: string;
  componentName: string;
  configuration?: Record<string, unknown>;
  /** Absent = everything allowed. */
  mqttAcl?: MqttAcl;
  /** How long a configuration change waits for validity reports (configurationValidationPolicy). */
  validationTimeoutMs?: number;
}

interface Stream {
  id: number;
  operation: string;
  conn: Connection;
  request: Record<string, unknown>;
}

interface Connection {
  socket: net.Socket;
  authed: boolean;
  streams: Map<number, Stream>;
}

export interface RecordedPublish {
  topic: string;
  payload: Buffer;
  qos: string;
  retain: boolean;
}

export interface ValidityReport {
  deploymentId: string;
  status: 'ACCEPTED' | 'REJECTED';
  message?: string;
}

export interface DeferRequest {
  deploymentId: string;
  message?: string;
  recheckAfterMs: number;
}

function getPath(obj: unknown, path: string[]): unknown {
  let node = obj;
  for (const k of path) {
    if (!node || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[k];
  }
  return node;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur) ? deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>) : v;
  }
  return out;
}

export class GreengrassIpcServer extends EventEmitter {
  private server: net.Server | null = null;
  private readonly conns = new Set<Connection>();
  configuration: Record<string, unknown>;
  /** IoT Core as the test sees it. */
  readonly retained = new Map<string, Buffer>();
  readonly published: RecordedPublish[] = [];
  readonly states: string[] = [];
  readonly reports: ValidityReport[] = [];
  readonly deferrals: DeferRequest[] = [];
  readonly refusedConnects: string[] = [];
  /** Local (component to component) pub/sub messages. */
  readonly localPublished: Array<{ topic: string; message: unknown }> = [];
  /** Operation names in arrival order, for assertions. */
  readonly operations: string[] = [];

  private constructor(private readonly opts: IpcServerOptions) {
    super();
    this.configuration = structuredClone(opts.configuration ?? {});
  }

  static async start(opts: IpcServerOptions): Promise<GreengrassIpcServer> {
    const s = new GreengrassIpcServer(opts);
    await s.listen();
    return s;
  }

  get socketPath(): string {
    return this.opts.socketPath;
  }

  /** Nucleus restart, first half: every IPC connection drops and the socket goes away. */
  async outage(): Promise<void> {
    const server = this.server;
    this.server = null;
    for (const c of this.conns) c.socket.destroy();
    this.conns.clear();
    if (server) await new Promise<void>((r) => server.close(() => r()));
  }

  /** Nucleus back at the same socket path. */
  async recover(): Promise<void> {
    await this.listen();
  }

  async close(): Promise<void> {
    await this.outage();
  }

  connectionCount(): number {
    return [...this.conns].filter((c) => c.authed).length;
  }

  /** A message from the cloud side of IoT Core (the fleet) on `topic`. */
  publishFromCloud(topic: string, payload: Uint8Array, retain = false): void {
    this.route(topic, Buffer.from(payload), retain);
  }

  /**
   * A deployment changing the component configuration: `reset` paths are removed, then
   * `merge` is deep-merged (Greengrass order). Validators are asked first; any REJECTED
   * report (or none within the timeout while validators are subscribed) fails the
   * deployment and leaves the configuration unchanged.
   */
  async deployConfiguration(deploymentId: string, update: { merge?: Record<string, unknown>; reset?: string[][] }): Promise<{ status: 'SUCCEEDED' | 'REJECTED' | 'TIMED_OUT'; message?: string }> {
    let next = structuredClone(this.configuration);
    for (const path of update.reset ?? []) {
      const parent = getPath(next, path.slice(0, -1));
      if (parent && typeof parent === 'object') delete (parent as Record<string, unknown>)[path.at(-1)!];
      if (path.length === 0) next = {};
    }
    if (update.merge) next = deepMerge(next, update.merge);
    const validators = this.streams('SubscribeToValidateConfigurationUpdates');
    if (validators.length > 0) {
      const report = new Promise<ValidityReport | null>((resolve) => {
        const timer = setTimeout(() => resolve(null), this.opts.validationTimeoutMs ?? 5000);
        const on = (r: ValidityReport): void => {
          if (r.deploymentId !== deploymentId) return;
          clearTimeout(timer);
          this.off('report', on);
          resolve(r);
        };
        this.on('report', on);
      });
      for (const s of validators) this.event(s, 'ValidateConfigurationUpdateEvents', { validateConfigurationUpdateEvent: { configuration: next, deploymentId } });
      const r = await report;
      if (!r) return { status: 'TIMED_OUT' };
      if (r.status === 'REJECTED') return { status: 'REJECTED', ...(r.message ? { message: r.message } : {}) };
    }
    const before = this.configuration;
    this.configuration = next;
    for (const s of this.streams('SubscribeToConfigurationUpdate')) {
      const keyPath = (s.request.keyPath as string[] | undefined) ?? [];
      if (JSON.stringify(getPath(before, keyPath)) === JSON.stringify(getPath(next, keyPath))) continue;
      this.event(s, 'ConfigurationUpdateEvents', { configurationUpdateEvent: { componentName: this.opts.componentName, keyPath } });
    }
    return { status: 'SUCCEEDED' };
  }

  /**
   * A deployment that updates the component (NOTIFY_COMPONENTS): subscribers get a
   * PreComponentUpdateEvent; a deferral with `recheckAfterMs` > 0 makes the nucleus ask
   * again after that long, until nobody defers or `timeoutMs` passed (then the update goes
   * ahead anyway, as the nucleus does). Resolves with how many times it was deferred.
   */
  async componentUpdate(deploymentId: string, opts: { timeoutMs: number; replyWindowMs?: number }): Promise<{ deferred: number; proceededAfterMs: number; timedOut: boolean }> {
    const started = Date.now();
    let deferred = 0;
    for (;;) {
      const subs = this.streams('SubscribeToComponentUpdates');
      if (subs.length === 0) break;
      const answers = new Promise<DeferRequest[]>((resolve) => {
        const got: DeferRequest[] = [];
        const done = (): void => {
          clearTimeout(timer);
          this.off('defer', on);
          resolve(got);
        };
        const timer = setTimeout(done, opts.replyWindowMs ?? 1000);
        const on = (d: DeferRequest): void => {
          if (d.deploymentId !== deploymentId) return;
          got.push(d);
          if (got.length === subs.length) done();
        };
        this.on('defer', on);
      });
      for (const s of subs) this.event(s, 'ComponentUpdatePolicyEvents', { preUpdateEvent: { deploymentId, isGgcRestarting: false } });
      const got = await answers;
      const wait = Math.max(0, ...got.map((d) => d.recheckAfterMs));
      if (wait === 0) break;
      deferred++;
      if (Date.now() - started + wait > opts.timeoutMs) return { deferred, proceededAfterMs: Date.now() - started, timedOut: true };
      await new Promise((r) => setTimeout(r, wait));
    }
    for (const s of this.streams('SubscribeToComponentUpdates')) this.event(s, 'ComponentUpdatePolicyEvents', { postUpdateEvent: { deploymentId } });
    return { deferred, proceededAfterMs: Date.now() - started, timedOut: false };
  }

  private listen(): Promise<void> {
    try {
      unlinkSync(this.opts.socketPath);
    } catch {
      /* not there */
    }
    const server = net.createServer((socket) => this.accept(socket));
    this.server = server;
    return new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.socketPath, () => resolve());
    });
  }

  private accept(socket: net.Socket): void {
    const conn: Connection = { socket, authed: false, streams: new Map() };
    this.conns.add(conn);
    let buf: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      // Frames are length-prefixed (prelude: total length, headers length, prelude CRC).
      while (buf.length >= 4) {
        const total = buf.readUInt32BE(0);
        if (buf.length < total) break;
        const frame = buf.subarray(0, total);
        buf = buf.subarray(total);
        try {
          this.onFrame(conn, codec.decode(frame));
        } catch (err) {
          this.send(conn, 0, MT.protocolError, 0, {}, { message: (err as Error).message });
          socket.destroy();
          return;
        }
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => this.conns.delete(conn));
  }

  private onFrame(conn: Connection, msg: { headers: MessageHeaders; body: Uint8Array }): void {
    const h = (name: string): unknown => msg.headers[name]?.value;
    const type = Number(h(':message-type'));
    const flags = Number(h(':message-flags') ?? 0);
    const streamId = Number(h(':stream-id') ?? 0);
    if (type === MT.connect) {
      let token: unknown;
      try {
        token = (JSON.parse(utf8.toUtf8(msg.body)) as { authToken?: unknown }).authToken;
      } catch {
        token = undefined;
      }
      if (h(':version') !== '0.1.0' || token !== this.opts.svcuid) {
        this.refusedConnects.push(String(token));
        this.send(conn, 0, MT.connectAck, 0, {}, {});
        conn.socket.end();
        return;
      }
      conn.authed = true;
      this.send(conn, 0, MT.connectAck, FLAG.accepted, {}, {});
      return;
    }
    if (!conn.authed) {
      this.send(conn, 0, MT.protocolError, 0, {}, { message: 'CONNECT first' });
      conn.socket.destroy();
      return;
    }
    if (type !== MT.application) return;
    let stream = conn.streams.get(streamId);
    if (flags & FLAG.terminate) {
      // The client closed its operation (a subscription ends).
      conn.streams.delete(streamId);
      return;
    }
    if (stream) return; // no operation here takes client-streamed messages
    const operation = String(h('operation') ?? '');
    let request: Record<string, unknown> = {};
    try {
      request = msg.body.length ? (JSON.parse(utf8.toUtf8(msg.body)) as Record<string, unknown>) : {};
    } catch {
      this.error(conn, streamId, 'ServiceError', 'payload is not JSON');
      return;
    }
    stream = { id: streamId, operation: operation.replace(NS, ''), conn, request };
    this.operations.push(stream.operation);
    this.dispatch(stream);
  }

  private dispatch(s: Stream): void {
    const r = s.request;
    switch (s.operation) {
      case 'PublishToIoTCore': {
        const topic = String(r.topicName);
        if (!this.allowed('publish', topic)) return this.error(s.conn, s.id, 'UnauthorizedError', `principal ${this.opts.componentName} is not authorized to publish to ${topic}`);
        const payload = Buffer.from(String(r.payload ?? ''), 'base64');
        this.published.push({ topic, payload, qos: String(r.qos), retain: r.retain === true });
        this.reply(s, 'PublishToIoTCoreResponse', {});
        this.route(topic, payload, r.retain === true);
        return;
      }
      case 'SubscribeToIoTCore': {
        const filter = String(r.topicName);
        if (!this.allowed('subscribe', filter)) return this.error(s.conn, s.id, 'UnauthorizedError', `principal ${this.opts.componentName} is not authorized to subscribe to ${filter}`);
        s.conn.streams.set(s.id, s);
        this.reply(s, 'SubscribeToIoTCoreResponse', {}, false);
        for (const [topic, payload] of this.retained) if (topicMatches(filter, topic)) this.deliver(s, topic, payload, true);
        return;
      }
      case 'SubscribeToTopic': {
        // Local pub/sub between components (aws.greengrass.ipc.pubsub), not IoT Core.
        s.conn.streams.set(s.id, s);
        this.reply(s, 'SubscribeToTopicResponse', { topicName: String(r.topic) }, false);
        return;
      }
      case 'PublishToTopic': {
        const topic = String(r.topic);
        const pm = (r.publishMessage ?? {}) as { jsonMessage?: { message?: unknown }; binaryMessage?: { message?: string } };
        this.localPublished.push({ topic, message: pm.jsonMessage ? pm.jsonMessage.message : Buffer.from(pm.binaryMessage?.message ?? '', 'base64') });
        this.reply(s, 'PublishToTopicResponse', {});
        for (const sub of this.streams('SubscribeToTopic')) {
          if (!topicMatches(String(sub.request.topic), topic)) continue;
          const body = pm.jsonMessage ? { jsonMessage: { message: pm.jsonMessage.message, context: { topic } } } : { binaryMessage: { message: pm.binaryMessage?.message ?? '', context: { topic } } };
          this.event(sub, 'SubscriptionResponseMessage', body);
        }
        return;
      }
      case 'GetConfiguration': {
        const keyPath = (r.keyPath as string[] | undefined) ?? [];
        const value = getPath(this.configuration, keyPath);
        if (value === undefined) return this.error(s.conn, s.id, 'ResourceNotFoundError', `key ${keyPath.join('/')} not found`);
        // The nucleus answers a leaf as { lastKey: value }.
        const wrapped = value !== null && typeof value === 'object' && !Array.isArray(value) ? value : { [keyPath.at(-1) ?? '']: value };
        this.reply(s, 'GetConfigurationResponse', { componentName: this.opts.componentName, value: wrapped });
        return;
      }
      case 'SubscribeToConfigurationUpdate':
      case 'SubscribeToValidateConfigurationUpdates':
      case 'SubscribeToComponentUpdates':
        s.conn.streams.set(s.id, s);
        this.reply(s, `${s.operation}Response`, {}, false);
        return;
      case 'SendConfigurationValidityReport': {
        const rep = r.configurationValidityReport as ValidityReport | undefined;
        if (!rep?.deploymentId) return this.error(s.conn, s.id, 'InvalidArgumentsError', 'configurationValidityReport.deploymentId is required');
        this.reports.push(rep);
        this.reply(s, 'SendConfigurationValidityReportResponse', {});
        this.emit('report', rep);
        return;
      }
      case 'DeferComponentUpdate': {
        const d: DeferRequest = { deploymentId: String(r.deploymentId), recheckAfterMs: Number(r.recheckAfterMs ?? 0), ...(r.message ? { message: String(r.message) } : {}) };
        this.deferrals.push(d);
        this.reply(s, 'DeferComponentUpdateResponse', {});
        this.emit('defer', d);
        return;
      }
      case 'UpdateState':
        this.states.push(String(r.state));
        this.reply(s, 'UpdateStateResponse', {});
        this.emit('state', String(r.state));
        return;
      default:
        this.error(s.conn, s.id, 'ServiceError', `operation ${s.operation} is not emulated`);
    }
  }

  private allowed(kind: 'publish' | 'subscribe', topic: string): boolean {
    const acl = this.opts.mqttAcl;
    if (!acl) return true;
    // Greengrass matches a requested topic (or filter) against the resource patterns, where
    // the patterns may contain MQTT wildcards; a filter must equal or be covered by one.
    return acl[kind].some((pattern) => pattern === topic || topicMatches(pattern, topic));
  }

  private route(topic: string, payload: Buffer, retain: boolean): void {
    if (retain) {
      if (payload.length === 0) this.retained.delete(topic);
      else this.retained.set(topic, payload);
    }
    for (const s of this.streams('SubscribeToIoTCore')) if (topicMatches(String(s.request.topicName), topic)) this.deliver(s, topic, payload, false);
  }

  private deliver(s: Stream, topic: string, payload: Buffer, retain: boolean): void {
    this.event(s, 'IoTCoreMessage', { message: { topicName: topic, payload: payload.toString('base64'), ...(retain ? { retain: true } : {}) } });
  }

  private streams(operation: string): Stream[] {
    const out: Stream[] = [];
    for (const c of this.conns) for (const s of c.streams.values()) if (s.operation === operation) out.push(s);
    return out;
  }

  private reply(s: Stream, shape: string, body: unknown, terminate = true): void {
    this.send(s.conn, s.id, MT.application, terminate ? FLAG.terminate : 0, { 'service-model-type': `${NS}${shape}` }, body);
  }

  private event(s: Stream, shape: string, body: unknown): void {
    this.send(s.conn, s.id, MT.application, 0, { 'service-model-type': `${NS}${shape}` }, body);
  }

  private error(conn: Connection, streamId: number, shape: string, message: string): void {
    conn.streams.delete(streamId);
    this.send(conn, streamId, MT.error, FLAG.terminate, { 'service-model-type': `${NS}${shape}` }, { message });
  }

  private send(conn: Connection, streamId: number, type: number, flags: number, extra: Record<string, string>, body: unknown): void {
    if (conn.socket.destroyed) return;
    const headers: MessageHeaders = {
      ':message-type': { type: 'integer', value: type },
      ':message-flags': { type: 'integer', value: flags },
      ':stream-id': { type: 'integer', value: streamId },
      ':content-type': { type: 'string', value: 'application/json' },
    };
    for (const [k, v] of Object.entries(extra)) headers[k] = { type: 'string', value: v };
    conn.socket.write(codec.encode({ headers, body: Buffer.from(JSON.stringify(body)) }));
  }
}
