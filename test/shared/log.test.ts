import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, LOG_STRING_MAX, resolveLogFormat } from '../../shared/log.js';

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
  it('never writes a key twice in one line: a logged key the bindings carry is dropped when equal, kept as <key>_logged when not', () => {
    const { stream, out } = lines();
    const log = createLogger('info', stream, { device: 'gw-7' }).child({ component: 'http' });
    log.info({ device: 'gw-7', component: 'http', n: 1 }, 'same values');
    log.info({ device: 'cam-2', n: 2 }, 'another device');
    const keys = (l: string): string[] => [...l.matchAll(/"(\w+)":/g)].map((m) => m[1]!);
    expect(keys(out[0]!)).toEqual(['level', 'time', 'device', 'component', 'n', 'msg']);
    expect(JSON.parse(out[1]!)).toMatchObject({ device: 'gw-7', device_logged: 'cam-2', n: 2 });
    expect(keys(out[1]!).filter((k) => k === 'device')).toHaveLength(1);
  });

  it('picks pretty for a terminal and JSON otherwise, unless told', () => {
    expect(resolveLogFormat('auto', true)).toBe('pretty');
    expect(resolveLogFormat(undefined, false)).toBe('json');
    expect(resolveLogFormat('json', true)).toBe('json');
    expect(resolveLogFormat('pretty', false)).toBe('pretty');
  });

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
