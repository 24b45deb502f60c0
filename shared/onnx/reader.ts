/**
 * A minimal ONNX *reader*: walks `ModelProto` bytes far enough to return the graph's float32
 * initializers (name, dims, values). The local trainer fine-tunes from a parent package's
 * weights, and reading them back from the parent's own model.onnx keeps the package the only
 * source of truth (no side file of weights that could disagree with what devices run).
 *
 * It also lists the graph's input and output names, which the package rules check against
 * the manifest without loading a runtime (shared/package/rules.ts).
 *
 * Field numbers follow onnx.proto3: ModelProto.graph = 7; GraphProto.initializer = 5,
 * input = 11, output = 12; ValueInfoProto.name = 1; TensorProto dims = 1, data_type = 2,
 * float_data = 4, name = 8, raw_data = 9.
 */

/** One float32 initializer read back from a model. */
export interface OnnxInitializer {
  name: string;
  dims: number[];
  data: Float32Array;
}

const FLOAT = 1;

class ProtoReader {
  pos = 0;
  constructor(
    private readonly buf: Uint8Array,
    private readonly end = buf.length,
  ) {}

  done(): boolean {
    return this.pos >= this.end;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end) throw new RangeError('truncated varint');
      const b = this.buf[this.pos++] as number;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw new RangeError('varint longer than 10 bytes');
  }

  /** Returns [field, wireType]. */
  key(): [number, number] {
    const k = this.varint();
    return [Math.floor(k / 8), k % 8];
  }

  /** A length-delimited field's [start, end) byte range; the reader moves past it. */
  span(): [number, number] {
    const len = this.varint();
    const start = this.pos;
    if (start + len > this.end) throw new RangeError('length-delimited field runs past the end');
    this.pos += len;
    return [start, start + len];
  }

  skip(wireType: number): void {
    if (wireType === 0) this.varint();
    else if (wireType === 1) this.pos += 8;
    else if (wireType === 2) this.span();
    else if (wireType === 5) this.pos += 4;
    else throw new RangeError(`unsupported protobuf wire type ${wireType}`);
    if (this.pos > this.end) throw new RangeError('field runs past the end');
  }
}

/**
 * The float32 initializers of an ONNX model, by name. Other element types are skipped. Throws a
 * RangeError on bytes that are not a well-formed ModelProto.
 */
export function readOnnxInitializers(bytes: Uint8Array): Map<string, OnnxInitializer> {
  const out = new Map<string, OnnxInitializer>();
  const model = new ProtoReader(bytes);
  while (!model.done()) {
    const [field, wire] = model.key();
    if (field !== 7 || wire !== 2) {
      model.skip(wire);
      continue;
    }
    const [gs, ge] = model.span();
    const graph = new ProtoReader(bytes, ge);
    graph.pos = gs;
    while (!graph.done()) {
      const [gf, gw] = graph.key();
      if (gf !== 5 || gw !== 2) {
        graph.skip(gw);
        continue;
      }
      const [ts, te] = graph.span();
      const t = readTensor(bytes, ts, te);
      if (t) out.set(t.name, t);
    }
  }
  return out;
}

/** The graph's byte range in a ModelProto. Throws a RangeError when there is none. */
function graphSpan(bytes: Uint8Array): [number, number] {
  const model = new ProtoReader(bytes);
  let graph: [number, number] | null = null;
  while (!model.done()) {
    const [field, wire] = model.key();
    if (field === 7 && wire === 2) graph = model.span();
    else model.skip(wire);
  }
  if (!graph) throw new RangeError('the model has no graph');
  return graph;
}

/** The string in field `want` of the message at [start, end), or ''. */
function stringField(bytes: Uint8Array, start: number, end: number, want: number): string {
  const r = new ProtoReader(bytes, end);
  r.pos = start;
  let out = '';
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === want && w === 2) {
      const [s, e] = r.span();
      out = new TextDecoder().decode(bytes.subarray(s, e));
    } else r.skip(w);
  }
  return out;
}

/**
 * The names a runtime feeds and fetches: the graph's inputs (initializers excluded: older IR
 * versions list weights as inputs too, and runtimes do not ask for them) and outputs. Throws a
 * RangeError on bytes that are not a well-formed ModelProto.
 */
export function readOnnxGraphIo(bytes: Uint8Array): { inputs: string[]; outputs: string[] } {
  const [gs, ge] = graphSpan(bytes);
  const graph = new ProtoReader(bytes, ge);
  graph.pos = gs;
  const inputs: string[] = [];
  const outputs: string[] = [];
  const weights = new Set<string>();
  while (!graph.done()) {
    const [f, w] = graph.key();
    if (w !== 2 || (f !== 5 && f !== 11 && f !== 12)) {
      graph.skip(w);
      continue;
    }
    const [s, e] = graph.span();
    if (f === 5) weights.add(stringField(bytes, s, e, 8));
    else (f === 11 ? inputs : outputs).push(stringField(bytes, s, e, 1));
  }
  return { inputs: inputs.filter((n) => !weights.has(n)), outputs };
}

/**
 * The model's `metadata_props` (ModelProto field 14: key 1, value 2), where exporters record
 * defaults such as Ultralytics' `imgsz` and `names`. Throws a RangeError on malformed bytes.
 */
export function readOnnxMetadata(bytes: Uint8Array): Record<string, string> {
  const model = new ProtoReader(bytes);
  const out: Record<string, string> = {};
  while (!model.done()) {
    const [field, wire] = model.key();
    if (field !== 14 || wire !== 2) {
      model.skip(wire);
      continue;
    }
    const [s, e] = model.span();
    const key = stringField(bytes, s, e, 1);
    if (key) out[key] = stringField(bytes, s, e, 2);
  }
  return out;
}

function readTensor(bytes: Uint8Array, start: number, end: number): OnnxInitializer | null {
  const r = new ProtoReader(bytes, end);
  r.pos = start;
  const dims: number[] = [];
  let dataType = 0;
  let name = '';
  let raw: [number, number] | null = null;
  const floatData: number[] = [];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  while (!r.done()) {
    const [f, w] = r.key();
    if (f === 1 && w === 0) dims.push(r.varint());
    else if (f === 1 && w === 2) {
      const [s, e] = r.span();
      const p = new ProtoReader(bytes, e);
      p.pos = s;
      while (!p.done()) dims.push(p.varint());
    } else if (f === 2 && w === 0) dataType = r.varint();
    else if (f === 8 && w === 2) {
      const [s, e] = r.span();
      name = new TextDecoder().decode(bytes.subarray(s, e));
    } else if (f === 9 && w === 2) raw = r.span();
    else if (f === 4 && w === 2) {
      const [s, e] = r.span();
      for (let o = s; o + 4 <= e; o += 4) floatData.push(view.getFloat32(o, true));
    } else if (f === 4 && w === 5) {
      floatData.push(view.getFloat32(r.pos, true));
      r.pos += 4;
    } else r.skip(w);
  }
  if (dataType !== FLOAT) return null;
  const count = dims.reduce((a, b) => a * b, 1);
  let data: Float32Array;
  if (raw) {
    const [s, e] = raw;
    if (e - s !== count * 4) throw new RangeError(`initializer ${name}: ${e - s} raw bytes for ${count} floats`);
    data = new Float32Array(count);
    for (let i = 0; i < count; i++) data[i] = view.getFloat32(s + i * 4, true);
  } else {
    if (floatData.length !== count) throw new RangeError(`initializer ${name}: ${floatData.length} floats for dims [${dims.join(', ')}]`);
    data = Float32Array.from(floatData);
  }
  return { name, dims, data };
}
