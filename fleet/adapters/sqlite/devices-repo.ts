import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { DevicesRepo } from '../../app/devices/registry.js';
import { statusColumns, telemetryColumns } from '../../core/devices/state.js';
import type { DeviceRow, DriftPoint } from '../../core/devices/state.js';

const SELECT_DEVICE = `
  SELECT d.id, d.tags, d.created_at, d.secret_set_at, s.last_seen, s.connected, s.offline_at, s.agent_version,
         s.active_model, s.previous_model, s.installed_models, s.deployment, s.telemetry, s.slots, s.rules,
         d.cert_sha256, d.cert_serial, d.cert_issued_at, d.cert_not_after, d.cert_revoked_at
  FROM devices d LEFT JOIN device_state s ON s.device_id = d.id`;

/** Folds one telemetry message into `device_state` unless an applied one is as new (shared with the `telemetry` benchmark). */
export const APPLY_TELEMETRY_SQL = `INSERT INTO device_state (device_id, last_seen, connected, offline_at, telemetry_ts, telemetry, inference_rate, latency_p95_ms, outlier_rate,
     class_psi, brightness_psi, contrast_psi, queue_depth, queue_bytes, queue_evicted_total)
   VALUES (@device_id, @now, 1, NULL, @telemetry_ts, @telemetry, @inference_rate, @latency_p95_ms, @outlier_rate,
     @class_psi, @brightness_psi, @contrast_psi, @queue_depth, @queue_bytes, @queue_evicted_total)
   ON CONFLICT (device_id) DO UPDATE SET
     last_seen = excluded.last_seen, connected = 1, offline_at = NULL,
     telemetry_ts = excluded.telemetry_ts, telemetry = excluded.telemetry, inference_rate = excluded.inference_rate,
     latency_p95_ms = excluded.latency_p95_ms, outlier_rate = excluded.outlier_rate, class_psi = excluded.class_psi,
     brightness_psi = excluded.brightness_psi, contrast_psi = excluded.contrast_psi, queue_depth = excluded.queue_depth,
     queue_bytes = excluded.queue_bytes, queue_evicted_total = excluded.queue_evicted_total
   WHERE device_state.telemetry_ts IS NULL OR excluded.telemetry_ts > device_state.telemetry_ts`;

/** Devices in `devices`, `device_tags` (filters) and `device_state` (what the fleet last heard). */
/** How long the drift history of a device is kept (by message time): a week of hours and days. */
const DRIFT_HISTORY_RETENTION_MS = 7 * 86_400_000;

