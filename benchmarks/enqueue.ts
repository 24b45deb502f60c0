import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { migrate, PRIORITY_SPAN } from '../agent/queue/sqlite-schema.js';
import { openSqliteQueue } from '../agent/queue/sqlite-queue.js';
import type { QueueItemInput, SampleQueue } from '../agent/queue/types.js';

/** Result of {@link benchEnqueue}; `value` is the ratio the product target (>= 0.5) is about. */
export interface EnqueueBenchResult {
  name: 'enqueue';
  /** captures_per_s / raw_inserts_per_s: durable group-commit captures against raw batched inserts. */
  value: number;
  /** Durable captures/s through `enqueueAsync` with `concurrency` captures in flight. */
  captures_per_s: number;
  /** Durable captures/s through `enqueue`, one transaction (one fsync) per capture. */
  sync_captures_per_s: number;
  /** sync_captures_per_s / raw_inserts_per_s. */
  sync_value: number;
  /** Raw better-sqlite3 rows/s, same schema, rows and pragmas, `raw_batch_rows` per transaction. */
  raw_inserts_per_s: number;
  raw_batch_rows: number;
  concurrency: number;
  blob_bytes: number;
  synchronous: 'FULL';
  duration_ms: number;
}

const BLOB_BYTES = 2048; // a small PNG; random bytes so nothing compresses or dedupes
const RAW_BATCH = 100;
const ROUNDS = 3; // interleave the three measurements so drift (thermal, page cache) hits all alike
const QUOTA = 2 ** 40; // no eviction: measure the capture path, not the eviction path

function makeSample(i: number, blob: Uint8Array): QueueItemInput {
  return {
    id: `bench-${i}`,
    kind: 'image',
    priority: i % 10,
    meta: { reason: 'low_confidence', model: 'mnist-cnn@1.4.0', prediction: { label: '7', confidence: 0.41, margin: 0.03 }, seq: i },
    blob,
  };
}

/** Run `step` until `ms` have passed; returns completed operations per second. */
function timeSync(ms: number, step: () => number): number {
  const start = performance.now();
  let ops = 0;
  while (performance.now() - start < ms) ops += step();
  return (ops * 1000) / (performance.now() - start);
}

async function timeConcurrent(ms: number, concurrency: number, capture: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  let ops = 0;
  const worker = async (): Promise<void> => {
    while (performance.now() - start < ms) {
      await capture();
      ops += 1;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return (ops * 1000) / (performance.now() - start);
}

function openRaw(file: string): { insertBatch: (rows: QueueItemInput[]) => void; close: () => void } {
  const db = new Database(file);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('busy_timeout = 5000');
  migrate(db); // the queue's own schema and indexes: the same rows into the same table
  const insert = db.prepare(
    `INSERT INTO items (key, id, kind, priority, meta, bytes, created_at, blob)
     VALUES (@key, @id, @kind, @priority, @meta, @bytes, @createdAt, @blob) ON CONFLICT (id) DO NOTHING`,
  );
  let seq = 0;
  const insertBatch = db.transaction((rows: QueueItemInput[]) => {
    for (const row of rows) {
      // The same clustered key the queue writes (priority, then arrival order).
      const key = row.priority * PRIORITY_SPAN + ++seq;
      // A raw writer has to serialise meta too; only the queue's bookkeeping is left out.
      const meta = JSON.stringify(row.meta);
      const blob = row.blob ?? null;
      insert.run({ key, id: row.id, kind: row.kind, priority: row.priority, meta, bytes: (blob?.byteLength ?? 0) + Buffer.byteLength(meta), createdAt: Date.now(), blob });
    }
  });
  return { insertBatch, close: () => db.close() };
}

/**
 * Durable captures/s through the SQLite queue (synchronous=FULL, ~2 KB blob per sample)
 * against raw better-sqlite3 batched inserts of the same rows with the same pragmas,
 * measured interleaved in the same run. Files are created in `dir` and removed afterwards.
 */
export async function benchEnqueue(opts: { durationMs?: number; dir: string; concurrency?: number }): Promise<EnqueueBenchResult> {
  const durationMs = opts.durationMs ?? 6000;
  // Default: as many captures in flight as the raw baseline puts in one transaction, so both
  // sides pay for the same number of fsyncs and the ratio shows the queue's own overhead.
  const concurrency = opts.concurrency ?? RAW_BATCH;
  const slice = durationMs / (3 * ROUNDS);
  const blob = randomBytes(BLOB_BYTES);
  const files = ['raw', 'sync', 'async'].map((n) => path.join(opts.dir, `bench-enqueue-${process.pid}-${n}.db`));
  const [rawFile, syncFile, asyncFile] = files as [string, string, string];
  const clock = { now: () => Date.now() };

  const raw = openRaw(rawFile);
  const syncQueue: SampleQueue = openSqliteQueue({ path: syncFile, quotaBytes: QUOTA, synchronous: 'FULL', clock });
  const asyncQueue: SampleQueue = openSqliteQueue({ path: asyncFile, quotaBytes: QUOTA, synchronous: 'FULL', clock });
  const rates = { raw: [] as number[], sync: [] as number[], async: [] as number[] };
  let rawSeq = 0;
  let syncSeq = 0;
  let asyncSeq = 0;
  try {
    for (let round = 0; round < ROUNDS; round++) {
      rates.raw.push(
        timeSync(slice, () => {
          raw.insertBatch(Array.from({ length: RAW_BATCH }, () => makeSample(rawSeq++, blob)));
          return RAW_BATCH;
        }),
      );
      rates.sync.push(
        timeSync(slice, () => {
          syncQueue.enqueue(makeSample(syncSeq++, blob));
          return 1;
        }),
      );
      rates.async.push(await timeConcurrent(slice, concurrency, () => asyncQueue.enqueueAsync(makeSample(asyncSeq++, blob))));
    }
  } finally {
    raw.close();
    syncQueue.close();
    asyncQueue.close();
    for (const f of files) for (const suffix of ['', '-wal', '-shm']) fs.rmSync(f + suffix, { force: true });
  }

  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const rawRate = mean(rates.raw);
  const syncRate = mean(rates.sync);
  const asyncRate = mean(rates.async);
  const round2 = (x: number): number => Math.round(x * 100) / 100;
  return {
    name: 'enqueue',
    value: round2(asyncRate / rawRate),
    captures_per_s: Math.round(asyncRate),
    sync_captures_per_s: Math.round(syncRate),
    sync_value: round2(syncRate / rawRate),
    raw_inserts_per_s: Math.round(rawRate),
    raw_batch_rows: RAW_BATCH,
    concurrency,
    blob_bytes: BLOB_BYTES,
    synchronous: 'FULL',
    duration_ms: durationMs,
  };
}
