import { writeFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sha256Hex } from '../../../shared/ids.js';
import { canonicalJson } from '../../../shared/signing.js';
import { ingestAll, openParts, T0 } from './helpers.js';
import type { Parts } from './helpers.js';

let p: Parts;
beforeEach(async () => {
  p = await openParts();
  await ingestAll(p, [{ id: 's-3', label: '3' }, { id: 's-1', label: '7' }, { id: 's-2', label: '7', device: 'cam-2' }, { id: 's-4', label: '1' }]);
  p.labels.assign('s-1', '1', { actor: 'alice', at: T0 + 1 });
  p.labels.confirm('s-2', 'bob');
  p.labels.assign('s-3', '3', { actor: 'alice', at: T0 + 3 });
  p.labels.skip('s-4', 'alice');
});
afterEach(() => p.cleanup());

describe('dataset export', () => {
  it('freezes the labeled samples into a manifest named by the hash of its canonical entries', async () => {
    p.clock.set(T0 + 60_000);
    const { dataset, created } = await p.datasets.exportDataset({ actor: 'alice', name: 'first cut' });
    expect(created).toBe(true);
    expect(dataset).toMatchObject({ schema: 'edgeloop.dataset', v: 1, name: 'first cut', created_by: 'alice', created_at: new Date(T0 + 60_000).toISOString(), counts: { '1': 1, '7': 1, '3': 1 } });
    // Skipped s-4 is not in it; entries are sorted by sample id.
    expect(dataset.entries.map((e) => [e.sample_id, e.label, e.labeled_by, e.device_id])).toEqual([
      ['s-1', '1', 'alice', 'cam-1'],
      ['s-2', '7', 'bob', 'cam-2'],
      ['s-3', '3', 'alice', 'cam-1'],
    ]);
    expect(dataset.entries[0]?.blob_sha256).toBe(p.ingest.get('s-1').blob.sha256);
    expect(dataset.id).toBe(sha256Hex(canonicalJson(dataset.entries)));
    const summary = p.datasets.summary(dataset.id);
    expect(summary).toMatchObject({ id: dataset.id, entries: 3, name: 'first cut' });
    expect(await p.artifacts.get(summary.manifest_sha256)).toEqual(Buffer.from(canonicalJson(dataset)));
    expect(await p.datasets.getDataset(dataset.id)).toEqual(dataset);
  });

  it('gives the same set the same id, and leaves the first version as it was', async () => {
    const first = await p.datasets.exportDataset({ actor: 'alice' });
    p.clock.advance(3_600_000);
    const again = await p.datasets.exportDataset({ actor: 'bob', name: 'other name' });
    expect(again.created).toBe(false);
    expect(again.dataset).toEqual(first.dataset);
    // A different filter that selects the same labeled set: same version.
    const sameSet = await p.datasets.exportDataset({ actor: 'carol', filters: { model: 'digits' } });
    expect(sameSet.dataset.id).toBe(first.dataset.id);
    expect(p.datasets.listDatasets()).toHaveLength(1);
  });

  it('makes a new version when labels change; the old one is unchanged', async () => {
    const v1 = await p.datasets.exportDataset({ actor: 'alice' });
    p.clock.advance(1000);
    p.labels.assign('s-4', '4', { actor: 'bob' });
    const v2 = await p.datasets.exportDataset({ actor: 'alice' });
    expect(v2.created).toBe(true);
    expect(v2.dataset.id).not.toBe(v1.dataset.id);
    expect(v2.dataset.entries.map((e) => e.sample_id)).toEqual(['s-1', 's-2', 's-3', 's-4']);
    p.labels.assign('s-1', '9', { actor: 'carol' });
    const v3 = await p.datasets.exportDataset({ actor: 'alice' });
    expect(new Set([v1.dataset.id, v2.dataset.id, v3.dataset.id]).size).toBe(3);
    expect(await p.datasets.getDataset(v1.dataset.id)).toEqual(v1.dataset);
    expect((await p.datasets.getDataset(v2.dataset.id)).entries.find((e) => e.sample_id === 's-1')?.label).toBe('1');
    expect(p.datasets.listDatasets().map((d) => d.id)).toEqual([v1.dataset.id, v2.dataset.id, v3.dataset.id]);
    // Undo brings back the earlier set, and with it the earlier version.
    p.labels.undo('carol');
    expect((await p.datasets.exportDataset({ actor: 'alice' })).dataset.id).toBe(v2.dataset.id);
  });

  it('exports a filtered subset, refuses an empty one, and detects a tampered manifest', async () => {
    const sub = await p.datasets.exportDataset({ actor: 'alice', filters: { device: 'cam-2' } });
    expect(sub.dataset.entries.map((e) => e.sample_id)).toEqual(['s-2']);
    await expect(p.datasets.exportDataset({ actor: 'alice', filters: { device: 'nobody' } })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    await expect(p.datasets.getDataset('0'.repeat(64))).rejects.toMatchObject({ code: 'FLEET_DATASET_NOT_FOUND', status: 404 });
    const { manifest_sha256 } = p.datasets.summary(sub.dataset.id);
    const forged = { ...sub.dataset, entries: [{ ...sub.dataset.entries[0], label: '8' }] };
    writeFileSync(p.artifacts.pathOf(manifest_sha256), canonicalJson(forged));
    await expect(p.datasets.getDataset(sub.dataset.id)).rejects.toMatchObject({ code: 'FLEET_STORAGE_FAILED' });
  });
});
