import type { FleetDb } from './db.js';
import type { RolloutRecord, RolloutRepo } from '../../app/rollouts/manager.js';
import { rolloutState, type DeviceRecord, type RolloutState } from '../../core/rollouts/state-schema.js';

/** What the repository last wrote for one rollout: device records by identity, and the next `ord`. */
interface Saved {
  devices: Map<string, DeviceRecord>;
  nextOrd: number;
}

/**
 * Rollouts in the fleet database, written incrementally so a step costs what it changed:
 *
 * - `rollouts.state`: the machine's state without `devices` and `decisions` (a few KB: plan,
 *   status, stage, pause), rewritten at every save;
 * - `rollout_devices`: one row per device record, written only when the record changed;
 * - `rollout_decisions`: the decision log, appended.
 *
 * A changed device record is found by identity: the machine is copy-on-write (a `step` clones
 * exactly the records it edits and shares the rest, see draft.ts), so a record that is the
 * same object as the one last written has not changed. Saves that were skipped (the manager
 * coalesces quiet steps) are therefore caught up by the next save, whatever steps came between.
 * Writing the whole state every step cost ~60 ms at 1,000 devices (760 KB of JSON); this costs
 * one device row for a telemetry window.
 *
 * `all()` reassembles the state (devices in their original key order, which gate evaluation
 * iterates; decisions in log order) and validates it with `rolloutState`.
 */
export function sqliteRolloutRepo(db: FleetDb): RolloutRepo & { decisions(id: string, limit?: number): unknown[] } {
  const s = db.sqlite;
  const upsert = s.prepare(
    `INSERT INTO rollouts (id, model_name, model_version, status, selector, created_by, created_at, updated_at, state)
     VALUES (@id, @model_name, @model_version, @status, @selector, @created_by, @created_at, @updated_at, @state)
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, updated_at = excluded.updated_at, state = excluded.state`,
  );
  const putDevice = s.prepare(
    `INSERT INTO rollout_devices (rollout_id, device_id, ord, record) VALUES (?, ?, ?, ?)
     ON CONFLICT (rollout_id, device_id) DO UPDATE SET record = excluded.record`,
  );
  const addDecision = s.prepare('INSERT INTO rollout_decisions (rollout_id, at, kind, decision) VALUES (?, ?, ?, ?)');
  const all = s.prepare('SELECT id, selector, created_by, created_at, state FROM rollouts ORDER BY created_at');
  const devicesOf = s.prepare('SELECT device_id, ord, record FROM rollout_devices WHERE rollout_id = ? ORDER BY ord');
  const logOf = s.prepare('SELECT decision FROM rollout_decisions WHERE rollout_id = ? ORDER BY seq');
  const decisions = s.prepare('SELECT decision FROM rollout_decisions WHERE rollout_id = ? ORDER BY seq DESC LIMIT ?');
  const saved = new Map<string, Saved>();

  const write = s.transaction((r: RolloutRecord, changed: ReadonlyArray<[string, number, DeviceRecord]>, ds: readonly { at: number; kind: string }[]) => {
    upsert.run({
      id: r.state.id,
      model_name: r.state.candidate.name,
      model_version: r.state.candidate.version,
      status: r.state.status,
      selector: JSON.stringify(r.selector),
      created_by: r.created_by,
      created_at: r.created_at,
      updated_at: db.clock.now(),
      // Devices and decisions have their own tables (undefined keys are left out by JSON).
      state: JSON.stringify({ ...r.state, devices: undefined, decisions: undefined }),
    });
    for (const [id, ord, rec] of changed) putDevice.run(r.state.id, id, ord, JSON.stringify(rec));
    for (const d of ds) addDecision.run(r.state.id, d.at, d.kind, JSON.stringify(d));
  });
  const save = (r: RolloutRecord, ds: readonly { at: number; kind: string }[]): void => {
    const mine = saved.get(r.state.id) ?? { devices: new Map<string, DeviceRecord>(), nextOrd: 0 };
    // Key order is insertion order and keys are never deleted (a device that leaves is marked
    // `removed`), so a new key gets the next ord and load order equals the in-memory order.
    // (The ord of an existing row is kept by the upsert.)
    const changed: Array<[string, number, DeviceRecord]> = [];
    let nextOrd = mine.nextOrd;
    for (const [id, rec] of Object.entries(r.state.devices)) {
      const before = mine.devices.get(id);
      if (before !== rec) changed.push([id, before === undefined ? nextOrd++ : 0, rec]);
    }
    write(r, changed, ds);
    // Only after the commit: a failed write leaves every change pending for the next save.
    for (const [id, , rec] of changed) mine.devices.set(id, rec);
    mine.nextOrd = nextOrd;
    saved.set(r.state.id, mine);
  };

  const load = (row: { id: string; selector: string; created_by: string; created_at: number; state: string }): RolloutRecord => {
    const rows = devicesOf.all(row.id) as Array<{ device_id: string; ord: number; record: string }>;
    const devices: Record<string, unknown> = {};
    for (const d of rows) devices[d.device_id] = JSON.parse(d.record) as unknown;
    const log = (logOf.all(row.id) as Array<{ decision: string }>).map((d) => JSON.parse(d.decision) as unknown);
    const state: RolloutState = rolloutState.parse({ ...(JSON.parse(row.state) as object), devices, decisions: log });
    saved.set(row.id, { devices: new Map(Object.entries(state.devices)), nextOrd: rows.length ? (rows[rows.length - 1] as { ord: number }).ord + 1 : 0 });
    return { state, selector: JSON.parse(row.selector) as Record<string, string>, created_by: row.created_by, created_at: row.created_at };
  };

  return {
    all: () => (all.all() as Array<{ id: string; selector: string; created_by: string; created_at: number; state: string }>).map(load),
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
