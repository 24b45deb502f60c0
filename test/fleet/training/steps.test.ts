/**
 * Each step of a training run (fleet/app/training/steps/) called alone on a run record, over a
 * test fleet's real parts (SQLite, registry, datasets, artifact store, rollouts), the mnist
 * base-set source and the prototype trainer; the records a step takes come from running the
 * steps before it.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FleetError } from '../../../fleet/errors.js';
import { loopModelConfig, type LoopModelConfigInput } from '../../../fleet/app/training/config.js';
import { runPipeline } from '../../../fleet/app/training/pipeline.js';
import type { LoopPhase } from '../../../fleet/app/training/progress.js';
import type { Pushed, RunStart, StepDeps } from '../../../fleet/app/training/run-record.js';
import { datasetStep } from '../../../fleet/app/training/steps/dataset.js';
import { evaluateStep } from '../../../fleet/app/training/steps/evaluate.js';
import type { ModelReport } from '../../../fleet/app/training/evaluate.js';
import { gateStep } from '../../../fleet/app/training/steps/gate.js';
import { prepareStep } from '../../../fleet/app/training/steps/prepare.js';
import { promoteStep } from '../../../fleet/app/training/steps/promote.js';
import { pushStep } from '../../../fleet/app/training/steps/push.js';
import { nextVersion, trainStep } from '../../../fleet/app/training/steps/train.js';
import type { Trainer, TrainRequest } from '../../../fleet/app/training/trainer.js';
import type { ModelVersion } from '../../../fleet/app/models/registry.js';
import { CLASS_LABELS, fleetKeys, imagePackage, tempDir } from '../../helpers/packages.js';
import { openTestFleet, type TestFleet } from '../http/context.js';
import { DIGITS, fieldSamples, mnistSource, PrototypeTrainer } from './fixtures.js';

const CONFIG: LoopModelConfigInput = {
  name: 'digits',
  labels: DIGITS,
  trainer: 'prototype',
  seed: 3,
  params: { note: 'kept' },
  base: [
    { source: 'mnist', offset: 0, count: 50, split: 'train' },
    { source: 'mnist', offset: 50, count: 20, split: 'clean_holdout' },
  ],
  holdout: { kind: 'hash', fraction: 0.3, salt: 'test' },
  gate: { latency_slack_ms: 1 },
};

let f: TestFleet;
let lines: Array<{ phase: LoopPhase; message: string; metrics?: Record<string, number> }>;
let deps: StepDeps;
let n = 0;

beforeEach(async () => {
  f = await openTestFleet();
  await f.ctx.devices.register('pit-3-a', { tags: { site: 'pit-3' } });
  lines = [];
  deps = {
    registry: f.ctx.registry,
    artifacts: f.ctx.artifacts,
    datasets: f.ctx.datasets,
    base: mnistSource,
    runs: f.ctx.trainingRuns,
    rollouts: f.ctx.rollouts,
    clock: f.ctx.clock,
    log: f.ctx.log,
    signKeyPem: fleetKeys().privateKeyPem,
    emit: (phase, message, extra = {}) => void lines.push({ phase, message, ...(extra.metrics ? { metrics: extra.metrics } : {}) }),
  };
});
afterEach(async () => {
  await f.close();
});

/** A run as the loop launches it: recorded `running`, its work directory under the fleet's. */
function launch(o: { config?: Partial<LoopModelConfigInput>; trainer?: Trainer; parent?: ModelVersion | null } = {}): RunStart {
  const config = loopModelConfig.parse({ ...CONFIG, ...o.config });
  const trainer = o.trainer ?? new PrototypeTrainer();
  const parent = o.parent ?? null;
  const id = `run_test_${++n}`;
  const run = f.ctx.trainingRuns.start({ id, model: config.name, trainer: trainer.name, params: config.params, seed: config.seed, trigger: { kind: 'manual', reason: 'test' }, actor: 'otto', parent: parent ? { name: parent.name, version: parent.version } : null });
  return { run, config, trainer, parent, workDir: join(f.dir, 'work', id), signal: new AbortController().signal };
}

/** The record as `pushStep` leaves it. */
async function pushed(start: RunStart): Promise<Pushed> {
  return pushStep(deps, await trainStep(deps, await datasetStep(deps, await prepareStep(deps, start))));
}

