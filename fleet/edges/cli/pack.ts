import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { numberFlag, parseFlags, type Io } from '../../../shared/cli.js';
import { FleetError } from '../../errors.js';
import { packModel, readLabels } from '../../adapters/fs/pack.js';

export const PACK_HELP = `Usage: edgeloop pack MODEL.onnx --labels FILE --out DIR [options]

Builds a model package (manifest.json + files, sha256 of each, optional ed25519 signature)
from any classification or detection ONNX file (PyTorch, Keras, Ultralytics, torchvision,
TF object-detection, scikit-learn exports...).

  --labels FILE         class labels, one per line (or a JSON array)             (required)
  --out DIR             output directory                                          (required)
  --name NAME           model name (default: the file name)
  --version X.Y.Z       semantic version (default 0.1.0)
  --sign-key FILE       ed25519 private key (PEM) to sign with (edgeloop keygen makes one)
  --width N --height N  resize target; fills symbolic H/W dims (default: the model's
                        fixed dims, else the imgsz its metadata records)
  --channels 1|3        channel count when the model's channel dim is symbolic
  --dim NAME=N          size of a symbolic input dim by its name (repeatable)
  --color rgb|grayscale (default: from the input's channel count)
  --layout NCHW|NHWC    (default: guessed from the input shape)
  --dtype float32|uint8 (default: the input's type)
  --fit fill|cover|contain|inside|outside  (default fill)
  --scale N             pixel multiplier (default 1/255 for float32, 1 for uint8)
  --mean a,b,c --std a,b,c  per-channel normalisation after scaling (default 0 / 1)
  --invert              invert intensities (white-on-black models such as MNIST)
  --tensor              tabular/sensor model: JSON number input, no image preprocessing
  --softmax             the model outputs logits; apply softmax on the device
  --top-k N             top-k entries in results (default 5)
  --baseline PATH       reference images (a directory of them, or files; repeatable): the
                        scenes the device will see in their usual conditions. pack runs the
                        model on each and records the drift baseline the device compares its
                        recent inputs with (class shares, brightness, contrast; a detector's
                        boxes per frame, scores and sizes). Without it a device reports no drift
  --golden FILE[=LABEL] golden image for the on-device smoke test (repeatable): the model
                        must predict LABEL for it here, or pack refuses (FLEET_GOLDEN_MISMATCH:
                        usually a preprocessing flag such as --invert); without =LABEL the
                        model's prediction now is recorded. Without any golden input pack
                        warns and 'models push' refuses the package unless --force
                        (a detector: its best box)

Detection (--task detection --decoder NAME; labels may be a single class):
  --decoder yolo|boxes-scores|heatmap
  --yolo-layout v5|v8|end2end   YOLO head: v5 [1,N,5+C], v8/v11 [1,4+C,N], end2end [1,K,6]
                        (default: read from the output's shape when only one fits)
  --output NAME         yolo/heatmap: the output to decode (default: the first)
  --boxes NAME --scores NAME --classes NAME   boxes-scores outputs (default: found by name)
  --box-format xyxy|yxyx  --normalized  --class-offset N   boxes-scores box coordinates
  --threshold P --min-area N --expand F   heatmap: cut-off, smallest component, box growth
                        (a fraction of the box's width and height on every side)
  --unclip R            heatmap: grow every side by area x R / perimeter of the component, as
                        DB text detectors (PaddleOCR: 1.5) expect of their shrunk maps
  --iou P --score-threshold P --max-detections N --class-agnostic   NMS (0.45, 0.25, 100)
  --pad-value N         letterbox pad (0-255, default 114; yolo letterboxes by default,
                        the others stretch unless --fit contain)
  --json                print the manifest as JSON`;

const list = (v: string | undefined): number[] | undefined => (v === undefined ? undefined : v.split(',').map((x) => Number(x)));