export function sqliteDevicesRepo(db: FleetDb, historyRetentionMs = DRIFT_HISTORY_RETENTION_MS): DevicesRepo {
  const s = db.sqlite;
  const exists = s.prepare<[string], number>('SELECT 1 FROM devices WHERE id = ?').pluck();
  const secretHash = s.prepare<[string], string>('SELECT secret_hash FROM devices WHERE id = ?').pluck();
  const insert = s.prepare('INSERT INTO devices (id, tags, secret_hash, created_at, secret_set_at) VALUES (@id, @tags, @secret_hash, @now, @now)');
  const insertTag = s.prepare<[string, string, string]>('INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)');
  const deleteTags = s.prepare<[string]>('DELETE FROM device_tags WHERE device_id = ?');
  const setTags = s.prepare<[string, string]>('UPDATE devices SET tags = ? WHERE id = ?');
  const setSecret = s.prepare<[string, number, string]>('UPDATE devices SET secret_hash = ?, secret_set_at = ? WHERE id = ?');
  const remove = s.prepare<[string]>('DELETE FROM devices WHERE id = ?');
  const certOf = s.prepare<[string], { sha256: string | null; not_after: number | null; revoked_at: number | null }>('SELECT cert_sha256 AS sha256, cert_not_after AS not_after, cert_revoked_at AS revoked_at FROM devices WHERE id = ?');
  const setCert = s.prepare<{ id: string; sha256: string; serial: string; at: number; not_after: number }>(
    'UPDATE devices SET cert_sha256 = @sha256, cert_serial = @serial, cert_issued_at = @at, cert_not_after = @not_after, cert_revoked_at = NULL WHERE id = @id',
  );
  const revokeCert = s.prepare<[number, string]>('UPDATE devices SET cert_revoked_at = ? WHERE id = ? AND cert_sha256 IS NOT NULL AND cert_revoked_at IS NULL');
  const get = s.prepare<[string], DeviceRow>(`${SELECT_DEVICE} WHERE d.id = ?`);
  // Every tag of the filter must match: count the matching ones against the filter's size.
  // One statement for any number of tags (json_each), so it is prepared once.
  const list = s.prepare<{ tags: string; state: string | null; since: number }, DeviceRow>(
    `${SELECT_DEVICE}
     WHERE (SELECT count(*) FROM device_tags t JOIN json_each(@tags) j ON t.key = j.key AND t.value = j.value WHERE t.device_id = d.id)
           = (SELECT count(*) FROM json_each(@tags))
       AND (@state IS NULL OR (@state = 'online') = (coalesce(s.connected, 0) = 1 AND coalesce(s.last_seen, -1) >= @since))
     ORDER BY d.id`,
  );
  const tag = s.prepare<[string, string], string>('SELECT value FROM device_tags WHERE device_id = ? AND key = ?').pluck();
  const ensureState = s.prepare<[string]>('INSERT INTO device_state (device_id) VALUES (?) ON CONFLICT (device_id) DO NOTHING');
  const applyTelemetry = s.prepare(APPLY_TELEMETRY_SQL);
  const applyStatus = s.prepare(
    `UPDATE device_state SET
       status_ts = @status_ts, agent_version = @agent_version, active_model = @active_model, previous_model = @previous_model,
       installed_models = @installed_models, deployment = @deployment, deployment_phase = @deployment_phase, slots = @slots, rules = @rules,
       last_seen = CASE WHEN @online = 1 THEN @now ELSE last_seen END,
       connected = CASE WHEN @online = 1 THEN 1 ELSE connected END,
       offline_at = CASE WHEN @online = 1 THEN NULL ELSE offline_at END
     WHERE device_id = @device_id AND (status_ts IS NULL OR status_ts < @status_ts)`,
  );
  const insertHistory = s.prepare(
    `INSERT INTO device_drift_history (device_id, ts, class_psi, brightness_psi, contrast_psi, outlier_rate, inference_rate)
     VALUES (@device_id, @telemetry_ts, @class_psi, @brightness_psi, @contrast_psi, @outlier_rate, @inference_rate)
     ON CONFLICT (device_id, ts) DO NOTHING`,
  );
  const trimHistory = s.prepare<[string, number]>('DELETE FROM device_drift_history WHERE device_id = ? AND ts < ?');
  const history = s.prepare<[string, number], DriftPoint>(
    'SELECT ts, class_psi, brightness_psi, contrast_psi, outlier_rate, inference_rate FROM device_drift_history WHERE device_id = ? AND ts >= ? ORDER BY ts',
  );
  const markOffline = s.prepare<[number, string]>('UPDATE device_state SET connected = 0, offline_at = ? WHERE device_id = ? AND connected = 1');

  const writeTags = (id: string, tags: Record<string, string>): void => {
    for (const [key, value] of Object.entries(tags)) insertTag.run(id, key, value);
  };

  return guarded('devices', {
    exists: (id) => exists.get(id) !== undefined,
    secretHash: (id) => secretHash.get(id) ?? null,
    insert: (d) => {
      try {
        s.transaction(() => {
          insert.run({ id: d.id, tags: JSON.stringify(d.tags), secret_hash: d.secretHash, now: d.at });
          writeTags(d.id, d.tags);
        }).immediate();
        return true;
      } catch (err) {
        // Lost a race with another insert of the same id.
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') return false;
        throw err;
      }
    },
    setSecret: (id, hash, at) => setSecret.run(hash, at, id).changes > 0,
    setTags: (id, tags) =>
      s.transaction(() => {
        setTags.run(JSON.stringify(tags), id);
        deleteTags.run(id);
        writeTags(id, tags);
      }).immediate(),
    remove: (id) => remove.run(id).changes > 0,
    certificate: (id) => {
      const r = certOf.get(id);
      return r && r.sha256 !== null && r.not_after !== null ? { sha256: r.sha256, notAfter: r.not_after, revokedAt: r.revoked_at } : null;
    },
    setCertificate: (id, c) => setCert.run({ id, sha256: c.sha256, serial: c.serial, at: c.at, not_after: c.notAfter }).changes > 0,
    revokeCertificate: (id, at) => revokeCert.run(at, id).changes > 0,
    find: (id) => get.get(id) ?? null,
    list: (q) => list.all({ tags: JSON.stringify(q.tags), state: q.state, since: q.onlineSince }),
    tag: (id, key) => tag.get(id, key) ?? null,
    applyTelemetry: (ts, now) =>
      s.transaction(() => {
        const unknown: string[] = [];
        let applied = 0;
        for (const t of ts) {
          if (exists.get(t.device_id) === undefined) unknown.push(t.device_id);
          else {
            const cols = telemetryColumns(t);
            const n = applyTelemetry.run({ device_id: t.device_id, now, ...cols }).changes;
            applied += n;
            // History keeps every message that was new for the device, and forgets the old end.
            if (n > 0) {
              insertHistory.run({ device_id: t.device_id, ...cols });
              trimHistory.run(t.device_id, cols.telemetry_ts - historyRetentionMs);
            }
          }
        }
        return { applied, unknown };
      }).immediate(),
    driftHistory: (id, since) => history.all(id, since),
    applyStatus: (st, now) =>
      s.transaction(() => {
        ensureState.run(st.device_id);
        let n = applyStatus.run({ device_id: st.device_id, now, online: st.online ? 1 : 0, ...statusColumns(st) }).changes;
        if (!st.online) n += markOffline.run(now, st.device_id).changes;
        return n;
      }).immediate(),
    markOffline: (id, at) =>
      s.transaction(() => {
        ensureState.run(id);
        markOffline.run(at, id);
      }).immediate(),
  } satisfies DevicesRepo);
}
