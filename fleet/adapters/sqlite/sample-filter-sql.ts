/**
 * The sample filter (fleet/app/samples/filter.ts) compiled to SQL over the `samples` table, and
 * the page cursors: the samples repository's query side.
 */
import type BetterSqlite3 from 'better-sqlite3';
import { FleetError } from '../../errors.js';
import type { ParsedSampleFilter, ParsedSampleQuery } from '../../app/samples/filter.js';
import { reasonBit } from './sample-rows.js';

const toMs = (t: number | string): number => (typeof t === 'number' ? t : Date.parse(t));

/** Cursors are opaque: order letter + the last seq in base 36. */
export function encodeCursor(order: 'asc' | 'desc', seq: number): string {
  return `${order === 'asc' ? 'a' : 'd'}${seq.toString(36)}`;
}

function decodeCursor(cursor: string, order: 'asc' | 'desc'): number {
  const m = /^([ad])([0-9a-z]{1,12})$/.exec(cursor);
  const seq = m ? parseInt(m[2] as string, 36) : NaN;
  if (!m || !Number.isSafeInteger(seq) || (m[1] === 'a') !== (order === 'asc')) {
    throw new FleetError('INPUT_INVALID', 'cursor is not valid for this query (take next_cursor from the previous page, same order)', { details: { cursor } });
  }
  return seq;
}

/** A WHERE clause and its named parameters, over the `samples` table. */
export interface BuiltWhere {
  /** Identifies the clause's shape: one prepared statement per shape. */
  key: string;
  sql: string;
  params: Record<string, string | number>;
}

/** Conditions for a parsed filter. Only the given fields appear, so SQLite can use the matching index. */
export function buildWhere(f: ParsedSampleFilter): BuiltWhere {
  const parts: string[] = [];
  const params: Record<string, string | number> = {};
  const add = (name: string, sql: string, value?: string | number): void => {
    parts.push(sql);
    if (value !== undefined) params[name] = value;
  };
  if (f.device !== undefined) add('device', 'device_id = @device', f.device);
  if (f.site !== undefined) add('site', 'site = @site', f.site);
  if (f.reason !== undefined) add('reason', '(reason_mask & @reason) != 0', reasonBit(f.reason));
  if (f.model !== undefined) add('model', 'model_name = @model', f.model);
  if (f.version !== undefined) add('version', 'model_version = @version', f.version);
  if (f.label !== undefined) add('label', 'predicted = @label', f.label);
  if (f.labeledAs !== undefined) add('labeledAs', "label_state = 'labeled' AND label = @labeledAs", f.labeledAs);
  if (f.minConfidence !== undefined) add('minConfidence', 'confidence >= @minConfidence', f.minConfidence);
  if (f.maxConfidence !== undefined) add('maxConfidence', 'confidence <= @maxConfidence', f.maxConfidence);
  if (f.from !== undefined) add('from', 'captured_at >= @from', toMs(f.from));
  if (f.to !== undefined) add('to', 'captured_at < @to', toMs(f.to));
  if (f.labeled === true) add('labeled', "label_state = 'labeled'");
  if (f.labeled === false) add('unlabeled', "label_state IS NOT 'labeled'");
  const key = Object.keys(params).concat(f.labeled === undefined ? [] : [`labeled=${f.labeled}`]).join(',');
  return { key, sql: parts.length ? parts.join(' AND ') : '1', params };
}

/** A page query: filter + cursor + order + limit (one row more than asked, to know if a next page exists). */
export function buildPage(q: ParsedSampleQuery): { key: string; sql: (columns: string) => string; params: Record<string, string | number>; limit: number; order: 'asc' | 'desc' } {
  const { limit, cursor, order, ...filter } = q;
  const where = buildWhere(filter);
  const params: Record<string, string | number> = { ...where.params, limit: limit + 1 };
  let sql = where.sql;
  if (cursor !== undefined) {
    params.after = decodeCursor(cursor, order);
    sql = `(${sql}) AND seq ${order === 'asc' ? '>' : '<'} @after`;
  }
  return {
    key: `${where.key}|${cursor === undefined ? '' : 'c'}|${order}`,
    sql: (columns) => `SELECT ${columns} FROM samples WHERE ${sql} ORDER BY seq ${order === 'asc' ? 'ASC' : 'DESC'} LIMIT @limit`,
    params,
    limit,
    order,
  };
}

/**
 * Prepared statements keyed by the shape of their WHERE clause: built once per shape
 * (a dozen optional filters make a bounded set of shapes in practice), reused after.
 */
export class StatementCache {
  private readonly cache = new Map<string, BetterSqlite3.Statement>();
  constructor(private readonly db: BetterSqlite3.Database) {}

  get(key: string, sql: () => string): BetterSqlite3.Statement {
    let stmt = this.cache.get(key);
    if (!stmt) {
      stmt = this.db.prepare(sql());
      this.cache.set(key, stmt);
    }
    return stmt;
  }
}
