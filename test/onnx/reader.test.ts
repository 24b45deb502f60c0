import { describe, expect, it } from 'vitest';
import { GraphBuilder } from '../../shared/onnx/builder.js';
import { mlpModel } from '../helpers/models.js';
import { readOnnxInitializers } from '../../shared/onnx/reader.js';

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
