import sharp from 'sharp';
import { isEdgeloopError, sharedError } from '../errors.js';
import type { ImagePreprocessing, TensorSpec } from '../schemas/index.js';
import type { Geometry } from './detect.js';
import { imageSize } from './image-size.js';

export type InputTensor = Float32Array | Uint8Array;

export interface ImageTensor {
  data: InputTensor;
  /** Dims of one example, without the batch dimension. */
  itemDims: number[];
  stats: { brightness: number; contrast: number };
  source: { format: string; width: number; height: number };
  /** How the original maps onto the tensor; only when asked for (`withGeometry`), as detectors need it to map boxes back. */
  geometry?: Geometry;
}

export interface ImageTensorOptions {
  /** Read the original size and return the mapping (one header read more per frame). */
  withGeometry?: boolean;
  /** Letterbox pad value (0..255) for fit `contain`; default black. */
  padValue?: number;
  /** Where to write the tensor (every value is written), when its type and length fit; else a new array. */
  out?: InputTensor;
}

export const CONTENT_TYPES: Record<string, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

/** The container format from the first bytes (cheaper than asking libvips for metadata). */
export function sniffImageFormat(b: Uint8Array): 'jpeg' | 'png' | 'webp' | 'gif' | 'tiff' | 'unknown' {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  if (b.length >= 8 && b[0] === 0x89 && b[1] === 0x50 && b[2] === 0x4e && b[3] === 0x47) return 'png';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45 && b[10] === 0x42 && b[11] === 0x50) return 'webp';
  if (b.length >= 3 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46) return 'gif';
  if (b.length >= 4 && ((b[0] === 0x49 && b[1] === 0x49) || (b[0] === 0x4d && b[1] === 0x4d))) return 'tiff';
  return 'unknown';
}

/**
 * Image bytes -> model tensor, as the manifest says: decode (JPEG/PNG/WebP), resize with the
 * fit mode, colour, layout and dtype. sharp runs on libuv's pool, off the event loop.
 * Brightness/contrast (mean and standard deviation of luminance, 0..1) feed drift monitoring.
 */
export async function imageToTensor(bytes: Uint8Array, p: ImagePreprocessing, opts: ImageTensorOptions = {}): Promise<ImageTensor> {
  if (bytes.length === 0) throw sharedError('IMAGE_DECODE_FAILED', 'image is empty');
  const format = sniffImageFormat(bytes);
  if (format === 'gif' || format === 'tiff') throw sharedError('UNSUPPORTED_MEDIA_TYPE', `image format ${format} is not supported (JPEG, PNG or WebP)`);
  if (format === 'unknown') throw sharedError('IMAGE_DECODE_FAILED', 'image could not be decoded: not a JPEG, PNG or WebP file');
  let raw: { data: Buffer; info: sharp.OutputInfo };
  let geometry: Geometry | undefined;
  try {
    let pipe = sharp(bytes, { failOn: 'error', limitInputPixels: 64_000_000 });
    if (opts.withGeometry) {
      const size = imageSize(bytes) ?? (await sharp(bytes, { failOn: 'error', limitInputPixels: 64_000_000 }).metadata());
      const planned = placeImage(size.width ?? 0, size.height ?? 0, p);
      geometry = planned.geometry;
      pipe = planned.apply(pipe, opts.padValue ?? 0);
    } else {
      pipe = pipe.resize(p.width, p.height, { fit: p.fit, background: { r: 0, g: 0, b: 0 } });
    }
    pipe = pipe.removeAlpha();
    pipe = p.color === 'grayscale' ? pipe.grayscale() : pipe.toColourspace('srgb');
    raw = await pipe.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (isEdgeloopError(err)) throw err;
    throw sharedError('IMAGE_DECODE_FAILED', `image could not be decoded: ${(err as Error).message}`, { cause: err });
  }
  const { data, info } = raw;
  // `fit: inside/outside` may yield another size than asked: the model needs exact dims.
  if (info.width !== p.width || info.height !== p.height) {
    throw sharedError('TENSOR_SHAPE_MISMATCH', `resize gave ${info.width}x${info.height}, model expects ${p.width}x${p.height}; use fit fill, cover or contain`);
  }
  const channels = p.color === 'grayscale' ? 1 : 3;
  const out = convertPixels(data, info.channels, channels, p, opts.out);
  return {
    data: out,
    itemDims: p.layout === 'NCHW' ? [channels, p.height, p.width] : [p.height, p.width, channels],
    stats: luminanceStats(data, info.channels),
    source: { format, width: info.width, height: info.height },
    ...(geometry ? { geometry } : {}),
  };
}

