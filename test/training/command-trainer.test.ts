import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commandTrainer, type CommandTrainerOptions } from '../../fleet/adapters/trainers/command-trainer.js';
import type { TrainProgress, TrainRequest } from '../../fleet/app/training/trainer.js';
import { smallCnnModel } from '../helpers/models.js';
import { patternImage, tempDir } from '../helpers/packages.js';
import { trainerContract } from '../fleet/training/trainer-contract.js';

const SCRIPT = fileURLToPath(new URL('./fixtures/train-script.mjs', import.meta.url));
const LABELS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'];

let tmp: ReturnType<typeof tempDir>;
let onnxFile: string;
let train: TrainRequest['train'];
let n = 0;

beforeAll(async () => {
  tmp = tempDir();
  onnxFile = join(tmp.dir, 'fixture.onnx');
  writeFileSync(onnxFile, smallCnnModel({ channels: 1, height: 28, width: 28, classes: 10, seed: 3, layout: 'NCHW', inputType: 'float32' }).bytes);
  train = await Promise.all(Array.from({ length: 12 }, async (_, i) => ({ id: i === 11 ? 'sample/with:odd id' : `base-${i}`, label: String(i % 10), bytes: await patternImage(i, { channels: 1 }) })));
});
afterAll(() => tmp.cleanup());

function run(env: Record<string, string>, over: Partial<CommandTrainerOptions> = {}, req: Partial<TrainRequest> = {}): { progress: TrainProgress[]; promise: Promise<Awaited<ReturnType<ReturnType<typeof commandTrainer>['train']>>>; outputDir: string } {
  const progress: TrainProgress[] = [];
  const outputDir = join(tmp.dir, `out-${n++}`);
  const trainer = commandTrainer({ command: process.execPath, args: [SCRIPT], env: { PATH: process.env.PATH, FIXTURE_ONNX: onnxFile, ...env }, workDir: tmp.dir, killGraceMs: 300, ...over });
  const promise = trainer.train({ model: { name: 'digits', version: '2.0.0' }, datasetVersion: 'ds-1', train, labels: LABELS, parent: null, params: { epochs: 3 }, seed: 42, outputDir, onProgress: (p) => progress.push(p), ...req });
  return { progress, promise, outputDir };
}

