import { z } from 'zod';
import type { Clock } from '../../../shared/ids.js';
import { alertSeverity, type AlertRecord, type SampleMeta } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';
import type { Audit } from '../audit.js';

/** An alert as the API, the CLI and the console show it. */
export interface StoredAlert {
  alert_id: string;
  device_id: string;
  site: string | null;
  camera: string | null;
  rule: string;
  severity: AlertRecord['severity'];
  label: string;
  score: number;
  count: number;
  model: { name: string; version: string };
  /** The sample holding the frame: `GET /v1/samples/:id/blob`. */
  sample_id: string;
  raised_at: string;
  received_at: string;
  detections: AlertRecord['detections'];
  frame: NonNullable<AlertRecord['frame']> | null;
  acknowledged: { by: string; at: string } | null;
  resolved: { by: string; at: string } | null;
}

/** An alert to store: the record the device sent, the sample with its frame, the device's site then. */
export interface NewAlert {
  record: AlertRecord;
  sampleId: string;
  site: string | null;
  receivedAt: number;
}

const time = z.union([z.number().finite(), z.string().datetime({ offset: true })]);

/** Which alerts, newest first: one schema for the API, the CLI and the console. */
export const alertQuery = z.strictObject({
  site: z.string().min(1).max(128).optional().describe("the device's site tag when the alert arrived"),
  severity: alertSeverity.optional(),
  rule: z.string().min(1).max(128).optional(),
  device: z.string().min(1).max(128).optional(),
  /** raised_at >= from (ISO time or epoch ms). */
  from: time.optional().describe('raised at or after (ISO time or epoch ms)'),
  to: time.optional().describe('raised before (ISO time or epoch ms)'),
  state: z.enum(['open', 'acknowledged', 'resolved', 'all']).default('all').describe('`open`: neither acknowledged nor resolved; `acknowledged`: acknowledged, not resolved'),
  limit: z.number().int().min(1).max(500).default(50),
  /** `next_before` of the previous page. */
  before: z.string().min(1).max(200).optional().describe('`next_before` of the previous page: older alerts'),
});
export type AlertQuery = z.input<typeof alertQuery>;

/** A query after validation, times in ms: what the repository compiles. */
export interface AlertFilter {
  site: string | null;
  severity: string | null;
  rule: string | null;
  device: string | null;
  from: number | null;
  to: number | null;
  state: 'open' | 'acknowledged' | 'resolved' | 'all';
  /** Older than this (raised_at, alert_id), when paging. */
  before: { raisedAt: number; alertId: string } | null;
  limit: number;
}

/** Where alerts live (`alerts`). Failures throw `FLEET_STORAGE_FAILED`; lookups that miss return null. */
export interface AlertsRepo {
  /** Idempotent by alert id (a resent sample stores its alert once). */
  insertMany(alerts: readonly NewAlert[]): void;
  list(f: AlertFilter): StoredAlert[];
  find(alertId: string): StoredAlert | null;
  /** Set acknowledged (or resolved, which also acknowledges) unless already set; false when no such alert. */
  mark(alertId: string, what: 'acknowledged' | 'resolved', by: string, at: number): boolean;
  /** Alerts per device: all, and those not resolved. */
  countsByDevice(): Array<{ device_id: string; total: number; open: number }>;
}

/** The alert of a stored sample, if it carries one. */
export function alertOfSample(meta: SampleMeta, site: string | null, receivedAt: number): NewAlert | null {
  // An alert belongs to the device that sent it: a record naming another device is not believed.
  if (!meta.alert || meta.alert.device_id !== meta.device_id) return null;
  return { record: meta.alert, sampleId: meta.sample_id, site, receivedAt };
}

const ms = (t: number | string | undefined): number | null => (t === undefined ? null : typeof t === 'number' ? t : Date.parse(t));

/**
 * Alerts in the fleet: stored by sample ingest from the samples that carry them, listed with
 * filters, acknowledged and resolved by operators (audited: `alert.ack`, `alert.resolve`).
 */
export class Alerts {
  constructor(private readonly o: { repo: AlertsRepo; clock: Clock; audit: Audit }) {}

  /** Newest first; `next_before` pages to older ones. */
  list(q: z.output<typeof alertQuery>): { items: StoredAlert[]; next_before: string | null } {
    let before: AlertFilter['before'] = null;
    if (q.before) {
      const [t, id] = q.before.split('~');
      if (!t || !id || !/^\d+$/.test(t)) throw new FleetError('INPUT_INVALID', 'before: not a cursor this API gave');
      before = { raisedAt: Number(t), alertId: id };
    }
    const rows = this.o.repo.list({ site: q.site ?? null, severity: q.severity ?? null, rule: q.rule ?? null, device: q.device ?? null, from: ms(q.from), to: ms(q.to), state: q.state, before, limit: q.limit + 1 });
    const items = rows.slice(0, q.limit);
    const last = items[items.length - 1];
    return { items, next_before: rows.length > q.limit && last ? `${Date.parse(last.raised_at)}~${last.alert_id}` : null };
  }

  get(alertId: string): StoredAlert {
    const a = this.o.repo.find(alertId);
    if (!a) throw new FleetError('ALERT_NOT_FOUND', `alert ${alertId} is not stored`, { details: { alert_id: alertId } });
    return a;
  }

  /** Acknowledge: someone is on it. Idempotent: a second acknowledgement keeps the first one's who and when. */
  acknowledge(alertId: string, o: { actor: string }): StoredAlert {
    return this.mark(alertId, 'acknowledged', o.actor);
  }

  /** Resolve: dealt with (acknowledges it too when nobody had). Idempotent like acknowledge. */
  resolve(alertId: string, o: { actor: string }): StoredAlert {
    return this.mark(alertId, 'resolved', o.actor);
  }

  countsByDevice(): Map<string, { total: number; open: number }> {
    return new Map(this.o.repo.countsByDevice().map((r) => [r.device_id, { total: r.total, open: r.open }]));
  }

  private mark(alertId: string, what: 'acknowledged' | 'resolved', actor: string): StoredAlert {
    const before = this.get(alertId);
    if (!this.o.repo.mark(alertId, what, actor, this.o.clock.now())) throw new FleetError('ALERT_NOT_FOUND', `alert ${alertId} is not stored`, { details: { alert_id: alertId } });
    const after = this.get(alertId);
    if (before[what] === null) this.o.audit.record({ actor, action: what === 'acknowledged' ? 'alert.ack' : 'alert.resolve', target: alertId, details: { rule: after.rule, device: after.device_id, severity: after.severity } });
    return after;
  }
}
