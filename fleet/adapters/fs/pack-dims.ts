import { FleetError } from '../../errors.js';

/** What the pack flags say about an input's dims. */
export interface DimFlags {
  width?: number | undefined;
  height?: number | undefined;
  /** `--channels`. */
  channels?: number | undefined;
  /** The count `--color` implies: fills a symbolic channel dim, never checked against a fixed one (the caller names `--color` then). */
  colorChannels?: number | undefined;
  layout?: 'NCHW' | 'NHWC' | undefined;
  /** `--dim NAME=N`: a symbolic dim by the name the model gives it. */
  named?: Record<string, number> | undefined;
  /** `--tensor`: never an image, whatever the shape. */
  tensor?: boolean | undefined;
}

/** Defaults the model file records (Ultralytics exports write `imgsz` in `metadata_props`). */
export interface RecordedDims {
  height?: number;
  width?: number;
  source?: string;
}

/** Where the image axes sit in an image input: 4-D with a batch dim first, or 3-D with none. */
export interface ImageAxes {
  layout: 'NCHW' | 'NHWC';
  c: number;
  h: number;
  w: number;
  /** False for a 3-D input without a batch dim (torchvision detection exports take one `[3, H, W]` image). */
  batched: boolean;
}

export interface ResolvedInput {
  /** One entry per shape entry, every one a size; a symbolic batch dim is 1. */
  dims: number[];
  /** Whether a dim after the batch dim (any dim, without one) was symbolic (then the manifest records `dims`). */
  dynamic: boolean;
  /** False when the input has no batch dim (a 3-D image input): every dim is the example's. */
  batched: boolean;
  image: { layout: 'NCHW' | 'NHWC'; channels: 1 | 3; height: number; width: number } | null;
}

const isChannel = (d: number | string | undefined, flag: number | undefined): boolean => d === 1 || d === 3 || (typeof d === 'string' && (flag === 1 || flag === 3));

/**
 * The image axes of an input: a 4-D input's channel axis is the one of size 1 or 3 (NCHW first,
 * as PyTorch exports), or a symbolic one when `--channels`/`--color` says 1 or 3. H and W may be
 * symbolic. `--layout` picks the side when given. A 3-D input is one image without a batch dim
 * (torchvision's detection exports: `[3, H, W]`): CHW when its first dim is 3 (or 1 or symbolic
 * with `--channels`/`--color` saying so), HWC only with `--layout NHWC` (a `[batch, steps, 3]`
 * sensor tensor must stay a tensor). Null when the input is not image-shaped.
 */
export function imageAxes(shape: ReadonlyArray<number | string>, flags: Pick<DimFlags, 'channels' | 'layout' | 'tensor'> = {}): ImageAxes | null {
  if (flags.tensor) return null;
  if (shape.length === 3) {
    const given = flags.channels === 1 || flags.channels === 3;
    const fits = (d: number | string | undefined): boolean => d === 3 || ((d === 1 || typeof d === 'string') && given);
    if (flags.layout === 'NHWC') return fits(shape[2]) ? { layout: 'NHWC', c: 2, h: 0, w: 1, batched: false } : null;
    return fits(shape[0]) ? { layout: 'NCHW', c: 0, h: 1, w: 2, batched: false } : null;
  }
  if (shape.length !== 4) return null;
  const nchw = isChannel(shape[1], flags.channels);
  const nhwc = isChannel(shape[3], flags.channels);
  if (flags.layout === 'NCHW' || (!flags.layout && nchw)) return nchw ? { layout: 'NCHW', c: 1, h: 2, w: 3, batched: true } : null;
  if (flags.layout === 'NHWC' || (!flags.layout && nhwc)) return nhwc ? { layout: 'NHWC', c: 3, h: 1, w: 2, batched: true } : null;
  return null;
}

/** Ultralytics' `imgsz` (`[640, 640]` or `640`) as height and width. */
export function recordedDims(metadata: Record<string, string>): RecordedDims {
  const raw = metadata.imgsz;
  if (raw === undefined) return {};
  const nums = raw.match(/\d+/g)?.map(Number) ?? [];
  const [h, w] = nums.length === 1 ? [nums[0], nums[0]] : nums;
  return h && w && h > 0 && w > 0 ? { height: h, width: w, source: 'imgsz in the model metadata' } : {};
}

