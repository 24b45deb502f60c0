import { yoloLayoutsFor, type YoloLayout } from '../../../shared/inference/detect.js';
import type { DetectionPostprocessing } from '../../../shared/schemas/index.js';
import { FleetError } from '../../errors.js';

/** `edgeloop pack --task detection` options, as the flags give them. */
export interface DetectionOptions {
  decoder: 'yolo' | 'boxes-scores' | 'heatmap';
  /** yolo: the head layout when the output shape does not say (`--yolo-layout`). */
  yoloLayout?: YoloLayout | undefined;
  /** yolo, heatmap: the output to read (default: the first). */
  output?: string | undefined;
  /** boxes-scores: output names (default: found by name, then by shape). */
  boxes?: string | undefined;
  scores?: string | undefined;
  classes?: string | undefined;
  boxFormat?: 'xyxy' | 'yxyx' | undefined;
  normalized?: boolean | undefined;
  classOffset?: number | undefined;
  /** heatmap */
  threshold?: number | undefined;
  minArea?: number | undefined;
  expand?: number | undefined;
  /** heatmap: DB-style unclip ratio (`--unclip`): every side grows by area x ratio / perimeter. */
  unclip?: number | undefined;
  /** NMS */
  iou?: number | undefined;
  scoreThreshold?: number | undefined;
  maxDetections?: number | undefined;
  classAgnostic?: boolean | undefined;
  /** Letterbox pad value; implies fit contain. */
  padValue?: number | undefined;
}

/** A model output as ONNX Runtime describes it; `type` is its element type (`float32`, `int64`, ...) when known. */
type Output = { name: string; shape: Array<number | string>; type?: string | undefined };

const isInteger = (o: Output): boolean => o.type !== undefined && /int|bool/.test(o.type);

/** Which decoder each decoder-specific option belongs to, so one given to another decoder is refused rather than ignored. */
const OWNERS: Array<[keyof DetectionOptions, string, DetectionOptions['decoder'][]]> = [
  ['yoloLayout', '--yolo-layout', ['yolo']],
  ['output', '--output', ['yolo', 'heatmap']],
  ['boxes', '--boxes', ['boxes-scores']],
  ['scores', '--scores', ['boxes-scores']],
  ['classes', '--classes', ['boxes-scores']],
  ['boxFormat', '--box-format', ['boxes-scores']],
  ['normalized', '--normalized', ['boxes-scores']],
  ['classOffset', '--class-offset', ['boxes-scores']],
  ['threshold', '--threshold', ['heatmap']],
  ['minArea', '--min-area', ['heatmap']],
  ['expand', '--expand', ['heatmap']],
  ['unclip', '--unclip', ['heatmap']],
];

const shapeOf = (o: Output): string => `${o.name} [${o.shape.join(',')}]${o.type && o.type !== 'float32' ? ` ${o.type}` : ''}`;

function mismatch(message: string, outputs: readonly Output[]): FleetError {
  return new FleetError('PACK_DECODER_MISMATCH', `${message}; the model's outputs: ${outputs.map(shapeOf).join(', ')}`, { details: { outputs: outputs.map((o) => ({ name: o.name, shape: o.shape })) } });
}

function pickOutput(flag: string | undefined, outputs: readonly Output[], what: string): Output {
  const o = flag === undefined ? outputs[0] : outputs.find((x) => x.name === flag);
  if (!o) throw mismatch(`${what}: the model has no output ${flag}`, outputs);
  return o;
}

/** An output named like `pattern`, else the one `byShape` accepts, else undefined. */
function findOutput(outputs: readonly Output[], flag: string | undefined, pattern: RegExp, byShape: (o: Output) => boolean, taken: ReadonlySet<string>): Output | undefined {
  if (flag !== undefined) return outputs.find((o) => o.name === flag);
  const free = outputs.filter((o) => !taken.has(o.name));
  return free.find((o) => pattern.test(o.name)) ?? free.find(byShape);
}

/**
 * The `postprocessing` block of a detector from the pack options and the model's outputs. A
 * YOLO layout comes from the head's shape when only one fits (`[1, 4+C, N]` v8, `[1, N, 5+C]` v5,
 * `[1, K, 6]` end-to-end), else from `--yolo-layout`; a decoder that cannot read these outputs
 * is refused (`PACK_DECODER_MISMATCH`, naming the outputs found). Also the fit the decoder
 * expects by default: Ultralytics letterboxes (pad 114); the others stretch.
 */