describe('command trainer', () => {
  it('exports the dataset, runs the command with its environment, streams progress and validates the package', async () => {
    const r = run({});
    const res = await r.promise;
    expect(res.packageDir).toBe(r.outputDir);
    expect(res.metrics).toEqual({ examples_seen: 12, params_epochs: 3 });
    expect(res.run).toMatchObject({ trainer: 'command', seed: 42, code_version: 'train.py@abc123', params: { epochs: 3, command: process.execPath } });
    const messages = r.progress.map((p) => p.message);
    expect(messages).toContain('read 12 examples, 10 labels, seed 42, parent -');
    expect(messages).toContain('stderr: a warning on stderr');
    expect(r.progress).toContainEqual({ message: 'epoch 1/1', fraction: 0.5, metrics: { loss: 0.25 } });
    expect(r.progress.at(-1)).toMatchObject({ fraction: 1 });
    // The export is a temporary: removed after the run.
    expect(readdirSync(tmp.dir).filter((d) => d.startsWith('edgeloop-command-train-'))).toEqual([]);
  });

  it('keeps the documented dataset layout when asked to keep it', async () => {
    const r = run({}, { keepDataset: true });
    await r.promise;
    const dir = readdirSync(tmp.dir).find((d) => d.startsWith('edgeloop-command-train-'))!;
    const ds = join(tmp.dir, dir, 'dataset');
    const meta = JSON.parse(readFileSync(join(ds, 'dataset.json'), 'utf8')) as { schema: string; examples: Array<{ id: string; file: string }>; labels: string[]; dataset_version: string };
    expect(meta).toMatchObject({ schema: 'edgeloop.dataset-export/1', dataset_version: 'ds-1', labels: LABELS });
    expect(meta.examples[0]).toMatchObject({ id: 'base-0', file: 'train/0/base-0.png' });
    // An id that is not a safe file name is cleaned and made unique, and dataset.json maps it back.
    expect(meta.examples[11]!.file).toMatch(/^train\/1\/sample_with_odd_id-[0-9a-f]{8}\.png$/);
    expect(existsSync(join(ds, meta.examples[11]!.file))).toBe(true);
    expect(readFileSync(join(ds, 'labels.txt'), 'utf8')).toBe(`${LABELS.join('\n')}\n`);
  });

  it('passes PARENT_MODEL when fine-tuning', async () => {
    const r = run({}, {}, { parent: { ref: { name: 'digits', version: '1.0.0' }, dir: '/models/digits-1.0.0' } });
    await r.promise;
    expect(r.progress.map((p) => p.message)).toContain('read 12 examples, 10 labels, seed 42, parent /models/digits-1.0.0');
  });

  it('reports a non-zero exit with the stderr tail', async () => {
    await expect(run({ MODE: 'exit1' }).promise).rejects.toMatchObject({
      code: 'FLEET_TRAINING_FAILED',
      message: expect.stringMatching(/exited with code 1: CUDA out of memory \(simulated\)$/),
      details: { exit_code: 1, stderr_tail: ['a warning on stderr', 'CUDA out of memory (simulated)'] },
    });
  });

  it('reports a command that cannot start', async () => {
    await expect(run({}, { command: join(tmp.dir, 'no-such-trainer') }).promise).rejects.toMatchObject({ code: 'FLEET_TRAINING_FAILED', message: expect.stringMatching(/could not start: .*ENOENT/) });
  });

  it('stops a command that runs past its timeout, SIGKILL after the grace', async () => {
    const pidFile = join(tmp.dir, 'timeout.pid');
    await expect(run({ MODE: 'sleep', PID_FILE: pidFile }, { timeoutMs: 1500 }).promise).rejects.toMatchObject({ code: 'FLEET_TRAINING_TIMEOUT', details: { signal: 'SIGKILL' } });
    const pid = Number(readFileSync(pidFile, 'utf8'));
    expect(() => process.kill(pid, 0)).toThrow(/ESRCH/);
  });

  it('stops the command on abort', async () => {
    const ac = new AbortController();
    const r = run({ MODE: 'sleep' }, {}, { signal: ac.signal, onProgress: (p) => (p.message.startsWith('read ') ? ac.abort() : undefined) });
    await expect(r.promise).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    const pre = new AbortController();
    pre.abort();
    await expect(run({}, {}, { signal: pre.signal }).promise).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
  });

  it.each([
    ['badhash', /model\.onnx does not match its sha256/],
    ['nomanifest', /manifest\.json cannot be read \(ENOENT\)/],
    ['wrongversion', /manifest names digits@9\.9\.9, expected digits@2\.0\.0/],
    ['badonnx', /ONNX Runtime cannot load model\.onnx/],
  ])('rejects an invalid output package (%s)', async (mode, why) => {
    await expect(run({ MODE: mode }).promise).rejects.toMatchObject({ code: 'FLEET_TRAINING_OUTPUT_INVALID', message: expect.stringMatching(why) });
  });
});

trainerContract('command', async () => {
  const t = tempDir('edgeloop-command-contract-');
  const onnx = join(t.dir, 'fixture.onnx');
  writeFileSync(onnx, smallCnnModel({ channels: 1, height: 28, width: 28, classes: 10, seed: 3, layout: 'NCHW', inputType: 'float32' }).bytes);
  const seenFile = join(t.dir, 'seen.json');
  const make = (env: Record<string, string> = {}): ReturnType<typeof commandTrainer> =>
    commandTrainer({ command: process.execPath, args: [SCRIPT], env: { PATH: process.env.PATH, FIXTURE_ONNX: onnx, SEEN_FILE: seenFile, ...env }, workDir: t.dir, killGraceMs: 300 });
  const examples = (from: number, count: number): Promise<TrainRequest['train']> =>
    Promise.all(Array.from({ length: count }, async (_, i) => ({ id: `ex-${from + i}`, label: LABELS[(from + i) % 10]!, bytes: await patternImage(from + i, { channels: 1 }) })));
  return {
    trainer: make(),
    labels: LABELS,
    train: await examples(0, 12),
    holdout: await examples(100, 6),
    params: { epochs: 1 },
    // The command reports every file it could read under DATASET_DIR/train (SEEN_FILE).
    received: async () => {
      if (!existsSync(seenFile)) return { sha256: [], complete: true };
      const seen = JSON.parse(readFileSync(seenFile, 'utf8')) as string[];
      rmSync(seenFile);
      return { sha256: seen, complete: true };
    },
    // A command that ignores SIGTERM: the abort ends it with SIGKILL after the 300 ms grace.
    long: { trainer: make({ MODE: 'sleep' }), params: { epochs: 1 }, underway: (p) => p.message.startsWith('read ') },
    abortWithinMs: 5000,
    dispose: async () => t.cleanup(),
  };
});
