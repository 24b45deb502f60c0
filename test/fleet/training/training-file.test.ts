import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main } from '../../../fleet/edges/cli/main.js';
import pino from 'pino';
import { startFleetService } from '../../../fleet/boot/service.js';
import { loadTrainingConfig, parseTrainingConfig, trainingSetup } from '../../../fleet/boot/training-config.js';
import { tempDir } from '../../helpers/packages.js';

const good = {
  tick_s: 30,
  trainers: { command: { command: 'python3', args: ['train.py'], timeout_s: 600 } },
  models: [
    {
      name: 'digits',
      trainer: 'command',
      base: [{ source: 'mnist', offset: 0, count: 100, split: 'train' }, { source: 'mnist', offset: 100, count: 50, split: 'clean_holdout' }],
      triggers: { labels: { min_new: 50 } },
      gate: { field_gain_min_pts: 1 },
      auto_promote: { selector: { site: 'pit-3' }, plan: { canary: { devices: { percent: 10 } } } },
    },
  ],
};

const issuesOf = (fn: () => unknown): string[] => {
  try {
    fn();
  } catch (err) {
    expect(err).toMatchObject({ code: 'FLEET_TRAINING_CONFIG_INVALID' });
    return (err as { details: { issues: string[] } }).details.issues;
  }
  throw new Error('no error');
};

describe('the training file (serve --training)', () => {
  let t: ReturnType<typeof tempDir>;
  beforeEach(() => {
    t = tempDir('edgeloop-training-file-');
  });
  afterEach(() => t.cleanup());

  it('a good file parses with the loop schema defaults and is frozen', () => {
    const c = parseTrainingConfig(good);
    expect(c.trainers.command).toEqual({ command: 'python3', args: ['train.py'], timeout_s: 600, dataset_format: 'auto' });
    expect(c.models[0]?.gate).toMatchObject({ field_gain_min_pts: 1, clean_drop_max_pts: 1 });
    expect(c.models[0]?.triggers.drift?.psi).toBe(0.25);
    expect(Object.isFrozen(c.models[0]?.gate)).toBe(true);
  });

  it('the command trainer\'s dataset_format takes the documented layouts only', () => {
    const withFormat = (dataset_format: unknown): unknown => ({ ...good, trainers: { command: { command: 'python3', dataset_format } } });
    expect(parseTrainingConfig(withFormat('coco')).trainers.command?.dataset_format).toBe('coco');
    expect(issuesOf(() => parseTrainingConfig(withFormat('voc'))).join('\n')).toMatch(/^trainers\.command\.dataset_format: /m);
  });

  it('names every bad key in one error: schema keys and the cross-checks together', () => {
    const issues = issuesOf(() =>
      parseTrainingConfig({
        tick: 5,
        trainers: { command: { cmd: 'x' } },
        models: [
          { name: 'digits', trainer: 'sagemaker', gate: { field_gain: 2 } },
          { name: 'pets', trainer: 'sagemaker', base: [{ source: 'imagenet', split: 'train' }, { source: 'mnist', split: 'train' }] },
          { name: 'pets', triggers: { labels: { min_new: -1 } } },
        ],
      }, { hint: { sagemaker: 'needs --backend aws' } }),
    );
    const text = issues.join('\n');
    expect(text).toContain('(root): Unrecognized key: "tick"');
    expect(text).toMatch(/trainers\.command\.command: /);
    expect(text).toContain('"cmd"');
    expect(text).toMatch(/models\.0\.gate: .*"field_gain"/);
    expect(text).toMatch(/models\.2\.triggers\.labels\.min_new: /);
    // pets (models.1) parses alone, so its cross-checks are reported too.
    expect(text).toContain('models.1.trainer: no trainer sagemaker (available: local, command); needs --backend aws');
    expect(text).toContain('models.1.base.0.source: unknown base set source imagenet (known: mnist, artifacts)');
    expect(text).toContain('models.1.base.1: an mnist base set needs offset and count');
  });

  it('a trainer the mode cannot build, a model twice, no models: refused before anything starts', () => {
    expect(issuesOf(() => parseTrainingConfig({ models: [{ name: 'a', trainer: 'sagemaker' }, { name: 'a', trainer: 'command' }] }))).toEqual([
      'models.0.trainer: no trainer sagemaker (available: local)',
      'models.1.name: a is configured twice',
      'models.1.trainer: no trainer command (available: local)',
    ]);
    expect(parseTrainingConfig({ models: [{ name: 'a', trainer: 'sagemaker' }] }, { extraTrainers: ['sagemaker'] }).models[0]?.trainer).toBe('sagemaker');
    expect(issuesOf(() => parseTrainingConfig({ models: [] }))).toEqual([expect.stringMatching(/^models: /)]);
    expect(issuesOf(() => parseTrainingConfig([]))).toEqual([expect.stringMatching(/^\(root\): /)]);
  });

  it('unreadable and non-JSON files are FLEET_TRAINING_CONFIG_INVALID with the path', async () => {
    await expect(loadTrainingConfig(join(t.dir, 'missing.json'))).rejects.toMatchObject({ code: 'FLEET_TRAINING_CONFIG_INVALID', message: expect.stringContaining('missing.json') });
    writeFileSync(join(t.dir, 'bad.json'), '{ models: ');
    await expect(loadTrainingConfig(join(t.dir, 'bad.json'))).rejects.toMatchObject({ code: 'FLEET_TRAINING_CONFIG_INVALID', message: expect.stringContaining('not valid JSON') });
  });

  it('edgeloop serve --training with a bad file exits 1 with the named keys and starts nothing', async () => {
    const file = join(t.dir, 'training.json');
    writeFileSync(file, JSON.stringify({ models: [{ name: 'digits', trainer: 'sagemaker', gate: { field_gain: 2 } }] }));
    const err: string[] = [];
    const code = await main(['serve', '--data', join(t.dir, 'data'), '--http-port', '0', '--mqtt-port', '0', '--training', file], { out: () => undefined, err: (l) => err.push(l) });
    expect(code).toBe(1);
    expect(err.join('\n')).toMatch(/^FLEET_TRAINING_CONFIG_INVALID: training configuration .*training\.json is invalid: models\.0\.gate: .*field_gain/);
    // The trainer check needs the model to parse; fix the gate and the sagemaker hint shows.
    writeFileSync(file, JSON.stringify({ models: [{ name: 'digits', trainer: 'sagemaker' }] }));
    err.length = 0;
    expect(await main(['serve', '--data', join(t.dir, 'data'), '--training', file], { out: () => undefined, err: (l) => err.push(l) })).toBe(1);
    expect(err.join('\n')).toContain('models.0.trainer: no trainer sagemaker (available: local); the sagemaker trainer needs --backend aws and a sagemaker section in --aws-config');
    expect(existsSync(join(t.dir, 'data', 'fleet.json'))).toBe(false);
  });

  it('a valid file starts the service with the loop configured from it (base sets built over the service artifact store)', async () => {
    const setup = trainingSetup(parseTrainingConfig(good));
    expect(Object.keys(setup.trainers)).toEqual(['local', 'command']);
    expect(setup.tickMs).toBe(30_000);
    const svc = await startFleetService({ dataDir: join(t.dir, 'data'), mqttPort: 0, log: pino({ level: 'silent' }), training: setup });
    try {
      expect(svc.ctx.training?.models()).toEqual(['digits']);
      expect(svc.ctx.training?.config('digits')).toMatchObject({ trainer: 'command', triggers: { labels: { min_new: 50 } } });
    } finally {
      await svc.stop();
    }
  });
});
