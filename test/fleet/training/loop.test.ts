import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LearningLoop } from '../../../fleet/app/training/loop.js';
import type { LoopModelConfigInput } from '../../../fleet/app/training/config.js';
import type { LoopProgress } from '../../../fleet/app/training/progress.js';
import { lineageChain } from '../../../fleet/app/models/lineage.js';
import type { Trainer } from '../../../fleet/app/training/trainer.js';
import { fleetKeys } from '../../helpers/packages.js';
import { openTestFleet, T0 } from '../http/context.js';
import type { TestFleet } from '../http/context.js';
import { DIGITS, fieldSamples, loopOn, PrototypeTrainer } from './fixtures.js';

const config: LoopModelConfigInput = {
  name: 'digits',
  labels: DIGITS,
  trainer: 'prototype',
  seed: 3,
  base: [
    { source: 'mnist', offset: 0, count: 600, split: 'train' },
    { source: 'mnist', offset: 600, count: 400, split: 'clean_holdout' },
  ],
  holdout: { kind: 'hash', fraction: 0.3, salt: 'test' },
  // Sub-millisecond models on a shared 2-core host: the p95 ratio is timer noise, so a slack is given.
  gate: { latency_slack_ms: 1 },
  auto_promote: { selector: { site: 'pit-3' }, plan: { canary: { devices: { count: 1 }, bake_s: 60 }, waves: [{ devices: { percent: 100 }, bake_s: 60 }] } },
};

/** A small base set for the tests that do not judge accuracy. */
const smallBase = [{ source: 'mnist', offset: 0, count: 50, split: 'train' as const }, { source: 'mnist', offset: 50, count: 20, split: 'clean_holdout' as const }];

let f: TestFleet;
let loop: LearningLoop;
const good = new PrototypeTrainer();
const bad = new PrototypeTrainer({ name: 'drops-3', dropClasses: ['3'] });

beforeEach(async () => {
  f = await openTestFleet();
  for (const id of ['pit-3-a', 'pit-3-b', 'pit-3-c']) await f.ctx.devices.register(id, { tags: { site: 'pit-3' } });
  loop = loopOn(f, { dir: 'training', devices: f.ctx.devices, trainers: { prototype: good, 'drops-3': bad }, models: [config], signKeyPem: fleetKeys().privateKeyPem });
});
afterEach(async () => {
  await loop.stop();
  await f.close();
});

