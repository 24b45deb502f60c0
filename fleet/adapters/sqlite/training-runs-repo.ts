import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { FiringRow, RunRow, TrainingRunsRepo } from '../../app/training/runs.js';

/** The learning loop's record: `training_runs` and `trigger_firings`. */
export function sqliteTrainingRunsRepo(db: FleetDb): TrainingRunsRepo {
  const s = db.sqlite;
  const insert = s.prepare(
    `INSERT INTO training_runs (id, model_name, status, trainer, params, seed, trigger_kind, trigger_reason, actor, parent_name, parent_version, started_at)
     VALUES (@id, @model_name, 'running', @trainer, @params, @seed, @trigger_kind, @trigger_reason, @actor, @parent_name, @parent_version, @started_at)`,
  );
  const update = s.prepare(
    `UPDATE training_runs SET dataset_version = @dataset_version, result_name = @result_name, result_version = @result_version,
     code_version = @code_version, params = @params, rollout_id = @rollout_id WHERE id = @id`,
  );
  const finish = s.prepare(
    `UPDATE training_runs SET status = @status, finished_at = @finished_at, duration_ms = @duration_ms, metrics = @metrics, gate = @gate,
     report_sha256 = @report_sha256, error = @error WHERE id = @id`,
  );
  const get = s.prepare<[string], RunRow>('SELECT * FROM training_runs WHERE id = ?');
  const list = s.prepare<{ model: string | null; limit: number }, RunRow>('SELECT * FROM training_runs WHERE (@model IS NULL OR model_name = @model) ORDER BY started_at DESC, id DESC LIMIT @limit');
  const last = s.prepare<[string], RunRow>("SELECT * FROM training_runs WHERE model_name = ? AND (status != 'failed' OR dataset_version IS NOT NULL) ORDER BY started_at DESC, id DESC LIMIT 1");
  const previousDataset = s.prepare<[string, string], string>(
    'SELECT dataset_version FROM training_runs WHERE model_name = ? AND id != ? AND dataset_version IS NOT NULL ORDER BY started_at DESC, id DESC LIMIT 1',
  ).pluck();
  const byResult = s.prepare<[string, string], RunRow>('SELECT * FROM training_runs WHERE result_name = ? AND result_version = ? ORDER BY started_at DESC LIMIT 1');
  const failRunning = s.prepare<{ now: number; error: string }>("UPDATE training_runs SET status = 'failed', finished_at = @now, duration_ms = @now - started_at, error = @error WHERE status = 'running'");
  const insertFiring = s.prepare('INSERT INTO trigger_firings (model_name, at, kind, reason, details, run_id) VALUES (@model_name, @at, @kind, @reason, @details, @run_id)');
  const firings = s.prepare<{ model: string | null; limit: number }, FiringRow>('SELECT * FROM trigger_firings WHERE (@model IS NULL OR model_name = @model) ORDER BY seq DESC LIMIT @limit');

  return guarded('training runs', {
    insert: (r) => void insert.run(r),
    update: (r) => void update.run(r),
    finish: (r) => void finish.run(r),
    find: (id) => get.get(id) ?? null,
    list: (q) => list.all(q),
    last: (model) => last.get(model) ?? null,
    previousDataset: (model, exceptRun) => previousDataset.get(model, exceptRun) ?? null,
    byResult: (name, version) => byResult.get(name, version) ?? null,
    failRunning: (now, error) => failRunning.run({ now, error }).changes,
    insertFiring: (f) => Number(insertFiring.run(f).lastInsertRowid),
    firings: (q) => firings.all(q),
  } satisfies TrainingRunsRepo);
}
