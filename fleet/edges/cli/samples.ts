import { readFile, writeFile } from 'node:fs/promises';
import type { FleetClient, SampleRecord } from '../client/api-client.js';
import type { SampleQuery } from '../../app/samples/filter.js';
import { FILTER_HELP, FILTER_OPTIONS, filterFromFlags } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, bytes, fields, num, ref, table } from './format.js';

export const SAMPLES_HELP = `Usage: edgeloop samples COMMAND

  list [filters] [--limit N] [--cursor C]   stored samples, in arrival order
  get ID [--out FILE]                       one sample, its input written to FILE

Run 'edgeloop samples COMMAND --help' for a command's options.`;

export const LABELS_HELP = `Usage: edgeloop labels COMMAND

  set ID LABEL          give a sample a label
  boxes ID BOXES        label a detection sample with boxes
  progress [filters]    labeled, skipped and unlabeled counts

Run 'edgeloop labels COMMAND --help' for a command's options.`;

const LIST_HELP = `Usage: edgeloop samples list [filters] [--labeled | --unlabeled] [--limit N] [--cursor C] [--order asc|desc]

  --labeled / --unlabeled   only samples with / without a human label
  --limit N                 page size (default 50, at most 1000)
  --cursor C                the next page: the cursor the previous page printed
  --order asc|desc          arrival order (default asc; desc = newest first)

${FILTER_HELP}`;

const GET_HELP = `Usage: edgeloop samples get ID [--out FILE]

Prints the sample and writes its input (the captured image) to FILE (default ID plus an
extension from its content type).`;

const SET_HELP = `Usage: edgeloop labels set ID LABEL`;

const BOXES_HELP = `Usage: edgeloop labels boxes ID BOXES

BOXES is a JSON list, or @FILE holding one: [{"label": "person", "box": [x1, y1, x2, y2]}, ...]
in the pixels of the sample's image; [] says there is nothing in it.`;

const PROGRESS_HELP = `Usage: edgeloop labels progress [filters]

${FILTER_HELP}`;

const EXT: Record<string, string> = { 'image/png': '.png', 'image/jpeg': '.jpg', 'image/webp': '.webp', 'image/gif': '.gif', 'image/bmp': '.bmp' };

const boxesText = (n: number): string => (n === 0 ? 'nothing here' : n === 1 ? '1 box' : `${n} boxes`);
const labelText = (s: SampleRecord): string => (s.label ? (s.label.state === 'skipped' ? '(skipped)' : s.label.boxes ? boxesText(s.label.boxes.boxes.length) : (s.label.value ?? '-')) : '-');

const list = apiCommand(
  LIST_HELP,
  { ...FILTER_OPTIONS, labeled: { type: 'boolean' }, unlabeled: { type: 'boolean' }, limit: { type: 'string' }, cursor: { type: 'string' }, order: { type: 'string' } },
  async (c) => {
    positionalsOf(c.positionals, [], LIST_HELP);
    const v = c.values;
    if (v.labeled && v.unlabeled) throw usage('--labeled and --unlabeled exclude each other', LIST_HELP);
    if (v.order !== undefined && v.order !== 'asc' && v.order !== 'desc') throw usage(`--order is asc or desc, not ${v.order}`, LIST_HELP);
    const limit = v.limit === undefined ? undefined : Number(v.limit);
    if (limit !== undefined && !Number.isInteger(limit)) throw usage(`--limit expects a count, got ${v.limit}`, LIST_HELP);
    const query: SampleQuery = {
      ...filterFromFlags(v),
      ...(v.labeled ? { labeled: true } : v.unlabeled ? { labeled: false } : {}),
      ...(limit !== undefined ? { limit } : {}),
      ...(v.cursor ? { cursor: v.cursor } : {}),
      ...(v.order ? { order: v.order } : {}),
    };
    const page = await (await c.client()).listSamples(query);
    c.emit(page, () => {
      if (!page.items.length) {
        c.io.out('no samples');
        return;
      }
      const now = Date.now();
      for (const l of table(
        ['ID', 'DEVICE', 'MODEL', 'PREDICTED', 'CONF', 'REASONS', 'LABEL', 'CAPTURED'],
        page.items.map((s) => [s.sample_id, s.device_id, ref(s.model), s.prediction.label, num(s.confidence), s.reasons.join(','), labelText(s), ago(s.captured_at, now)]),
      ))
        c.io.out(l);
      if (page.next_cursor) c.io.out(`more: --cursor ${page.next_cursor}`);
    });
  },
);

