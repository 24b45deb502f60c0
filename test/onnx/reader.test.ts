import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../shared/onnx/builder.js';
import { mlpModel, mobilenetLikeModel, smallCnnModel } from '../helpers/models.js';
import { ProtoWriter } from '../../shared/onnx/protobuf.js';
import { readOnnxGraphIo, readOnnxInitializers } from '../../shared/onnx/reader.js';
import { loadSession } from './ort-helpers.js';

describe('readOnnxInitializers', () => {
  it('reads back every float32 initializer the builder wrote, bit for bit', () => {
    const m = mlpModel({ features: 7, hidden: 5, classes: 3, seed: 11, softmax: true });
    const init = readOnnxInitializers(m.bytes);
    expect([...init.keys()].sort()).toEqual(['b1', 'b2', 'w1', 'w2']);
    expect(init.get('w1')!.dims).toEqual([7, 5]);
    expect(Buffer.from(init.get('w1')!.data.buffer).equals(Buffer.from(m.weights.w1.buffer))).toBe(true);
    expect([...init.get('b2')!.data]).toEqual([...m.weights.b2]);
  });

  it('skips non-float initializers and keeps scalars', () => {
    const g = new GraphBuilder('g');
    const x = g.input('x', 'float32', ['batch', 4]);
    const r = g.node('Reshape', [x, g.int64Initializer('shape', [-1, 2, 2])]);
    g.output(g.node('Mul', [r, g.scalar('k', 0.5)]), 'float32', ['batch', 2, 2]);
    const init = readOnnxInitializers(g.toBytes());
    expect(init.has('shape')).toBe(false);
    expect(init.get('k')).toEqual({ name: 'k', dims: [], data: Float32Array.of(0.5) });
  });

  it('rejects truncated bytes instead of returning half a model', () => {
    const bytes = mlpModel({ features: 7, hidden: 5, classes: 3, seed: 1, softmax: true }).bytes;
    expect(() => readOnnxInitializers(bytes.subarray(0, bytes.length - 40))).toThrow(RangeError);
  });
});

describe('readOnnxGraphIo', () => {
  it('names the inputs and outputs ONNX Runtime asks for', async () => {
    for (const m of [mlpModel({ features: 7, hidden: 5, classes: 3, seed: 11, softmax: false }), smallCnnModel({ channels: 3, height: 16, width: 16, classes: 4, seed: 2, layout: 'NHWC', inputType: 'uint8' }), mobilenetLikeModel({ seed: 1 })]) {
      const session = await loadSession(m.bytes);
      try {
        expect(readOnnxGraphIo(m.bytes)).toEqual({ inputs: [...session.inputNames], outputs: [...session.outputNames] });
      } finally {
        await session.release();
      }
    }
  });

  it('leaves out initializers that an older IR lists among the inputs', () => {
    // ModelProto { graph { initializer { name: w }, input { name: x }, input { name: w }, output { name: y } } }
    const bytes = new ProtoWriter()
      .message(7, (g) => g.message(5, (t) => t.string(8, 'w')).message(11, (v) => v.string(1, 'x')).message(11, (v) => v.string(1, 'w')).message(12, (v) => v.string(1, 'y')))
      .finish();
    expect(readOnnxGraphIo(bytes)).toEqual({ inputs: ['x'], outputs: ['y'] });
  });

  it('rejects bytes that are not a model', () => {
    const bytes = mlpModel({ features: 7, hidden: 5, classes: 3, seed: 1, softmax: true }).bytes;
    expect(() => readOnnxGraphIo(bytes.subarray(0, Math.floor(bytes.length * 0.6)))).toThrow(RangeError);
    expect(() => readOnnxGraphIo(Buffer.from('definitely not onnx'))).toThrow(RangeError);
    expect(() => readOnnxGraphIo(new Uint8Array())).toThrow(/no graph/);
  });
});
