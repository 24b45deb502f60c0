import { resolve } from 'node:path';
import { parseModelRef } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, bytes, fields, ref, table } from './format.js';

export const MODELS_HELP = `Usage: edgeloop models COMMAND

  push DIR                    register the model package in DIR (edgeloop pack makes one)
  list [--name N]             registered versions
  show NAME@VERSION           one version: files, evaluation, lineage, status
  lineage NAME@VERSION        the chain of parents, newest first

Run 'edgeloop models COMMAND --help' for a command's options.`;

const PUSH_HELP = `Usage: edgeloop models push DIR

Registers the package in DIR (manifest.json and the files it lists): the fleet checks every
file's sha256, signs the manifest with its key and stores the files content-addressed. The
CLI runs on the fleet's host, so DIR is read by the service, not uploaded. Pushing the same
content again is a no-op; other content under an existing NAME@VERSION is refused.`;

const LIST_HELP = `Usage: edgeloop models list [--name N] [--status registered|rejected]`;
const SHOW_HELP = `Usage: edgeloop models show NAME@VERSION`;
const LINEAGE_HELP = `Usage: edgeloop models lineage NAME@VERSION`;

const push = apiCommand(PUSH_HELP, {}, async (c) => {
  const [dir] = positionalsOf(c.positionals, ['DIR'], PUSH_HELP) as [string];
  // The service resolves relative paths against its own working directory, not ours.
  const abs = resolve(dir);
  const client = await c.client();
  if (!c.json) c.progress(`pushing ${abs} to ${client.url} (hashing and storing every file)...`);
  const r = await client.pushModel(abs);
  c.emit(r, () => {
    const v = r.version;
    c.io.out(`${r.created ? 'registered' : 'already registered'} ${v.ref}: ${v.files.length} files, ${bytes(v.total_bytes)}, signed by key ${v.key_id.slice(0, 12)}`);
    if (v.status === 'rejected') c.io.out(`  REJECTED: ${v.status_reasons.join('; ')}`);
    if (r.unlisted.length) c.io.out(`  not stored (not in the manifest): ${r.unlisted.join(', ')}`);
  });
});

const list = apiCommand(LIST_HELP, { name: { type: 'string' }, status: { type: 'string' } }, async (c) => {
  positionalsOf(c.positionals, [], LIST_HELP);
  const status = c.values.status;
  if (status !== undefined && status !== 'registered' && status !== 'rejected') throw usage(`--status is registered or rejected, not ${status}`, LIST_HELP);
  const items = await (await c.client()).listModels({ ...(c.values.name ? { name: c.values.name } : {}), ...(status ? { status } : {}) });
  c.emit({ items }, () => {
    if (!items.length) {
      c.io.out('no models');
      return;
    }
    const now = Date.now();
    for (const l of table(
      ['MODEL', 'STATUS', 'SIZE', 'PARENT', 'DATASET', 'PUSHED', 'BY'],
      items.map((m) => [m.ref, m.status, bytes(m.total_bytes), ref(m.lineage.parent), m.lineage.dataset_version?.slice(0, 12) ?? '-', ago(m.pushed_at, now), m.pushed_by]),
    ))
      c.io.out(l);
  });
});

const show = apiCommand(SHOW_HELP, {}, async (c) => {
  const [spec] = positionalsOf(c.positionals, ['NAME@VERSION'], SHOW_HELP) as [string];
  const m = await (await c.client()).getModel(parseModelRef(spec));
  c.emit(m, () => {
    for (const l of fields([
      ['model', m.ref],
      ['status', m.status + (m.status_reasons.length ? ` (${m.status_reasons.join('; ')})` : '')],
      ['description', m.description ?? '-'],
      ['pushed', `${m.pushed_at} by ${m.pushed_by}`],
      ['manifest', m.manifest_sha256],
      ['signed by', m.key_id],
      ['parent', ref(m.lineage.parent)],
      ['dataset', m.lineage.dataset_version ?? '-'],
      ['training run', m.lineage.training_run ?? '-'],
      ['evaluation', m.evaluation ? JSON.stringify(m.evaluation) : '-'],
    ]))
      c.io.out(l);
    c.io.out('files');
    for (const l of table(['  PATH', 'ROLE', 'SIZE', 'SHA256'], m.files.map((f) => [`  ${f.path}`, f.role ?? '-', bytes(f.bytes), f.sha256.slice(0, 16)]))) c.io.out(l);
  });
});

const lineage = apiCommand(LINEAGE_HELP, {}, async (c) => {
  const [spec] = positionalsOf(c.positionals, ['NAME@VERSION'], LINEAGE_HELP) as [string];
  const items = await (await c.client()).modelLineage(parseModelRef(spec));
  c.emit({ items }, () => {
    for (const l of table(
      ['MODEL', 'DATASET', 'TRAINING RUN', 'PUSHED'],
      items.map((e) => [`${e.name}@${e.version}${e.missing ? ' (missing)' : ''}`, e.dataset_version?.slice(0, 12) ?? '-', e.training_run ?? '-', e.pushed_at ?? '-']),
    ))
      c.io.out(l);
  });
});

export const modelsCmd = group(MODELS_HELP, { push, list, show, lineage });
