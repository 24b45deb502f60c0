import { describe, expect, it } from 'vitest';
import { GraphBuilder, float, floats } from '../../shared/onnx/builder.js';
import { loadSession, runOnce } from './ort-helpers.js';

describe('GraphBuilder', () => {
  it('produces a model ORT accepts, with typed attributes and int64 initializers', async () => {
    // y = Reshape(LeakyRelu(2 · x·w), [-1, 2, 2]) exercises FLOAT, INT, INTS attributes and int64 data.
    const g = new GraphBuilder('ops');
    const x = g.input('x', 'float32', ['batch', 3]);
    const w = g.initializer('w', Float32Array.from([1, -1, 0.5, 2, 0, 1, -1, 1, 0, 0, 3, -2]), [3, 4]);
    let t = g.node('Gemm', [x, w], { alpha: float(2), transA: 0 });
    t = g.node('LeakyRelu', [t], { alpha: 0.25 });
    t = g.node('Reshape', [t, g.int64Initializer('shape', [-1, 2, 2])]);
    g.output(t, 'float32', ['batch', 2, 2], 'y');
    const session = await loadSession(g.toBytes());
    expect(session.inputNames).toEqual(['x']);
    expect(session.outputNames).toEqual(['y']);

    const input = Float32Array.from([1, 2, 3, -1, 0, 0.5]);
    const out = await runOnce(session, { name: 'x', type: 'float32', data: input, dims: [2, 3] }, 'y');
    expect(out.dims).toEqual([2, 2, 2]);
    const wv = [1, -1, 0.5, 2, 0, 1, -1, 1, 0, 0, 3, -2];
    for (let b = 0; b < 2; b++) {
      for (let j = 0; j < 4; j++) {
        let s = 0;
        for (let i = 0; i < 3; i++) s += (input[b * 3 + i] as number) * (wv[i * 4 + j] as number);
        s *= 2;
        expect(out.data[b * 4 + j]).toBeCloseTo(s < 0 ? 0.25 * s : s, 5);
      }
    }
  });

  it('supports uint8 inputs, string attributes and FLOATS attributes', async () => {
    const g = new GraphBuilder('u8');
    const x = g.input('pixels', 'uint8', [1, 1, 2, 2]);
    let t = g.node('Cast', [x], { to: 1 });
    t = g.node('Resize', [t, '', g.initializer('scales', Float32Array.from([1, 1, 2, 2]), [4])], { mode: 'nearest' });
    t = g.node('Mul', [t, g.scalar('k', 0.5)]);
    // Constant with a FLOATS attribute, added to the result.
    const c = g.node('Constant', [], { value_floats: floats([0.25]) });
    g.output(g.node('Add', [t, c]), 'float32', [1, 1, 4, 4], 'out');
    const session = await loadSession(g.toBytes());
    const out = await runOnce(session, { name: 'pixels', type: 'uint8', data: Uint8Array.from([0, 10, 200, 255]), dims: [1, 1, 2, 2] }, 'out');
    expect(out.dims).toEqual([1, 1, 4, 4]);
    expect(out.data[0]).toBeCloseTo(0.25, 6);
    expect(out.data[15]).toBeCloseTo(255 * 0.5 + 0.25, 4);
  });

  it('rejects duplicate names, wrong initializer sizes and empty graphs', () => {
    const g = new GraphBuilder('bad');
    g.input('x', 'float32', [1]);
    expect(() => g.input('x', 'float32', [1])).toThrow(/duplicate/);
    expect(() => g.initializer('w', new Float32Array(3), [2, 2])).toThrow(RangeError);
    expect(() => g.output('x', 'float32', [1], 'renamed')).toThrow(/not produced by a node/);
    expect(() => new GraphBuilder('empty').toBytes()).toThrow(/no outputs/);
  });
});
