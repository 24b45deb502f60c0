/**
 * `GraphBuilder`: assembles a single-graph ONNX model and serialises it to `ModelProto` bytes.
 *
 * Field numbers follow onnx.proto3 exactly. The model is pinned to IR version 8 and the default
 * operator set at version 17, which every onnxruntime we ship (>= 1.14) understands.
 */
import { ProtoWriter } from './protobuf.js';

/** Element types the builder can declare for graph inputs/outputs and initializers. */
export type OnnxDType = 'float32' | 'uint8' | 'int64';

/** A tensor dimension: a fixed size, or a symbolic name such as `'batch'`. */
export type Dim = number | string;

/** A float attribute that would otherwise look like an int (e.g. `alpha: 1`). See {@link float}. */
export interface FloatAttr {
  readonly kind: 'float';
  readonly value: number;
}

/** A list-of-floats attribute, see {@link floats}. */
export interface FloatsAttr {
  readonly kind: 'floats';
  readonly value: readonly number[];
}

/**
 * Attribute values. A plain integer number becomes INT, a non-integer number FLOAT, a string
 * STRING and a number array INTS. Wrap with {@link float}/{@link floats} to force FLOAT(S):
 * ONNX Runtime rejects an INT where the operator schema wants a FLOAT.
 */
export type AttrValue = number | string | readonly number[] | FloatAttr | FloatsAttr;

/** Forces a FLOAT attribute, e.g. `{ alpha: float(1) }`. */
export function float(value: number): FloatAttr {
  return { kind: 'float', value };
}

/** Forces a FLOATS attribute, e.g. `{ scales: floats([1, 1, 2, 2]) }`. */
export function floats(value: readonly number[]): FloatsAttr {
  return { kind: 'floats', value };
}

/** Pinned model metadata. */
const ONNX_IR_VERSION = 8;
const ONNX_OPSET = 17;
const ONNX_PRODUCER = 'edgeloop';

// onnx.proto3 enums.
const DATA_TYPE: Record<OnnxDType, number> = { float32: 1, uint8: 2, int64: 7 };
const ATTR_TYPE = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

interface ValueInfo {
  name: string;
  dtype: OnnxDType;
  dims: Dim[];
}

interface NodeRecord {
  name: string;
  opType: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

interface InitializerRecord {
  name: string;
  dtype: OnnxDType;
  dims: number[];
  raw: Uint8Array;
}

/** Options for {@link GraphBuilder.node}. */
export interface NodeOptions {
  /** Node name; defaults to `<OpType>_<n>`. */
  name?: string;
  /** Number of outputs to create (default 1); extra output names are `<name>_out<i>`. */
  outputs?: number;
}

/**
 * Builds one ONNX graph. Methods return tensor names so that calls chain naturally:
 *
 * ```ts
 * const g = new GraphBuilder('mlp');
 * const x = g.input('input', 'float32', ['batch', 16]);
 * const h = g.node('Gemm', [x, g.initializer('w', w, [16, 4]), g.initializer('b', b, [4])]);
 * g.output(h, 'float32', ['batch', 4], 'logits');
 * const bytes = g.toBytes();
 * ```
 */
export class GraphBuilder {
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly nodes: NodeRecord[] = [];
  private readonly initializers: InitializerRecord[] = [];
  private readonly names = new Set<string>();
  private readonly metadata: Array<[string, string]> = [];
  private counter = 0;

  constructor(readonly graphName: string) {}

  /** Declares a graph input and returns its name. */
  input(name: string, dtype: OnnxDType, dims: readonly Dim[]): string {
    this.claim(name);
    this.inputs.push({ name, dtype, dims: [...dims] });
    return name;
  }

