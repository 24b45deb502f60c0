import pino, { type DestinationStream, type Logger } from 'pino';

/** Longest string a log line keeps of any one field; the rest is cut and its length noted. */
export const LOG_STRING_MAX = 1024;
/** Most items kept of an array in a log line. */
const LOG_ARRAY_MAX = 32;
const LOG_DEPTH_MAX = 6;

function truncateValue(v: unknown, depth: number): unknown {
  if (typeof v === 'string') return v.length > LOG_STRING_MAX ? `${v.slice(0, LOG_STRING_MAX)}…[${v.length - LOG_STRING_MAX} more chars]` : v;
  if (v === null || typeof v !== 'object') return v;
  if (depth >= LOG_DEPTH_MAX) return '[nested too deep]';
  if (Array.isArray(v)) {
    const kept = v.slice(0, LOG_ARRAY_MAX).map((x) => truncateValue(x, depth + 1));
    if (v.length > LOG_ARRAY_MAX) kept.push(`…[${v.length - LOG_ARRAY_MAX} more items]`);
    return kept;
  }
  if (Buffer.isBuffer(v) || ArrayBuffer.isView(v)) return `[${v.byteLength} bytes]`;
  if (v instanceof Error) {
    // Still an Error, so pino's serializer names its type; message and stack cut to size.
    const copy = new Error(truncateValue(v.message, depth + 1) as string);
    copy.name = v.name;
    copy.stack = truncateValue(v.stack, depth + 1) as string;
    for (const [k, x] of Object.entries(v)) (copy as unknown as Record<string, unknown>)[k] = truncateValue(x, depth + 1);
    return copy;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = truncateValue(x, depth + 1);
  return out;
}

/**
 * Log fields cut to a bounded size. Much of what is logged comes from peers (a rejected
 * message's reason quotes it), and one hostile 250 KB payload must not become a megabyte of
 * log on a gateway's small disk.
 */
function boundedLogFields(obj: Record<string, unknown>): Record<string, unknown> {
  return truncateValue(obj, 0) as Record<string, unknown>;
}

/** pino JSON logs with bounded fields; the destination is passed in so tests can read the lines. */
export function createLogger(level: string, destination?: DestinationStream, base: Record<string, unknown> = {}): Logger {
  return pino(
    {
      level,
      base: { ...base },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { log: boundedLogFields },
      hooks: {
        // The message itself can quote a peer too.
        logMethod(args, method) {
          const last = args.length - 1;
          if (typeof args[last] === 'string' && args[last].length > LOG_STRING_MAX) args[last] = truncateValue(args[last], 0) as string;
          method.apply(this, args);
        },
      },
    },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
