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

/** How a process writes its log lines: `json` (one pino JSON object a line) or `pretty` (pino-pretty, for people). */
export type LogFormat = 'json' | 'pretty';
export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;

/**
 * `auto` is `pretty` when the stream the lines go to is a terminal, `json` otherwise (piped to a
 * file, a collector, journald, Greengrass' log files): people get readable lines, machines get
 * one JSON object a line, and nobody has to say which.
 */
export function resolveLogFormat(requested: string | undefined, isTTY: boolean): LogFormat {
  if (requested === 'json' || requested === 'pretty') return requested;
  return isTTY ? 'pretty' : 'json';
}

/**
 * Where log lines go for a format: JSON straight to the file descriptor; pretty through pino's
 * own transport (pino-pretty in a worker thread, so formatting costs the event loop nothing),
 * coloured only when the descriptor is a terminal, so a forced `pretty` into a pipe or a file
 * carries no escape codes. The transport flushes on exit like the direct destination.
 */
export function logDestination(format: LogFormat, fd: 1 | 2 = 2, isTTY = false): DestinationStream {
  if (format === 'json') return pino.destination({ dest: fd, sync: false });
  return pino.transport({ target: 'pino-pretty', options: { destination: fd, colorize: isTTY, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true, sync: true } }) as DestinationStream;
}

/**
 * A key of the logged object that the logger's bindings already carry would be written twice in
 * one JSON line (pino appends the object after the bindings): `{"device":"gw-7",...,"device":"gw-7"}`.
 * The same value is dropped; another value is kept under `<key>_logged`, so nothing is lost and
 * no key repeats.
 */
function withoutBoundKeys(obj: Record<string, unknown>, bound: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | null = null;
  for (const k of Object.keys(obj)) {
    if (!Object.hasOwn(bound, k)) continue;
    out ??= { ...obj };
    const v = out[k];
    delete out[k];
    if (JSON.stringify(v) !== JSON.stringify(bound[k])) out[`${k}_logged`] = v;
  }
  return out ?? obj;
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
          const first = args[0] as unknown;
          if (first && typeof first === 'object' && !(first instanceof Error) && !Array.isArray(first)) {
            (args as unknown[])[0] = withoutBoundKeys(first as Record<string, unknown>, this.bindings());
          }
          const last = args.length - 1;
          if (typeof args[last] === 'string' && args[last].length > LOG_STRING_MAX) args[last] = truncateValue(args[last], 0) as string;
          method.apply(this, args);
        },
      },
    },
    destination ?? pino.destination({ dest: 2, sync: false }),
  );
}
