import { z } from 'zod';
import type { Logger } from 'pino';
import type { Clock } from '../../shared/ids.js';

/**
 * What is audited, by service: the registry (`model.push`, `model.status`), the rollout manager
 * (`rollout.create`, `rollout.pause`, `rollout.resume`, `rollout.abort`, `rollout.rollback`,
 * `rollout.promote`), labels (`label.assign`, `label.confirm`, `label.skip`, `label.undo`) and
 * users (`user.add`, `user.revoke`), alerts (`alert.ack`, `alert.resolve`), rule sets
 * (`rules.push`, `rules.deploy`, `rules.withdraw`) and device certificates (`device.cert.issue`, `device.cert.revoke`).
 */
export type AuditAction = `${'model' | 'rollout' | 'label' | 'user' | 'alert' | 'rules' | 'device'}.${string}`;

/** One thing a person (or `training:<run>`, `demo`, `system`) did. */
export interface AuditRecord {
  actor: string;
  action: AuditAction;
  /** What it was done to: `pets@1.2.0`, a rollout id, a sample id, a user name. */
  target: string;
  details?: Record<string, unknown>;
}

/** An entry of the log as the API and the console list it. */
export interface AuditEntry {
  seq: number;
  at: string;
  actor: string;
  action: string;
  target: string;
  details: Record<string, unknown> | null;
}

/** The port services write through: they pass the actor they were given. */
export interface Audit {
  record(r: AuditRecord): void;
}

/** One row of the `audit_log` table. */
export interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  action: string;
  target: string;
  details: string | null;
}

/** Where the audit log lives (`audit_log`). Failures throw `FLEET_STORAGE_FAILED`. */
export interface AuditRepo {
  append(r: Omit<AuditRow, 'seq'>): void;
  /** Newest first: rows with `seq < before` (all when null), at most `limit`. */
  list(o: { before: number | null; limit: number; actor: string | null }): AuditRow[];
}

/** A page of the log and the cursor of the next (older) one. */
export interface AuditPage {
  items: AuditEntry[];
  /** Pass as `before` for the next page; null on the last. */
  next_before: number | null;
}

/**
 * The audit log: one append-only table written by the services where an action happens, with
 * the actor they were given. Recorded after the action succeeded; an audit write that fails does
 * not undo or fail the action (the person was told it was done), it is logged at error level with
 * the whole entry, so the record survives in the log.
 */
export class AuditLog implements Audit {
  private readonly repo: AuditRepo;
  private readonly clock: Clock;
  private readonly log: Logger;

  constructor(o: { repo: AuditRepo; clock: Clock; log: Logger }) {
    this.repo = o.repo;
    this.clock = o.clock;
    this.log = o.log;
  }

  record(r: AuditRecord): void {
    try {
      this.repo.append({ at: this.clock.now(), actor: r.actor, action: r.action, target: r.target, details: r.details ? JSON.stringify(r.details) : null });
    } catch (err) {
      this.log.error({ err, audit: r }, 'audit entry not stored');
    }
  }

  /** Newest first, `limit` (1..500, default 50) per page; `before` is the previous page's `next_before`. */
  list(o: { before?: number; limit?: number; actor?: string } = {}): AuditPage {
    const limit = Math.min(500, Math.max(1, o.limit ?? 50));
    const rows = this.repo.list({ before: o.before ?? null, limit: limit + 1, actor: o.actor ?? null });
    const page = rows.slice(0, limit);
    return {
      items: page.map((r) => ({ seq: r.seq, at: new Date(r.at).toISOString(), actor: r.actor, action: r.action, target: r.target, details: r.details === null ? null : (JSON.parse(r.details) as Record<string, unknown>) })),
      next_before: rows.length > limit ? (page[page.length - 1] as AuditRow).seq : null,
    };
  }
}

/** The audit log's filters and paging, as the API's query and the console's page read them. */
export const auditQuery = z.strictObject({
  before: z.number().int().positive().optional().describe('`next_before` of the previous page: entries older than it'),
  limit: z.number().int().min(1).max(500).optional().describe('entries per page (default 50)'),
  actor: z.string().min(1).max(128).optional().describe('only what this actor did'),
});
export type AuditQuery = z.infer<typeof auditQuery>;
