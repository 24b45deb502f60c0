import pino, { type DestinationStream, type Logger } from 'pino';

/** pino JSON logs; the destination is passed in so tests can read the lines. */
export function createLogger(level: string, destination?: DestinationStream, base: Record<string, unknown> = {}): Logger {
  return pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime }, destination ?? pino.destination({ dest: 2, sync: false }));
}
