import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { buildBaseModel, renderBaseExamples } from '../../fleet/demo/base-model.js';
import { DIGIT_ORDER } from '../../fleet/ml/mnist-data.js';
import { generateSigningKeyPair } from '../../shared/signing.js';

describe('the demo base model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-base-model-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const key = generateSigningKeyPair().privateKeyPem;

  it('stops at once on abort (Ctrl-C), caches nothing, then builds from the examples it is given and is cached after', async () => {
    const out = join(dir, 'digits-1.0.0');
    let rendered = 0;
    const examples = async () => {
      rendered++;
      return renderBaseExamples({ count: 300 });
    };
    const ac = new AbortController();
    const t0 = Date.now();
    const stopped = buildBaseModel({ dir: out, signKeyPem: key, trainCount: 300, holdoutCount: 50, epochs: 200, examples, signal: ac.signal, onProgress: (l) => (l.startsWith('epoch 1/') ? ac.abort() : undefined) });
    await expect(stopped).rejects.toMatchObject({ code: 'FLEET_TRAINING_ABORTED' });
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(existsSync(join(out, 'manifest.json'))).toBe(false);

    const built = await buildBaseModel({ dir: out, signKeyPem: key, trainCount: 300, holdoutCount: 50, epochs: 1, examples });
    expect(built.cached).toBe(false);
    expect(rendered).toBe(2);
    expect(built.manifest.lineage?.dataset_version).toBe('mnist-base:0-300');
    const again = await buildBaseModel({ dir: out, signKeyPem: key, trainCount: 300, examples });
    expect(again).toMatchObject({ cached: true, holdoutAccuracy: built.holdoutAccuracy });
    expect(rendered).toBe(2);
    // A model cached from another digit order was trained on other digits: built again.
    writeFileSync(`${out}.holdout.json`, JSON.stringify({ holdout_accuracy: 0.99, digit_order: 'round-robin', train_count: 300 }));
    const rebuilt = await buildBaseModel({ dir: out, signKeyPem: key, trainCount: 300, holdoutCount: 50, epochs: 1, examples });
    expect(rebuilt.cached).toBe(false);
    expect(rendered).toBe(3);
    expect(JSON.parse(readFileSync(`${out}.holdout.json`, 'utf8'))).toMatchObject({ digit_order: DIGIT_ORDER, train_count: 300 });
    // So is one trained on another count (the old 8,000-digit split trained on today's holdout).
    expect(await buildBaseModel({ dir: out, signKeyPem: key, trainCount: 250, holdoutCount: 50, epochs: 1, examples: async () => renderBaseExamples({ count: 250 }) })).toMatchObject({ cached: false });
    expect(await buildBaseModel({ dir: out, signKeyPem: key, trainCount: 250, examples })).toMatchObject({ cached: true });
  }, 180_000);
});
