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
import { queueSource } from '../agent/uplink/backlog-source.js';
import type { BacklogSource } from '../agent/uplink/backlog-source.js';
import { DrainWorker } from '../agent/uplink/drain-worker.js';
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
   * `sqlite` (default): the product path, the agent's SQLite queue drained through its drain
   * worker (lease, encode and deletes in a worker thread with its own connection).
   * `sqlite-main`: the same queue leased, encoded and acked on the main thread (the design
   * before the drain worker). `memory`: the in-memory queue on the main thread, to tell the
   * forwarder's own cost from the queue's.
   */
  queue?: 'sqlite' | 'sqlite-main' | 'memory';
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
  queue: 'sqlite' | 'sqlite-main' | 'memory';
  synchronous: 'FULL' | 'NORMAL';
  /** CPU microseconds per message (user + system, whole process: the broker included), median. */
  forwarder_cpu_us_per_msg: number;
  raw_cpu_us_per_msg: number;
  /**
   * The main thread's share of it (the event loop: MQTT client, broker, forwarder), median;
   * null where /proc/thread-self is not there. With the drain worker the queue work is not in it.
   */
  forwarder_main_cpu_us_per_msg: number | null;
  raw_main_cpu_us_per_msg: number | null;
  /**
   * Share of the forwarder's wall time the main thread spent inside queue calls (lease,
   * release, ack: with the drain worker only posting the request), median.
   */
  forwarder_queue_share: number;
  forwarder_rounds_per_s: number[];
  raw_rounds_per_s: number[];
  duration_ms: number;
}

interface RoundResult {
  perS: number;
  cpuUsPerMsg: number;
  /** CPU of the main thread alone (Linux), µs per message; null where it cannot be read. */
  mainCpuUsPerMsg: number | null;
  queueShare: number;
}

