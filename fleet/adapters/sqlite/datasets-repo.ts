import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { DatasetRow, DatasetsRepo } from '../../app/labels/datasets.js';

/** Dataset versions' index: `datasets` and `dataset_samples` (the manifests are artifacts). */
export function sqliteDatasetsRepo(db: FleetDb): DatasetsRepo {
  const s = db.sqlite;
  const get = s.prepare<[string], DatasetRow>('SELECT * FROM datasets WHERE id = ?');
  const list = s.prepare<[], DatasetRow>('SELECT * FROM datasets ORDER BY created_at, id');
  const insert = s.prepare(
    `INSERT INTO datasets (id, name, created_at, created_by, manifest_sha256, entries, counts)
     VALUES (@id, @name, @created_at, @created_by, @manifest_sha256, @entries, @counts) ON CONFLICT (id) DO NOTHING`,
  );
  const setModel = s.prepare<[string, string]>('UPDATE datasets SET model_name = ? WHERE id = ?');
  const insertSample = s.prepare<[string, string, string]>('INSERT INTO dataset_samples (dataset_id, sample_id, split) VALUES (?, ?, ?) ON CONFLICT DO NOTHING');
  const ofSample = s.prepare<[string], { dataset_id: string; split: string }>('SELECT dataset_id, split FROM dataset_samples WHERE sample_id = ? ORDER BY dataset_id');

  return guarded('datasets', {
    find: (id) => get.get(id) ?? null,
    list: () => list.all(),
    insert: (row, training) =>
      s.transaction((): boolean => {
        if (insert.run(row).changes === 0) return false;
        if (training) {
          setModel.run(training.model, row.id);
          for (const e of training.samples) insertSample.run(row.id, e.sample_id, e.split);
        }
        return true;
      }).immediate(),
    ofSample: (sampleId) => ofSample.all(sampleId),
  } satisfies DatasetsRepo);
}
