import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { FileRow, ModelsRepo, VersionRow } from '../../app/models/registry.js';

/** The model registry's index: `model_versions` and `model_files`. */
export function sqliteModelsRepo(db: FleetDb): ModelsRepo {
  const s = db.sqlite;
  const byRef = s.prepare<[string, string], VersionRow>('SELECT * FROM model_versions WHERE name = ? AND version = ?');
  const list = s.prepare<{ name: string | null; status: string | null }, VersionRow>(
    `SELECT * FROM model_versions WHERE (@name IS NULL OR name = @name) AND (@status IS NULL OR status = @status) ORDER BY name, id`,
  );
  const files = s.prepare<[number], FileRow>('SELECT * FROM model_files WHERE model_id = ? ORDER BY path');
  const allFiles = s.prepare<[], FileRow>('SELECT * FROM model_files ORDER BY model_id, path');
  const filesOfName = s.prepare<[string], FileRow>('SELECT f.* FROM model_files f JOIN model_versions v ON v.id = f.model_id WHERE v.name = ? ORDER BY f.model_id, f.path');
  const fileSha = s.prepare<[number, string], string>('SELECT sha256 FROM model_files WHERE model_id = ? AND path = ?').pluck();
  const insertVersion = s.prepare(
    `INSERT INTO model_versions (name, version, created_at, pushed_at, pushed_by, manifest_sha256, content_sha256, key_id, model_file,
       total_bytes, description, evaluation, dataset_version, training_run, parent_name, parent_version)
     VALUES (@name, @version, @created_at, @pushed_at, @pushed_by, @manifest_sha256, @content_sha256, @key_id, @model_file,
       @total_bytes, @description, @evaluation, @dataset_version, @training_run, @parent_name, @parent_version)`,
  );
  const insertFile = s.prepare('INSERT INTO model_files (model_id, path, sha256, bytes, role) VALUES (@model_id, @path, @sha256, @bytes, @role)');
  const setStatus = s.prepare('UPDATE model_versions SET status = @status, status_reasons = @reasons, status_at = @at, status_by = @by WHERE id = @id');

  return guarded('models', {
    find: (name, version) => byRef.get(name, version) ?? null,
    list: (f) => list.all(f),
    files: (modelId) => files.all(modelId),
    filesOf: (name) => (name === null ? allFiles.all() : filesOfName.all(name)),
    fileSha: (modelId, path) => fileSha.get(modelId, path) ?? null,
    insert: (v, fs) =>
      s.transaction((): { row: VersionRow; created: boolean } => {
        // Checked again inside the write transaction: another push may have won the race.
        const raced = byRef.get(v.name, v.version);
        if (raced) return { row: raced, created: false };
        const { lastInsertRowid } = insertVersion.run(v);
        for (const f of fs) insertFile.run({ model_id: Number(lastInsertRowid), path: f.path, sha256: f.sha256, bytes: f.bytes, role: f.role });
        return { row: byRef.get(v.name, v.version) as VersionRow, created: true };
      }).immediate(),
    setStatus: (id, st) => void setStatus.run({ id, status: st.status, reasons: JSON.stringify(st.reasons), at: st.at, by: st.by }),
  } satisfies ModelsRepo);
}
