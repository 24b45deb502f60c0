import type { z } from 'zod';
import { entryOf, errorOf, type ErrorRef } from './errors.js';

/** `path.to.key: message` for every issue, so one error names every bad key. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string[] {
  return issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(root)'}: ${i.message}`);
}

/**
 * Validate `data` against a schema from `shared/schemas`. Throws the error `code` names (a
 * shared code, or a side's catalogue entry), with its HTTP status and every issue listed;
 * never returns a partially valid value.
 */
export function parseWith<S extends z.ZodType>(schema: S, data: unknown, code: ErrorRef, what: string): z.infer<S> {
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issues = formatIssues(r.error.issues);
  throw errorOf(entryOf(code), `${what} is invalid: ${issues.join('; ')}`, { details: { issues } });
}

/** Parse JSON text then validate; a syntax error gets the same code as a schema error. */
export function parseJsonWith<S extends z.ZodType>(schema: S, text: string | Uint8Array, code: ErrorRef, what: string): z.infer<S> {
  let data: unknown;
  try {
    data = JSON.parse(typeof text === 'string' ? text : Buffer.from(text).toString('utf8'));
  } catch (err) {
    throw errorOf(entryOf(code), `${what} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  return parseWith(schema, data, code, what);
}
