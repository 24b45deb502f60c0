import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Aedes } from 'aedes';
import mqtt from 'mqtt';
import { pino } from 'pino';
import { createMemoryQueue } from '../agent/queue/memory-queue.js';
import { openSqliteQueue } from '../agent/queue/sqlite-queue.js';
import type { QueueItemInput, SampleQueue } from '../agent/queue/types.js';
import { encodeSample } from '../shared/wire/chunking.js';
import { Forwarder } from '../agent/uplink/forwarder.js';
import { MqttUplink } from '../agent/uplink/mqtt-uplink.js';
import { sha256Hex, systemClock } from '../shared/ids.js';
import type { SampleMeta } from '../shared/schemas/messages.js';
import { topics } from '../shared/topics.js';

/** Options of {@link benchDrain}. */
export interface DrainBenchOptions {
  /** Samples per round. Default 5000. */
  messages?: number;
  /** Blob bytes per sample; with meta and base64 the message is about 1.9 KB at 1024. Default 1024. */
  blobBytes?: number;
  /** In-flight window of both publishers. Default 50 (the forwarder's default). */
  inflight?: number;
  /** Alternating forwarder/raw rounds; the median of each is reported. Default 3. */
  rounds?: number;
  /** Queue durability; FULL is the product default (an fsync per ack batch). */
  synchronous?: 'FULL' | 'NORMAL';
  /**
   * `sqlite` (default): the product path. `memory`: the in-memory queue, to tell the
   * forwarder's own cost from the SQLite queue's when the ratio is low.
   */
  queue?: 'sqlite' | 'memory';
}

/** Result of {@link benchDrain}; `value` is the ratio the target (>= 0.8) is about. */
export interface DrainBenchResult {
  name: 'drain';
  /** forwarder_msgs_per_s / raw_msgs_per_s. */
  value: number;
  /** Samples/s leased from the queue, published, PUBACKed and deleted (ackMode 'puback'). */
  forwarder_msgs_per_s: number;
  /** QoS 1 publishes/s of a bare mqtt.js client sending the same payloads with the same window. */
  raw_msgs_per_s: number;
  messages: number;
  payload_bytes: number;
  inflight: number;
  rounds: number;
  queue: 'sqlite' | 'memory';
  synchronous: 'FULL' | 'NORMAL';
  /** CPU microseconds per message (user + system, whole process: the broker included), median. */
  forwarder_cpu_us_per_msg: number;
  raw_cpu_us_per_msg: number;
  /** Share of the forwarder's wall time spent inside queue calls (lease, release, ack), median. */
  forwarder_queue_share: number;
  forwarder_rounds_per_s: number[];
  raw_rounds_per_s: number[];
  duration_ms: number;
}

interface RoundResult {
  perS: number;
  cpuUsPerMsg: number;
  queueShare: number;
}

const DEVICE = 'bench-dev';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function makeItems(n: number, blobBytes: number): QueueItemInput[] {
  const items: QueueItemInput[] = [];
  for (let i = 0; i < n; i++) {
    // Distinct bytes per sample so nothing dedupes or compresses away.
    const blob = Buffer.alloc(blobBytes);
    for (let j = 0; j + 4 <= blobBytes; j += 4) blob.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ j) >>> 0, j);
    const id = `bench-${String(i).padStart(6, '0')}`;
    const meta: SampleMeta = {
      sample_id: id,
      device_id: DEVICE,
      captured_at: '2025-01-01T00:00:00.000Z',
      model: { name: 'mnist', version: '1.4.0' },
      reasons: ['low_confidence'],
      priority: i % 10,
      prediction: { label: '7', index: 7, score: 0.41, topk: [{ label: '7', index: 7, score: 0.41 }, { label: '1', index: 1, score: 0.38 }] },
      input: { kind: 'image', content_type: 'image/png', sha256: sha256Hex(blob), bytes: blob.length },
      source: 'dir',
    };
    items.push({ id, kind: 'sample', priority: meta.priority, meta: meta as unknown as Record<string, unknown>, blob });
  }
  return items;
}

/**
 * Wraps a queue to resolve when `target` items have been deleted through `ack` (at the
 * moment of the last delete) and to time the calls the forwarder makes.
 */
function instrumentedQueue(inner: SampleQueue, target: number): { queue: SampleQueue; done: Promise<number>; queueMs: () => number } {
  let acked = 0;
  let queueMs = 0;
  let resolve!: (t: number) => void;
  const done = new Promise<number>((r) => (resolve = r));
  const timed = <T>(fn: () => T): T => {
    const t = performance.now();
    try {
      return fn();
    } finally {
      queueMs += performance.now() - t;
    }
  };
  const queue: SampleQueue = {
    enqueue: (i) => inner.enqueue(i),
    enqueueMany: (i) => inner.enqueueMany(i),
    enqueueAsync: (i) => inner.enqueueAsync(i),
    lease: (max, ms, opts) => timed(() => inner.lease(max, ms, opts)),
    release: (ids) => timed(() => inner.release(ids)),
    ack: (ids) => {
      const n = timed(() => inner.ack(ids));
      acked += n;
      if (acked >= target) resolve(performance.now());
      return n;
    },
    stats: () => inner.stats(),
    close: () => inner.close(),
  };
  return { queue, done, queueMs: () => queueMs };
}

