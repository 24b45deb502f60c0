import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, LOG_STRING_MAX } from '../../shared/log.js';

function lines(): { stream: Writable; out: string[] } {
  const out: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      out.push(...chunk.toString().split('\n').filter(Boolean));
      cb();
    },
  });
  return { stream, out };
}

describe('createLogger', () => {
  it('bounds what a peer can put in a log line: long strings, long arrays, deep nesting, the message', () => {
    const { stream, out } = lines();
    const log = createLogger('info', stream);
    const huge = 'A'.repeat(249 * 1024);
    log.warn({ device: 'cam-1', reason: huge, ids: Array.from({ length: 10_000 }, (_, i) => i), deep: { a: { b: { c: { d: { e: { f: { g: huge } } } } } } } }, `rejected ${huge}`);
    expect(out).toHaveLength(1);
    const line = out[0] as string;
    expect(line.length).toBeLessThan(6 * LOG_STRING_MAX);
    const parsed = JSON.parse(line) as Record<string, unknown>;
    expect(parsed.device).toBe('cam-1');
    expect(parsed.reason).toMatch(/^A{1024}…\[\d+ more chars\]$/);
    expect((parsed.ids as unknown[]).length).toBe(33);
    expect(String(parsed.msg)).toMatch(/more chars\]$/);
  });

  it('keeps an error’s type, message and stack, cut to size', () => {
    const { stream, out } = lines();
    const err = Object.assign(new Error(`bad payload ${'x'.repeat(10_000)}`), { code: 'INPUT_INVALID' });
    createLogger('info', stream).warn({ err }, 'rejected');
    const logged = (JSON.parse(out[0] as string) as { err: Record<string, unknown> }).err;
    expect(logged).toMatchObject({ type: 'Error', code: 'INPUT_INVALID' });
    expect(String(logged.message)).toMatch(/^bad payload x+…\[\d+ more chars\]$/);
    expect(String(logged.stack)).toContain('bad payload');
  });

  it('leaves ordinary lines as they are', () => {
    const { stream, out } = lines();
    createLogger('info', stream).info({ n: 3, ok: true, list: [1, 2] }, 'fine');
    expect(JSON.parse(out[0] as string)).toMatchObject({ n: 3, ok: true, list: [1, 2], msg: 'fine' });
  });
});