export async function packCmd(argv: string[], io: Io): Promise<number> {
  const { values, positionals } = parseFlags(
    argv,
    {
      labels: { type: 'string' },
      out: { type: 'string', short: 'o' },
      name: { type: 'string' },
      version: { type: 'string' },
      'sign-key': { type: 'string' },
      width: { type: 'string' },
      channels: { type: 'string' },
      dim: { type: 'string', multiple: true },
      height: { type: 'string' },
      color: { type: 'string' },
      layout: { type: 'string' },
      dtype: { type: 'string' },
      fit: { type: 'string' },
      scale: { type: 'string' },
      mean: { type: 'string' },
      std: { type: 'string' },
      invert: { type: 'boolean' },
      tensor: { type: 'boolean' },
      softmax: { type: 'boolean' },
      'top-k': { type: 'string' },
      golden: { type: 'string', multiple: true },
      baseline: { type: 'string', multiple: true },
      task: { type: 'string' },
      decoder: { type: 'string' },
      'yolo-layout': { type: 'string' },
      output: { type: 'string' },
      boxes: { type: 'string' },
      scores: { type: 'string' },
      classes: { type: 'string' },
      'box-format': { type: 'string' },
      normalized: { type: 'boolean' },
      'class-offset': { type: 'string' },
      threshold: { type: 'string' },
      'min-area': { type: 'string' },
      expand: { type: 'string' },
      unclip: { type: 'string' },
      iou: { type: 'string' },
      'score-threshold': { type: 'string' },
      'max-detections': { type: 'string' },
      'class-agnostic': { type: 'boolean' },
      'pad-value': { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    PACK_HELP,
  );
  if (values.help) {
    io.out(PACK_HELP);
    return 0;
  }
  const onnx = positionals[0];
  if (!onnx || !values.labels || !values.out) throw new FleetError('USAGE', `MODEL.onnx, --labels and --out are required\n\n${PACK_HELP}`);
  const pick = <T extends string>(v: string | undefined, allowed: readonly T[], flag: string): T | undefined => {
    if (v === undefined) return undefined;
    if (!allowed.includes(v as T)) throw new FleetError('USAGE', `--${flag} must be one of ${allowed.join(', ')}`);
    return v as T;
  };
  const image = Object.fromEntries(
    Object.entries({
      width: numberFlag(values.width, 'width'),
      height: numberFlag(values.height, 'height'),
      color: pick(values.color, ['rgb', 'grayscale'] as const, 'color'),
      layout: pick(values.layout, ['NCHW', 'NHWC'] as const, 'layout'),
      dtype: pick(values.dtype, ['float32', 'uint8'] as const, 'dtype'),
      fit: pick(values.fit, ['fill', 'cover', 'contain', 'inside', 'outside'] as const, 'fit'),
      scale: numberFlag(values.scale, 'scale'),
      mean: list(values.mean),
      std: list(values.std),
      invert: values.invert,
    }).filter(([, v]) => v !== undefined),
  );
  const dims: Record<string, number> = {};
  for (const d of values.dim ?? []) {
    const at = d.lastIndexOf('=');
    const n = Number(d.slice(at + 1));
    if (at <= 0 || !Number.isInteger(n) || n < 1) throw new FleetError('USAGE', `--dim takes NAME=N with N a positive integer, got ${JSON.stringify(d)}`);
    dims[d.slice(0, at)] = n;
  }
  const channels = numberFlag(values.channels, 'channels');
  if (channels !== undefined && channels !== 1 && channels !== 3) throw new FleetError('USAGE', '--channels must be 1 or 3');
  const task = pick(values.task, ['classification', 'detection'] as const, 'task') ?? 'classification';
  const decoderFlags = {
    yoloLayout: pick(values['yolo-layout'], ['v5', 'v8', 'end2end'] as const, 'yolo-layout'),
    output: values.output,
    boxes: values.boxes,
    scores: values.scores,
    classes: values.classes,
    boxFormat: pick(values['box-format'], ['xyxy', 'yxyx'] as const, 'box-format'),
    normalized: values.normalized,
    classOffset: numberFlag(values['class-offset'], 'class-offset'),
    threshold: numberFlag(values.threshold, 'threshold'),
    minArea: numberFlag(values['min-area'], 'min-area'),
    expand: numberFlag(values.expand, 'expand'),
    unclip: numberFlag(values.unclip, 'unclip'),
    iou: numberFlag(values.iou, 'iou'),
    scoreThreshold: numberFlag(values['score-threshold'], 'score-threshold'),
    maxDetections: numberFlag(values['max-detections'], 'max-detections'),
    classAgnostic: values['class-agnostic'],
    padValue: numberFlag(values['pad-value'], 'pad-value'),
  };
  const decoder = pick(values.decoder, ['yolo', 'boxes-scores', 'heatmap'] as const, 'decoder');
  const givenDecoderFlags = Object.entries(decoderFlags).filter(([, v]) => v !== undefined);
  if (task !== 'detection' && (decoder || givenDecoderFlags.length)) throw new FleetError('USAGE', '--decoder and the detection flags need --task detection');
  if (task === 'detection' && !decoder) throw new FleetError('USAGE', '--task detection needs --decoder yolo|boxes-scores|heatmap');
  const golden = (values.golden ?? []).map((g) => {
    const at = g.lastIndexOf('=');
    return at > 0 ? { file: g.slice(0, at), label: g.slice(at + 1) } : { file: g };
  });
  const { dir, manifest, warnings } = await packModel({
    onnxPath: onnx,
    outDir: values.out,
    labels: await readLabels(values.labels, task === 'detection' ? 1 : 2),
    task,
    ...(decoder ? { detection: { decoder, ...Object.fromEntries(givenDecoderFlags) } } : {}),
    ...(values.name ? { name: values.name } : {}),
    ...(values.version ? { version: values.version } : {}),
    image,
    tensorInput: values.tensor ?? false,
    ...(channels !== undefined ? { channels } : {}),
    dims,
    softmax: values.softmax ?? false,
    ...(values['top-k'] ? { topK: numberFlag(values['top-k'], 'top-k')! } : {}),
    golden,
    ...(values.baseline ? { baseline: await baselineFiles(values.baseline) } : {}),
    ...(values['sign-key'] ? { signKeyPem: await readFile(values['sign-key'], 'utf8') } : {}),
  });
  for (const w of warnings) io.err(`warning: ${w}`);
  if (values.json) io.out(JSON.stringify(manifest));
  else {
    const p = manifest.preprocessing;
    io.out(`packed ${manifest.name}@${manifest.version} -> ${dir}`);
    io.out(`  input ${manifest.inputs[0]!.name} [${manifest.inputs[0]!.shape.join(',')}] ${p.kind === 'image' ? `${p.width}x${p.height} ${p.color} ${p.layout} ${p.dtype}` : 'tensor'}`);
    if (manifest.task === 'detection') {
      const pp = manifest.postprocessing;
      const d = pp.decoder;
      io.out(`  detection: ${d.name}${d.name === 'yolo' ? ` ${d.layout}` : ''}, ${p.kind === 'image' ? `fit ${p.fit}` : ''}${pp.letterbox ? ` (pad ${pp.letterbox.pad_value})` : ''}, NMS iou ${pp.nms.iou_threshold} score ${pp.nms.score_threshold} max ${pp.nms.max_detections}`);
    }
    io.out(`  ${manifest.labels.length} labels, ${manifest.golden.length} golden inputs, ${manifest.signature ? `signed (key ${manifest.signature.key_id.slice(0, 12)})` : 'UNSIGNED'}`);
  }
  return 0;
}

const IMAGE_EXT = /\.(jpe?g|png|webp)$/i;

/** `--baseline` paths as files: a directory gives its images (not recursive, sorted), a file itself. */
async function baselineFiles(paths: string[]): Promise<string[]> {
  const files: string[] = [];
  for (const p of paths) {
    const st = await stat(p).catch(() => null);
    if (!st) throw new FleetError('USAGE', `--baseline ${p}: no such file or directory`);
    if (!st.isDirectory()) {
      files.push(p);
      continue;
    }
    const names = (await readdir(p)).filter((n) => IMAGE_EXT.test(n)).sort();
    if (names.length === 0) throw new FleetError('USAGE', `--baseline ${p}: the directory holds no .jpg, .jpeg, .png or .webp file`);
    files.push(...names.map((n) => join(p, n)));
  }
  return files;
}
