/**
 * Reading a detection dataset in the YOLO txt layout (the layout Ultralytics trains on, and
 * what the fleet exports for detection models):
 *
 *   data.yaml                 names: [a, b] (or a 0: a map), optional path / train / val
 *   images/{train,val}/*.png|jpg|jpeg|webp
 *   labels/{train,val}/<stem>.txt   one line per box: class cx cy w h (normalised 0..1)
 *
 * `train` / `val` in data.yaml are image directories relative to `path` (itself relative to
 * data.yaml's directory), default `images/train` and `images/val`; an image's labels are at the
 * same place with the last `images` directory replaced by `labels` (Ultralytics' rule). An
 * image with no label file, or an empty one, has no boxes (a background image). Anything else
 * malformed is `FLEET_DATASET_LAYOUT_INVALID` naming the file and line.
 */
import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, extname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { imageSize } from '../../../shared/inference/image-size.js';
import { sniffImageFormat } from '../../../shared/inference/preprocess.js';
import { FleetError } from '../../errors.js';

/** A box as YOLO writes it: class index and centre/size normalised to the image. */
export interface YoloBox {
  cls: number;
  cx: number;
  cy: number;
  w: number;
  h: number;
}

export interface YoloExample {
  /** The image's file name without its extension. */
  id: string;
  file: string;
  bytes: Uint8Array;
  boxes: YoloBox[];
}

export interface YoloDataset {
  names: string[];
  train: YoloExample[];
  val: YoloExample[];
}

const IMAGE_EXT = new Set(['.png', '.jpg', '.jpeg', '.webp']);
/** Bounds on what one directory may make the trainer hold: hostile or mistaken input fails early. */
const MAX_IMAGES = 200_000;
const MAX_BOXES_PER_IMAGE = 1000;
const MAX_LABEL_BYTES = 1 << 20;

const invalid = (message: string, details?: Record<string, unknown>): FleetError => new FleetError('DATASET_LAYOUT_INVALID', message, details ? { details } : {});

function namesOf(raw: unknown, file: string): string[] {
  let names: unknown[];
  if (Array.isArray(raw)) names = raw;
  else if (raw && typeof raw === 'object') {
    const entries = Object.entries(raw as Record<string, unknown>);
    const idx = entries.map(([k]) => Number(k));
    if (idx.some((i, n) => !Number.isInteger(i) || i !== n)) throw invalid(`${file}: names as a map must have the keys 0, 1, 2... in order`);
    names = entries.map(([, v]) => v);
  } else throw invalid(`${file} has no names (a list of class names, or a 0: name map)`);
  if (names.length === 0 || names.some((n) => (typeof n !== 'string' && typeof n !== 'number') || String(n).trim() === '')) throw invalid(`${file}: names must be non-empty class names`);
  const out = names.map((n) => String(n));
  if (new Set(out).size !== out.length) throw invalid(`${file}: names has duplicates`);
  return out;
}

/** Parses one label file; `classes` bounds the class index. */
function parseYoloLabels(text: string, classes: number, file: string): YoloBox[] {
  const boxes: YoloBox[] = [];
  const lines = text.split(/\r?\n/);
  for (const [i, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === '') continue;
    const parts = line.split(/\s+/);
    if (parts.length !== 5) throw invalid(`${file}:${i + 1}: expected "class cx cy w h", got ${parts.length} fields (segmentation polygons are not read)`, { file, line: i + 1 });
    const [c, cx, cy, w, h] = parts.map(Number) as [number, number, number, number, number];
    if (!Number.isInteger(c) || c < 0 || c >= classes) throw invalid(`${file}:${i + 1}: class ${parts[0]} is not one of the ${classes} names (0..${classes - 1})`, { file, line: i + 1 });
    if (![cx, cy, w, h].every((v) => Number.isFinite(v) && v >= 0 && v <= 1)) throw invalid(`${file}:${i + 1}: cx cy w h must be numbers normalised to 0..1`, { file, line: i + 1 });
    if (w === 0 || h === 0) continue; // a box with no area marks nothing
    boxes.push({ cls: c, cx, cy, w, h });
    if (boxes.length > MAX_BOXES_PER_IMAGE) throw invalid(`${file}: more than ${MAX_BOXES_PER_IMAGE} boxes`, { file });
  }
  return boxes;
}

/** `<root>/.../images/<rest>` → `<root>/.../labels/<rest>` (the last `images` directory), extension `.txt`. */
function labelPathOf(image: string): string {
  const parts = image.split(sep);
  const at = parts.lastIndexOf('images');
  if (at >= 0) parts[at] = 'labels';
  const p = parts.join(sep);
  return p.slice(0, p.length - extname(p).length) + '.txt';
}