/**
 * Where an original of `w0` x `h0` lands in the model input, done by hand rather than by sharp's
 * own `contain`/`cover` so the offsets used to map boxes back are the ones the pixels went
 * through: `fill` stretches; `contain` scales to fit and pads evenly (the letterbox, pad value
 * settable); `cover` scales to fill and crops the centre.
 */
export function placeImage(w0: number, h0: number, p: ImagePreprocessing): { geometry: Geometry; apply: (s: sharp.Sharp, pad: number) => sharp.Sharp } {
  if (!(w0 > 0 && h0 > 0)) throw sharedError('IMAGE_DECODE_FAILED', 'image could not be decoded: no size in its header');
  const W = p.width;
  const H = p.height;
  if (p.fit === 'contain' || p.fit === 'cover') {
    const r = p.fit === 'contain' ? Math.min(W / w0, H / h0) : Math.max(W / w0, H / h0);
    const nw = Math.max(1, Math.round(w0 * r));
    const nh = Math.max(1, Math.round(h0 * r));
    const left = Math.floor((W - nw) / 2);
    const top = Math.floor((H - nh) / 2);
    const geometry: Geometry = { width: w0, height: h0, scaleX: nw / w0, scaleY: nh / h0, padX: left, padY: top };
    return {
      geometry,
      apply: (s, pad) => {
        const resized = s.resize(nw, nh, { fit: 'fill' });
        if (p.fit === 'cover') return resized.extract({ left: -left, top: -top, width: W, height: H });
        return resized.extend({ left, top, right: W - nw - left, bottom: H - nh - top, background: { r: pad, g: pad, b: pad } });
      },
    };
  }
  if (p.fit !== 'fill') throw sharedError('TENSOR_SHAPE_MISMATCH', `fit ${p.fit} does not give the model's exact size; a detector uses fill, contain or cover`);
  return { geometry: { width: w0, height: h0, scaleX: W / w0, scaleY: H / h0, padX: 0, padY: 0 }, apply: (s) => s.resize(W, H, { fit: 'fill' }) };
}

/**
 * Interleaved 8-bit pixels -> the model's layout and dtype. Per channel the float value is
 * v * a + b with a = scale/std and b = -mean/std folded in advance: this loop runs for every
 * pixel of every frame, so it does one multiply-add per value.
 */
function convertPixels(src: Buffer, srcCh: number, channels: number, p: ImagePreprocessing, into?: InputTensor): InputTensor {
  const pixels = p.width * p.height;
  const nchw = p.layout === 'NCHW';
  const fits = into !== undefined && into.length === pixels * channels && (p.dtype === 'uint8') === into instanceof Uint8Array;
  const out: InputTensor = fits ? into : p.dtype === 'uint8' ? new Uint8Array(pixels * channels) : new Float32Array(pixels * channels);
  for (let c = 0; c < channels; c++) {
    // A grey source asked for as RGB repeats its one channel.
    const sc = Math.min(c, srcCh - 1);
    const std = p.std[c] ?? p.std[0] ?? 1;
    const mean = p.mean[c] ?? p.mean[0] ?? 0;
    let a = p.scale / std;
    let b = -mean / std;
    if (p.invert) {
      // (255 - v) * s = v * (-s) + 255 * s
      b += (255 * p.scale) / std;
      a = -a;
    }
    const base = nchw ? c * pixels : c;
    const step = nchw ? 1 : channels;
    if (p.dtype === 'uint8') {
      for (let i = 0, o = base; i < pixels; i++, o += step) {
        const v = src[i * srcCh + sc] as number;
        out[o] = p.invert ? 255 - v : v;
      }
    } else {
      for (let i = 0, o = base; i < pixels; i++, o += step) out[o] = (src[i * srcCh + sc] as number) * a + b;
    }
  }
  return out;
}

