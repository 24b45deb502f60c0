/**
 * One training epoch of the digit CNN (fleet/ml/cnn/), timed: wall and process CPU seconds per
 * epoch of --count digits, for each --threads value, --repeat times. The figures behind the
 * kernel loops and the two-thread default (docs/decisions/0001-cnn-kernel-loops.md,
 * 0002-two-gradient-threads.md) are measured with it.
 *
 *   node --import tsx benchmarks/cnn-epoch.ts [--count 2000] [--threads 1,2] [--repeat 3] [--json]
 *
 * The base recipe's shape and jitter (BASE_RECIPE), batch 32, seed 1: the same bytes every run.
 */
import { parseArgs } from 'node:util';
import { trainCnn } from '../fleet/ml/cnn/parallel.js';
import { loadDigits } from '../fleet/ml/mnist-data.js';
import { BASE_RECIPE } from '../fleet/adapters/trainers/local-trainer.js';

const { values } = parseArgs({
  options: {
    count: { type: 'string', default: '2000' },
    threads: { type: 'string', default: '1' },
    repeat: { type: 'string', default: '3' },
    json: { type: 'boolean' },
  },
});
const count = Number(values.count);
const digits = loadDigits({ count });
const augment = BASE_RECIPE.augment || undefined;
for (const threads of values.threads.split(',').map(Number) as Array<1 | 2>) {
  for (let r = 0; r < Number(values.repeat); r++) {
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await trainCnn({ images: digits.images, labels: digits.labels, epochs: 1, batchSize: BASE_RECIPE.batchSize, lr: BASE_RECIPE.lr, seed: 1, threads, ...(augment ? { augment } : {}) });
    const wallS = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const row = { count, threads, wall_s: +wallS.toFixed(2), cpu_s: +((cpu.user + cpu.system) / 1e6).toFixed(2) };
    console.log(values.json ? JSON.stringify(row) : `one epoch of ${count} digits on ${threads} thread(s): ${row.wall_s} s wall, ${row.cpu_s} CPU-s`);
  }
}
