import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../shared/ts-entry.js';
import type { BacklogSource, EncodedSample, LeasedBatch, LeaseRequest } from './backlog-source.js';
import type { DrainQueueOptions, DrainRequest, DrainResponse, WireBatch } from './drain-protocol.js';

type Pending = { resolve: (r: DrainResponse & { ok: true }) => void; reject: (e: Error) => void };

/** An error answered by the thread, with the queue's error code (e.g. `STORAGE_FAILED`) kept. */
function threadError(e: { message: string; code?: string }): Error {
  return Object.assign(new Error(e.message), e.code ? { code: e.code } : {});
}

/**
 * A {@link BacklogSource} in a worker thread with its own connection to the agent's SQLite
 * queue file (drain-thread.ts). The main thread keeps its connection for captures (the
 * queue is safe for two: the byte total and the acked ids are read from the database under
 * the write lock); the worker's connection leases, encodes and deletes.
 *
 * Why: on the 2-core reference box, reading rows, base64 and the acked-row deletes on the
 * event loop held the drain to ~0.6 of a bare mqtt.js publisher (README, `drain`). In the
 * worker they run beside the publishing.
 *
 * Crash safety is the queue's: a delete is still sent only after the ack (PUBACK or the
 * fleet's), and a SIGKILL loses at most leases, which live in memory anyway.
 *
 * A thread that dies (it should not: storage errors are answered, not thrown) is started
 * again at the next call.
 */
export class DrainWorker implements BacklogSource {
  /** A lease costs a round trip to the thread: fewer, bigger batches (one read transaction each). */
  readonly preferredLeaseBatch = 512;
  /**
   * Each call wakes the thread, and on a busy host the woken thread can take the core from the
   * event loop: fewer, bigger deletes. (An ack may wait: the item stays leased meanwhile, and
   * after a crash it is only sent again.)
   */
  readonly preferredAckBatchMs = 50;
  private worker: Worker | null = null;
  private starting: Promise<Worker> | null = null;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private closed = false;

  private constructor(private readonly options: DrainQueueOptions) {}

  /** Start the thread and open the queue file (which must already exist: the agent opens it first). */
  static async open(options: DrainQueueOptions): Promise<DrainWorker> {
    const w = new DrainWorker(options);
    await w.thread();
    return w;
  }

  lease(req: LeaseRequest): Promise<LeasedBatch> {
    return this.call({ op: 'lease', id: 0, req }).then((r) => unpack(r.batch as WireBatch));
  }

  ack(ids: string[]): Promise<number> {
    return this.call({ op: 'ack', id: 0, ids }).then((r) => r.deleted ?? 0);
  }

  async release(ids: string[]): Promise<void> {
    await this.call({ op: 'release', id: 0, ids });
  }

  /** Answers every request sent before it (acks included), closes the connection, ends the thread. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const worker = this.worker ?? (await this.starting?.catch(() => null)) ?? null;
    if (!worker) return;
    await this.send(worker, { op: 'close', id: 0 }).catch(() => undefined);
    await worker.terminate();
    this.worker = null;
  }

  private async call(msg: DrainRequest): Promise<DrainResponse & { ok: true }> {
    if (this.closed) throw Object.assign(new Error('the drain worker is closed'), { code: 'STORAGE_FAILED' });
    return this.send(this.worker ?? (await this.thread()), msg);
  }

  private send(worker: Worker, msg: DrainRequest): Promise<DrainResponse & { ok: true }> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.postMessage({ ...msg, id });
    });
  }

  private thread(): Promise<Worker> {
    this.starting ??= (async () => {
      const worker = startWorker(import.meta.url, 'drain-thread');
      worker.on('message', (r: DrainResponse) => {
        const p = this.pending.get(r.id);
        if (!p) return;
        this.pending.delete(r.id);
        if (r.ok) p.resolve(r);
        else p.reject(threadError(r.error));
      });
      const die = (err: Error): void => {
        if (this.worker === worker) this.worker = null;
        this.starting = null;
        for (const p of this.pending.values()) p.reject(err);
        this.pending.clear();
      };
      worker.on('error', die);
      worker.on('exit', (code) => die(new Error(`drain worker exited with code ${code}`)));
      try {
        await this.send(worker, { op: 'open', id: 0, options: this.options });
      } catch (err) {
        await worker.terminate();
        throw err;
      }
      this.worker = worker;
      return worker;
    })();
    return this.starting;
  }
}

/** Views into the transferred buffer: no copy of the payloads on this side. */
function unpack(wire: WireBatch): LeasedBatch {
  const samples: EncodedSample[] = wire.samples.map((s) => {
    const messages: Buffer[] = [];
    for (let i = 0; i < s.parts.length; i += 2) messages.push(Buffer.from(wire.buffer, s.parts[i] as number, s.parts[i + 1] as number));
    return { id: s.id, priority: s.priority, messages };
  });
  return { samples, unsendable: wire.unsendable.map((u) => ({ id: u.id, kind: u.kind, bytes: u.bytes, error: new Error(u.message) })) };
}