/** Mean and standard deviation of luminance (0..1) over every 4th pixel: plenty for drift statistics. */
function luminanceStats(src: Buffer, ch: number): { brightness: number; contrast: number } {
  let sum = 0;
  let sumSq = 0;
  let n = 0;
  for (let i = 0; i < src.length; i += ch * 4) {
    let v = src[i] as number;
    if (ch >= 3) v = ((src[i] as number) + (src[i + 1] as number) + (src[i + 2] as number)) / 3;
    v /= 255;
    sum += v;
    sumSq += v * v;
    n++;
  }
  const mean = n ? sum / n : 0;
  return { brightness: mean, contrast: Math.sqrt(Math.max(0, (n ? sumSq / n : 0) - mean * mean)) };
}

/** Fixed dims of one example of a model input (the leading batch dim dropped, when it has one): the resolved `dims` when the manifest has them, -1 for a dim still symbolic. */
export function itemDimsOf(spec: TensorSpec): number[] {
  const dims = (spec.dims ?? spec.shape).slice(spec.batch_dim === false ? 0 : 1);
  return dims.map((d) => (typeof d === 'number' ? d : -1));
}

/**
 * The dims to feed `batch` stacked examples of `itemDims` with: `[batch, ...itemDims]`, or the
 * example's own dims for an input without a batch dim (one example per run).
 */
export function feedDimsOf(spec: Pick<TensorSpec, 'batch_dim'>, itemDims: readonly number[], batch = 1): number[] {
  if (spec.batch_dim !== false) return [batch, ...itemDims];
  if (batch !== 1) throw new Error(`input without a batch dim takes one example per run, not ${batch}`);
  return [...itemDims];
}

/** Tensor values as requests carry them: one flat example, a flat array with a shape, rows (a batch), or the same as a Float64Array. */
export type TensorValues = number[] | number[][] | Float64Array;

/**
 * JSON numbers -> tensor for tabular/sensor models. Accepts one flat example, a flat
 * array with an explicit shape, or rows (a batch). Every mismatch names the expected shape.
 * A Float64Array (a large body parsed off the event loop) is converted natively, no copy per value in JS.
 */
export function jsonToTensor(tensor: TensorValues, spec: TensorSpec, shape?: number[]): { data: InputTensor; batch: number; itemDims: number[] } {
  const item = itemDimsOf(spec);
  if (item.some((d) => d < 0)) throw sharedError('MODEL_PACKAGE_INVALID', `input ${spec.name} has symbolic non-batch dims; tensor input needs fixed dims`);
  const itemSize = item.reduce((a, b) => a * b, 1);
  const rows: number[][] | null = tensor instanceof Float64Array ? null : Array.isArray(tensor[0]) ? (tensor as number[][]) : [tensor as number[]];
  const flat: ArrayLike<number> = rows ? rows.flat() : (tensor as Float64Array);
  for (let i = 0; i < flat.length; i++) {
    const x = flat[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw sharedError('INPUT_INVALID', 'tensor values must be finite numbers');
  }
  if (shape) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== flat.length) throw sharedError('TENSOR_SHAPE_MISMATCH', `shape [${shape.join(',')}] does not match ${flat.length} values`);
  }
  if (flat.length === 0 || flat.length % itemSize !== 0 || (rows && rows.some((r) => r.length !== rows[0]!.length))) {
    throw sharedError('TENSOR_SHAPE_MISMATCH', `input ${spec.name} expects [batch,${item.join(',')}] (${itemSize} values per example), got ${flat.length} values`, {
      details: { expected: spec.shape, got: shape ?? (rows ? [rows.length, rows[0]?.length ?? 0] : [1, flat.length]) },
    });
  }
  const data = spec.dtype === 'uint8' ? Uint8Array.from(flat) : rows ? Float32Array.from(flat) : new Float32Array(flat as Float64Array);
  return { data, batch: flat.length / itemSize, itemDims: item };
}
