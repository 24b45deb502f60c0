import type { FleetDb } from '../store/db.js';
import type { RolloutRecord, RolloutRepo } from './manager.js';
import { rolloutState } from './state-schema.js';

/** Rollouts in the fleet database: state as validated JSON, decisions appended. */
export function sqliteRolloutRepo(db: FleetDb): RolloutRepo & { decisions(id: string, limit?: number): unknown[] } {
  const s = db.sqlite;
  const upsert = s.prepare(
    `INSERT INTO rollouts (id, model_name, model_version, status, selector, created_by, created_at, updated_at, state)
     VALUES (@id, @model_name, @model_version, @status, @selector, @created_by, @created_at, @updated_at, @state)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, state = excluded.state`,
  );
  const addDecision = s.prepare('INSERT INTO rollout_decisions (rollout_id, at, kind, decision) VALUES (?, ?, ?, ?)');
  const all = s.prepare('SELECT selector, created_by, created_at, state FROM rollouts ORDER BY created_at');
  const decisions = s.prepare('SELECT decision FROM rollout_decisions WHERE rollout_id = ? ORDER BY seq DESC LIMIT ?');
  const save = s.transaction((r: RolloutRecord, ds: readonly { at: number; kind: string }[]) => {
    upsert.run({
      id: r.state.id,
      model_name: r.state.candidate.name,
      model_version: r.state.candidate.version,
      status: r.state.status,
      selector: JSON.stringify(r.selector),
      created_by: r.created_by,
      created_at: r.created_at,
      updated_at: db.clock.now(),
      state: JSON.stringify(r.state),
    });
    for (const d of ds) addDecision.run(r.state.id, d.at, d.kind, JSON.stringify(d));
  });
  return {
    all: () =>
      (all.all() as Array<{ selector: string; created_by: string; created_at: number; state: string }>).map((row) => ({
        state: rolloutState.parse(JSON.parse(row.state)),
        selector: JSON.parse(row.selector) as Record<string, string>,
        created_by: row.created_by,
        created_at: row.created_at,
      })),
    save: (r, ds) => save(r, ds),
    decisions: (id, limit = 200) => (decisions.all(id, limit) as Array<{ decision: string }>).map((row) => JSON.parse(row.decision) as unknown),
  };
}

/** Monotonic desired-state revisions per device, persisted. */
export function sqliteRevisions(db: FleetDb): (deviceId: string) => number {
  const bump = db.sqlite.prepare(
    'INSERT INTO desired_revisions (device_id, revision) VALUES (?, 1) ON CONFLICT (device_id) DO UPDATE SET revision = revision + 1 RETURNING revision',
  );
  return (deviceId) => (bump.get(deviceId) as { revision: number }).revision;
}