  /**
   * Adds a constant tensor stored as little-endian `raw_data`. The element type follows the
   * array type: Float32Array → float32, BigInt64Array → int64, Uint8Array → uint8.
   */
  initializer(name: string, data: Float32Array | BigInt64Array | Uint8Array, dims: readonly number[]): string {
    const count = dims.reduce((a, b) => a * b, 1);
    if (count !== data.length) throw new RangeError(`initializer ${name}: ${data.length} values for dims [${dims.join(', ')}]`);
    this.claim(name);
    const dtype: OnnxDType = data instanceof Float32Array ? 'float32' : data instanceof BigInt64Array ? 'int64' : 'uint8';
    this.initializers.push({ name, dtype, dims: [...dims], raw: littleEndianBytes(data) });
    return name;
  }

  /** Convenience for int64 constants such as Reshape shapes; `dims` defaults to a 1-D vector. */
  int64Initializer(name: string, values: readonly number[], dims: readonly number[] = [values.length]): string {
    return this.initializer(name, BigInt64Array.from(values, (v) => BigInt(v)), dims);
  }

  /** Convenience for a float32 scalar constant (rank 0), e.g. Clip bounds. */
  scalar(name: string, value: number): string {
    return this.initializer(name, Float32Array.of(value), []);
  }

  /**
   * Adds a node and returns its (first) output name. Pass `''` for an omitted optional input.
   * Use {@link GraphBuilder.nodeOutputs} when an operator has several outputs.
   */
  node(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string {
    return this.nodeOutputs(opType, inputs, attrs, opts)[0] as string;
  }

  /** Like {@link GraphBuilder.node} but returns every output name. */
  nodeOutputs(opType: string, inputs: readonly string[], attrs: Record<string, AttrValue> = {}, opts: NodeOptions = {}): string[] {
    const name = opts.name ?? `${opType}_${this.counter++}`;
    this.claim(name);
    const count = opts.outputs ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`node ${name}: outputs must be a positive integer`);
    const outputs: string[] = [];
    for (let i = 0; i < count; i++) {
      const out = i === 0 ? `${name}_out` : `${name}_out${i}`;
      this.claim(out);
      outputs.push(out);
    }
    this.nodes.push({ name, opType, inputs: [...inputs], outputs, attrs: { ...attrs } });
    return outputs;
  }

  /**
   * Declares `tensor` a graph output. With `rename`, the producing node's output (and every use of
   * it) is renamed so the public name is stable, e.g. `probabilities`, without an Identity node.
   */
  output(tensor: string, dtype: OnnxDType, dims: readonly Dim[], rename?: string): string {
    let name = tensor;
    if (rename !== undefined && rename !== tensor) {
      if (!this.nodes.some((n) => n.outputs.includes(tensor))) throw new Error(`cannot rename ${tensor}: it is not produced by a node`);
      this.claim(rename);
      for (const n of this.nodes) {
        n.outputs = n.outputs.map((o) => (o === tensor ? rename : o));
        n.inputs = n.inputs.map((i) => (i === tensor ? rename : i));
      }
      for (const o of this.outputs) if (o.name === tensor) o.name = rename;
      name = rename;
    }
    this.outputs.push({ name, dtype, dims: [...dims] });
    return name;
  }

  /**
   * A `metadata_props` entry of the model (ModelProto field 14), as exporters record them
   * (Ultralytics writes `imgsz`, `names`, `stride`, `task`).
   */
  meta(key: string, value: string): this {
    this.metadata.push([key, value]);
    return this;
  }

  /** Serialises the model to ONNX `ModelProto` bytes. */
  toBytes(): Uint8Array {
    if (this.outputs.length === 0) throw new Error(`graph ${this.graphName} has no outputs`);
    // Weights dominate the size; pre-sizing the buffers keeps a 14 MB model to a couple of copies.
    const estimate = 4096 + this.nodes.length * 128 + this.initializers.reduce((a, t) => a + t.raw.length + t.name.length + 64, 0);
    const model = new ProtoWriter(estimate + 16);
    model.int64(1, ONNX_IR_VERSION);
    model.string(2, ONNX_PRODUCER);
    model.message(7, (g) => this.writeGraph(g), estimate);
    model.message(8, (op) => op.string(1, '').int64(2, ONNX_OPSET));
    for (const [k, v] of this.metadata) model.message(14, (e) => e.string(1, k).string(2, v));
    return model.finish();
  }

