import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validatePackageDir } from '../../../fleet/app/training/package-check.js';
import type { Trainer, TrainingExample, TrainProgress, TrainRequest } from '../../../fleet/app/training/trainer.js';
import { tempDir } from '../../helpers/packages.js';

/** What a trainer's training code itself received in a run (its training process, container or thread). */
export interface Received {
  /** sha256 of the example bytes the training code could read. */
  sha256: string[];
  /**
   * true: `sha256` is everything the training code could read (an export it was handed);
   * false: only what its output shows it trained on (an in-process trainer reads nothing else
   * than the request it is given).
   */
  complete: boolean;
}

/** One implementation of the {@link Trainer} port, set up for the contract. */
export interface TrainerUnderTest {
  trainer: Trainer;
  /** Classes and examples of a small, quick run of this trainer. */
  labels: readonly string[];
  train: readonly TrainingExample[];
  /** Examples of the same kind held out of the run (distinct bytes): they must never reach it. */
  holdout: readonly TrainingExample[];
  /** Parameters of the quick run. */
  params: Readonly<Record<string, unknown>>;
  /** What the training code received since the last call (then forgotten); `outputDir` is the last run's. */
  received(outputDir: string): Promise<Received>;
  /** A run that keeps going until it is aborted: its trainer (default the same), its parameters, and the progress line that shows it is under way. */
  long: { trainer?: Trainer; params: Readonly<Record<string, unknown>>; underway(p: TrainProgress): boolean };
  /** How soon after an abort the run must have ended. */
  abortWithinMs: number;
  dispose?(): Promise<void>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/**
 * The behaviour every {@link Trainer} must have (docs/conventions.md rule 3), run once per
 * implementation: local (test/training/local-trainer.test.ts), command
 * (test/training/command-trainer.test.ts) and SageMaker (test/fleet/aws/sagemaker-trainer.test.ts).
 *
 * Which examples are holdouts is the learning loop's decision (test/fleet/training/steps.test.ts);
 * what a trainer owes is to train on exactly the request's training set: nothing left over from
 * an earlier run (an export directory, an S3 prefix, a cache) reaches its training code.
 */
export function trainerContract(name: string, setup: () => Promise<TrainerUnderTest>, timeoutMs = 120_000): void {
  describe(`Trainer contract: ${name}`, { timeout: timeoutMs }, () => {
    let ut: TrainerUnderTest;
    let tmp: ReturnType<typeof tempDir>;
    let n = 0;

    beforeAll(async () => {
      tmp = tempDir(`edgeloop-trainer-contract-${name}-`);
      ut = await setup();
    }, timeoutMs);
    afterAll(async () => {
      await ut?.dispose?.();
      tmp?.cleanup();
    });

    const request = (over: Partial<TrainRequest> = {}): TrainRequest => ({
      model: { name: 'contract-model', version: '3.1.4' },
      datasetVersion: `contract-dataset-${n}`,
      runId: `run_contract_${n}`,
      train: ut.train,
      labels: ut.labels,
      parent: null,
      params: ut.params,
      seed: 11,
      outputDir: join(tmp.dir, `out-${n++}`),
      ...over,
    });

    it('writes a valid model package into outputDir, with the requested name, version and classes', async () => {
      const req = request();
      const res = await ut.trainer.train(req);
      expect(res.packageDir).toBe(req.outputDir);
      const manifest = await validatePackageDir(res.packageDir, { expect: req.model, labels: req.labels });
      expect(manifest.labels).toEqual([...ut.labels]);
      expect(res.run).toMatchObject({ trainer: ut.trainer.name, seed: req.seed, code_version: expect.any(String) });
      expect(Number.isFinite(res.durationMs) && res.durationMs >= 0).toBe(true);
      await ut.received(req.outputDir);
    });

    it('honours any requested name and version: nothing is fixed in the trainer', async () => {
      const req = request({ model: { name: 'contract-other', version: '0.2.0-rc.1' } });
      const res = await ut.trainer.train(req);
      const manifest = await validatePackageDir(res.packageDir, { expect: req.model, labels: req.labels });
      expect([manifest.name, manifest.version]).toEqual(['contract-other', '0.2.0-rc.1']);
      await ut.received(req.outputDir);
    });

    it('trains on exactly the training set: examples held out now never reach it, even after an earlier run trained on them', async () => {
      const trainSha = new Set(ut.train.map((e) => sha(e.bytes)));
      const holdoutSha = new Set(ut.holdout.map((e) => sha(e.bytes)));
      expect([...holdoutSha].some((h) => trainSha.has(h))).toBe(false);
      // An earlier dataset version trained on what is now held out...
      const earlier = request({ train: [...ut.train, ...ut.holdout] });
      await ut.trainer.train(earlier);
      await ut.received(earlier.outputDir);
      // ...and this run must see the training set alone.
      const now = request();
      await ut.trainer.train(now);
      const got = await ut.received(now.outputDir);
      expect(got.sha256.length).toBeGreaterThan(0);
      expect(got.sha256.filter((h) => holdoutSha.has(h))).toEqual([]);
      if (got.complete) expect(new Set(got.sha256)).toEqual(trainSha);
      else expect(got.sha256.filter((h) => !trainSha.has(h))).toEqual([]);
    });

    it('an abort stops a run under way promptly, with FLEET_TRAINING_ABORTED', async () => {
      const ac = new AbortController();
      let abortedAt = 0;
      const req = request({
        params: ut.long.params,
        signal: ac.signal,
        onProgress: (p) => {
          if (abortedAt === 0 && ut.long.underway(p)) {
            abortedAt = performance.now();
            ac.abort();
          }
        },
      });
      await expect((ut.long.trainer ?? ut.trainer).train(req)).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
      expect(abortedAt).toBeGreaterThan(0);
      expect(performance.now() - abortedAt).toBeLessThan(ut.abortWithinMs);
      await ut.received(req.outputDir);
    });

    it('an already aborted signal: FLEET_TRAINING_ABORTED before any example reaches the training code', async () => {
      const req = request({ signal: AbortSignal.abort() });
      await expect(ut.trainer.train(req)).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
      expect((await ut.received(req.outputDir)).sha256).toEqual([]);
      expect(existsSync(join(req.outputDir, 'manifest.json'))).toBe(false);
    });
  });
}
