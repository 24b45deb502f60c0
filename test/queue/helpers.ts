import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { AgentError } from '../../agent/errors.js';
import type { AgentErrorCode } from '../../agent/errors.js';
import type { Clock, QueueItemInput } from '../../agent/queue/types.js';

/** A clock tests move by hand. */
export interface FakeClock extends Clock {
  advance(ms: number): void;
}

export function fakeClock(start = 1_700_000_000_000): FakeClock {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

/** A sample with a deterministic blob of `blobBytes` bytes. */
export function sample(id: string, priority: number, opts: { blobBytes?: number; meta?: Record<string, unknown>; createdAt?: number } = {}): QueueItemInput {
  const blobBytes = opts.blobBytes ?? 100;
  const blob = new Uint8Array(blobBytes);
  for (let i = 0; i < blobBytes; i++) blob[i] = (i * 31 + priority) & 0xff;
  const item: QueueItemInput = { id, kind: 'image', priority, meta: opts.meta ?? { reason: 'low_confidence', label: 'seven', confidence: 0.41 }, blob };
  if (opts.createdAt !== undefined) item.createdAt = opts.createdAt;
  return item;
}

/** The documented size formula: blob length + UTF-8 length of JSON-encoded meta. */
export function expectedBytes(item: QueueItemInput): number {
  return (item.blob?.byteLength ?? 0) + Buffer.byteLength(JSON.stringify(item.meta), 'utf8');
}

/** A pino logger whose JSON lines the test can read back. */
export function captureLogger(): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

/** A fresh real directory under the OS temp dir, and its removal. */
export function makeTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `edgeloop-${prefix}-`));
  return { dir, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The error code of whatever `fn` throws (undefined when it does not throw). */
export function thrownCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

/** The public code of a catalogue entry (some are prefixed with AGENT_, shared ones are not). */
export function agentCode(code: AgentErrorCode): string {
  return new AgentError(code).code;
}
