import type { AlertFilter, AlertsRepo, NewAlert, StoredAlert } from '../../app/alerts/alerts.js';
import type { AlertRecord } from '../../../shared/schemas/index.js';
import type { FleetDb } from './db.js';
import { guarded } from './guard.js';

interface AlertRow {
  alert_id: string;
  device_id: string;
  site: string | null;
  camera: string | null;
  rule: string;
  severity: string;
  label: string;
  score: number;
  count: number;
  model_name: string;
  model_version: string;
  sample_id: string;
  raised_at: number;
  received_at: number;
  record: string;
  acknowledged_by: string | null;
  acknowledged_at: number | null;
  resolved_by: string | null;
  resolved_at: number | null;
}

const iso = (ms: number): string => new Date(ms).toISOString();

function toStored(r: AlertRow): StoredAlert {
  const rec = JSON.parse(r.record) as AlertRecord;
  return {
    alert_id: r.alert_id,
    device_id: r.device_id,
    site: r.site,
    camera: r.camera,
    rule: r.rule,
    severity: r.severity as StoredAlert['severity'],
    label: r.label,
    score: r.score,
    count: r.count,
    model: { name: r.model_name, version: r.model_version },
    sample_id: r.sample_id,
    raised_at: iso(r.raised_at),
    received_at: iso(r.received_at),
    detections: rec.detections,
    frame: rec.frame ?? null,
    acknowledged: r.acknowledged_by !== null && r.acknowledged_at !== null ? { by: r.acknowledged_by, at: iso(r.acknowledged_at) } : null,
    resolved: r.resolved_by !== null && r.resolved_at !== null ? { by: r.resolved_by, at: iso(r.resolved_at) } : null,
  };
}

/** The `alerts` table: every read and write of it. */
export function sqliteAlertsRepo(db: FleetDb): AlertsRepo {
  const s = db.sqlite;
  const insert = s.prepare<AlertRow>(
    `INSERT INTO alerts (alert_id, device_id, site, camera, rule, severity, label, score, count, model_name, model_version, sample_id, raised_at, received_at, record)
     VALUES (@alert_id, @device_id, @site, @camera, @rule, @severity, @label, @score, @count, @model_name, @model_version, @sample_id, @raised_at, @received_at, @record)
     ON CONFLICT (alert_id) DO NOTHING`,
  );
  const insertMany = s.transaction((rows: AlertRow[]) => {
    for (const r of rows) insert.run(r);
  });
  // One statement for every filter: a null parameter leaves that filter open.
  const list = s.prepare<Record<string, unknown>, AlertRow>(
    `SELECT * FROM alerts
     WHERE (@site IS NULL OR site = @site) AND (@severity IS NULL OR severity = @severity) AND (@rule IS NULL OR rule = @rule)
       AND (@device IS NULL OR device_id = @device) AND (@from IS NULL OR raised_at >= @from) AND (@to IS NULL OR raised_at < @to)
       AND (@state = 'all'
            OR (@state = 'open' AND acknowledged_at IS NULL AND resolved_at IS NULL)
            OR (@state = 'acknowledged' AND acknowledged_at IS NOT NULL AND resolved_at IS NULL)
            OR (@state = 'resolved' AND resolved_at IS NOT NULL))
       AND (@before_t IS NULL OR raised_at < @before_t OR (raised_at = @before_t AND alert_id < @before_id))
     ORDER BY raised_at DESC, alert_id DESC LIMIT @limit`,
  );
  const get = s.prepare<[string], AlertRow>('SELECT * FROM alerts WHERE alert_id = ?');
  const ack = s.prepare<{ id: string; by: string; at: number }>('UPDATE alerts SET acknowledged_by = coalesce(acknowledged_by, @by), acknowledged_at = coalesce(acknowledged_at, @at) WHERE alert_id = @id');
  const resolve = s.prepare<{ id: string; by: string; at: number }>(
    'UPDATE alerts SET acknowledged_by = coalesce(acknowledged_by, @by), acknowledged_at = coalesce(acknowledged_at, @at), resolved_by = coalesce(resolved_by, @by), resolved_at = coalesce(resolved_at, @at) WHERE alert_id = @id',
  );
  const counts = s.prepare<[], { device_id: string; total: number; open: number }>('SELECT device_id, count(*) AS total, coalesce(sum(resolved_at IS NULL), 0) AS open FROM alerts GROUP BY device_id ORDER BY device_id');
  return guarded('alerts', {
    insertMany: (alerts: readonly NewAlert[]) =>
      void insertMany.immediate(
        alerts.map(({ record: r, sampleId, site, receivedAt }) => ({
          alert_id: r.alert_id,
          device_id: r.device_id,
          site,
          camera: r.camera ?? null,
          rule: r.rule,
          severity: r.severity,
          label: r.label,
          score: r.score,
          count: r.count,
          model_name: r.model.name,
          model_version: r.model.version,
          sample_id: sampleId,
          raised_at: Date.parse(r.ts),
          received_at: receivedAt,
          record: JSON.stringify(r),
          acknowledged_by: null,
          acknowledged_at: null,
          resolved_by: null,
          resolved_at: null,
        })),
      ),
    list: (f: AlertFilter) => list.all({ site: f.site, severity: f.severity, rule: f.rule, device: f.device, from: f.from, to: f.to, state: f.state, before_t: f.before?.raisedAt ?? null, before_id: f.before?.alertId ?? null, limit: f.limit }).map(toStored),
    find: (id: string) => {
      const r = get.get(id);
      return r ? toStored(r) : null;
    },
    mark: (id, what, by, at) => (what === 'acknowledged' ? ack : resolve).run({ id, by, at }).changes > 0,
    countsByDevice: () => counts.all(),
  } satisfies AlertsRepo);
}
