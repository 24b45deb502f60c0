import { Transform, type TransformCallback } from 'node:stream';

/** An MQTT packet whose declared length is over the broker's limit (the connection is closed). */
export class PacketTooLargeError extends Error {
  constructor(
    readonly bytes: number,
    readonly limit: number,
  ) {
    super(`MQTT packet of ${bytes} bytes is over the broker's ${limit}-byte limit`);
  }
}

/**
 * Passes an MQTT byte stream through while reading each packet's fixed header, and fails the
 * stream as soon as a packet declares more than `maxPacketBytes`: the broker's parser buffers
 * a whole packet before it looks at it, so without this one client can make the fleet hold a
 * 100 MiB publish (or 256 MiB, MQTT's maximum) in memory.
 */
export class MqttPacketGuard extends Transform {
  /** Bytes of the current packet's body still to pass; -1 while reading a fixed header. */
  private remaining = -1;
  private header: number[] = [];

  constructor(private readonly maxPacketBytes: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    let i = 0;
    while (i < chunk.length) {
      if (this.remaining > 0) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.remaining = -1;
        continue;
      }
      // Fixed header: one type byte, then the remaining length in 1-4 bytes of 7 bits.
      const byte = chunk[i++] as number;
      this.header.push(byte);
      if (this.header.length === 1) continue;
      if (byte & 0x80 && this.header.length < 5) continue;
      if (byte & 0x80) return done(new Error('malformed MQTT remaining length'));
      let length = 0;
      for (let k = this.header.length - 1; k >= 1; k--) length = length * 128 + ((this.header[k] as number) & 0x7f);
      const total = length + this.header.length;
      this.header = [];
      if (total > this.maxPacketBytes) return done(new PacketTooLargeError(total, this.maxPacketBytes));
      this.remaining = length === 0 ? -1 : length;
    }
    done(null, chunk);
  }
}
