import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { outlierReason } from '../../../shared/schemas/index.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';
import { reasonBit } from './rows.js';

const time = z.union([z.number().finite(), z.string().datetime({ offset: true })]);

/**
 * Which samples: every given field must hold. One schema for the API, the CLI, the labeling
 * queue and dataset export.
 */
export const sampleFilterSchema = z.strictObject({
  device: z.string().min(1).optional(),
  site: z.string().min(1).optional(),
  reason: outlierReason.optional(),
  /** Model name the device ran. */
  model: z.string().min(1).optional(),
  /** Model version the device ran. */
  version: z.string().min(1).optional(),
  /** Predicted (top-1) label. */
  label: z.string().optional(),
  /** Current human label. */
  labeledAs: z.string().optional(),
  minConfidence: z.number().finite().optional(),
  maxConfidence: z.number().finite().optional(),
  /** captured_at >= from (ISO time or epoch ms). */
  from: time.optional(),
  /** captured_at < to (ISO time or epoch ms). */
  to: time.optional(),
  /** true: has a human label; false: has none (never labeled, or skipped). */
  labeled: z.boolean().optional(),
});
export type SampleFilter = z.input<typeof sampleFilterSchema>;

export const MAX_PAGE = 1000;

export const sampleQuerySchema = sampleFilterSchema.extend({
  limit: z.number().int().positive().max(MAX_PAGE).default(50),
  cursor: z.string().min(1).optional(),
  /** Arrival order; `desc` lists the newest first. */
  order: z.enum(['asc', 'desc']).default('asc'),
});
export type SampleQuery = z.input<typeof sampleQuerySchema>;
type ParsedQuery = z.output<typeof sampleQuerySchema>;

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

/** Validate a filter; throws `INPUT_INVALID` naming every bad field. */
export function parseFilter(f: unknown): z.output<typeof sampleFilterSchema> {
  return parseWith(sampleFilterSchema, f ?? {}, 'INPUT_INVALID', 'sample filter');
}

export function parseQuery(q: unknown): ParsedQuery {
  return parseWith(sampleQuerySchema, q ?? {}, 'INPUT_INVALID', 'sample query');
}

/** Conditions for a parsed filter. Only the given fields appear, so SQLite can use the matching index. */
export function buildWhere(f: z.output<typeof sampleFilterSchema>): BuiltWhere {
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
export function buildPage(q: ParsedQuery): { key: string; sql: (columns: string) => string; params: Record<string, string | number>; limit: number; order: 'asc' | 'desc' } {
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
