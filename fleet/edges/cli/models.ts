import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FleetError } from '../../errors.js';
import { parseModelRef } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, bytes, fields, ref, table } from './format.js';

export const MODELS_HELP = `Usage: edgeloop models COMMAND

  push DIR                    upload and register the model package in DIR (edgeloop pack makes one)
  list [--name N]             registered versions
  show NAME@VERSION           one version: files, evaluation, lineage, status
  lineage NAME@VERSION        the chain back to the labels: runs, datasets, samples, devices

Run 'edgeloop models COMMAND --help' for a command's options.`;

const PUSH_HELP = `Usage: edgeloop models push DIR [--force]

Uploads the package in DIR (manifest.json and the files it lists) as a streamed tar, from
any machine that reaches the fleet: the fleet unpacks it inside its own data directory (size
caps per file and in total, no name leaving the package), checks every file's sha256 against
the manifest, signs the manifest with its key and stores the files content-addressed.
Pushing the same content again is a no-op; other content under an existing NAME@VERSION is
refused. Needs the operator or admin role.

A package without golden inputs is refused before anything is sent (FLEET_GOLDEN_MISSING):
a device smoke-tests a package on its golden inputs before it switches to it, and without
them it would switch to a model it never checked (wrong preprocessing included). Repack with
'edgeloop pack ... --golden FILE=LABEL', or push anyway with --force.

  --force          push a package that has no golden inputs`;

const LIST_HELP = `Usage: edgeloop models list [--name N] [--status registered|rejected]`;
const SHOW_HELP = `Usage: edgeloop models show NAME@VERSION`;
const LINEAGE_HELP = `Usage: edgeloop models lineage NAME@VERSION [--entries] [--json]

The chain from the version back to the first one: per version its training run (trainer,
parameters, seed, code version, duration, metrics, trigger, gate), its dataset version (base
set by reference, the holdout rule, splits) and that dataset's field samples: per device and
per labeler, and with --entries every sample with its label, who gave it and when.
--json prints the whole chain (entries included).`;

/** Golden inputs the package in `dir` lists, or null when its manifest cannot be read here (the fleet then says why). */
async function goldenCount(dir: string): Promise<number | null> {
  try {
    const m = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8')) as { golden?: unknown };
    return Array.isArray(m.golden) ? m.golden.length : 0;
  } catch {
    return null;
  }
}

const push = apiCommand(PUSH_HELP, { force: { type: 'boolean' } }, async (c) => {
  const [dir] = positionalsOf(c.positionals, ['DIR'], PUSH_HELP) as [string];
  const abs = resolve(dir);
  if (!c.values.force && (await goldenCount(abs)) === 0) {
    throw new FleetError('GOLDEN_MISSING', `${dir} has no golden inputs, so no device can smoke-test it before switching to it: repack with 'edgeloop pack ... --golden FILE=LABEL' (an input and the label the model must give it), or push anyway with --force`);
  }
  const client = await c.client();
  if (!c.json) c.progress(`pushing ${abs} to ${client.url} (uploading; the fleet hashes and stores every file)...`);
  const r = await client.pushModel(abs, { force: c.values.force === true });
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

const lineage = apiCommand(LINEAGE_HELP, { entries: { type: 'boolean' } }, async (c) => {
  const [spec] = positionalsOf(c.positionals, ['NAME@VERSION'], LINEAGE_HELP) as [string];
  const chain = await (await c.client()).modelLineageChain(parseModelRef(spec), { entries: c.json || (c.values.entries ?? false) });
  c.emit(chain, () => {
    const tally = (r: Record<string, number>): string => Object.entries(r).map(([k, n]) => `${k} ${n}`).join(', ') || '-';
    for (const [i, s] of chain.steps.entries()) {
      const m = s.model;
      c.io.out(`${i === 0 ? '' : '<- '}${m.ref}${m.missing ? ' (not in this registry)' : ` ${m.status}`}${m.status_reasons.length ? ` (${m.status_reasons.join('; ')})` : ''}`);
      const r = s.run;
      if (r) {
        c.io.out(`   run      ${r.id}: ${r.trainer} seed ${r.seed}, code ${r.code_version ?? '-'}, ${r.duration_ms === null ? 'running' : `${(r.duration_ms / 1000).toFixed(1)} s`}, ${r.status}`);
        c.io.out(`   params   ${JSON.stringify(r.params)}`);
        c.io.out(`   trigger  ${r.trigger.reason} (by ${r.actor})`);
        const metrics = Object.entries(r.metrics).map(([k, v]) => `${k} ${Number.isInteger(v) ? v : v.toFixed(4)}`).join(', ');
        if (metrics) c.io.out(`   metrics  ${metrics}`);
        if (r.gate) c.io.out(`   gate     ${r.gate.passed ? 'passed' : `failed: ${r.gate.reasons.join('; ')}`}`);
      } else if (!m.missing) c.io.out('   run      - (pushed by hand, not trained by the loop)');
      const d = s.dataset;
      if (d) {
        c.io.out(`   dataset  ${d.id}${d.splits ? `: ${d.splits.train} train, ${d.splits.clean_holdout} clean holdout, ${d.splits.field_holdout} field holdout` : `: ${d.entries.length || Object.values(d.counts).reduce((a, b) => a + b, 0)} entries`}`);
        for (const b of d.base) c.io.out(`   base     ${b.source}${b.offset !== undefined ? ` [${b.offset}, ${b.offset + (b.count ?? 0)})` : ` ${b.items?.length ?? 0} items`} ${b.split}${b.content_sha256 ? ` sha256 ${b.content_sha256.slice(0, 12)}` : ''}`);
        if (d.split_rule) c.io.out(`   holdout  ${d.split_rule.kind === 'hash' ? `hash of sample id < ${d.split_rule.fraction} (salt ${d.split_rule.salt})` : `first ${d.split_rule.holdout_ms} ms of every ${d.split_rule.period_ms} ms`}`);
        c.io.out(`   devices  ${tally(d.devices)}`);
        c.io.out(`   labelers ${tally(d.labelers)}`);
        for (const e of d.entries) c.io.out(`     ${e.sample_id} ${e.label} ${e.split ?? '-'} from ${e.device_id}, labeled by ${e.labeled_by} at ${e.labeled_at}`);
      } else if (s.dataset_missing) c.io.out(`   dataset  ${s.dataset_missing} (not in this fleet)`);
    }
  });
});

export const modelsCmd = group(MODELS_HELP, { push, list, show, lineage });