describe('prepareStep', () => {
  it('empties the work directory; without a parent the classes are the configuration\'s', async () => {
    const start = launch();
    mkdirSync(start.workDir, { recursive: true });
    writeFileSync(join(start.workDir, 'left-over'), 'x');
    const r = await prepareStep(deps, start);
    expect(r.parentDir).toBeNull();
    expect(r.labels).toEqual(DIGITS);
    expect(existsSync(start.workDir)).toBe(true);
    expect(existsSync(join(start.workDir, 'left-over'))).toBe(false);
  });

  it('writes the parent package (the registry\'s signed manifest and files) and takes its classes', async () => {
    const t = tempDir();
    try {
      await imagePackage(t.dir, { version: '1.0.0' });
      const parent = (await f.ctx.registry.push(t.dir, { actor: 'otto' })).version;
      const r = await prepareStep(deps, launch({ config: { name: 'pets', labels: undefined }, parent }));
      expect(r.parentDir).toBe(join(r.workDir, 'parent'));
      expect(readFileSync(join(r.parentDir!, 'manifest.json'))).toEqual(await f.ctx.registry.manifestBytes('pets', '1.0.0'));
      for (const file of parent.files) expect(existsSync(join(r.parentDir!, file.path))).toBe(true);
      expect(r.labels).toEqual(CLASS_LABELS);
    } finally {
      t.cleanup();
    }
  });

  it('a model with neither a registered version nor configured labels is FLEET_TRAINING_NOT_CONFIGURED', async () => {
    await expect(prepareStep(deps, launch({ config: { labels: undefined } }))).rejects.toMatchObject({ code: 'FLEET_TRAINING_NOT_CONFIGURED' });
  });
});

describe('datasetStep', () => {
  it('cuts the dataset version from the base set and the labeled field samples, records it on the run, and loads the three sets apart', async () => {
    await fieldSamples(f.ctx, { offset: 3000, count: 40, devices: ['pit-3-a'], drift: { dim: 0.3 }, labeler: 'lena', at: f.clock.now() });
    const start = launch();
    const r = await datasetStep(deps, await prepareStep(deps, start));
    expect(f.ctx.trainingRuns.get(start.run.id).dataset_version).toBe(r.dataset.id);
    expect(r.dataset.base?.map((b) => b.content_sha256)).toEqual([expect.stringMatching(/^[0-9a-f]{64}$/), expect.stringMatching(/^[0-9a-f]{64}$/)]);
    const heldField = r.dataset.entries.filter((e) => e.split === 'field_holdout').map((e) => e.sample_id);
    expect(heldField.length).toBeGreaterThan(0);
    expect(r.split.field.map((e) => e.id).sort()).toEqual([...heldField].sort());
    expect(r.split.clean.map((e) => e.id)).toEqual(Array.from({ length: 20 }, (_, i) => `mnist-${50 + i}`));
    // The training set: the base train slice and the field samples placed in train, nothing held out.
    const trainIds = new Set(r.split.train.map((e) => e.id));
    expect(r.split.train).toHaveLength(50 + 40 - heldField.length);
    expect([...heldField, ...r.split.clean.map((e) => e.id)].some((id) => trainIds.has(id))).toBe(false);
    expect(lines.map((l) => l.phase)).toEqual(['dataset', 'dataset']);
    expect(lines[1]?.metrics).toEqual({ train: r.split.train.length, clean_holdout: 20, field_holdout: heldField.length });
  });

  it('refuses a base set whose content changed since its hash was recorded (FLEET_BASE_SET_INVALID), recording no dataset', async () => {
    const start = launch({ config: { base: [{ ...CONFIG.base![0]!, content_sha256: '0'.repeat(64) }, CONFIG.base![1]!] } });
    await expect(datasetStep(deps, await prepareStep(deps, start))).rejects.toMatchObject({ code: 'FLEET_BASE_SET_INVALID' });
    expect(f.ctx.trainingRuns.get(start.run.id).dataset_version).toBeNull();
  });

  it('an empty training set is INPUT_INVALID', async () => {
    const start = launch({ config: { base: [CONFIG.base![1]!] } });
    await expect(datasetStep(deps, await prepareStep(deps, start))).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });
});

