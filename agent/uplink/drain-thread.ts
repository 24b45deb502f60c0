/**
 * The drain worker's thread: owns a second connection to the agent's SQLite queue file and
 * does the forwarder's queue work there (lease, encode, delete acked rows, release), so the
 * event loop only publishes. Requests are answered in order, one at a time: an ack sent
 * before a close is committed before the connection closes.
 */
import { parentPort } from 'node:worker_threads';
import { openSqliteQueue } from '../queue/sqlite-queue.js';
import type { SampleQueue } from '../queue/types.js';
import { systemClock } from '../../shared/ids.js';
import { leaseEncoded } from './backlog-source.js';
import type { LeasedBatch } from './backlog-source.js';
import type { DrainRequest, DrainResponse, WireBatch } from './drain-protocol.js';

const port = parentPort;
if (!port) throw new Error('the drain worker must run in a worker thread');

let queue: SampleQueue | null = null;

function opened(): SampleQueue {
  if (!queue) throw new Error('drain worker: queue not open');
  return queue;
}

/** Copy every message of the batch into one buffer, transferred with the reply. */
function pack(batch: LeasedBatch): WireBatch {
  let total = 0;
  for (const s of batch.samples) for (const m of s.messages) total += m.byteLength;
  const buffer = new ArrayBuffer(total);
  const bytes = new Uint8Array(buffer);
  let at = 0;
  const samples = batch.samples.map((s) => {
    const parts: number[] = [];
    for (const m of s.messages) {
      bytes.set(m, at);
      parts.push(at, m.byteLength);
      at += m.byteLength;
    }
    return { id: s.id, priority: s.priority, parts };
  });
  return { buffer, samples, unsendable: batch.unsendable.map((u) => ({ id: u.id, kind: u.kind, bytes: u.bytes, message: u.error.message })) };
}

port.on('message', (msg: DrainRequest) => {
  const reply = (r: DrainResponse, transfer: ArrayBuffer[] = []): void => port.postMessage(r, transfer);
  try {
    switch (msg.op) {
      case 'open':
        queue = openSqliteQueue({ ...msg.options, clock: systemClock });
        reply({ id: msg.id, ok: true });
        break;
      case 'lease': {
        const batch = pack(leaseEncoded(opened(), msg.req));
        reply({ id: msg.id, ok: true, batch }, [batch.buffer]);
        break;
      }
      case 'ack':
        reply({ id: msg.id, ok: true, deleted: opened().ack(msg.ids) });
        break;
      case 'release':
        opened().release(msg.ids);
        reply({ id: msg.id, ok: true });
        break;
      case 'close':
        queue?.close();
        queue = null;
        reply({ id: msg.id, ok: true });
        break;
    }
  } catch (err) {
    const e = err as { message?: string; code?: unknown };
    reply({ id: msg.id, ok: false, error: { message: e.message ?? String(err), ...(typeof e.code === 'string' ? { code: e.code } : {}) } });
  }
});