  private writeGraph(g: ProtoWriter): void {
    for (const n of this.nodes) g.message(1, (w) => writeNode(w, n));
    g.string(2, this.graphName);
    for (const t of this.initializers) g.message(5, (w) => writeTensor(w, t), t.raw.length + t.name.length + 64);
    for (const v of this.inputs) g.message(11, (w) => writeValueInfo(w, v));
    for (const v of this.outputs) g.message(12, (w) => writeValueInfo(w, v));
  }

  private claim(name: string): void {
    if (name === '') throw new Error('tensor and node names must be non-empty');
    if (this.names.has(name)) throw new Error(`duplicate name in graph ${this.graphName}: ${name}`);
    this.names.add(name);
  }
}

function writeNode(w: ProtoWriter, n: NodeRecord): void {
  for (const i of n.inputs) w.string(1, i);
  for (const o of n.outputs) w.string(2, o);
  w.string(3, n.name);
  w.string(4, n.opType);
  for (const [name, value] of Object.entries(n.attrs)) w.message(5, (a) => writeAttribute(a, name, value));
}

function writeAttribute(w: ProtoWriter, name: string, value: AttrValue): void {
  w.string(1, name);
  if (typeof value === 'string') {
    w.string(4, value).int64(20, ATTR_TYPE.STRING);
  } else if (typeof value === 'number') {
    if (Number.isInteger(value)) w.int64(3, value).int64(20, ATTR_TYPE.INT);
    else w.float(2, value).int64(20, ATTR_TYPE.FLOAT);
  } else if (isTagged(value)) {
    if (value.kind === 'float') w.float(2, value.value).int64(20, ATTR_TYPE.FLOAT);
    else w.packedFloats(7, value.value).int64(20, ATTR_TYPE.FLOATS);
  } else {
    for (const v of value) if (!Number.isInteger(v)) throw new TypeError(`attribute ${name}: use floats([...]) for non-integer lists`);
    w.packedInt64(8, value).int64(20, ATTR_TYPE.INTS);
  }
}

function isTagged(value: readonly number[] | FloatAttr | FloatsAttr): value is FloatAttr | FloatsAttr {
  return !Array.isArray(value);
}

function writeTensor(w: ProtoWriter, t: InitializerRecord): void {
  w.packedInt64(1, t.dims);
  w.int64(2, DATA_TYPE[t.dtype]);
  w.string(8, t.name);
  w.bytes(9, t.raw);
}

function writeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(1, v.name);
  // ValueInfoProto.type → TypeProto.tensor_type → { elem_type, shape { dim* } }
  w.message(2, (type) =>
    type.message(1, (tensor) => {
      tensor.int64(1, DATA_TYPE[v.dtype]);
      tensor.message(2, (shape) => {
        for (const d of v.dims) shape.message(1, (dim) => (typeof d === 'number' ? dim.int64(1, d) : dim.string(2, d)));
      });
    }),
  );
}

// ONNX raw_data is little-endian regardless of host; copy through a DataView only on big-endian hosts.
const HOST_LITTLE_ENDIAN = new Uint8Array(Uint16Array.of(1).buffer)[0] === 1;

function littleEndianBytes(data: Float32Array | BigInt64Array | Uint8Array): Uint8Array {
  if (data instanceof Uint8Array) return data.slice();
  const bytes = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  if (HOST_LITTLE_ENDIAN) return bytes;
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) {
    if (data instanceof Float32Array) view.setFloat32(i * 4, data[i] as number, true);
    else view.setBigInt64(i * 8, data[i] as bigint, true);
  }
  return bytes;
}