async function forwarderRound(
  url: string,
  dir: string,
  round: number,
  items: QueueItemInput[],
  inflight: number,
  opts: { synchronous: 'FULL' | 'NORMAL'; queue: 'sqlite' | 'memory' },
): Promise<RoundResult> {
  const logger = pino({ level: 'silent' });
  const inner =
    opts.queue === 'memory'
      ? createMemoryQueue({ quotaBytes: 2 ** 40, clock: systemClock })
      : openSqliteQueue({ path: path.join(dir, `queue-${round}.db`), quotaBytes: 2 ** 40, clock: systemClock, synchronous: opts.synchronous });
  inner.enqueueMany(items);
  const { queue, done, queueMs } = instrumentedQueue(inner, items.length);
  const uplink = new MqttUplink({ url, clientId: `bench-fwd-${round}`, logger });
  await uplink.connect();
  const forwarder = new Forwarder({ deviceId: DEVICE, queue, uplink, logger, ackMode: 'puback', limits: { publishesPerS: null, maxInflight: inflight } });
  const start = performance.now();
  const cpu = process.cpuUsage();
  await forwarder.start();
  const end = await done;
  const used = process.cpuUsage(cpu);
  forwarder.stop();
  await uplink.close();
  inner.close();
  return { perS: (items.length * 1000) / (end - start), cpuUsPerMsg: (used.user + used.system) / items.length, queueShare: queueMs() / (end - start) };
}

async function rawRound(url: string, round: number, payloads: Buffer[], inflight: number): Promise<RoundResult> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-raw-${round}`, reconnectPeriod: 0 });
  const topic = topics.samples(DEVICE);
  const start = performance.now();
  const cpu = process.cpuUsage();
  await new Promise<void>((resolve, reject) => {
    let next = 0;
    let acked = 0;
    const sendOne = (): void => {
      const payload = payloads[next++] as Buffer;
      client.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) return reject(err);
        acked++;
        if (next < payloads.length) sendOne();
        else if (acked === payloads.length) resolve();
      });
    };
    for (let i = 0; i < Math.min(inflight, payloads.length); i++) sendOne();
  });
  const end = performance.now();
  const used = process.cpuUsage(cpu);
  await client.endAsync();
  return { perS: (payloads.length * 1000) / (end - start), cpuUsPerMsg: (used.user + used.system) / payloads.length, queueShare: 0 };
}

/**
 * Uplink drain throughput: N queued samples drained by the {@link Forwarder} (queue,
 * MqttUplink, ackMode 'puback', rate cap off) against a bare mqtt.js QoS 1 publisher sending
 * the same payloads with the same in-flight window, both to one in-process aedes broker on
 * loopback, in the same run. The ratio is what the forwarder's bookkeeping (lease, encode,
 * limits, batched durable deletes) costs over the transport alone.
 */
export async function benchDrain(opts: DrainBenchOptions = {}): Promise<DrainBenchResult> {
  const messages = opts.messages ?? 5000;
  const blobBytes = opts.blobBytes ?? 1024;
  const inflight = opts.inflight ?? 50;
  const rounds = opts.rounds ?? 3;
  const synchronous = opts.synchronous ?? 'FULL';
  const queueKind = opts.queue ?? 'sqlite';
  const began = performance.now();

  const broker = await Aedes.createBroker({ heartbeatInterval: 3_600_000 });
  const server = net.createServer(broker.handle);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'edgeloop-bench-drain-'));

  try {
    const items = makeItems(messages, blobBytes);
    const topic = topics.samples(DEVICE);
    // The exact bytes the forwarder sends, so both sides move the same payloads.
    const payloads = items.map((i) => encodeSample(i.meta as unknown as SampleMeta, i.blob as Uint8Array, { topic })[0] as Buffer);
    const fwd: RoundResult[] = [];
    const raw: RoundResult[] = [];
    const roundOpts = { synchronous, queue: queueKind };
    // Warm-up (JIT, broker paths), not measured.
    await rawRound(url, -1, payloads.slice(0, 1000), inflight);
    await forwarderRound(url, dir, -1, items.slice(0, 1000), inflight, roundOpts);
    // Alternate, so drift on a shared host (other processes, page cache) hits both alike.
    for (let r = 0; r < rounds; r++) {
      fwd.push(await forwarderRound(url, dir, r, items, inflight, roundOpts));
      raw.push(await rawRound(url, r, payloads, inflight));
    }
    const forwarder = median(fwd.map((x) => x.perS));
    const rawRate = median(raw.map((x) => x.perS));
    return {
      name: 'drain',
      value: forwarder / rawRate,
      forwarder_msgs_per_s: Math.round(forwarder),
      raw_msgs_per_s: Math.round(rawRate),
      messages,
      payload_bytes: (payloads[0] as Buffer).length,
      inflight,
      rounds,
      queue: queueKind,
      synchronous,
      forwarder_cpu_us_per_msg: Math.round(median(fwd.map((x) => x.cpuUsPerMsg))),
      raw_cpu_us_per_msg: Math.round(median(raw.map((x) => x.cpuUsPerMsg))),
      forwarder_queue_share: Math.round(median(fwd.map((x) => x.queueShare)) * 100) / 100,
      forwarder_rounds_per_s: fwd.map((x) => Math.round(x.perS)),
      raw_rounds_per_s: raw.map((x) => Math.round(x.perS)),
      duration_ms: Math.round(performance.now() - began),
    };
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