async function readSplit(dir: string, names: readonly string[], root: string): Promise<YoloExample[]> {
  let entries: string[];
  try {
    entries = (await readdir(dir)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw invalid(`cannot read ${dir}: ${(err as Error).message}`);
  }
  const images = entries.filter((f) => IMAGE_EXT.has(extname(f).toLowerCase()));
  if (images.length > MAX_IMAGES) throw invalid(`${dir} has ${images.length} images, more than ${MAX_IMAGES}`);
  const out: YoloExample[] = [];
  for (const f of images) {
    const file = join(dir, f);
    const labelFile = labelPathOf(file);
    let text = '';
    try {
      const st = await stat(labelFile);
      if (st.size > MAX_LABEL_BYTES) throw invalid(`${relative(root, labelFile)} is ${st.size} bytes, more than ${MAX_LABEL_BYTES}`);
      text = await readFile(labelFile, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err instanceof FleetError ? err : invalid(`cannot read ${labelFile}: ${(err as Error).message}`);
    }
    out.push({ id: basename(f, extname(f)), file, bytes: new Uint8Array(await readFile(file)), boxes: parseYoloLabels(text, names.length, relative(root, labelFile)) });
  }
  return out;
}

/** Reads `dir` (data.yaml, images, labels). Throws `FLEET_DATASET_LAYOUT_INVALID`. */
export async function readYoloDataset(dir: string): Promise<YoloDataset> {
  const yamlFile = join(dir, 'data.yaml');
  let meta: Record<string, unknown>;
  try {
    const parsed: unknown = parseYaml(await readFile(yamlFile, 'utf8'));
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not a mapping');
    meta = parsed as Record<string, unknown>;
  } catch (err) {
    throw invalid(`${yamlFile} cannot be read as the YOLO dataset description: ${(err as Error).message}`);
  }
  const names = namesOf(meta.names, 'data.yaml');
  if (meta.nc !== undefined && meta.nc !== names.length) throw invalid(`data.yaml: nc is ${String(meta.nc)} but names lists ${names.length} classes`);
  const base = typeof meta.path === 'string' && meta.path !== '' ? (isAbsolute(meta.path) ? meta.path : resolve(dir, meta.path)) : dir;
  const splitDir = (key: 'train' | 'val', fallback: string): string => {
    const v = meta[key];
    if (v === undefined || v === null) return join(base, fallback);
    if (typeof v !== 'string') throw invalid(`data.yaml: ${key} must be one image directory (lists and .txt file lists are not read)`);
    if (v.endsWith('.txt')) throw invalid(`data.yaml: ${key} is a file list (${v}); give an image directory`);
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const train = await readSplit(splitDir('train', join('images', 'train')), names, dir);
  const val = await readSplit(splitDir('val', join('images', 'val')), names, dir);
  if (train.length === 0) throw invalid(`${dirname(yamlFile)} has no training images (images/train/*.png|jpg|jpeg|webp)`);
  return { names, train, val };
}

/** A detection training example as the writer takes it: boxes in the image's original pixels. */
export interface BoxedExample {
  id: string;
  /** `base` examples are written with a `base-` prefix, which the local detector trainer weighs apart. */
  origin?: 'base' | 'field';
  bytes: Uint8Array;
  boxes?: ReadonlyArray<{ label: string; box: readonly [number, number, number, number] }>;
}

const EXT_OF: Record<string, string> = { png: 'png', jpeg: 'jpg', webp: 'webp' };
const safeId = (s: string): string => s.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 120) || '_';

/**
 * Writes examples with boxes as the YOLO txt layout's train split (what {@link readYoloDataset}
 * reads back): the local trainer's bridge from a training request to a dataset directory. An
 * example without boxes, or a box of a class outside `names`, is `INPUT_INVALID`.
 */
export async function writeYoloTrainSplit(dir: string, names: readonly string[], examples: readonly BoxedExample[]): Promise<string> {
  const index = new Map(names.map((n, i) => [n, i]));
  await mkdir(join(dir, 'images', 'train'), { recursive: true });
  await mkdir(join(dir, 'labels', 'train'), { recursive: true });
  const used = new Set<string>();
  for (const ex of examples) {
    if (!ex.boxes) throw new FleetError('INPUT_INVALID', `training example ${ex.id} has no box labels; a detector trains on boxes`, { details: { sample_id: ex.id } });
    const fmt = sniffImageFormat(ex.bytes);
    const size = imageSize(ex.bytes);
    if (!EXT_OF[fmt] || !size) throw new FleetError('INPUT_INVALID', `training example ${ex.id} is not a PNG, JPEG or WebP image with a readable size`, { details: { sample_id: ex.id } });
    let id = `${ex.origin === 'base' ? 'base-' : ''}${safeId(ex.id)}`;
    for (let n = 2; used.has(id); n++) id = `${id}-${n}`;
    used.add(id);
    const lines = ex.boxes.map((b) => {
      const c = index.get(b.label);
      if (c === undefined) throw new FleetError('INPUT_INVALID', `training example ${ex.id} has a ${JSON.stringify(b.label)} box, not one of ${names.join(', ')}`, { details: { sample_id: ex.id } });
      const [x1, y1, x2, y2] = b.box.map((v, i) => Math.min(i % 2 ? size.height : size.width, Math.max(0, v))) as [number, number, number, number];
      return `${c} ${((x1 + x2) / 2 / size.width).toFixed(6)} ${((y1 + y2) / 2 / size.height).toFixed(6)} ${((x2 - x1) / size.width).toFixed(6)} ${((y2 - y1) / size.height).toFixed(6)}`;
    });
    await writeFile(join(dir, 'images', 'train', `${id}.${EXT_OF[fmt]}`), ex.bytes);
    await writeFile(join(dir, 'labels', 'train', `${id}.txt`), lines.join('\n'));
  }
  await writeFile(join(dir, 'data.yaml'), stringifyYaml({ path: '.', train: 'images/train', val: 'images/val', nc: names.length, names: [...names] }));
  return dir;
}
