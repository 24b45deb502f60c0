/**
 * Cuts a byte stream holding JPEGs (ffmpeg `-f image2pipe -c:v mjpeg`, or the body of an
 * MJPEG-over-HTTP stream with its multipart headers between frames) into frames. It walks the
 * JPEG's marker segments (SOI, length-prefixed segments, entropy-coded scans) to the EOI that
 * really ends the frame, so an EOI inside an EXIF thumbnail (APP1) or a progressive JPEG's
 * several scans do not cut it short; bytes between frames are skipped. The buffer is bounded:
 * a frame longer than `maxFrameBytes` is thrown away (counted), never accumulated.
 */
export class JpegSplitter {
  private buf: Buffer = Buffer.alloc(0);
  /** Where parsing resumes in `buf` (a frame in progress starts at 0). */
  private pos = 0;
  private inFrame = false;
  private inScan = false;
  /** Frames discarded for exceeding the bound. */
  oversized = 0;
  /** Frames discarded as malformed (a new SOI before the EOI, a bad segment). */
  malformed = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feed bytes; returns the complete frames they finished, oldest first. */
  push(data: Buffer): Buffer[] {
    this.buf = this.buf.length ? Buffer.concat([this.buf, data]) : data;
    const frames: Buffer[] = [];
    for (;;) {
      if (!this.inFrame) {
        const soi = this.buf.indexOf(SOI);
        if (soi < 0) {
          // Keep a trailing FF: it may be the first half of an SOI.
          this.buf = this.buf.length && this.buf[this.buf.length - 1] === 0xff ? this.buf.subarray(this.buf.length - 1) : Buffer.alloc(0);
          break;
        }
        this.startFrame(soi);
      }
      const r = this.scan();
      if (r.kind === 'more') break;
      if (r.kind === 'frame') {
        frames.push(Buffer.from(this.buf.subarray(0, r.end)));
        this.buf = this.buf.subarray(r.end);
        this.inFrame = false;
      } else {
        // Malformed: drop what was read and look for the next SOI after this one.
        this.malformed++;
        if (r.at > 0) this.startFrame(r.at);
        else {
          this.buf = this.buf.subarray(2);
          this.inFrame = false;
        }
      }
    }
    if (this.buf.length > this.maxFrameBytes) {
      this.oversized++;
      this.reset();
    }
    // Copy a small remainder out so the large chunk it came from can be collected.
    if (this.buf.length && this.buf.buffer.byteLength > this.buf.length * 4) this.buf = Buffer.from(this.buf);
    return frames;
  }

  private startFrame(at: number): void {
    this.buf = this.buf.subarray(at);
    this.pos = 2;
    this.inFrame = true;
    this.inScan = false;
  }

  /** Walk the segments from `pos`: the frame's end, more bytes needed, or malformed (with a new SOI to restart at, or 0). */
  private scan(): { kind: 'more' } | { kind: 'frame'; end: number } | { kind: 'bad'; at: number } {
    const b = this.buf;
    let p = this.pos;
    const more = (at: number): { kind: 'more' } => {
      this.pos = at;
      return { kind: 'more' };
    };
    for (;;) {
      if (this.inScan) {
        // Entropy-coded data: FF 00 is a stuffed byte, FF D0-D7 a restart marker, FF FF fill;
        // any other FF xx is the next marker.
        for (;;) {
          const ff = b.indexOf(0xff, p);
          if (ff < 0) return more(b.length);
          if (ff + 1 >= b.length) return more(ff);
          const m = b[ff + 1]!;
          if (m === 0x00 || (m >= 0xd0 && m <= 0xd7)) p = ff + 2;
          else if (m === 0xff) p = ff + 1;
          else {
            this.inScan = false;
            p = ff;
            break;
          }
        }
      }
      if (p + 1 >= b.length) return more(p);
      if (b[p] !== 0xff) return { kind: 'bad', at: 0 };
      const m = b[p + 1]!;
      if (m === 0xff) {
        p++;
        continue;
      }
      if (m === 0xd9) return { kind: 'frame', end: p + 2 };
      // A new frame starts before this one ended: this one is cut off.
      if (m === 0xd8) return { kind: 'bad', at: p };
      if (m === 0x01 || (m >= 0xd0 && m <= 0xd7)) {
        p += 2;
        continue;
      }
      if (p + 3 >= b.length) return more(p);
      const len = b.readUInt16BE(p + 2);
      if (len < 2) return { kind: 'bad', at: 0 };
      if (p + 2 + len > b.length) return more(p);
      p += 2 + len;
      if (m === 0xda) this.inScan = true;
    }
  }

  /** Bytes held while waiting for a frame's end (at most `maxFrameBytes`). */
  get buffered(): number {
    return this.buf.length;
  }

  reset(): void {
    this.buf = Buffer.alloc(0);
    this.inFrame = false;
    this.inScan = false;
    this.pos = 0;
  }
}

const SOI = Buffer.from([0xff, 0xd8]);
