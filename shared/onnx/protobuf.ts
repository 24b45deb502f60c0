/**
 * A minimal protocol-buffers *writer*: just enough of the wire format to encode an ONNX
 * `ModelProto`. We write models from TypeScript (no Python/protoc in the toolchain), and never
 * need to read them back — ONNX Runtime does the parsing.
 *
 * Wire types used: 0 (varint), 2 (length-delimited) and 5 (fixed32). Repeated numeric fields are
 * written packed; protobuf parsers must accept packed encoding for any repeated scalar field.
 */

/** Protobuf wire types (the low three bits of a field key). */
const WireType = { Varint: 0, Fixed64: 1, LengthDelimited: 2, Fixed32: 5 } as const;

const textEncoder = new TextEncoder();

/**
 * Appends protobuf fields to a growable byte buffer.
 *
 * Nested messages are encoded with {@link ProtoWriter.message}: the child is written into its own
 * writer first because its length prefix must precede it.
 */
export class ProtoWriter {
  private buf: Uint8Array;
  private len = 0;
  // Reused for float encoding; a DataView avoids platform-endianness questions.
  private readonly scratch = new DataView(new ArrayBuffer(8));

  constructor(initialCapacity = 256) {
    this.buf = new Uint8Array(Math.max(16, initialCapacity));
  }

  /** Number of bytes written so far. */
  get length(): number {
    return this.len;
  }

  /** Writes a field key (field number and wire type). */
  key(field: number, wireType: number): this {
    if (!Number.isInteger(field) || field < 1 || field > 0x1fffffff) throw new RangeError(`invalid protobuf field number ${field}`);
    // field << 3 can overflow 32-bit ints for large field numbers, so multiply instead.
    return this.rawVarint(field * 8 + wireType);
  }

  /**
   * Writes a bare varint (no key). Accepts any safe integer or bigint; negative values are
   * encoded as 64-bit two's complement (always 10 bytes), as protobuf does for int32/int64.
   */
  rawVarint(value: number | bigint): this {
    if (typeof value === 'number') {
      if (!Number.isSafeInteger(value)) throw new RangeError(`varint value must be a safe integer, got ${value}`);
      if (value < 0) return this.rawVarint(BigInt(value));
      this.ensure(10);
      // Division rather than bit shifts: JS bitwise operators truncate to 32 bits.
      let v = value;
      while (v >= 0x80) {
        this.buf[this.len++] = (v % 128) | 0x80;
        v = Math.floor(v / 128);
      }
      this.buf[this.len++] = v;
      return this;
    }
    let v = BigInt.asUintN(64, value);
    this.ensure(10);
    while (v >= 0x80n) {
      this.buf[this.len++] = Number(v & 0x7fn) | 0x80;
      v >>= 7n;
    }
    this.buf[this.len++] = Number(v);
    return this;
  }

  /** Writes raw bytes with no key or length prefix. */
  rawBytes(bytes: Uint8Array): this {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.len);
    this.len += bytes.length;
    return this;
  }

  /** `int32`/`int64`/`uint64`/`bool`/`enum` field (wire type 0). */
  int64(field: number, value: number | bigint): this {
    return this.key(field, WireType.Varint).rawVarint(value);
  }

  /** `float` field (wire type 5, IEEE-754 little-endian). */
  float(field: number, value: number): this {
    this.key(field, WireType.Fixed32);
    this.scratch.setFloat32(0, value, true);
    this.ensure(4);
    for (let i = 0; i < 4; i++) this.buf[this.len++] = this.scratch.getUint8(i);
    return this;
  }

  /** `bytes` field (wire type 2). */
  bytes(field: number, value: Uint8Array): this {
    return this.key(field, WireType.LengthDelimited).rawVarint(value.length).rawBytes(value);
  }

  /** `string` field, UTF-8 encoded (wire type 2). */
  string(field: number, value: string): this {
    return this.bytes(field, textEncoder.encode(value));
  }

  /**
   * Embedded message field: `build` writes the child's fields into a fresh writer. `sizeHint`
   * pre-sizes that writer, which avoids repeated regrowth for multi-megabyte weight tensors.
   */
  message(field: number, build: (w: ProtoWriter) => void, sizeHint = 256): this {
    const child = new ProtoWriter(sizeHint);
    build(child);
    return this.bytes(field, child.finish());
  }

  /** Packed `repeated float` field. Empty arrays are omitted, like any default value. */
  packedFloats(field: number, values: ArrayLike<number>): this {
    if (values.length === 0) return this;
    this.key(field, WireType.LengthDelimited).rawVarint(values.length * 4);
    this.ensure(values.length * 4);
    for (let i = 0; i < values.length; i++) {
      this.scratch.setFloat32(0, values[i] as number, true);
      for (let b = 0; b < 4; b++) this.buf[this.len++] = this.scratch.getUint8(b);
    }
    return this;
  }

  /** Packed `repeated int64` field. Empty arrays are omitted. */
  packedInt64(field: number, values: ReadonlyArray<number | bigint>): this {
    if (values.length === 0) return this;
    const body = new ProtoWriter(values.length * 2);
    for (const v of values) body.rawVarint(v);
    return this.bytes(field, body.finish());
  }

  /** Returns a copy-free view of the encoded bytes. The writer must not be used afterwards. */
  finish(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }

  private ensure(extra: number): void {
    const needed = this.len + extra;
    if (needed <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < needed) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

/** Encodes a single bare varint; handy for tests and for sizing. */
export function encodeVarint(value: number | bigint): Uint8Array {
  return new ProtoWriter(16).rawVarint(value).finish();
}