export function detectionPostprocessing(o: DetectionOptions, outputs: readonly Output[], classes: number, fit: string | undefined): { post: DetectionPostprocessing; fit: 'fill' | 'contain' | 'cover' } {
  for (const [key, flag, owners] of OWNERS) {
    if (o[key] !== undefined && !owners.includes(o.decoder)) throw new FleetError('PACK_FLAG_UNUSED', `${flag} applies to the ${owners.join(' and ')} decoder, not ${o.decoder}`, { details: { flag } });
  }
  const nms = { iou_threshold: o.iou ?? 0.45, score_threshold: o.scoreThreshold ?? 0.25, max_detections: o.maxDetections ?? 100, class_agnostic: o.classAgnostic ?? false };
  let decoder: DetectionPostprocessing['decoder'];
  if (o.decoder === 'yolo') {
    const out = pickOutput(o.output, outputs, 'yolo');
    const fits = yoloLayoutsFor(out.shape, classes);
    const layout = o.yoloLayout ?? (fits.length === 1 ? fits[0] : undefined);
    if (fits.length === 0) throw mismatch(`yolo: output ${shapeOf(out)} is no YOLO head for ${classes} labels (v8/v11 [1,${4 + classes},N], v5 [1,N,${5 + classes}], end2end [1,K,6])`, outputs);
    if (!layout) throw mismatch(`yolo: output ${shapeOf(out)} fits ${fits.join(' and ')}; say which with --yolo-layout`, outputs);
    if (!fits.includes(layout)) throw mismatch(`yolo: --yolo-layout ${layout} does not fit output ${shapeOf(out)} with ${classes} labels (it fits ${fits.join(', ')})`, outputs);
    decoder = { name: 'yolo', layout, ...(o.output !== undefined || outputs.length > 1 ? { output: out.name } : {}) };
  } else if (o.decoder === 'boxes-scores') {
    const taken = new Set<string>();
    const boxes = findOutput(outputs, o.boxes, /box/i, (x) => x.shape.at(-1) === 4, taken);
    if (!boxes) throw mismatch(`boxes-scores: no boxes output${o.boxes ? ` ${o.boxes}` : ' (named like "boxes" or with a last dim of 4; name it with --boxes)'}`, outputs);
    taken.add(boxes.name);
    if (typeof boxes.shape.at(-1) === 'number' && boxes.shape.at(-1) !== 4) throw mismatch(`boxes-scores: boxes output ${shapeOf(boxes)} does not end in 4 coordinates`, outputs);
    const scores = findOutput(outputs, o.scores, /score|conf|prob/i, () => false, taken);
    if (!scores) throw mismatch(`boxes-scores: no scores output${o.scores ? ` ${o.scores}` : ' (named like "scores"; name it with --scores)'}`, outputs);
    taken.add(scores.name);
    if (isInteger(scores)) {
      // An export names its outputs in the order given to torch.onnx.export, whatever order the model returns them in:
      // torchvision's SSD returns boxes, scores, labels, and names copied from a Faster R-CNN example swap the last two.
      throw mismatch(`boxes-scores: scores output ${shapeOf(scores)} holds ${scores.type} values, which are class ids, not scores (were the output names given in another order than the model returns them? torchvision's SSD returns boxes, scores, labels); name the outputs with --scores and --classes`, outputs);
    }
    if (isInteger(boxes)) throw mismatch(`boxes-scores: boxes output ${shapeOf(boxes)} holds ${boxes.type} values, not coordinates; name the boxes output with --boxes`, outputs);
    const cls = o.classes !== undefined ? outputs.find((x) => x.name === o.classes) : outputs.find((x) => !taken.has(x.name) && /class|label/i.test(x.name));
    if (o.classes !== undefined && !cls) throw mismatch(`boxes-scores: no classes output ${o.classes}`, outputs);
    decoder = {
      name: 'boxes-scores',
      boxes: boxes.name,
      scores: scores.name,
      ...(cls ? { classes: cls.name } : {}),
      box_format: o.boxFormat ?? 'xyxy',
      normalized: o.normalized ?? false,
      class_offset: o.classOffset ?? 0,
    };
  } else {
    const out = pickOutput(o.output, outputs, 'heatmap');
    const planes = out.shape.length === 4 ? out.shape[1] : 1;
    if (out.shape.length < 2 || out.shape.length > 4 || (typeof planes === 'number' && planes !== 1 && planes !== classes)) {
      throw mismatch(`heatmap: output ${shapeOf(out)} is no probability map for ${classes} labels ([1,1,H,W], [1,${classes},H,W], [1,H,W] or [H,W])`, outputs);
    }
    decoder = { name: 'heatmap', ...(o.output !== undefined || outputs.length > 1 ? { output: out.name } : {}), threshold: o.threshold ?? 0.5, min_area: o.minArea ?? 1, expand: o.expand ?? 0, ...(o.unclip ? { unclip: o.unclip } : {}) };
  }
  const wantFit = fit ?? (o.decoder === 'yolo' || o.padValue !== undefined ? 'contain' : 'fill');
  if (wantFit !== 'fill' && wantFit !== 'contain' && wantFit !== 'cover') throw new FleetError('PACK_FLAG_UNUSED', `--fit ${wantFit}: a detector's boxes map back through fill, contain or cover`, { details: { flag: '--fit' } });
  if (o.padValue !== undefined && wantFit !== 'contain') throw new FleetError('PACK_FLAG_UNUSED', `--pad-value pads a letterbox, which is --fit contain, not ${wantFit}`, { details: { flag: '--pad-value' } });
  const letterbox = wantFit === 'contain' ? { letterbox: { pad_value: o.padValue ?? 114 } } : {};
  return { post: { kind: 'detection', decoder, nms, ...letterbox, top_k: 5 }, fit: wantFit };
}
