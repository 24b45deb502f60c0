/**
 * The few DER (X.690) encodings an X.509 certificate needs, and a reader that walks
 * tag-length-value elements. Only definite lengths (DER has no others); the reader throws on
 * anything truncated or longer than its buffer, so a hostile certificate cannot make it read
 * past the end.
 */

export function tlv(tag: number, content: Buffer): Buffer {
  return Buffer.concat([Buffer.from([tag]), length(content.length), content]);
}

function length(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}

export const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
export const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
export const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
export const octets = (b: Buffer): Buffer => tlv(0x04, b);
export const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'));
export const nul = (): Buffer => Buffer.from([0x05, 0x00]);
/** Explicit context tag `[n]` (constructed). */
export const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
/** BIT STRING with no unused bits (signatures, keys). */
export const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));

/** A non-negative INTEGER from big-endian bytes: leading zeros dropped, a 0x00 added when the top bit is set. */
export function uint(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, (v[0] ?? 0) & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : Buffer.from(v.length ? v : [0]));
}

export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out: number[] = [40 * (arcs[0] ?? 0) + (arcs[1] ?? 0)];
  for (const arc of arcs.slice(2)) {
    const b: number[] = [arc & 0x7f];
    for (let v = Math.floor(arc / 128); v > 0; v = Math.floor(v / 128)) b.unshift(0x80 | (v & 0x7f));
    out.push(...b);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050; seconds, always Z. */
export function time(ms: number): Buffer {
  const iso = new Date(Math.floor(ms / 1000) * 1000).toISOString(); // 2026-12-03T06:40:56.000Z
  const digits = iso.slice(0, 19).replace(/[-T:]/g, '') + 'Z';
  const year = new Date(ms).getUTCFullYear();
  return year < 2050 ? tlv(0x17, Buffer.from(digits.slice(2), 'ascii')) : tlv(0x18, Buffer.from(digits, 'ascii'));
}

/** One element read from a DER buffer: its tag, its content, and the whole encoding. */
export interface Element {
  tag: number;
  content: Buffer;
  raw: Buffer;
}

/** The element at `offset`. Throws on truncation, long-form tags and indefinite lengths. */
export function readElement(buf: Buffer, offset = 0): Element {
  const tag = buf[offset];
  const first = buf[offset + 1];
  if (tag === undefined || first === undefined) throw new Error('DER: truncated');
  if ((tag & 0x1f) === 0x1f) throw new Error('DER: long-form tags are not supported');
  let len = first;
  let head = 2;
  if (first & 0x80) {
    const n = first & 0x7f;
    if (n === 0 || n > 4) throw new Error('DER: bad length');
    len = 0;
    for (let i = 0; i < n; i++) {
      const b = buf[offset + 2 + i];
      if (b === undefined) throw new Error('DER: truncated');
      len = len * 256 + b;
    }
    head += n;
  }
  const end = offset + head + len;
  if (end > buf.length) throw new Error('DER: truncated');
  return { tag, content: buf.subarray(offset + head, end), raw: buf.subarray(offset, end) };
}

/** The elements inside a constructed element's content, in order. */
export function children(content: Buffer): Element[] {
  const out: Element[] = [];
  for (let at = 0; at < content.length; ) {
    const e = readElement(content, at);
    out.push(e);
    at += e.raw.length;
  }
  return out;
}