describe('learning loop (real SQLite, registry, ONNX Runtime evaluation, a real trainer)', () => {
  it('trains a base model, then a candidate on drifted field labels that passes the gate and rolls out; a bad one is rejected and kept', { timeout: 240_000 }, async () => {
    // The first run has no production model and no field labels: require_field_holdout would refuse it.
    const firstProgress: LoopProgress[] = [];
    const first = await loop.trainNow({ actor: 'otto', note: 'base model', onProgress: (p) => firstProgress.push(p) });
    expect(first.status).toBe('rejected');
    expect(first.gate?.reasons).toEqual(['the field holdout is empty: nothing shows the candidate is better on field data']);
    expect(f.ctx.registry.get('digits', '1.0.0')).toMatchObject({ status: 'rejected', status_reasons: first.gate?.reasons });
    expect(firstProgress.map((p) => p.phase)).toEqual(expect.arrayContaining(['queued', 'dataset', 'train', 'push', 'evaluate', 'gate', 'done']));
    // An operator accepts the base model by hand (a person may overrule the gate; the record says so).
    f.ctx.registry.setStatus('digits', '1.0.0', { status: 'registered', reasons: ['base model accepted by hand'], actor: 'otto' });

    // pit-3's cameras drift; 300 outliers come back and are labeled.
    f.clock.advance(3_600_000);
    await fieldSamples(f.ctx, { offset: 2000, count: 300, devices: ['pit-3-a', 'pit-3-b'], drift: { rotate: 25, dim: 0.45 }, labeler: 'lena', at: f.clock.now() });
    f.clock.advance(2 * 3_600_000);

    const second = await loop.trainNow({ actor: 'otto' });
    const report = await loop.runs.report(second.id);
    const cand = report.candidate as { clean: { accuracy: number; confusion: number[][] }; field: { accuracy: number; count: number } };
    const prod = report.production as { clean: { accuracy: number }; field: { accuracy: number } };
    const summary = `candidate clean ${cand.clean.accuracy} field ${cand.field.accuracy}; production clean ${prod.clean.accuracy} field ${prod.field.accuracy}; ${JSON.stringify(second.gate?.reasons)}`;
    expect(second.status, summary).toBe('accepted');
    expect(second.parent).toEqual({ name: 'digits', version: '1.0.0' });
    expect(second.result).toEqual({ name: 'digits', version: '1.1.0' });
    expect(cand.field.accuracy - prod.field.accuracy).toBeGreaterThanOrEqual(0.02);
    expect(cand.field.count).toBeGreaterThan(50);
    expect(cand.clean.confusion).toHaveLength(10);
    expect(cand.clean.confusion.flat().reduce((a, b) => a + b, 0)).toBe(400);
    // The trainer never saw a holdout example.
    const call = good.calls.at(-1);
    const dataset = await f.ctx.datasets.getDataset(second.dataset_version as string);
    // The first run's dataset (base only) is the one whose placements this version kept.
    expect(dataset.previous).toBe(first.dataset_version);
    const held = new Set(dataset.entries.filter((e) => e.split === 'field_holdout').map((e) => e.sample_id));
    expect(call?.train.some((e) => held.has(e.id) || e.id === 'mnist-600' || e.id === 'mnist-999')).toBe(false);
    expect(call?.train).toHaveLength(600 + 300 - held.size);
    // Registered with lineage; the automatic rollout started with the model's plan.
    const v = f.ctx.registry.get('digits', '1.1.0');
    expect(v.status).toBe('registered');
    expect(v.lineage).toEqual({ dataset_version: dataset.id, training_run: second.id, parent: { name: 'digits', version: '1.0.0' } });
    expect(second.rollout_id).toBeTruthy();
    const ro = f.ctx.rollouts.get(second.rollout_id as string);
    expect(ro.state.candidate).toEqual({ name: 'digits', version: '1.1.0' });
    expect(ro.selector).toEqual({ site: 'pit-3' });
    expect(f.deliveries.some((d) => d.rollout === second.rollout_id)).toBe(true);

    // A bad candidate (class 3 never predicted) is rejected with reasons and kept.
    f.clock.advance(3_600_000);
    const third = await loop.trainNow({ actor: 'otto', trainer: 'drops-3' });
    expect(third.status).toBe('rejected');
    expect(third.gate?.reasons.some((r) => r.startsWith('class 3 on the clean holdout'))).toBe(true);
    const rejected = f.ctx.registry.get('digits', '1.2.0');
    expect(rejected.status).toBe('rejected');
    expect(rejected.status_reasons).toEqual(third.gate?.reasons);
    expect(third.rollout_id).toBeNull();
    expect(f.ctx.rollouts.list()).toHaveLength(1);

    // Every firing is recorded with its reason; the lineage runs from the model to labels and devices.
    expect(loop.runs.firings({ model: 'digits' }).map((x) => [x.kind, x.reason, x.run_id])).toEqual([
      ['manual', 'manual: requested by otto', third.id],
      ['manual', 'manual: requested by otto', second.id],
      ['manual', 'manual: requested by otto (base model)', first.id],
    ]);
    const chain = await lineageChain({ registry: f.ctx.registry, datasets: f.ctx.datasets, runs: loop.runs }, { name: 'digits', version: '1.1.0' });
    expect(chain.steps.map((s) => s.model.ref)).toEqual(['digits@1.1.0', 'digits@1.0.0']);
    expect(chain.steps[0]?.run?.id).toBe(second.id);
    expect(chain.steps[0]?.dataset?.devices).toEqual({ 'pit-3-a': 150, 'pit-3-b': 150 });
    expect(chain.steps[0]?.dataset?.labelers).toEqual({ lena: 300 });
    expect(chain.steps[1]?.dataset?.base.map((b) => b.content_sha256?.length)).toEqual([64, 64]);
  });

  it('refuses a second run of the same model while one runs, and an unknown trainer, before recording anything', async () => {
    const l = loopOn(f, { dir: 't2', trainers: { prototype: good }, models: [{ ...config, base: smallBase }] });
    await expect(l.trainNow({ actor: 'otto', trainer: 'nope' })).rejects.toMatchObject({ code: 'FLEET_TRAINER_UNKNOWN' });
    const { run, done } = await l.begin({ actor: 'otto' });
    await expect(l.begin({ actor: 'otto' })).rejects.toMatchObject({ code: 'FLEET_TRAINING_IN_PROGRESS' });
    expect(run.status).toBe('running');
    await done;
    expect(l.runs.list()).toHaveLength(1);
    await expect(l.trainNow({ actor: 'otto', model: 'pets' })).rejects.toMatchObject({ code: 'FLEET_TRAINING_NOT_CONFIGURED', message: expect.stringContaining('--training FILE') });
  }, 120_000);

  it('a policy tick fires on new labels, records the firing and starts a run; below the threshold it does not', { timeout: 120_000 }, async () => {
    const ticking = loopOn(f, {
      dir: 'training-2',
      trainers: { prototype: good },
      models: [{ ...config, base: [{ source: 'mnist', offset: 0, count: 100, split: 'train' }, { source: 'mnist', offset: 100, count: 50, split: 'clean_holdout' }], triggers: { labels: { min_new: 20 }, drift: null } }],
    });
    await fieldSamples(f.ctx, { offset: 3000, count: 19, devices: ['pit-3-a'], drift: { dim: 0.3 }, labeler: 'lena', at: T0 });
    f.clock.advance(7_200_000);
    const quiet = await ticking.tick();
    expect(quiet[0]).toMatchObject({ model: 'digits', decision: { fire: false } });
    await fieldSamples(f.ctx, { offset: 3100, count: 1, devices: ['pit-3-a'], drift: { dim: 0.3 }, labeler: 'lena', at: T0 + 100_000 });
    const fired = await ticking.tick();
    expect(fired[0]?.decision?.reason).toBe('labels: 20 new labels since the last run (threshold 20)');
    await ticking.settled();
    const run = ticking.runs.get(fired[0]?.run as string);
    expect(run.trigger).toEqual({ kind: 'labels', reason: 'labels: 20 new labels since the last run (threshold 20)' });
    expect(ticking.runs.firings()[0]).toMatchObject({ kind: 'labels', run_id: run.id });
    // Right after the run nothing new: no firing.
    expect((await ticking.tick())[0]?.decision?.fire).toBe(false);
    await ticking.stop();
  });

  it('records a failed run with its error code when the trainer throws or writes another version, and marks runs a crash interrupted as failed', { timeout: 120_000 }, async () => {
    const throwing: Trainer = { name: 'throws', train: () => Promise.reject(new Error('out of memory')) };
    const wrong: Trainer = { name: 'wrong', train: async (req) => good.train({ ...req, model: { name: req.model.name, version: '9.9.9' } }) };
    const small = { ...config, base: smallBase };
    const mk = (): LearningLoop =>
      loopOn(f, { dir: 't3', trainers: { throws: throwing, wrong }, models: [small] });
    const l = mk();
    const a = await l.trainNow({ actor: 'otto', trainer: 'throws' });
    expect(a).toMatchObject({ status: 'failed', error: { code: 'FLEET_TRAINING_FAILED', message: 'the throws trainer failed: out of memory' } });
    expect(a.dataset_version).toMatch(/^[0-9a-f]{64}$/);
    f.clock.advance(1000);
    const b = await l.trainNow({ actor: 'otto', trainer: 'wrong' });
    expect(b.status).toBe('failed');
    expect(b.error?.message).toBe('the trainer wrote digits@9.9.9, not the requested digits@1.0.0');
    expect(f.ctx.registry.list({ name: 'digits' })).toEqual([]);
    expect(f.logs.some((x) => x.msg === 'training run failed' && x.code === 'FLEET_TRAINING_FAILED')).toBe(true);
    // A base set whose content changed since its hash was recorded is refused.
    const changed = loopOn(f, { dir: 't5', trainers: { prototype: good }, models: [{ ...small, base: [{ ...small.base[0]!, content_sha256: '0'.repeat(64) }, small.base[1]!] }] });
    const seen: string[] = [];
    const off = changed.subscribe((p) => seen.push(p.phase));
    f.clock.advance(1000);
    expect(await changed.trainNow({ actor: 'otto' })).toMatchObject({ status: 'failed', error: { code: 'FLEET_BASE_SET_INVALID' } });
    off();
    expect(seen).toEqual(['queued', 'dataset', 'failed']);
    // A run left 'running' (the service died mid-run) is failed by the next loop that starts.
    l.runs.start({ id: 'run_interrupted', model: 'digits', trainer: 'throws', params: {}, seed: 1, trigger: { kind: 'manual', reason: 'x' }, actor: 'otto', parent: null });
    mk();
    expect(l.runs.get('run_interrupted')).toMatchObject({ status: 'failed', error: { code: 'FLEET_TRAINING_FAILED' } });
  });

  it('a policy tick fires on drift held by enough devices for long enough (histories sampled from the device registry)', { timeout: 60_000 }, async () => {
    const l = loopOn(f, {
      dir: 't4',
      devices: f.ctx.devices,
      trainers: { prototype: good },
      models: [{ ...config, base: smallBase, triggers: { labels: null, drift: { psi: 0.3, min_devices: 2, for_ms: 10 * 60_000 } } }],
    });
    for (let m = 0; m <= 10; m++) {
      l.observeDrift({ device: 'pit-3-a', model: 'digits', at: T0 + m * 60_000, psi: 0.6 });
      if (m >= 1) l.observeDrift({ device: 'pit-3-b', model: 'digits', at: T0 + m * 60_000, psi: 0.5 });
    }
    f.clock.set(T0 + 10 * 60_000);
    const quiet = await l.tick();
    expect(quiet[0]?.decision).toMatchObject({ fire: false, details: { driftingDevices: ['pit-3-a'] } });
    l.observeDrift({ device: 'pit-3-b', model: 'digits', at: T0 + 11 * 60_000, psi: 0.5 });
    f.clock.set(T0 + 11 * 60_000);
    const fired = await l.tick();
    expect(fired[0]?.decision?.reason).toBe('drift: PSI above 0.3 for 10 min on 2 device(s) (pit-3-a, pit-3-b; threshold 2)');
    expect(l.runs.firings()[0]).toMatchObject({ kind: 'drift', run_id: fired[0]?.run });
    await l.stop();
  });
});
