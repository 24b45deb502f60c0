import { describe, expect, it } from 'vitest';
import { parseRange, safeContentType } from '../../../fleet/edges/http/artifacts.js';
import { queryCoercer } from '../../../fleet/edges/web/query.js';
import { Router, route } from '../../../fleet/edges/http/router.js';
import { deviceQuery, healthResponse } from '../../../fleet/edges/http/schemas.js';
import { sampleQuerySchema } from '../../../fleet/app/samples/filter.js';

describe('parseRange', () => {
  it('reads one byte range and clamps its end, as RFC 9110 says', () => {
    expect(parseRange(undefined, 100)).toEqual({ kind: 'full' });
    expect(parseRange('bytes=0-9', 100)).toEqual({ kind: 'partial', start: 0, end: 9 });
    expect(parseRange('bytes=90-', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(parseRange('bytes=90-500', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(parseRange('bytes=-10', 100)).toEqual({ kind: 'partial', start: 90, end: 99 });
    expect(parseRange('bytes=-500', 100)).toEqual({ kind: 'partial', start: 0, end: 99 });
  });

  it('is unsatisfiable from the end on: what tells a resuming agent its part file is complete', () => {
    expect(parseRange('bytes=100-', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=100-200', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 100)).toEqual({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=0-', 0)).toEqual({ kind: 'unsatisfiable' });
  });

  it('ignores what it does not understand (a full answer)', () => {
    for (const h of ['items=0-1', 'bytes=5-1', 'bytes=0-1,5-6', 'bytes=-', 'bytes=a-b']) expect(parseRange(h, 100)).toEqual({ kind: 'full' });
  });
});

describe('safeContentType', () => {
  it('passes image types and nothing that a browser would run', () => {
    expect(safeContentType('image/png')).toBe('image/png');
    expect(safeContentType('IMAGE/JPEG; q=1')).toBe('image/jpeg');
    expect(safeContentType('text/html')).toBe('application/octet-stream');
    expect(safeContentType('image/svg+xml')).toBe('application/octet-stream');
    expect(safeContentType(null)).toBe('application/octet-stream');
  });
});

describe('queryCoercer', () => {
  it('types query strings by the schema: numbers, booleans, lists; labels stay strings', () => {
    const c = queryCoercer(sampleQuerySchema);
    const q = c(new URLSearchParams('label=7&minConfidence=0.5&labeled=false&limit=20&from=1700000000000&to=2025-03-01T00:00:00Z&device='));
    expect(q).toEqual({ label: '7', minConfidence: 0.5, labeled: false, limit: 20, from: 1700000000000, to: '2025-03-01T00:00:00Z' });
    expect(sampleQuerySchema.safeParse(q).success).toBe(true);
    expect(queryCoercer(deviceQuery)(new URLSearchParams('tag=site:a'))).toEqual({ tag: ['site:a'] });
    // A repeated scalar is left for validation to refuse.
    expect(sampleQuerySchema.safeParse(c(new URLSearchParams('device=a&device=b'))).success).toBe(false);
  });
});

describe('Router', () => {
  const r = (path: string) => route({ method: 'GET', path, tag: 't', summary: path, access: { kind: 'public' }, response: healthResponse, handler: () => ({ json: { status: 'ok' as const, time: '2025-01-01T00:00:00Z' } }) });
  const router = new Router([r('/v1/a/:id'), r('/v1/a/:id/b'), r('/v1/f/:name/files/*path')]);

  it('matches literal segments, decoded params and a rest of the path', () => {
    expect(router.match('GET', '/v1/a/x%20y')?.params).toEqual({ id: 'x y' });
    expect(router.match('GET', '/v1/a/x/b')?.route.path).toBe('/v1/a/:id/b');
    expect(router.match('GET', '/v1/f/m/files/dir/sub%2Fx.onnx')?.params).toEqual({ name: 'm', path: 'dir/sub/x.onnx' });
    expect(router.match('GET', '/v1/a/')).toBeNull();
    expect(router.match('GET', '/v1/a/x/c')).toBeNull();
    expect(router.match('GET', '/v1/f/m/files/')).toBeNull();
    expect(router.match('POST', '/v1/a/x')).toBeNull();
    expect(router.methodsFor('/v1/a/x')).toEqual(['GET']);
    expect(() => router.match('GET', '/v1/a/%E0%A4%A')).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
  });
});
