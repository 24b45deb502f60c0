/**
 * An image's stored width and height from its header bytes (JPEG SOF, PNG IHDR, WebP VP8/VP8L/
 * VP8X), without a round trip through libvips: a detector needs the original size per frame
 * to map boxes back, and on a busy host every hop to libuv's pool waits for a core. Sizes are
 * the stored ones, as sharp reads the pixels (no EXIF rotation). Null when the header does not
 * say (the caller asks sharp then).
 */
export function imageSize(b: Uint8Array): { width: number; height: number } | null {
  const be16 = (i: number): number => ((b[i]! << 8) | b[i + 1]!) >>> 0;
  const le16 = (i: number): number => b[i]! | (b[i + 1]! << 8);
  const le24 = (i: number): number => b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16);
  const ok = (width: number, height: number): { width: number; height: number } | null => (width > 0 && height > 0 ? { width, height } : null);
  const tag = (i: number): string => String.fromCharCode(b[i]!, b[i + 1]!, b[i + 2]!, b[i + 3]!);
  if (b.length >= 24 && b[0] === 0x89 && tag(12) === 'IHDR') {
    const w = ((b[16]! << 24) | (b[17]! << 16) | (b[18]! << 8) | b[19]!) >>> 0;
    const h = ((b[20]! << 24) | (b[21]! << 16) | (b[22]! << 8) | b[23]!) >>> 0;
    return ok(w, h);
  }
  if (b.length >= 30 && tag(0) === 'RIFF' && tag(8) === 'WEBP') {
    const chunk = tag(12);
    if (chunk === 'VP8 ' && b[23] === 0x9d && b[24] === 0x01 && b[25] === 0x2a) return ok(le16(26) & 0x3fff, le16(28) & 0x3fff);
    if (chunk === 'VP8L' && b[20] === 0x2f) {
      const [b0, b1, b2, b3] = [b[21]!, b[22]!, b[23]!, b[24]!];
      return ok(1 + (((b1 & 0x3f) << 8) | b0), 1 + (((b3 & 0x0f) << 10) | (b2 << 2) | ((b1 & 0xc0) >> 6)));
    }
    if (chunk === 'VP8X') return ok(1 + le24(24), 1 + le24(27));
    return null;
  }
  if (b.length >= 4 && b[0] === 0xff && b[1] === 0xd8) {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const m = b[i + 1]!;
      if (m === 0xff) {
        i++;
        continue;
      }
      // Markers without a length: TEM, RSTn.
      if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
        i += 2;
        continue;
      }
      // Start of frame (every SOFn but DHT C4, JPG C8, DAC CC): precision, height, width.
      if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) return ok(be16(i + 7), be16(i + 5));
      if (m === 0xda || m === 0xd9) return null;
      i += 2 + be16(i + 2);
    }
  }
  return null;
}