describe('trainStep', () => {
  it('names the next version and gives the trainer the training set, the parameters, the seed and the signal; records what it used', async () => {
    const trainer = new PrototypeTrainer();
    const start = launch({ trainer });
    const ready = await datasetStep(deps, await prepareStep(deps, start));
    lines.length = 0;
    const r = await trainStep(deps, ready);
    expect(r.candidate).toEqual({ name: 'digits', version: '1.0.0' });
    const req = trainer.calls[0] as TrainRequest;
    expect(req).toMatchObject({ model: r.candidate, datasetVersion: ready.dataset.id, runId: start.run.id, labels: DIGITS, parent: null, params: { note: 'kept' }, seed: 3, outputDir: join(start.workDir, 'candidate'), signKeyPem: deps.signKeyPem });
    expect(req.train).toBe(ready.split.train);
    expect(req.signal).toBe(start.signal);
    expect(lines.map((l) => [l.phase, l.message])).toEqual([
      ['train', 'training digits@1.0.0 with the prototype trainer from scratch'],
      ['train', expect.stringMatching(/prototypes from 50 examples$/)],
    ]);
    expect(f.ctx.trainingRuns.get(start.run.id)).toMatchObject({ code_version: 'test-prototype-1', params: { note: 'kept' } });
  });

  it('a trainer that throws a plain error fails with FLEET_TRAINING_FAILED naming it; a coded error passes through', async () => {
    const ready = await datasetStep(deps, await prepareStep(deps, launch()));
    const plain: Trainer = { name: 'flaky', train: () => Promise.reject(new Error('disk full')) };
    await expect(trainStep(deps, { ...ready, trainer: plain })).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: 'the flaky trainer failed: disk full' });
    const coded: Trainer = { name: 'stopped', train: () => Promise.reject(new FleetError('TRAINING_ABORTED', 'stopped')) };
    await expect(trainStep(deps, { ...ready, trainer: coded })).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED', message: 'stopped' });
  });

  it('nextVersion: the next minor after every version, pre-releases counted by their core', () => {
    expect(nextVersion([])).toBe('1.0.0');
    expect(nextVersion(['1.0.0', '1.2.0-rc.1', '1.1.0'])).toBe('1.3.0');
    expect(nextVersion(['2.4.1'])).toBe('2.5.0');
  });
});

describe('pushStep', () => {
  it('registers the candidate with the loop\'s lineage (over what the trainer wrote) and records the result', async () => {
    const start = launch();
    const r = await pushed(start);
    expect(r.pushed).toMatchObject({ name: 'digits', version: '1.0.0', status: 'registered' });
    expect(r.pushed.lineage).toEqual({ dataset_version: r.dataset.id, training_run: start.run.id, parent: null });
    const manifest = await f.ctx.registry.manifest('digits', '1.0.0');
    expect(manifest.lineage).toMatchObject({ dataset_version: r.dataset.id, training_run: start.run.id, trainer: 'prototype', code_version: 'test-prototype-1' });
    expect(f.ctx.trainingRuns.get(start.run.id).result).toEqual({ name: 'digits', version: '1.0.0' });
    expect(lines.at(-1)).toMatchObject({ phase: 'push', message: 'registering digits@1.0.0' });
  });

  it('a package that names another version, or has no readable manifest, fails the run (FLEET_TRAINING_FAILED) and registers nothing', async () => {
    const good = new PrototypeTrainer();
    const wrong: Trainer = { name: 'wrong', train: (req) => good.train({ ...req, model: { name: req.model.name, version: '9.9.9' } }) };
    const trained = await trainStep(deps, await datasetStep(deps, await prepareStep(deps, launch({ trainer: wrong }))));
    await expect(pushStep(deps, trained)).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: 'the trainer wrote digits@9.9.9, not the requested digits@1.0.0' });
    writeFileSync(join(trained.trained.packageDir, 'manifest.json'), '{ not json');
    await expect(pushStep(deps, trained)).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringMatching(/^the trainer wrote no readable manifest\.json/) });
    expect(f.ctx.registry.list({ name: 'digits' })).toEqual([]);
  });
});

describe('evaluateStep', () => {
  it('runs the candidate alone when there is no production model, and both on the same holdouts when there is', async () => {
    const first = await evaluateStep(deps, await pushed(launch()));
    expect(first.reports.production).toBeNull();
    expect(first.reports.candidate).toMatchObject({ model: { name: 'digits', version: '1.0.0' }, clean: { count: 20 }, field: { count: 0 } });

    const parent = f.ctx.registry.get('digits', '1.0.0');
    lines.length = 0;
    const second = await evaluateStep(deps, await pushed(launch({ parent })));
    expect(second.reports.production).toMatchObject({ model: { name: 'digits', version: '1.0.0' }, clean: { count: 20 } });
    expect(second.reports.candidate).toMatchObject({ model: { name: 'digits', version: '1.1.0' }, clean: { count: 20 } });
    expect(lines.find((l) => l.phase === 'evaluate')?.message).toBe('evaluating digits@1.1.0 against digits@1.0.0 on 20 clean and 0 field holdout examples');
  });
});

