/**
 * Fine-tune sweep: how a local-trainer recipe behaves over seeds, measured the way the
 * evaluation gate sees it. Trains the demo's base model once (cached under --work), then for each
 * parameter set and seed fine-tunes it on --field random drifted feed digits (80% trained on, as
 * the hash split keeps a fifth back) and prints the clean-holdout change, the worst clean class
 * drop (the gate's per-class rule) and the accuracy on the drifted feed digits not trained on.
 *
 *   node --import tsx benchmarks/finetune-sweep.ts [--split 7000,2000] [--seeds 1,2,3]
 *     [--params '[{}, {"epochs": 3}]'] [--base-params '{}'] [--field 400] [--work DIR] [--json]
 *
 * Parameter sets are LocalTrainParams over the FINE_TUNE_RECIPE ({} = the recipe itself). The
 * split and the recipe were chosen with it: docs/decisions/0004-fine-tune-recipe.md, 0005-demo-split.md.
 */
import { existsSync, mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { renderBaseExamples } from '../fleet/demo/base-model.js';
import { FEED, PIT_DRIFT } from '../fleet/ml/digits.js';
import { DIGIT_LABELS } from '../fleet/adapters/trainers/digit-model.js';
import { localTrainer } from '../fleet/adapters/trainers/local-trainer.js';
import { classDropPoints, packageAccuracy, type PackageAccuracy } from '../fleet/app/training/package-accuracy.js';
import type { TrainingExample } from '../fleet/app/training/trainer.js';
import { sha256Hex } from '../shared/ids.js';
import { generateSigningKeyPair } from '../shared/signing.js';

const { values } = parseArgs({
  options: {
    split: { type: 'string', default: '7000,2000' },
    seeds: { type: 'string', default: '1,2,3' },
    params: { type: 'string', default: '[{}]' },
    'base-params': { type: 'string', default: '{}' },
    field: { type: 'string', default: '400' },
    work: { type: 'string', default: '.data/finetune-sweep' },
    json: { type: 'boolean' },
  },
});
const [trainCount, holdoutCount] = values.split.split(',').map(Number) as [number, number];
const seeds = values.seeds.split(',').map(Number);
const paramSets = JSON.parse(values.params) as Array<Record<string, unknown>>;
const baseParams = JSON.parse(values['base-params']) as Record<string, unknown>;
const fieldN = Number(values.field);
const work = resolve(values.work);
const key = generateSigningKeyPair().privateKeyPem;
const pct = (a: PackageAccuracy): number => a.accuracy * 100;

const train = await renderBaseExamples({ count: trainCount });
const clean = (await renderBaseExamples({ count: holdoutCount, offset: trainCount })).map((e) => ({ label: e.label, bytes: e.bytes }));
const drifted = await renderBaseExamples({ count: FEED.count, offset: FEED.offset, drift: PIT_DRIFT });
const trainer = localTrainer();
const baseDir = join(work, `base-${trainCount}-${sha256Hex(JSON.stringify(baseParams)).slice(0, 12)}`);
if (!existsSync(join(baseDir, 'manifest.json'))) {
  mkdirSync(work, { recursive: true });
  await trainer.train({ model: { name: 'digits', version: '1.0.0' }, datasetVersion: `sweep-base-${trainCount}`, train, labels: DIGIT_LABELS, parent: null, params: baseParams, seed: 7, outputDir: baseDir, signKeyPem: key });
}
const base = await packageAccuracy(baseDir, clean);
console.log(values.json ? JSON.stringify({ split: [trainCount, holdoutCount], base_clean: pct(base) }) : `split ${trainCount}/${holdoutCount}: base clean ${pct(base).toFixed(2)}%`);

for (const params of paramSets) {
  for (const seed of seeds) {
    // A seeded shuffle of the feed: the first `fieldN` are labeled, 80% of those trained on.
    let s = (seed * 2654435761) >>> 0;
    const rnd = (): number => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
    const order = [...Array(FEED.count).keys()].map((i) => [rnd(), i] as const).sort((a, b) => a[0] - b[0]).map(([, i]) => i);
    const trained = new Set(order.slice(0, Math.round(fieldN * 0.8)));
    const field: TrainingExample[] = [...trained].map((i) => ({ ...drifted[i]!, id: `field-${i}`, origin: 'field' }));
    const unseen = drifted.filter((_, i) => !trained.has(i)).map((e) => ({ label: e.label, bytes: e.bytes }));
    const dir = join(work, `child-${Date.now()}-${seed}`);
    const t0 = performance.now();
    await trainer.train({ model: { name: 'digits', version: '1.1.0' }, datasetVersion: 'sweep-child', train: [...train, ...field], labels: DIGIT_LABELS, parent: { ref: { name: 'digits', version: '1.0.0' }, dir: baseDir }, params, seed, outputDir: dir, signKeyPem: key });
    const seconds = (performance.now() - t0) / 1000;
    const child = await packageAccuracy(dir, clean);
    const driftedAfter = await packageAccuracy(dir, unseen);
    rmSync(dir, { recursive: true, force: true });
    const drops = classDropPoints(base, child, DIGIT_LABELS);
    const row = { params, seed, seconds: +seconds.toFixed(1), clean_delta: +(pct(child) - pct(base)).toFixed(2), worst_class_drop: +Math.max(...drops).toFixed(2), class_drops: drops.map((d) => +d.toFixed(1)), drifted_unseen: +pct(driftedAfter).toFixed(1) };
    console.log(values.json ? JSON.stringify(row) : `${JSON.stringify(params)} seed ${seed}: ${row.seconds}s clean ${row.clean_delta >= 0 ? '+' : ''}${row.clean_delta} worst class drop ${row.worst_class_drop} [${row.class_drops.join(' ')}] drifted ${row.drifted_unseen}% ${row.worst_class_drop > 3 ? 'REJECT' : 'pass'}`);
  }
}
