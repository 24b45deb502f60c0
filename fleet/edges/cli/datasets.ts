import type { FleetClient } from '../client/api-client.js';
import { FleetError } from '../../errors.js';
import { FILTER_HELP, FILTER_OPTIONS, filterFromFlags } from './args.js';
import { apiCommand, group, positionalsOf } from './common.js';
import { ago, table } from './format.js';

export const DATASETS_HELP = `Usage: edgeloop datasets COMMAND

  export [--name N] [filters]   freeze the labeled samples a filter selects into a dataset version
  list                          dataset versions, oldest first
  show ID                       one version (ID or a unique prefix of it)

Run 'edgeloop datasets COMMAND --help' for a command's options.`;

const EXPORT_HELP = `Usage: edgeloop datasets export [--name N] [filters]

Freezes the labeled samples the filters select into an immutable dataset version whose id is
the sha256 of its entries: exporting the same labeled set again answers the existing version.

  --name N    a name for people (not part of the identity)

${FILTER_HELP}`;

const LIST_HELP = `Usage: edgeloop datasets list`;
const SHOW_HELP = `Usage: edgeloop datasets show ID`;

const countsText = (counts: Record<string, number>): string =>
  Object.entries(counts)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || '-';

const exportCmd = apiCommand(EXPORT_HELP, { ...FILTER_OPTIONS, name: { type: 'string' } }, async (c) => {
  positionalsOf(c.positionals, [], EXPORT_HELP);
  const filters = filterFromFlags(c.values);
  const client = await c.client();
  if (!c.json) c.progress('exporting labeled samples...');
  const r = await client.exportDataset({ ...(Object.keys(filters).length ? { filters } : {}), ...(c.values.name ? { name: c.values.name } : {}) });
  c.emit(r, () => {
    const d = r.dataset;
    c.io.out(`${r.created ? 'created' : 'unchanged, existing'} dataset ${d.id}${d.name ? ` (${d.name})` : ''}: ${d.entries.length} entries; ${countsText(d.counts)}`);
  });
});

/** A full dataset id from a unique prefix (the list prints 12 characters). */
async function resolveId(client: FleetClient, id: string): Promise<string> {
  if (/^[0-9a-f]{64}$/.test(id)) return id;
  const matches = (await client.listDatasets()).filter((d) => d.id.startsWith(id));
  if (matches.length === 1) return (matches[0] as { id: string }).id;
  throw new FleetError(matches.length ? 'INPUT_INVALID' : 'DATASET_NOT_FOUND', matches.length ? `${id} matches ${matches.length} datasets; give more of the id` : `no dataset id starts with ${id}`, { details: { id } });
}

const list = apiCommand(LIST_HELP, {}, async (c) => {
  positionalsOf(c.positionals, [], LIST_HELP);
  const items = await (await c.client()).listDatasets();
  c.emit({ items }, () => {
    if (!items.length) {
      c.io.out('no datasets');
      return;
    }
    const now = Date.now();
    for (const l of table(
      ['ID', 'NAME', 'ENTRIES', 'CREATED', 'BY', 'LABELS'],
      items.map((d) => [d.id.slice(0, 12), d.name ?? '-', String(d.entries), ago(d.created_at, now), d.created_by, countsText(d.counts)]),
    ))
      c.io.out(l);
  });
});

const show = apiCommand(SHOW_HELP, {}, async (c) => {
  const [id] = positionalsOf(c.positionals, ['ID'], SHOW_HELP) as [string];
  const client = await c.client();
  const d = await client.getDataset(await resolveId(client, id));
  c.emit(d, () => {
    c.io.out(`dataset ${d.id}${d.name ? ` (${d.name})` : ''}, created ${d.created_at} by ${d.created_by}`);
    c.io.out(`filters ${JSON.stringify(d.filters)}`);
    c.io.out(`${d.entries.length} entries; ${countsText(d.counts)}`);
    for (const l of table(
      ['  SAMPLE', 'LABEL', 'DEVICE', 'BY'],
      d.entries.slice(0, 20).map((e) => [`  ${e.sample_id}`, e.label ?? `${e.boxes?.length ?? 0} boxes`, e.device_id, e.labeled_by]),
    ))
      c.io.out(l);
    if (d.entries.length > 20) c.io.out(`  ... ${d.entries.length - 20} more (--json for all)`);
  });
});

export const datasetsCmd = group(DATASETS_HELP, { export: exportCmd, list, show });
