import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import { buildPage, buildWhere, encodeCursor, StatementCache } from './sample-filter-sql.js';
import { INSERT_SAMPLE_SQL, SAMPLE_COLUMNS, sampleRow, toSampleRecord } from './sample-rows.js';
import type { SampleRow, StoredSampleRow } from './sample-rows.js';
import type { LabelAction, LabelEvent } from '../../app/labels/labels.js';
import type { SamplesRepo } from '../../app/samples/repo.js';
import type { DatasetEntry } from '../../core/labels/dataset-schema.js';
import type { BoxAnnotation } from '../../core/labels/boxes.js';

interface EventRow {
  id: number;
  sample_id: string;
  sample_seq: number;
  action: LabelAction;
  label: string | null;
  actor: string;
  at: number;
  undone_at: number | null;
  undone_by: string | null;
  boxes: string | null;
}

interface EntryRow {
  sample_id: string;
  /** Null for a box label. */
  label: string | null;
  boxes: string | null;
  blob_sha256: string;
  device_id: string;
  labeled_by: string;
  labeled_at: number;
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function toEvent(r: EventRow): LabelEvent {
  const event: LabelEvent = { id: r.id, sample_id: r.sample_id, action: r.action, label: r.label, actor: r.actor, at: iso(r.at) as string, undone_at: iso(r.undone_at), undone_by: r.undone_by };
  if (r.boxes !== null) event.boxes = JSON.parse(r.boxes) as BoxAnnotation;
  return event;
}

/** A dataset entry from a labeled sample row (what every dataset version records of a sample): its class label, or its boxes and their image size. */
const entryOf = (r: EntryRow): DatasetEntry => ({
  sample_id: r.sample_id,
  ...(r.boxes !== null ? boxFields(JSON.parse(r.boxes) as BoxAnnotation) : { label: r.label as string }),
  blob_sha256: r.blob_sha256,
  device_id: r.device_id,
  labeled_by: r.labeled_by,
  labeled_at: new Date(r.labeled_at).toISOString(),
});

/** Key order as before box labels existed, so a class-label entry hashes as it always did. */
const boxFields = (a: BoxAnnotation): Pick<DatasetEntry, 'boxes' | 'frame'> => ({ boxes: a.boxes, frame: a.frame });

const EVENT_COLUMNS = 'e.id, s.sample_id, e.sample_seq, e.action, e.label, e.actor, e.at, e.undone_at, e.undone_by, e.boxes';
const ENTRY_COLUMNS = 'sample_id, label, boxes, blob_sha256, device_id, labeled_by, labeled_at';

/**
 * Samples and their labels: `samples` (one row per sample; its current label copied onto it so
 * filters and the labeling queue read it without a join) and `label_events` (every action).
 * Fixed statements are prepared here once; filtered ones once per filter shape.
 */
export function sqliteSamplesRepo(db: FleetDb): SamplesRepo {
  const s = db.sqlite;
  const insert = s.prepare<SampleRow>(INSERT_SAMPLE_SQL);
  const insertMany = s.transaction((rows: SampleRow[]) => rows.map((row) => insert.run(row).changes > 0));
  const get = s.prepare<[string], StoredSampleRow>(`SELECT ${SAMPLE_COLUMNS} FROM samples WHERE sample_id = ?`);
  const count = s.prepare<[], number>('SELECT count(*) FROM samples').pluck();
  const byDevice = s.prepare<[], { device_id: string; stored: number }>('SELECT device_id, count(*) AS stored FROM samples GROUP BY device_id ORDER BY device_id');
  const target = s.prepare<[string], { seq: number; predicted: string }>('SELECT seq, predicted FROM samples WHERE sample_id = ?');
  const labeledOf = s.prepare<[string], EntryRow & { captured_at: number }>(
    `SELECT ${ENTRY_COLUMNS}, captured_at FROM samples
     WHERE model_name = ? AND label_state = 'labeled' ORDER BY sample_id`,
  );
  const labeledSince = s.prepare<[string, number], number>("SELECT COUNT(*) FROM samples WHERE model_name = ? AND label_state = 'labeled' AND labeled_at > ?").pluck();
  const labeledBy = s.prepare<[string], number>("SELECT COUNT(*) FROM samples WHERE label_state = 'labeled' AND labeled_by = ?").pluck();
  const agreement = s.prepare<[], { device_id: string; model: string; version: string; labeled: number; correct: number }>(
    `SELECT device_id, model_name AS model, model_version AS version, count(*) AS labeled, sum(label = predicted) AS correct
     FROM samples WHERE label_state = 'labeled' AND boxes IS NULL GROUP BY device_id, model_name, model_version`,
  );
  const insertEvent = s.prepare('INSERT INTO label_events (sample_seq, action, label, actor, at, boxes) VALUES (@seq, @action, @label, @actor, @at, @boxes)');
  const latestLive = s.prepare<[number], Pick<EventRow, 'action' | 'label' | 'actor' | 'at' | 'boxes'>>('SELECT action, label, actor, at, boxes FROM label_events WHERE sample_seq = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1');
  const setCurrent = s.prepare('UPDATE samples SET label = @label, boxes = @boxes, label_state = @state, labeled_by = @by, labeled_at = @at WHERE seq = @seq');
  const lastOfActor = s.prepare<[string], EventRow>(
    `SELECT ${EVENT_COLUMNS} FROM label_events e JOIN samples s ON s.seq = e.sample_seq WHERE e.actor = ? AND e.undone_at IS NULL ORDER BY e.id DESC LIMIT 1`,
  );
  const markUndone = s.prepare<[number, string, number]>('UPDATE label_events SET undone_at = ?, undone_by = ? WHERE id = ?');
  const history = s.prepare<[number], EventRow>(`SELECT ${EVENT_COLUMNS} FROM label_events e JOIN samples s ON s.seq = e.sample_seq WHERE e.sample_seq = ? ORDER BY e.id`);
  const cache = new StatementCache(s);

  /** Copy the sample's latest live event onto its row (or clear the label when none is left). */
  const refresh = (seq: number): void => {
    const latest = latestLive.get(seq);
    if (!latest) setCurrent.run({ seq, label: null, boxes: null, state: null, by: null, at: null });
    else setCurrent.run({ seq, label: latest.label, boxes: latest.boxes, state: latest.action === 'skip' ? 'skipped' : 'labeled', by: latest.actor, at: latest.at });
  };

  return guarded('samples', {
    insertMany: (samples) => insertMany.immediate(samples.map((x) => sampleRow(x.meta, x.site, x.receivedAt))),
    find: (sampleId) => {
      const row = get.get(sampleId);
      return row ? toSampleRecord(row) : null;
    },
    count: () => count.get() as number,
    countByDevice: () => byDevice.all(),
    page: (q) => {
      const page = buildPage(q);
      const rows = cache.get(`page|${page.key}`, () => page.sql(SAMPLE_COLUMNS)).all(page.params) as StoredSampleRow[];
      const more = rows.length > page.limit;
      const items = (more ? rows.slice(0, page.limit) : rows).map(toSampleRecord);
      const last = more ? rows[page.limit - 1] : undefined;
      return { items, next_cursor: last ? encodeCursor(page.order, last.seq) : null };
    },
    progress: (filter) => {
      const where = buildWhere(filter);
      const stmt = cache.get(`progress|${where.key}`, () =>
        `SELECT count(*) AS total, coalesce(sum(label_state = 'labeled'), 0) AS labeled, coalesce(sum(label_state = 'skipped'), 0) AS skipped FROM samples WHERE ${where.sql}`,
      );
      return stmt.get(where.params) as { total: number; labeled: number; skipped: number };
    },
    labelingQueue: (filter, limit) => {
      const where = buildWhere(filter);
      const stmt = cache.get(`next|${where.key}`, () => `SELECT ${SAMPLE_COLUMNS} FROM samples WHERE ${where.sql} ORDER BY label_state IS NOT NULL, seq LIMIT @limit`);
      return (stmt.all({ ...where.params, limit }) as StoredSampleRow[]).map(toSampleRecord);
    },
    labeledEntries: (filter) => {
      const where = buildWhere(filter);
      const stmt = cache.get(`export|${where.key}`, () => `SELECT ${ENTRY_COLUMNS} FROM samples WHERE ${where.sql} ORDER BY sample_id`);
      return (stmt.all(where.params) as EntryRow[]).map(entryOf);
    },
    labeledOfModel: (model) => labeledOf.all(model).map((r) => ({ entry: entryOf(r), capturedAt: r.captured_at })),
    countLabeledSince: (model, since) => labeledSince.get(model, since) ?? 0,
    countLabeledBy: (actor) => labeledBy.get(actor) ?? 0,
    labelAgreement: () => agreement.all(),
    addLabelEvent: (sampleId, e) =>
      s.transaction((): boolean => {
        const t = target.get(sampleId);
        if (!t) return false;
        insertEvent.run({ seq: t.seq, action: e.action, label: e.boxes ? null : e.labelOf(t.predicted), actor: e.actor, at: e.at, boxes: e.boxes ? JSON.stringify(e.boxes) : null });
        refresh(t.seq);
        return true;
      }).immediate(),
    undoLast: (actor, at) =>
      s.transaction((): LabelEvent | null => {
        const last = lastOfActor.get(actor);
        if (!last) return null;
        markUndone.run(at, actor, last.id);
        refresh(last.sample_seq);
        return toEvent({ ...last, undone_at: at, undone_by: actor });
      }).immediate(),
    history: (sampleId) => {
      const t = target.get(sampleId);
      return t ? history.all(t.seq).map(toEvent) : null;
    },
  } satisfies SamplesRepo);
}
