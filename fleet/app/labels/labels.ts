import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { parseWith } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';
import { buildWhere, parseFilter, StatementCache } from '../samples/filter.js';
import type { SampleFilter } from '../samples/filter.js';
import { SAMPLE_COLUMNS, toSampleRecord } from '../samples/rows.js';
import type { StoredSampleRow } from '../samples/rows.js';
import type { SampleRecord } from '../samples/types.js';
import type { FleetDb } from '../../adapters/sqlite/db.js';
import { storageError } from '../../adapters/sqlite/db.js';

export type LabelAction = 'assign' | 'confirm' | 'skip';

/**
 * The actor of labels given by a program from ground truth rather than by a person (the demo's
 * labeler). The labeling page counts and flags them, so nobody mistakes them for human work.
 */
export const SIMULATED_LABELER = 'simulated-labeler';

/** One labeling action, kept forever (undo marks it, never deletes it). Times are ISO strings. */
export interface LabelEvent {
  id: number;
  sample_id: string;
  action: LabelAction;
  /** The label given (assign, confirm); null for skip. */
  label: string | null;
  actor: string;
  at: string;
  undone_at: string | null;
  undone_by: string | null;
}

/** Labeling progress over a filter. */
export interface LabelProgress {
  total: number;
  labeled: number;
  skipped: number;
  unlabeled: number;
}

/** What {@link Labels.undo} reverted, and the sample's label now. */
export interface UndoResult {
  undone: LabelEvent;
  sample: SampleRecord;
}

const labelText = z.string().trim().min(1, 'a label cannot be empty').max(128);
const actorText = z.string().min(1, 'actor is required').max(128);

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
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

function toEvent(r: EventRow): LabelEvent {
  return { id: r.id, sample_id: r.sample_id, action: r.action, label: r.label, actor: r.actor, at: iso(r.at) as string, undone_at: iso(r.undone_at), undone_by: r.undone_by };
}

/**
 * Human labels on stored samples. Every action is an event (who, when, what); a sample's
 * current label is its latest event that was not undone, copied onto the sample row so
 * filters and the labeling queue read it without a join. Relabeling adds an event;
 * history keeps them all.
 */
export class Labels {
  private readonly db: FleetDb;
  private readonly stmts: ReturnType<typeof prepare>;
  private readonly cache: StatementCache;

  constructor(opts: { db: FleetDb }) {
    this.db = opts.db;
    this.stmts = prepare(opts.db.sqlite);
    this.cache = new StatementCache(opts.db.sqlite);
  }

  /** Give a sample a label. `at` defaults to now. Throws `FLEET_SAMPLE_NOT_FOUND`, `INPUT_INVALID`. */
  assign(sampleId: string, label: string, opts: { actor: string; at?: number }): SampleRecord {
    const value = parseWith(labelText, label, 'INPUT_INVALID', 'label');
    return this.record(sampleId, 'assign', () => value, opts.actor, opts.at);
  }

  /** Agree with the model: the label becomes the predicted label. */
  confirm(sampleId: string, actor: string): SampleRecord {
    return this.record(sampleId, 'confirm', (predicted) => predicted, actor);
  }

  /**
   * Pass on a sample (ambiguous, unreadable). It leaves the labeled set if it was in it
   * (the latest action wins) and goes to the back of the labeling queue.
   */
  skip(sampleId: string, actor: string): SampleRecord {
    return this.record(sampleId, 'skip', () => null, actor);
  }

  /**
   * Revert `actor`'s most recent action that is not undone yet (across samples); calling it
   * again walks further back. The sample's label becomes its latest remaining event. Null
   * when the actor has nothing left to undo.
   */
  undo(actor: string): UndoResult | null {
    const who = parseWith(actorText, actor, 'INPUT_INVALID', 'actor');
    const now = this.db.clock.now();
    const run = this.db.sqlite.transaction((): EventRow | null => {
      const last = this.stmts.lastOfActor.get(who);
      if (!last) return null;
      this.stmts.markUndone.run(now, who, last.id);
      this.refresh(last.sample_seq);
      return { ...last, undone_at: now, undone_by: who };
    });
    let undone: EventRow | null;
    try {
      undone = run.immediate();
    } catch (err) {
      throw storageError('cannot undo', err);
    }
    if (!undone) return null;
    return { undone: toEvent(undone), sample: this.sample(undone.sample_id) };
  }

  /** Every action on a sample, oldest first, undone ones included. Throws `FLEET_SAMPLE_NOT_FOUND`. */
  history(sampleId: string): LabelEvent[] {
    const seq = this.seqOf(sampleId);
    return this.stmts.history.all(seq).map(toEvent);
  }

