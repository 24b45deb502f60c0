import sharp from 'sharp';
import { EdgeloopError, sharedError } from '../errors.js';
import type { ImagePreprocessing, TensorSpec } from '../schemas/index.js';

export type InputTensor = Float32Array | Uint8Array;

export interface ImageTensor {
  data: InputTensor;
  /** Dims of one example, without the batch dimension. */
  itemDims: number[];
  stats: { brightness: number; contrast: number };
  source: { format: string; width: number; height: number };
}

const ACCEPTED = new Set(['jpeg', 'png', 'webp']);

export const CONTENT_TYPES: Record<string, string> = { jpeg: 'image/jpeg', png: 'image/png', webp: 'image/webp' };

/**
 * Image bytes -> model tensor, as the manifest says: decode (JPEG/PNG/WebP), resize with the
 * fit mode, colour, layout and dtype. sharp runs on libuv's pool, off the event loop.
 * Brightness/contrast (mean and standard deviation of luminance, 0..1) feed drift monitoring.
 */
export async function imageToTensor(bytes: Uint8Array, p: ImagePreprocessing): Promise<ImageTensor> {
  if (bytes.length === 0) throw sharedError('IMAGE_DECODE_FAILED', 'image is empty');
  let meta: sharp.Metadata;
  let raw: { data: Buffer; info: sharp.OutputInfo };
  try {
    const img = sharp(bytes, { failOn: 'error', limitInputPixels: 64_000_000 });
    meta = await img.metadata();
    if (!meta.format || !ACCEPTED.has(meta.format)) {
      throw sharedError('UNSUPPORTED_MEDIA_TYPE', `image format ${meta.format ?? 'unknown'} is not supported (JPEG, PNG or WebP)`);
    }
    let pipe = img.resize(p.width, p.height, { fit: p.fit, background: { r: 0, g: 0, b: 0 } }).removeAlpha();
    pipe = p.color === 'grayscale' ? pipe.grayscale() : pipe.toColourspace('srgb');
    raw = await pipe.raw().toBuffer({ resolveWithObject: true });
  } catch (err) {
    if (err instanceof EdgeloopError) throw err;
    throw sharedError('IMAGE_DECODE_FAILED', `image could not be decoded: ${(err as Error).message}`, { cause: err });
  }
  const channels = p.color === 'grayscale' ? 1 : 3;
  const { data, info } = raw;
  // `fit: inside/outside` may yield another size than asked: the model needs exact dims.
  if (info.width !== p.width || info.height !== p.height) {
    throw sharedError('TENSOR_SHAPE_MISMATCH', `resize gave ${info.width}x${info.height}, model expects ${p.width}x${p.height}; use fit fill, cover or contain`);
  }
  const pixels = p.width * p.height;
  const srcCh = info.channels;
  const out: InputTensor = p.dtype === 'uint8' ? new Uint8Array(pixels * channels) : new Float32Array(pixels * channels);
  const nchw = p.layout === 'NCHW';
  let sum = 0;
  let sumSq = 0;
  for (let i = 0; i < pixels; i++) {
    let lum = 0;
    for (let c = 0; c < channels; c++) {
      // A grey source asked for as RGB repeats its one channel.
      const px = data[i * srcCh + Math.min(c, srcCh - 1)] as number;
      lum += px;
      const v = p.invert ? 255 - px : px;
      const at = nchw ? c * pixels + i : i * channels + c;
      if (p.dtype === 'uint8') out[at] = v;
      else out[at] = (v * p.scale - (p.mean[c] ?? p.mean[0] ?? 0)) / (p.std[c] ?? p.std[0] ?? 1);
    }
    lum /= channels * 255;
    sum += lum;
    sumSq += lum * lum;
  }
  const mean = sum / pixels;
  const contrast = Math.sqrt(Math.max(0, sumSq / pixels - mean * mean));
  return {
    data: out,
    itemDims: nchw ? [channels, p.height, p.width] : [p.height, p.width, channels],
    stats: { brightness: mean, contrast },
    source: { format: meta.format ?? 'unknown', width: meta.width ?? 0, height: meta.height ?? 0 },
  };
}

/** Fixed dims of one example of a model input (the leading batch dim dropped). */
export function itemDimsOf(spec: TensorSpec): number[] {
  const dims = spec.shape.slice(1);
  return dims.map((d) => (typeof d === 'number' ? d : -1));
}

/**
 * JSON numbers -> tensor for tabular/sensor models. Accepts one flat example, a flat
 * array with an explicit shape, or rows (a batch). Every mismatch names the expected shape.
 */
export function jsonToTensor(tensor: number[] | number[][], spec: TensorSpec, shape?: number[]): { data: InputTensor; batch: number; itemDims: number[] } {
  const item = itemDimsOf(spec);
  if (item.some((d) => d < 0)) throw sharedError('MODEL_PACKAGE_INVALID', `input ${spec.name} has symbolic non-batch dims; tensor input needs fixed dims`);
  const itemSize = item.reduce((a, b) => a * b, 1);
  const rows: number[][] = Array.isArray(tensor[0]) ? (tensor as number[][]) : [tensor as number[]];
  const flat = rows.flat();
  if (flat.some((x) => typeof x !== 'number' || !Number.isFinite(x))) throw sharedError('INPUT_INVALID', 'tensor values must be finite numbers');
  if (shape) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== flat.length) throw sharedError('TENSOR_SHAPE_MISMATCH', `shape [${shape.join(',')}] does not match ${flat.length} values`);
  }
  if (flat.length === 0 || flat.length % itemSize !== 0 || rows.some((r) => r.length !== rows[0]!.length)) {
    throw sharedError('TENSOR_SHAPE_MISMATCH', `input ${spec.name} expects [batch,${item.join(',')}] (${itemSize} values per example), got ${flat.length} values`, {
      details: { expected: spec.shape, got: shape ?? [rows.length, rows[0]?.length ?? 0] },
    });
  }
  const data = spec.dtype === 'uint8' ? Uint8Array.from(flat) : Float32Array.from(flat);
  return { data, batch: flat.length / itemSize, itemDims: item };
}
