import { EdgeloopError } from '../../../shared/errors.js';
import type { ArtifactStore } from '../../app/artifacts.js';
import { FleetError } from '../../errors.js';
import type { RawReply } from './router.js';

/** What a `Range` header asks of an artifact of `size` bytes. */
export type RangeRequest = { kind: 'full' } | { kind: 'partial'; start: number; end: number } | { kind: 'unsatisfiable' };

/**
 * Parse `Range: bytes=...` (RFC 9110 §14.1.2) for one range: `a-b`, `a-` or `-n`. A
 * malformed header, another unit or several ranges are ignored (a full 200), as the RFC
 * allows; a range starting at or past the end is unsatisfiable (416). That is what the
 * agent relies on: after a dropped connection it asks for `bytes=<have>-`, and a 416 tells it
 * the part file is already complete.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (header === undefined) return { kind: 'full' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'full' };
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return { kind: 'unsatisfiable' };
    return { kind: 'partial', start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? Infinity : Number(m[2]);
  if (!Number.isSafeInteger(start) || end < start) return { kind: 'full' };
  if (start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'partial', start, end: Math.min(end, size - 1) };
}

/**
 * A range that does not fit: answered 416 with `Content-Range: bytes * /size`. Its code is
 * `INPUT_INVALID` (the catalogue has no range code); the status says which input problem.
 */
export class RangeNotSatisfiable extends EdgeloopError {
  constructor(readonly size: number, range: string) {
    super('INPUT_INVALID', `range ${range} does not fit the ${size} bytes of this artifact`, { status: 416, details: { size, range } });
    this.name = 'RangeNotSatisfiable';
  }
}

const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/webp', 'image/gif', 'image/bmp']);

/**
 * Content type for bytes a device sent. Only known image types pass through: a device
 * could claim `text/html`, and its blob is served from the console's origin, so anything
 * else is `application/octet-stream` (and `nosniff` stops the browser from guessing).
 */
export function safeContentType(claimed: string | null): string {
  const t = (claimed ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  return IMAGE_TYPES.has(t) ? t : 'application/octet-stream';
}

/** Content type of a package file by its extension. */
export function packageContentType(path: string): string {
  if (path.endsWith('.json')) return 'application/json';
  if (path.endsWith('.png')) return 'image/png';
  if (path.endsWith('.jpg') || path.endsWith('.jpeg')) return 'image/jpeg';
  if (path.endsWith('.txt')) return 'text/plain; charset=utf-8';
  return 'application/octet-stream';
}

/**
 * An artifact as an HTTP answer: the whole of it (200) or one range (206), streamed from
 * the store. The sha256 is the ETag: artifacts never change.
 */
export async function artifactReply(store: ArtifactStore, sha256: string, range: string | undefined, contentType: string): Promise<RawReply> {
  const size = await store.size(sha256);
  if (size === null) throw new FleetError('ARTIFACT_NOT_FOUND', `artifact ${sha256} is not stored`, { details: { sha256 } });
  const want = parseRange(range, size);
  if (want.kind === 'unsatisfiable') throw new RangeNotSatisfiable(size, range ?? '');
  const headers: Record<string, string | number> = {
    'content-type': contentType,
    'accept-ranges': 'bytes',
    etag: `"${sha256}"`,
    'cache-control': 'private, max-age=31536000, immutable',
    'x-content-type-options': 'nosniff',
    // Served bytes are never a document that runs in the console's origin.
    'content-security-policy': "default-src 'none'; sandbox",
  };
  if (want.kind === 'full') {
    return { status: 200, headers: { ...headers, 'content-length': size }, body: await store.createReadStream(sha256) };
  }
  return {
    status: 206,
    headers: { ...headers, 'content-length': want.end - want.start + 1, 'content-range': `bytes ${want.start}-${want.end}/${size}` },
    body: await store.createReadStream(sha256, { start: want.start, end: want.end }),
  };
}
