import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { ProtoWriter, encodeVarint } from '../../shared/onnx/protobuf.js';

/** Independent reference decoder (the production code only writes). */
function decodeVarint(bytes: Uint8Array, start = 0): { value: bigint; next: number } {
  let value = 0n;
  let shift = 0n;
  for (let i = start; i < bytes.length; i++) {
    const b = bytes[i] as number;
    value |= BigInt(b & 0x7f) << shift;
    shift += 7n;
    if ((b & 0x80) === 0) return { value, next: i + 1 };
  }
  throw new Error('truncated varint');
}

describe('protobuf writer', () => {
  it('encodes varints as in the protobuf encoding guide', () => {
    expect([...encodeVarint(0)]).toEqual([0]);
    expect([...encodeVarint(1)]).toEqual([1]);
    expect([...encodeVarint(127)]).toEqual([0x7f]);
    expect([...encodeVarint(150)]).toEqual([0x96, 0x01]);
    expect([...encodeVarint(300)]).toEqual([0xac, 0x02]);
  });

  it('encodes negative int64 as 10-byte two’s complement', () => {
    const minusOne = encodeVarint(-1);
    expect(minusOne.length).toBe(10);
    expect([...minusOne]).toEqual([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
    expect([...encodeVarint(-1n)]).toEqual([...minusOne]);
  });

  it('round-trips any safe integer and any int64 bigint', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (n) => {
        const bytes = encodeVarint(n);
        expect(decodeVarint(bytes)).toEqual({ value: BigInt.asUintN(64, BigInt(n)), next: bytes.length });
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }), (n) => {
        expect(decodeVarint(encodeVarint(n)).value).toBe(BigInt.asUintN(64, n));
      }),
    );
  });

  it('rejects non-integers and invalid field numbers', () => {
    expect(() => encodeVarint(1.5)).toThrow(RangeError);
    expect(() => encodeVarint(2 ** 60)).toThrow(RangeError);
    expect(() => new ProtoWriter().int64(0, 1)).toThrow(RangeError);
  });

  it('writes keys, floats, strings and nested messages', () => {
    const w = new ProtoWriter(4); // tiny capacity exercises buffer growth
    w.int64(1, 8).float(2, 1.5).string(3, 'hé').message(7, (m) => m.int64(1, 300));
    const bytes = w.finish();
    const f = new Uint8Array(new Float32Array([1.5]).buffer);
    const utf8 = new TextEncoder().encode('hé');
    expect([...bytes]).toEqual([
      (1 << 3) | 0, 8,
      (2 << 3) | 5, ...f,
      (3 << 3) | 2, utf8.length, ...utf8,
      (7 << 3) | 2, 3, (1 << 3) | 0, 0xac, 0x02,
    ]);
  });

  it('writes packed repeated fields and omits empty ones', () => {
    const w = new ProtoWriter();
    w.packedInt64(8, [1, -1, 300]).packedFloats(7, [0.25]).packedInt64(9, []).packedFloats(10, []);
    const bytes = w.finish();
    expect(bytes[0]).toBe((8 << 3) | 2);
    expect(bytes[1]).toBe(1 + 10 + 2);
    expect(decodeVarint(bytes, 3).value).toBe(2n ** 64n - 1n);
    const floatsAt = 2 + 13;
    expect([...bytes.subarray(floatsAt, floatsAt + 2)]).toEqual([(7 << 3) | 2, 4]);
    expect(new DataView(bytes.buffer, bytes.byteOffset + floatsAt + 2, 4).getFloat32(0, true)).toBe(0.25);
    expect(bytes.length).toBe(floatsAt + 6);
  });

  it('key() handles field numbers whose shifted key exceeds 32 bits', () => {
    const bytes = new ProtoWriter().key(0x1fffffff, 0).finish();
    expect(decodeVarint(bytes).value).toBe(BigInt(0x1fffffff) * 8n);
  });
});
