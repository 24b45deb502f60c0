/**
 * Configuration files, validated once at start and frozen (STYLE 6), the same way on both
 * sides: JSON text -> strict schema -> every issue named with its key path in one error ->
 * deep-frozen value. The side passes its own error constructor, so the code and class stay
 * its own (`AGENT_CONFIG_INVALID`, `FLEET_AWS_CONFIG_INVALID`, ...).
 *
 * Pure: shared/ does no I/O. Each side reads the file (the agent synchronously at start, the
 * fleet with `fleet/config-file.ts`) and hands the text or its read error here.
 */
import type { z } from 'zod';
import { formatIssues } from './validate.js';

/** What a config file is, as messages name it, and how its side builds the error. */
export interface ConfigKind {
  /** Lower-case noun phrase: `AWS configuration`, `training configuration`. */
  what: string;
  /** The side's coded error, e.g. `(m, o) => new FleetError('AWS_CONFIG_INVALID', m, o)`. */
  error: (message: string, opts: { cause?: unknown; details?: Record<string, unknown> }) => Error;
}

export interface ConfigOptions<S extends z.ZodType> {
  /** The file the data came from, named in the error when known. */
  path?: string;
  /**
   * Checks the schema cannot express (they depend on runtime options). They run even when the
   * schema fails, on the raw data, so one error names every bad key; `parsed` is the schema's
   * output when it passed.
   */
  check?: (data: unknown, parsed: z.output<S> | undefined) => string[];
  /** Last changes before the value is frozen (paths resolved against the file's directory). */
  finish?: (value: z.output<S>) => void;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}

/** The error for a file that could not be read (missing, permissions). */
export function unreadableConfig(kind: ConfigKind, path: string, err: unknown): Error {
  return kind.error(`cannot read the ${kind.what} ${path}: ${(err as Error).message}`, { cause: err });
}

/** JSON text -> data; a syntax error is the side's config error naming the file. */
export function configJson(kind: ConfigKind, text: string, path: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw kind.error(`${kind.what} ${path} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/** Validate `data`: every issue (`key.path: message`) in one error with `details.issues`, else the frozen value. */
export function parseConfig<S extends z.ZodType>(schema: S, data: unknown, kind: ConfigKind, o: ConfigOptions<S> = {}): z.output<S> {
  const r = schema.safeParse(data);
  const issues = r.success ? [] : formatIssues(r.error.issues);
  if (o.check) issues.push(...o.check(data, r.success ? r.data : undefined));
  if (!r.success || issues.length > 0) throw kind.error(`${kind.what}${o.path ? ` ${o.path}` : ''} is invalid: ${issues.join('; ')}`, { details: { issues } });
  o.finish?.(r.data);
  return deepFreeze(r.data);
}

/** A file's text -> the frozen, validated value (`configJson` then `parseConfig`). */
export function configFromText<S extends z.ZodType>(schema: S, text: string, kind: ConfigKind, path: string, o: Omit<ConfigOptions<S>, 'path'> = {}): z.output<S> {
  return parseConfig(schema, configJson(kind, text, path), kind, { ...o, path });
}