/**
 * Every dim of the model's input as the agent will feed it. A fixed dim is the model's; a
 * symbolic one is filled from `--dim NAME=N`, then the image flags for the H/W/C axes, then a
 * default the model records; a symbolic batch dim is 1 (the agent stacks examples itself). A 3-D
 * image input has no batch dim: its first dim is the channel dim. Only
 * a dim filled by none of these is refused (`PACK_DIM_UNRESOLVED`, naming the dim and its flag),
 * and a flag that would change nothing, or disagrees with the model, is refused too
 * (`PACK_FLAG_UNUSED`): a size the device would not use must not pass silently.
 */
export function resolveInputDims(inputName: string, shape: ReadonlyArray<number | string>, flags: DimFlags, recorded: RecordedDims = {}): ResolvedInput {
  const named = flags.named ?? {};
  const axes = imageAxes(shape, { ...flags, channels: flags.channels ?? flags.colorChannels });
  const batched = axes?.batched ?? true;
  const axisFlag = (i: number): { flag: string; value: number | undefined; recorded?: number | undefined } | null => {
    if (!axes) return null;
    if (i === axes.h) return { flag: '--height', value: flags.height, recorded: recorded.height };
    if (i === axes.w) return { flag: '--width', value: flags.width, recorded: recorded.width };
    if (i === axes.c) return { flag: '--channels', value: flags.channels };
    return null;
  };
  const used = new Set<string>();
  const dims = shape.map((d, i) => {
    const axis = axisFlag(i);
    if (typeof d === 'number') {
      if (axis?.value !== undefined && axis.value !== d) {
        throw new FleetError('PACK_FLAG_UNUSED', `${axis.flag} ${axis.value} disagrees with input ${inputName}, whose dim ${i} is fixed at ${d}`, { details: { input: inputName, dim: i, fixed: d, flag: axis.flag } });
      }
      return d;
    }
    const byName = named[d];
    if (byName !== undefined) used.add(d);
    if (byName !== undefined && axis?.value !== undefined && axis.value !== byName) {
      throw new FleetError('PACK_FLAG_UNUSED', `--dim ${d}=${byName} and ${axis.flag} ${axis.value} disagree on input ${inputName} dim ${i}`, { details: { input: inputName, dim: d } });
    }
    const fromColor = axes && i === axes.c ? flags.colorChannels : undefined;
    const value = byName ?? axis?.value ?? fromColor ?? (i === 0 && batched ? 1 : axis?.recorded);
    if (value === undefined) {
      const flag = axis && axis.flag !== '--channels' ? `${axis.flag} N or --dim ${d}=N` : `--dim ${d}=N`;
      throw new FleetError('PACK_DIM_UNRESOLVED', `input ${inputName} dim ${i} (${JSON.stringify(d)}) is symbolic and no flag gives it: set it with ${flag}`, { details: { input: inputName, dim: d, index: i, flag } });
    }
    if (!Number.isInteger(value) || value < 1) throw new FleetError('USAGE', `dim ${JSON.stringify(d)} of input ${inputName} must be a positive integer, got ${value}`);
    // The agent feeds one example per run and stacks a symbolic batch dim itself.
    if (i === 0 && batched && value !== 1) throw new FleetError('PACK_FLAG_UNUSED', `--dim ${d}=${value}: the agent feeds one example per run and batches a symbolic batch dim itself; leave the batch dim out`, { details: { input: inputName, dim: d } });
    return value;
  });
  // One symbolic name at two places is one size: the model ties them (a square `size`).
  shape.forEach((d, i) => {
    if (typeof d !== 'string') return;
    const j = shape.indexOf(d);
    if (j !== i && dims[j] !== dims[i]) throw new FleetError('PACK_FLAG_UNUSED', `input ${inputName} uses the dim ${JSON.stringify(d)} twice; ${dims[j]} and ${dims[i]} were given for it`, { details: { input: inputName, dim: d } });
  });
  const unknown = Object.keys(named).filter((n) => !used.has(n));
  if (unknown.length) {
    const symbolic = shape.filter((d): d is string => typeof d === 'string');
    throw new FleetError('PACK_FLAG_UNUSED', `--dim ${unknown.join(', ')}: input ${inputName} [${shape.join(',')}] has no such symbolic dim${symbolic.length ? ` (it has ${symbolic.join(', ')})` : ''}`, { details: { input: inputName, unknown } });
  }
  const channels = axes ? dims[axes.c] : undefined;
  const image = axes && (channels === 1 || channels === 3) ? { layout: axes.layout, channels: channels as 1 | 3, height: dims[axes.h]!, width: dims[axes.w]! } : null;
  return { dims, dynamic: shape.slice(batched ? 1 : 0).some((d) => typeof d === 'string'), batched, image };
}