const get = apiCommand(GET_HELP, { out: { type: 'string', short: 'o' } }, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], GET_HELP) as [string];
  const client = await c.client();
  const s = await client.getSample(id);
  const blob = await client.sampleBlob(id);
  const type = blob.contentType.split(';')[0]?.trim() ?? '';
  const out = c.values.out ?? `${id}${EXT[type] ?? '.bin'}`;
  await writeFile(out, blob.bytes);
  c.emit({ sample: s, file: out, bytes: blob.bytes.byteLength, content_type: blob.contentType }, () => {
    for (const l of fields([
      ['sample', s.sample_id],
      ['device', `${s.device_id}${s.site ? ` (site ${s.site})` : ''}`],
      ['model', ref(s.model)],
      ['predicted', `${s.prediction.label} (${num(s.prediction.score)}); top: ${s.prediction.topk.map((t) => `${t.label} ${num(t.score)}`).join(', ')}`],
      ['reasons', s.reasons.join(', ')],
      ['label', s.label ? `${labelText(s)} by ${s.label.by} at ${s.label.at}` : '-'],
      ['captured', s.captured_at],
      ['input', `${out} (${bytes(blob.bytes.byteLength)}, ${type})`],
    ]))
      c.io.out(l);
  });
});

const set = apiCommand(SET_HELP, {}, async (c) => {
  const [id, label] = positionalsOf(c.positionals, ['ID', 'LABEL'], SET_HELP) as [string, string];
  const s = await (await c.client()).labelSample(id, label);
  c.emit(s, () => c.io.out(`${s.sample_id}: ${labelText(s)} (the model said ${s.prediction.label}, ${num(s.prediction.score)})`));
});

const boxes = apiCommand(BOXES_HELP, {}, async (c) => {
  const [id, text] = positionalsOf(c.positionals, ['ID', 'BOXES'], BOXES_HELP) as [string, string];
  let list: unknown;
  try {
    list = JSON.parse(text.startsWith('@') ? await readFile(text.slice(1), 'utf8') : text);
  } catch (err) {
    throw usage(`BOXES is not JSON: ${(err as Error).message}`, BOXES_HELP);
  }
  if (!Array.isArray(list)) throw usage('BOXES is a JSON list of { label, box }', BOXES_HELP);
  const s = await (await c.client()).labelBoxes(id, list as Parameters<FleetClient['labelBoxes']>[1]);
  c.emit(s, () => c.io.out(`${s.sample_id}: ${labelText(s)} (${(s.label?.boxes?.boxes ?? []).map((b) => `${b.label} [${b.box.join(', ')}]`).join('; ') || 'none'})`));
});

const progress = apiCommand(PROGRESS_HELP, FILTER_OPTIONS, async (c) => {
  positionalsOf(c.positionals, [], PROGRESS_HELP);
  const p = await (await c.client()).labelProgress(filterFromFlags(c.values));
  c.emit(p, () => {
    const pct = p.total ? ` (${((100 * p.labeled) / p.total).toFixed(1)}%)` : '';
    c.io.out(`labeled ${p.labeled} of ${p.total}${pct}, skipped ${p.skipped}, unlabeled ${p.unlabeled}`);
  });
});

export const samplesCmd = group(SAMPLES_HELP, { list, get });
export const labelsCmd = group(LABELS_HELP, { set, boxes, progress });
