import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parseAgentConfig, poolSettings } from '../../agent/config.js';
import { Registry } from '../../agent/metrics.js';
import { readModelPackage } from '../../agent/model/package.js';
import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import type { SampleQueue } from '../../agent/queue/types.js';
import { InferenceService } from '../../agent/service.js';
import { seededRandom, systemClock } from '../../shared/ids.js';
import { captureLogger } from '../helpers/agent.js';
import { fleetKeys, imagePackage, patternImage, tempDir } from '../helpers/packages.js';

let tmp: ReturnType<typeof tempDir>;
let queue: SampleQueue;
let db: Database.Database;
let service: InferenceService;
let lines: Array<Record<string, unknown>>;
let metrics: Registry;

beforeEach(async () => {
  tmp = tempDir();
  await imagePackage(join(tmp.dir, 'pets'));
  queue = openSqliteQueue({ path: join(tmp.dir, 'queue.db'), quotaBytes: 1e9, clock: systemClock, onOpen: (d) => void (db = d) });
  const cap = captureLogger();
  lines = cap.lines;
  metrics = new Registry();
  service = new InferenceService({
    deviceId: 'dev',
    clock: systemClock,
    random: seededRandom(1),
    log: cap.log,
    metrics,
    queue,
    outlierOverrides: { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 1e6, burst: 1e6 } } },
    warmupRuns: 0,
    pool: poolSettings(parseAgentConfig({ inference: { intra_op_threads: 1 } }).inference),
  });
  await service.activate(await readModelPackage(join(tmp.dir, 'pets'), { publicKeyPem: fleetKeys().publicKeyPem }));
});
afterEach(async () => {
  await service.close();
  queue.close();
  tmp.cleanup();
});

describe('capture when the disk is full', () => {
  it('still answers inference, counts and logs the failed capture, and keeps the samples already stored', async () => {
    const img = await patternImage(1, { width: 120, height: 120 });
    const stored: string[] = [];
    for (let i = 0; i < 3; i++) {
      const [r] = await service.infer({ kind: 'image', bytes: img }, { source: 'http' });
      expect(r!.outlier.captured).toBe(true);
      stored.push(r!.outlier.sample_id!);
    }
    // The filesystem is full: SQLite cannot grow the file any more.
    db.pragma(`max_page_count = ${db.pragma('page_count', { simple: true }) as number}`);
    const results = await Promise.all(Array.from({ length: 5 }, () => service.infer({ kind: 'image', bytes: img }, { source: 'http' })));
    for (const [r] of results) {
      expect(r).toMatchObject({ type: 'infer_result', outlier: { captured: false, suppressed: expect.arrayContaining(['low_confidence']) } });
      expect(r!.outlier.sample_id).toBeUndefined();
    }
    expect(metrics.render()).toMatch(/^edgeloop_samples_capture_failed_total\{code="AGENT_STORAGE_FAILED"\} 5$/m);
    expect(lines.filter((l) => l.msg === 'capture failed; the result is still returned' && l.code === 'AGENT_STORAGE_FAILED')).toHaveLength(5);
    // Space comes back: the earlier samples are intact and capture works again.
    db.pragma('max_page_count = 1073741823');
    expect(queue.lease(100, 1000).map((i) => i.id).sort()).toEqual([...stored].sort());
    const [again] = await service.infer({ kind: 'image', bytes: img }, { source: 'http' });
    expect(again!.outlier.captured).toBe(true);
  });
});
