/**
 * Cuts a byte stream of concatenated JPEGs (ffmpeg `-f image2pipe -c:v mjpeg`) into frames by
 * their SOI (FF D8) and EOI (FF D9) markers. ffmpeg's encoder writes no embedded thumbnails,
 * and inside entropy-coded data an FF byte is always stuffed (FF 00), so the first EOI after
 * an SOI ends the frame. The buffer is bounded: bytes without a frame end beyond
 * `maxFrameBytes` are thrown away (counted), never accumulated.
 */
export class JpegSplitter {
  private chunks: Buffer[] = [];
  private size = 0;
  /** Frames discarded for exceeding the bound. */
  oversized = 0;

  constructor(private readonly maxFrameBytes: number) {}

  /** Feed bytes; returns the complete frames they finished, oldest first. */
  push(data: Buffer): Buffer[] {
    this.chunks.push(data);
    this.size += data.length;
    let buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.size);
    const frames: Buffer[] = [];
    let start = buf.indexOf(SOI);
    if (start < 0) {
      // Keep a trailing FF: it may be the first half of an SOI.
      buf = buf.length && buf[buf.length - 1] === 0xff ? buf.subarray(buf.length - 1) : Buffer.alloc(0);
    } else {
      for (;;) {
        const end = buf.indexOf(EOI, start + 2);
        if (end < 0) break;
        frames.push(Buffer.from(buf.subarray(start, end + 2)));
        const next = buf.indexOf(SOI, end + 2);
        if (next < 0) {
          // Keep a trailing FF: it may be the first half of the next SOI.
          start = buf[buf.length - 1] === 0xff && buf.length - 1 >= end + 2 ? buf.length - 1 : buf.length;
          break;
        }
        start = next;
      }
      buf = buf.subarray(start);
    }
    if (buf.length > this.maxFrameBytes) {
      this.oversized++;
      buf = Buffer.alloc(0);
    }
    // Copy the remainder out so the chunk it came from can be collected.
    this.chunks = buf.length ? [Buffer.from(buf)] : [];
    this.size = buf.length;
    return frames;
  }

  /** Bytes held while waiting for a frame's end (at most `maxFrameBytes`). */
  get buffered(): number {
    return this.size;
  }

  reset(): void {
    this.chunks = [];
    this.size = 0;
  }
}

const SOI = Buffer.from([0xff, 0xd8]);
const EOI = Buffer.from([0xff, 0xd9]);
