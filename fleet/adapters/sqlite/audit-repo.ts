import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { AuditRepo, AuditRow } from '../../app/audit.js';

/** The append-only `audit_log` table, read newest first by `seq`. */
export function sqliteAuditRepo(db: FleetDb): AuditRepo {
  const s = db.sqlite;
  const append = s.prepare<Omit<AuditRow, 'seq'>>('INSERT INTO audit_log (at, actor, action, target, details) VALUES (@at, @actor, @action, @target, @details)');
  // One statement for every filter: a null parameter leaves that filter open.
  const list = s.prepare<{ before: number | null; actor: string | null; limit: number }, AuditRow>(
    `SELECT seq, at, actor, action, target, details FROM audit_log
     WHERE (@before IS NULL OR seq < @before) AND (@actor IS NULL OR actor = @actor)
     ORDER BY seq DESC LIMIT @limit`,
  );
  return guarded('audit', {
    append: (r) => void append.run(r),
    list: (o) => list.all(o),
  } satisfies AuditRepo);
}