describe('gateStep', () => {
  it('a candidate that fails the gate is marked rejected in the registry with the reasons; the report is stored either way', async () => {
    const start = launch();
    const r = await gateStep(deps, await evaluateStep(deps, await pushed(start)));
    expect(r.verdict).toMatchObject({ passed: false, reasons: ['the field holdout is empty: nothing shows the candidate is better on field data'] });
    expect(f.ctx.registry.get('digits', '1.0.0')).toMatchObject({ status: 'rejected', status_reasons: r.verdict.reasons, status_by: 'evaluation-gate' });
    const report = JSON.parse((await f.ctx.artifacts.get(r.reportSha)).toString()) as Record<string, unknown>;
    expect(report).toMatchObject({ schema: 'edgeloop.evaluation-report', run: start.run.id, dataset_version: r.dataset.id, gate: r.verdict, production: null });
    expect(r.metrics).toMatchObject({ examples: 50, clean_accuracy: (r.reports.candidate as ModelReport).clean.accuracy, field_accuracy: 0 });
    expect(lines.at(-1)).toMatchObject({ phase: 'gate', message: expect.stringMatching(/^gate failed: the field holdout is empty/) });
  });

  it('a candidate that passes stays registered; the metrics carry the trainer\'s and the evaluation\'s figures', async () => {
    const r = await gateStep(deps, await evaluateStep(deps, await pushed(launch({ config: { gate: { require_field_holdout: false } } }))));
    expect(r.verdict).toMatchObject({ passed: true, baseline: null });
    expect(f.ctx.registry.get('digits', '1.0.0').status).toBe('registered');
    expect(Object.keys(r.metrics).sort()).toEqual(['clean_accuracy', 'examples', 'field_accuracy', 'latency_p95_ms', 'train_duration_ms']);
    expect(lines.at(-1)).toMatchObject({ phase: 'gate', message: 'gate passed (no production model to compare with)' });
  });
});

describe('promoteStep', () => {
  const plan = { canary: { devices: { count: 1 }, bake_s: 60 }, waves: [{ devices: { percent: 100 }, bake_s: 60 }] };

  it('without auto_promote it starts nothing', async () => {
    const judged = await gateStep(deps, await evaluateStep(deps, await pushed(launch({ config: { gate: { require_field_holdout: false } } }))));
    expect((await promoteStep(deps, judged)).rolloutError).toBeNull();
    expect(f.ctx.rollouts.list()).toEqual([]);
  });

  it('with auto_promote it starts a rollout of the candidate with the configured selector and plan, recorded on the run', async () => {
    const start = launch({ config: { gate: { require_field_holdout: false }, auto_promote: { selector: { site: 'pit-3' }, plan } } });
    const r = await promoteStep(deps, await gateStep(deps, await evaluateStep(deps, await pushed(start))));
    expect(r.rolloutError).toBeNull();
    const id = f.ctx.trainingRuns.get(start.run.id).rollout_id as string;
    expect(f.ctx.rollouts.get(id)).toMatchObject({ selector: { site: 'pit-3' }, state: { candidate: { name: 'digits', version: '1.0.0' } } });
    expect(lines.at(-1)).toEqual({ phase: 'rollout', message: `rollout ${id} of digits@1.0.0 started (canary -> wave 1)` });
  });

  it('a rollout that cannot start leaves the candidate accepted, with the reason and its code', async () => {
    const judged = await gateStep(deps, await evaluateStep(deps, await pushed(launch({ config: { gate: { require_field_holdout: false }, auto_promote: { selector: { site: 'pit-3' }, plan } } }))));
    const refusing = { ...deps, rollouts: { create: () => { throw new FleetError('CONFLICT', 'a rollout of digits is active'); } } };
    const r = await promoteStep(refusing, judged);
    expect(r.rolloutError).toEqual({ code: 'FLEET_CONFLICT', message: 'accepted, but the automatic rollout did not start: a rollout of digits is active' });
    expect(f.ctx.registry.get('digits', '1.0.0').status).toBe('registered');
  });
});

describe('runPipeline', () => {
  it('ends a run whose step throws as failed with the code, after the phases it reached, and removes its work directory', async () => {
    const start = launch({ trainer: { name: 'throws', train: () => Promise.reject(new Error('out of memory')) } });
    const done = await runPipeline(deps, start);
    expect(done).toMatchObject({ status: 'failed', error: { code: 'FLEET_TRAINING_FAILED', message: 'the throws trainer failed: out of memory' } });
    expect(lines.map((l) => l.phase)).toEqual(['dataset', 'dataset', 'train', 'failed']);
    expect(existsSync(start.workDir)).toBe(false);
  });

  it('runs every step to an accepted run', async () => {
    const done = await runPipeline(deps, launch({ config: { gate: { require_field_holdout: false } } }));
    expect(done).toMatchObject({ status: 'accepted', result: { name: 'digits', version: '1.0.0' }, error: null });
    const phases = lines.map((l) => l.phase).filter((p, i, all) => p !== all[i - 1]);
    expect(phases).toEqual(['dataset', 'train', 'push', 'evaluate', 'gate', 'done']);
  });
});
