import path from 'node:path';
import Database from 'better-sqlite3';
import type BetterSqlite3 from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { agentCode, expectedBytes, fakeClock, makeTempDir, sample } from './helpers.js';

/** Catch what `fn` throws, so the test can look at code, details and cause. */
function caught(fn: () => unknown): Record<string, unknown> {
  try {
    fn();
  } catch (err) {
    return err as Record<string, unknown>;
  }
  throw new Error('expected a throw');
}

describe('sqlite queue when storage fails', () => {
  let tmp: ReturnType<typeof makeTempDir>;
  let file: string;
  let db: BetterSqlite3.Database;
  let queue: SampleQueue | undefined;

  const committed = Array.from({ length: 20 }, (_, i) => sample(`kept-${i}`, i % 10, { blobBytes: 2048 }));
  const big = sample('big', 5, { blobBytes: 64 * 1024 });
  // Room for everything committed plus `big`, so a correct byte cache needs no eviction for it.
  const quotaBytes = committed.reduce((n, i) => n + expectedBytes(i), 0) + expectedBytes(big);

  beforeEach(() => {
    tmp = makeTempDir('sqlite-full');
    file = path.join(tmp.dir, 'queue.db');
    queue = openSqliteQueue({ path: file, quotaBytes, clock: fakeClock(), onOpen: (d) => void (db = d) });
    queue.enqueueMany(committed);
  });
  afterEach(() => {
    queue?.close();
    tmp.remove();
  });

  /** Forbid the file from growing: the connection-level equivalent of a full disk. */
  function fillDisk(): void {
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
  }

  it('disk full: enqueue fails with STORAGE_FAILED (cause attached) and nothing committed is lost', () => {
    const before = queue?.stats();
    fillDisk();
    const err = caught(() => queue?.enqueue(big));
    expect(err).toMatchObject({ code: agentCode('STORAGE_FAILED'), details: { op: 'enqueue', sqliteCode: 'SQLITE_FULL' } });
    expect((err.cause as { code?: string }).code).toBe('SQLITE_FULL');
    expect(queue?.stats()).toEqual(before);

    // The byte cache did not count the failed item: once space returns, `big` fits without eviction.
    db.pragma('max_page_count = 1000000');
    expect(queue?.enqueue(big)).toEqual({ accepted: true, duplicate: false, evicted: [] });

    queue?.close();
    queue = openSqliteQueue({ path: file, quotaBytes, clock: fakeClock() });
    const ids = queue.lease(100, 1000).map((i) => i.id);
    for (const item of committed) expect(ids).toContain(item.id);
    expect(ids).toContain('big');
  });

  it('disk full during a group commit rejects every promise of the batch', async () => {
    fillDisk();
    const settled = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => queue?.enqueueAsync(sample(`late-${i}`, 9, { blobBytes: 8 * 1024 }))));
    expect(settled.every((s) => s.status === 'rejected' && (s.reason as { code?: string }).code === agentCode('STORAGE_FAILED'))).toBe(true);
    expect(queue?.stats().depth).toBe(committed.length);
  });

  it('read-only storage: STORAGE_FAILED, and the queue can still be read and drained later', () => {
    db.pragma('query_only = ON');
    expect(caught(() => queue?.enqueue(sample('ro', 1)))).toMatchObject({ code: agentCode('STORAGE_FAILED'), details: { sqliteCode: 'SQLITE_READONLY' } });
    expect(caught(() => queue?.ack(['kept-0']))).toMatchObject({ code: agentCode('STORAGE_FAILED') });
    expect(queue?.stats().depth).toBe(committed.length);
    db.pragma('query_only = OFF');
    expect(queue?.ack(['kept-0'])).toBe(1);
  });

  it('leaves a file that passes integrity_check after the failures', () => {
    fillDisk();
    caught(() => queue?.enqueue(big));
    queue?.close();
    queue = undefined;
    const raw = new Database(file, { readonly: true });
    expect(raw.pragma('integrity_check', { simple: true })).toBe('ok');
    expect(raw.prepare('SELECT count(*) FROM items').pluck().get()).toBe(committed.length);
    raw.close();
  });
});