/** CPU microseconds the calling thread has used (Linux /proc/thread-self; 10 ms ticks), or null. */
function threadCpuUs(): number | null {
  try {
    const fields = fs.readFileSync('/proc/thread-self/stat', 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  } catch {
    return null;
  }
}

const perMsg = (before: number | null, after: number | null, n: number): number | null => (before === null || after === null ? null : (after - before) / n);

const DEVICE = 'bench-dev';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? (s[mid] as number) : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

function medianOrNull(xs: Array<number | null>): number | null {
  return xs.some((x) => x === null) ? null : Math.round(median(xs as number[]));
}

function makeItems(n: number, blobBytes: number, round = 0): QueueItemInput[] {
  const items: QueueItemInput[] = [];
  for (let i = 0; i < n; i++) {
    // Distinct bytes per sample so nothing dedupes or compresses away.
    const blob = Buffer.alloc(blobBytes);
    for (let j = 0; j + 4 <= blobBytes; j += 4) blob.writeUInt32LE((Math.imul(i + 1, 2654435761) ^ j) >>> 0, j);
    // Ids differ per round (one queue file serves every round: recently acked ids are refused
    // as duplicates) and have the same length, so every round moves payloads of the same size.
    const id = `bench-${String(round + 1).padStart(2, '0')}-${String(i).padStart(6, '0')}`;
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
 * Wraps the forwarder's backlog source to resolve when `target` items have been deleted
 * through `ack` (when the deletes are committed and answered) and to time the calls the
 * forwarder makes on the main thread.
 */
function instrumentedSource(inner: BacklogSource, target: number): { source: BacklogSource; done: Promise<number>; queueMs: () => number } {
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
  const count = (n: number): number => {
    acked += n;
    if (acked >= target) resolve(performance.now());
    return n;
  };
  const source: BacklogSource = {
    ...(inner.preferredLeaseBatch ? { preferredLeaseBatch: inner.preferredLeaseBatch } : {}),
    ...(inner.preferredAckBatchMs ? { preferredAckBatchMs: inner.preferredAckBatchMs } : {}),
    lease: (req) => timed(() => inner.lease(req)),
    release: (ids) => timed(() => inner.release(ids)),
    ack: (ids) => {
      const n = timed(() => inner.ack(ids));
      return typeof n === 'number' ? count(n) : n.then(count);
    },
  };
  return { source, done, queueMs: () => queueMs };
}

/**
 * The device side of the forwarder rounds: one queue file, and with `sqlite` its drain worker,
 * for the whole bench, as the agent keeps both for its lifetime (a worker started per round
 * would measure its JIT warm-up, which a running agent paid long ago).
 */
interface Device {
  queue: SampleQueue;
  worker: DrainWorker | null;
  close(): Promise<void>;
}

async function openDevice(dir: string, opts: { synchronous: 'FULL' | 'NORMAL'; queue: 'sqlite' | 'sqlite-main' | 'memory' }): Promise<Device> {
  const file = path.join(dir, 'queue.db');
  const queue =
    opts.queue === 'memory'
      ? createMemoryQueue({ quotaBytes: 2 ** 40, clock: systemClock })
      : openSqliteQueue({ path: file, quotaBytes: 2 ** 40, clock: systemClock, synchronous: opts.synchronous });
  const worker = opts.queue === 'sqlite' ? await DrainWorker.open({ path: file, quotaBytes: 2 ** 40, synchronous: opts.synchronous }) : null;
  return {
    queue,
    worker,
    async close() {
      await worker?.close();
      queue.close();
    },
  };
}

async function forwarderRound(url: string, device: Device, round: number, items: QueueItemInput[], inflight: number): Promise<RoundResult> {
  const logger = pino({ level: 'silent' });
  device.queue.enqueueMany(items);
  const { source, done, queueMs } = instrumentedSource(device.worker ?? queueSource(device.queue), items.length);
  const uplink = new MqttUplink({ url, clientId: `bench-fwd-${round}`, logger });
  await uplink.connect();
  const forwarder = new Forwarder({ deviceId: DEVICE, queue: device.queue, source, uplink, logger, ackMode: 'puback', limits: { publishesPerS: null, maxInflight: inflight } });
  const start = performance.now();
  const cpu = process.cpuUsage();
  const mainCpu = threadCpuUs();
  await forwarder.start();
  const end = await done;
  const used = process.cpuUsage(cpu);
  const mainCpuUsPerMsg = perMsg(mainCpu, threadCpuUs(), items.length);
  forwarder.stop();
  await forwarder.acksSettled();
  await uplink.close();
  return { perS: (items.length * 1000) / (end - start), cpuUsPerMsg: (used.user + used.system) / items.length, mainCpuUsPerMsg, queueShare: queueMs() / (end - start) };
}

async function rawRound(url: string, round: number, payloads: Buffer[], inflight: number): Promise<RoundResult> {
  const client = await mqtt.connectAsync(url, { clientId: `bench-raw-${round}`, reconnectPeriod: 0 });
  const topic = topics.samples(DEVICE);
  const start = performance.now();
  const cpu = process.cpuUsage();
  const mainCpu = threadCpuUs();
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
  const mainCpuUsPerMsg = perMsg(mainCpu, threadCpuUs(), payloads.length);
  await client.endAsync();
  return { perS: (payloads.length * 1000) / (end - start), cpuUsPerMsg: (used.user + used.system) / payloads.length, mainCpuUsPerMsg, queueShare: 0 };
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
    const device = await openDevice(dir, { synchronous, queue: queueKind });
    try {
      // Warm-up (JIT, broker paths), not measured.
      await rawRound(url, -1, payloads.slice(0, 1000), inflight);
      await forwarderRound(url, device, -1, makeItems(1000, blobBytes, 99), inflight);
      // Alternate, so drift on a shared host (other processes, page cache) hits both alike.
      for (let r = 0; r < rounds; r++) {
        fwd.push(await forwarderRound(url, device, r, r === 0 ? items : makeItems(messages, blobBytes, r), inflight));
        raw.push(await rawRound(url, r, payloads, inflight));
      }
    } finally {
      await device.close();
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
      forwarder_main_cpu_us_per_msg: medianOrNull(fwd.map((x) => x.mainCpuUsPerMsg)),
      raw_main_cpu_us_per_msg: medianOrNull(raw.map((x) => x.mainCpuUsPerMsg)),
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
