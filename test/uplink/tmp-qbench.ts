import { openSqliteQueue } from '../../agent/queue/sqlite-queue.js';
import { performance } from 'node:perf_hooks';
for (const sync of ['FULL', 'NORMAL'] as const) for (const B of [16, 64, 256, 1024]) {
  const path = `/tmp/qb-${sync}-${B}.db`;
  const q = openSqliteQueue({ path, quotaBytes: 2 ** 40, clock: { now: () => Date.now() }, synchronous: sync });
  const items = Array.from({ length: 5000 }, (_, i) => ({ id: 'x' + i, kind: 'sample', priority: i % 10, meta: { a: 1, sample_id: 'x' + i, more: 'y'.repeat(300) }, blob: Buffer.alloc(1024, i) }));
  q.enqueueMany(items);
  let tl = 0, ta = 0, nl = 0, na = 0;
  for (;;) {
    let t = performance.now();
    const l = q.lease(B, 60000);
    tl += performance.now() - t; nl++;
    if (!l.length) break;
    t = performance.now();
    q.ack(l.map((x) => x.id));
    ta += performance.now() - t; na++;
  }
  console.log(sync, 'batch', B, 'lease total', tl.toFixed(0), 'ms per call', (tl / nl).toFixed(2), '| ack total', ta.toFixed(0), 'per call', (ta / na).toFixed(2));
  q.close();
}
