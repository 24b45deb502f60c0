/**
 * One verdict per package, whoever reads it: the registry's push, the agent's store install and
 * the trainer-output check run the same package module (shared/package), so each package
 * broken one way is refused by all three with the same code and the same named rule, and each
 * valid package is accepted by all three. Real files, real SQLite, real ONNX Runtime.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directorySource, ModelStore } from '../../agent/model/store.js';
import { openFsArtifactStore } from '../../fleet/adapters/fs/artifact-store.js';
import { ModelRegistry } from '../../fleet/app/models/registry.js';
import { sqliteModelsRepo } from '../../fleet/adapters/sqlite/models-repo.js';
import { openFleetDb, type FleetDb } from '../../fleet/adapters/sqlite/db.js';
import { validatePackageDir } from '../../fleet/app/training/package-check.js';
import { EdgeloopError } from '../../shared/errors.js';
import { packageProblems, type PackageErrorCode, type PackageRule } from '../../shared/package/index.js';
import { captureLogger } from '../helpers/agent.js';
import { BROKEN_CASES, writeBroken, type PackageParts } from '../helpers/broken-packages.js';
import { fleetKeys, imagePackage, tempDir, tensorPackage } from '../helpers/packages.js';

/** What one reader answered: accepted, or refused with a code and the rules it named. */
type Verdict = { accepted: true } | { accepted: false; code: string; rules: PackageRule[] };

const t = tempDir('edgeloop-package-contract-');
let db: FleetDb;
let registry: ModelRegistry;
let store: ModelStore;
const registryLog = captureLogger();
let base: string;
let n = 0;

beforeAll(async () => {
  db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock: { now: () => Date.parse('2026-01-01T00:00:00Z') } });
  registry = new ModelRegistry({ repo: sqliteModelsRepo(db), clock: db.clock, artifacts: await openFsArtifactStore({ dir: join(t.dir, 'artifacts') }), signingKey: fleetKeys(), log: registryLog.log });
  store = await ModelStore.open(join(t.dir, 'device-models'), { publicKeyPem: fleetKeys().publicKeyPem });
  base = join(t.dir, 'base');
  await imagePackage(base);
});
afterAll(() => {
  db.close();
  t.cleanup();
});

const refused = (err: unknown, code: string): Verdict => ({ accepted: false, code, rules: (packageProblems(err) ?? []).map((p) => p.rule) });

/** The three readers, each asked about the same directory. */
async function verdicts(dir: string): Promise<{ registry: Verdict; agent: Verdict; trainer: Verdict }> {
  const ask = async (run: () => Promise<unknown>, read: (err: EdgeloopError) => Verdict): Promise<Verdict> => {
    try {
      await run();
      return { accepted: true };
    } catch (err) {
      if (!(err instanceof EdgeloopError)) throw err;
      return read(err);
    }
  };
  return {
    registry: await ask(() => registry.push(dir, { actor: 'contract' }), (err) => refused(err, err.code)),
    agent: await ask(() => store.install(directorySource(dir)), (err) => refused(err, err.code)),
    // The trainer's own code stays FLEET_TRAINING_OUTPUT_INVALID; the package verdict is its cause.
    trainer: await ask(
      () => validatePackageDir(dir),
      (err) => {
        expect(err.code).toBe('FLEET_TRAINING_OUTPUT_INVALID');
        expect(err.details?.package_code).toBe((err.cause as EdgeloopError | undefined)?.code);
        return refused(err.cause, String(err.details?.package_code));
      },
    ),
  };
}

describe('model package contract: registry push, agent install and trainer-output check agree', () => {
  it.each(BROKEN_CASES.map((c) => [c.name, c] as const))('all refuse: %s', async (_name, c) => {
    const dir = writeBroken(base, join(t.dir, `broken-${n++}`), c, fleetKeys().privateKeyPem);
    const logged = registryLog.lines.length;
    const v = await verdicts(dir);
    const want = { accepted: false, code: c.code satisfies PackageErrorCode, rules: [c.rule] };
    for (const [reader, verdict] of Object.entries(v)) {
      expect(verdict.accepted, reader).toBe(false);
      if (verdict.accepted) continue;
      expect({ ...verdict, rules: [...new Set(verdict.rules)] }, reader).toEqual(want);
    }
    expect(registry.list()).toEqual([]);
    expect(await store.list()).toEqual([]);
    // The registry logs the decision and its reason.
    expect(registryLog.lines.slice(logged)).toEqual([expect.objectContaining({ msg: 'model package refused', dir, code: c.code, rules: expect.arrayContaining([c.rule]) })]);
  });

  it.each([
    ['an image classifier', (dir: string) => imagePackage(dir, { version: '2.0.0' })],
    ['a tensor classifier emitting logits', (dir: string) => tensorPackage(dir, { version: '2.1.0' })],
    [
      'a manifest written before tasks (no task, no postprocessing kind)',
      async (dir: string) => {
        await imagePackage(join(t.dir, 'pre-task-src'), { version: '2.2.0' });
        const preTask = (p: PackageParts): void => {
          delete p.manifest.task;
          delete p.manifest.postprocessing.kind;
        };
        writeBroken(join(t.dir, 'pre-task-src'), dir, { breakIt: preTask }, fleetKeys().privateKeyPem);
      },
    ],
    [
      'a directory with a file the manifest does not list',
      async (dir: string) => {
        await imagePackage(join(t.dir, 'extra-src'), { version: '2.3.0' });
        writeBroken(join(t.dir, 'extra-src'), dir, { breakIt: (p) => void p.files.set('notes/readme.md', Buffer.from('not part of the package')) }, fleetKeys().privateKeyPem);
      },
    ],
  ])('all accept %s', async (_name, make) => {
    const dir = join(t.dir, `valid-${n++}`);
    await make(dir);
    expect(await verdicts(dir)).toEqual({ registry: { accepted: true }, agent: { accepted: true }, trainer: { accepted: true } });
  });
});