  /** Labeled / skipped / total over the samples a filter selects. */
  progress(filter: SampleFilter = {}): LabelProgress {
    const where = buildWhere(parseFilter(filter));
    const stmt = this.cache.get(`progress|${where.key}`, () =>
      `SELECT count(*) AS total, coalesce(sum(label_state = 'labeled'), 0) AS labeled, coalesce(sum(label_state = 'skipped'), 0) AS skipped FROM samples WHERE ${where.sql}`,
    );
    const r = stmt.get(where.params) as { total: number; labeled: number; skipped: number };
    return { total: r.total, labeled: r.labeled, skipped: r.skipped, unlabeled: r.total - r.labeled - r.skipped };
  }

  /**
   * The labeling queue: up to `n` samples without a label matching the filter, never-seen
   * ones first, then skipped ones, each group in arrival order (stable: the same call
   * returns the same samples until someone labels).
   */
  next(filter: SampleFilter = {}, n = 20): SampleRecord[] {
    const limit = parseWith(z.number().int().positive().max(1000), n, 'INPUT_INVALID', 'n');
    const where = buildWhere(parseFilter({ ...filter, labeled: false }));
    const stmt = this.cache.get(`next|${where.key}`, () =>
      `SELECT ${SAMPLE_COLUMNS} FROM samples WHERE ${where.sql} ORDER BY label_state IS NOT NULL, seq LIMIT @limit`,
    );
    return (stmt.all({ ...where.params, limit }) as StoredSampleRow[]).map(toSampleRecord);
  }

  private record(sampleId: string, action: LabelAction, labelOf: (predicted: string) => string | null, actor: string, at?: number): SampleRecord {
    const who = parseWith(actorText, actor, 'INPUT_INVALID', 'actor');
    const when = at ?? this.db.clock.now();
    if (!Number.isFinite(when)) throw new FleetError('INPUT_INVALID', 'at must be a time in milliseconds');
    const run = this.db.sqlite.transaction(() => {
      const target = this.stmts.target.get(sampleId);
      if (!target) throw notFound(sampleId);
      this.stmts.insertEvent.run({ seq: target.seq, action, label: labelOf(target.predicted), actor: who, at: when });
      this.refresh(target.seq);
    });
    try {
      run.immediate();
    } catch (err) {
      throw storageError(`cannot label ${sampleId}`, err);
    }
    return this.sample(sampleId);
  }

  /** Copy the sample's latest live event onto its row (or clear the label when none is left). */
  private refresh(seq: number): void {
    const latest = this.stmts.latestLive.get(seq);
    if (!latest) this.stmts.setCurrent.run({ seq, label: null, state: null, by: null, at: null });
    else this.stmts.setCurrent.run({ seq, label: latest.label, state: latest.action === 'skip' ? 'skipped' : 'labeled', by: latest.actor, at: latest.at });
  }

  private seqOf(sampleId: string): number {
    const t = this.stmts.target.get(sampleId);
    if (!t) throw notFound(sampleId);
    return t.seq;
  }

  private sample(sampleId: string): SampleRecord {
    const row = this.stmts.sample.get(sampleId);
    if (!row) throw notFound(sampleId);
    return toSampleRecord(row);
  }
}

const notFound = (sampleId: string): FleetError => new FleetError('SAMPLE_NOT_FOUND', `sample ${sampleId} is not stored`, { details: { sample_id: sampleId } });

const EVENT_COLUMNS = 'e.id, s.sample_id, e.sample_seq, e.action, e.label, e.actor, e.at, e.undone_at, e.undone_by';

function prepare(db: BetterSqlite3.Database) {
  return {
    target: db.prepare<[string], { seq: number; predicted: string }>('SELECT seq, predicted FROM samples WHERE sample_id = ?'),
    sample: db.prepare<[string], StoredSampleRow>(`SELECT ${SAMPLE_COLUMNS} FROM samples WHERE sample_id = ?`),
    insertEvent: db.prepare('INSERT INTO label_events (sample_seq, action, label, actor, at) VALUES (@seq, @action, @label, @actor, @at)'),
    latestLive: db.prepare<[number], Pick<EventRow, 'action' | 'label' | 'actor' | 'at'>>('SELECT action, label, actor, at FROM label_events WHERE sample_seq = ? AND undone_at IS NULL ORDER BY id DESC LIMIT 1'),
    setCurrent: db.prepare('UPDATE samples SET label = @label, label_state = @state, labeled_by = @by, labeled_at = @at WHERE seq = @seq'),
    lastOfActor: db.prepare<[string], EventRow>(
      `SELECT ${EVENT_COLUMNS} FROM label_events e JOIN samples s ON s.seq = e.sample_seq WHERE e.actor = ? AND e.undone_at IS NULL ORDER BY e.id DESC LIMIT 1`,
    ),
    markUndone: db.prepare<[number, string, number]>('UPDATE label_events SET undone_at = ?, undone_by = ? WHERE id = ?'),
    history: db.prepare<[number], EventRow>(`SELECT ${EVENT_COLUMNS} FROM label_events e JOIN samples s ON s.seq = e.sample_seq WHERE e.sample_seq = ? ORDER BY e.id`),
  };
}
