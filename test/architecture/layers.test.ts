import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

/**
 * The dependency rules of docs/architecture.md are lint rules; these cases make sure the
 * configuration still refuses what the page forbids (a weakened rule would otherwise pass
 * silently) and still allows what the layers need.
 */
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const eslint = new ESLint({ cwd: ROOT });

async function restricted(file: string, spec: string): Promise<boolean> {
  const [r] = await eslint.lintText(`import { x } from '${spec}';\nexport const y = x;\n`, { filePath: `${ROOT}${file}` });
  return (r?.messages ?? []).some((m) => m.ruleId === 'no-restricted-imports');
}

describe('fleet layers (lint)', () => {
  const refused: Array<[string, string]> = [
    ['fleet/core/rollouts/new.ts', '../../app/rollouts/manager.js'],
    ['fleet/core/rollouts/new.ts', 'node:fs'],
    ['fleet/core/training/new.ts', 'better-sqlite3'],
    ['fleet/ml/new.ts', '../app/training/loop.js'],
    ['fleet/app/training/new.ts', '../../adapters/trainers/local-trainer.js'],
    // Services reach storage through their repository ports, never the database handle.
    ['fleet/app/samples/ingest.ts', '../../adapters/sqlite/db.js'],
    ['fleet/app/context.ts', '../adapters/sqlite/db.js'],
    ['fleet/app/new.ts', '../edges/http/server.js'],
    ['fleet/adapters/aws/new.ts', '../../boot/service.js'],
    ['fleet/boot/new.ts', '../edges/cli/main.js'],
    ['fleet/edges/cli/new.ts', '../../demo/run.js'],
    ['fleet/edges/http/new.ts', '../console/index.js'],
    ['fleet/edges/console/new.ts', '../http/routes/rollouts.js'],
    ['fleet/edges/web/new.ts', '../http/router.js'],
    ['fleet/app/new.ts', '../../agent/config.js'],
    ['agent/new.ts', '../fleet/errors.js'],
    ['shared/new.ts', '../agent/errors.js'],
    ['fleet/ml/cnn/kernels.ts', './model.js'],
    ['fleet/ml/cnn/model.ts', './train.js'],
    ['fleet/ml/cnn/train.ts', './parallel.js'],
    ['fleet/ml/cnn/parallel.ts', './off-thread.js'],
    ['fleet/ml/cnn/model.ts', '../../app/training/loop.js'],
  ];
  it.each(refused)('%s may not import %s', async (file, spec) => {
    expect(await restricted(file, spec)).toBe(true);
  });

  const allowed: Array<[string, string]> = [
    ['fleet/app/rollouts/new.ts', '../../core/rollouts/machine.js'],
    ['fleet/adapters/sqlite/new.ts', '../../app/rollouts/manager.js'],
    ['fleet/boot/new.ts', '../adapters/mqtt/embedded-broker.js'],
    ['fleet/edges/console/new.ts', '../web/auth.js'],
    ['fleet/edges/http/new.ts', '../../app/read-models/rollouts.js'],
    ['fleet/demo/new.ts', '../edges/server.js'],
    ['fleet/ml/cnn/model.ts', './kernels.js'],
    ['fleet/ml/cnn/parallel.ts', './train.js'],
    ['fleet/ml/cnn/off-thread.ts', './parallel.js'],
  ];
  it.each(allowed)('%s may import %s', async (file, spec) => {
    expect(await restricted(file, spec)).toBe(false);
  });
});
