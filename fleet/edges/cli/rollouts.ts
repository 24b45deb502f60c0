import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Command, Io } from '../../../shared/cli.js';
import type { CreateRollout, FleetClient, RolloutDetail, RolloutSummary } from '../client/api-client.js';
import { FleetError } from '../../errors.js';
import type { RolloutCommand } from '../../core/rollouts/types.js';
import { parseDuration, parseModelRef, parseTags, planFromFlags } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { ago, clockTime, duration, num, ref, table, tags } from './format.js';

export const ROLLOUTS_HELP = `Usage: edgeloop rollouts COMMAND

  create NAME@VERSION --target k=v [--plan FILE.json | --canary 10% --waves 50%,100% --bake 10m --shadow 5%]
  status [ID] [--watch]          every rollout, or one: stages, gates against thresholds, decisions
  pause ID | resume ID | abort ID | rollback ID | promote ID [--force]
  exclude ID (DEVICE... | --outstanding)   take unconfirmed devices out, so the rollout can read completed

Run 'edgeloop rollouts COMMAND --help' for a command's options.`;

const CREATE_HELP = `Usage: edgeloop rollouts create NAME@VERSION (--target k=v,... | --all) [plan options] [--id ID]

Starts a rollout of a registered model version to the devices with every --target tag.

  --target k=v    target devices by tag (repeatable, or k=v,k2=v2; all must match)
  --all           target the whole fleet instead
  --plan FILE     the whole plan as JSON (stages, gates, on_gate_failure); excludes the flags below
  --canary A      canary allowance: 10% of the target or a device count (default 5%)
  --canary-prefer k=v
                  put the canary on the devices with these tags first (the site the change
                  is for, e.g. site=pit-3); the waves take the rest
  --waves A,A     cumulative waves after the canary, the last one 100% (default 25%,50%,100%)
  --bake D        bake time of every stage: 90s, 10m, 1h (default 1h)
  --shadow P%     first a shadow stage: the canary's devices also score P% of their inputs
                  with the candidate, and it is judged on agreement before it goes active.
                  It needs a model to run beside: on devices that run none yet (a first
                  deploy) it is refused (FLEET_ROLLOUT_SHADOW_EMPTY); leave it out there
  --id ID         rollout id (default: generated)`;

const STATUS_HELP = `Usage: edgeloop rollouts status [ID] [--watch [--interval S]] [--decisions N]

Without ID: every rollout, newest first. With ID: its stages and their progress, the
current stage's gates (each signal's value against its threshold), and the latest decisions.

  --watch         with ID: print a line whenever the rollout moves, until it completes,
                  is aborted or rolled back, or pauses
  --interval S    seconds between polls with --watch (default 2)
  --decisions N   decisions to show (default 8)`;

/** The commands that take only a rollout id (exclude names devices: {@link exclude}). */
type PlainCommand = Exclude<RolloutCommand, 'exclude'>;

const commandHelp = (cmd: PlainCommand): string =>
  `Usage: edgeloop rollouts ${cmd} ID${cmd === 'promote' ? ' [--force]' : ''}\n\n` +
  {
    pause: 'Holds the rollout: no device is moved until it is resumed (bake time keeps running).',
    resume: 'Continues a paused rollout; acknowledges the device failures that paused it.',
    abort: 'Stops the rollout and points every device it moved back at its previous version.',
    rollback: 'Like abort, and also allowed after completion: every moved device goes back.',
    promote: "Ends the current stage now when its gates pass.\n\n  --force   promote although the gates do not pass (acknowledges failures)",
  }[cmd];

const EXCLUDE_HELP = `Usage: edgeloop rollouts exclude ID (DEVICE... | --outstanding)

Takes devices that have not confirmed the candidate out of the rollout, on your word (a camera
that is down for weeks): they stop counting as outstanding and against the current stage,
keep the desired state they were given, and are named in the rollout's decisions and in the
audit log. A rollout whose other devices all confirmed then reads completed, not converging.

  --outstanding   every device the rollout still waits for (see: edgeloop rollouts status ID)`;

const exclude = apiCommand(EXCLUDE_HELP, { outstanding: { type: 'boolean' } }, async (c) => {
  const [id, ...named] = c.positionals;
  if (!id) throw usage('missing ID', EXCLUDE_HELP);
  const all = (c.values as { outstanding?: boolean }).outstanding ?? false;
  if (all === named.length > 0) throw usage(all ? 'give DEVICE ids or --outstanding, not both' : 'missing DEVICE (or --outstanding)', EXCLUDE_HELP);
  const client = await c.client();
  const devices = all ? (await client.getRollout(id)).outstanding.map((o) => o.device_id) : named;
  if (devices.length === 0) {
    c.io.err(`rollout ${id} waits for no device: nothing to exclude`);
    return;
  }
  const d = await client.commandRollout(id, 'exclude', { devices });
  c.emit(d, () => {
    c.io.out(`exclude: ${progressLine(d.rollout)}`);
    const latest = d.decisions[0];
    if (latest) c.io.out(`  ${latest.kind}: ${latest.reason}`);
  });
});

const TERMINAL = new Set(['completed', 'aborted', 'rolled_back']);
/** Signals that pass at or above their threshold; every other gate is a maximum. */
const AT_LEAST = new Set(['devices_reporting', 'shadow_agreement']);

const create = apiCommand(
  CREATE_HELP,
  {
    target: { type: 'string', multiple: true },
    all: { type: 'boolean' },
    plan: { type: 'string' },
    canary: { type: 'string' },
    waves: { type: 'string' },
    bake: { type: 'string' },
    shadow: { type: 'string' },
    'canary-prefer': { type: 'string', multiple: true },
    id: { type: 'string' },
  },
  async (c) => {
    const [spec] = positionalsOf(c.positionals, ['NAME@VERSION'], CREATE_HELP) as [string];
    // The server validates the plan (file or flags) with the same schema and names every bad key.
    const model = parseModelRef(spec);
    const v = c.values;
    const selector = parseTags(v.target, 'target');
    if (v.all && Object.keys(selector).length) throw usage('--all and --target exclude each other', CREATE_HELP);
    if (!v.all && !Object.keys(selector).length) throw usage('name the target devices with --target k=v (or --all for the whole fleet)', CREATE_HELP);
    const flags = { canary: v.canary, waves: v.waves, bake: v.bake, shadow: v.shadow, canaryPrefer: v['canary-prefer'] };
    let plan: unknown = planFromFlags(flags);
    if (v.plan !== undefined) {
      if (plan !== undefined) throw usage('--plan excludes --canary, --waves, --bake, --shadow and --canary-prefer', CREATE_HELP);
      plan = await readPlan(v.plan);
    }
    const client = await c.client();
    const d = await client.createRollout({ model, selector, ...(plan !== undefined ? { plan: plan as CreateRollout['plan'] } : {}), ...(v.id ? { id: v.id } : {}) });
    c.emit(d, () => printDetail(c.io, d, 8));
  },
);

async function readPlan(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `cannot read the plan ${file}: ${(err as Error).message}`, { cause: err });
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `the plan ${file} is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

const status = apiCommand(STATUS_HELP, { watch: { type: 'boolean' }, interval: { type: 'string' }, decisions: { type: 'string' } }, async (c) => {
  if (c.positionals.length > 1) throw usage(`unexpected argument ${c.positionals[1]}`, STATUS_HELP);
  const id = c.positionals[0];
  const n = c.values.decisions === undefined ? 8 : Number(c.values.decisions);
  if (!Number.isInteger(n) || n < 0) throw usage('--decisions expects a count', STATUS_HELP);
  const client = await c.client();
  if (id === undefined) {
    if (c.values.watch) throw usage('--watch needs a rollout ID', STATUS_HELP);
    const items = await client.listRollouts();
    c.emit({ items }, () => printList(c.io, items));
    return;
  }
  if (c.values.watch) {
    const everyMs = 1000 * (c.values.interval === undefined ? 2 : parseDuration(c.values.interval, 'interval'));
    const final = await watchRollout(client, id, { everyMs, onChange: (line) => (c.json ? c.progress(line) : c.io.out(line)) });
    c.emit(final, () => printDetail(c.io, final, n));
    return;
  }
  const d = await client.getRollout(id);
  c.emit(d, () => printDetail(c.io, d, n));
});

/**
 * Poll a rollout until it is terminal or paused, reporting a line each time its status, stage
 * or device counts change. Answers the last detail seen.
 */
export async function watchRollout(client: FleetClient, id: string, o: { everyMs: number; onChange: (line: string) => void; signal?: AbortSignal }): Promise<RolloutDetail> {
  let last = '';
  for (;;) {
    const d = await client.getRollout(id);
    const line = progressLine(d.rollout);
    if (line !== last) {
      o.onChange(`${clockTime(Date.now())}  ${line}`);
      last = line;
    }
    if (TERMINAL.has(d.rollout.status) || d.rollout.status === 'paused' || o.signal?.aborted) return d;
    await sleep(o.everyMs, undefined, o.signal ? { signal: o.signal } : {}).catch(() => undefined);
  }
}

function progressLine(r: RolloutSummary): string {
  const dv = r.devices;
  return `${r.id} ${r.status} ${r.stage_name ?? '-'}: installed ${dv.installed}/${dv.target}, assigned ${dv.assigned}, failed ${dv.failed}`;
}

function printList(io: Io, items: RolloutSummary[]): void {
  if (!items.length) {
    io.out('no rollouts');
    return;
  }
  const now = Date.now();
  for (const l of table(
    ['ID', 'MODEL', 'STATUS', 'STAGE', 'INSTALLED', 'FAILED', 'TARGET', 'CREATED'],
    items.map((r) => [r.id, ref(r.model), r.status, r.stage_name ?? '-', `${r.devices.installed}/${r.devices.target}`, String(r.devices.failed), tags(r.selector), ago(r.created_at, now)]),
  ))
    io.out(l);
}

const allowanceText = (a: { count: number } | { percent: number } | null): string => (a === null ? '-' : 'count' in a ? `${a.count} dev` : `${a.percent}%`);

/** One rollout for a person: where it stands, why, and what can be done next. */
export function printDetail(io: Io, d: RolloutDetail, decisions: number): void {
  const r = d.rollout;
  const s = d.state;
  io.out(`${r.id}  ${ref(r.model)}  ${r.status}${s.pause ? ` (${s.pause.by}: ${s.pause.reason})` : ''}  target ${tags(r.selector)}`);
  io.out(`devices  target ${r.devices.target}  assigned ${r.devices.assigned}  installed ${r.devices.installed}  failed ${r.devices.failed}  excluded ${r.devices.excluded}`);
  const devices = Object.values(s.devices);
  const now = Date.now();
  io.out('stages');
  for (const l of table(
    ['  STAGE', 'DEVICES', 'BAKE', 'ASSIGNED', 'INSTALLED', 'STATE'],
    d.stages.map((st) => {
      const here = devices.filter((x) => (st.kind === 'shadow' ? x.shadow_stage === st.index : x.assigned_stage === st.index));
      const installed = here.filter((x) => (st.kind === 'shadow' ? x.shadow_installed_at : x.installed_at) !== null).length;
      const current = st.index === s.stage && !TERMINAL.has(s.status);
      const state = st.index < s.stage || s.status === 'completed' ? 'done' : current ? `current${s.stage_started_at ? `, started ${ago(new Date(s.stage_started_at).toISOString(), now)}` : ''}` : '';
      return [`  ${st.name}`, allowanceText(st.devices), duration(st.bake_s), String(here.length), String(installed), state];
    }),
  ))
    io.out(l);
  if (d.gates) {
    io.out(`gates  ${d.gates.status}${d.gates.action ? ` -> ${d.gates.action}` : ''}: ${d.gates.reason}`);
    if (d.gates.signals.length) {
      for (const l of table(
        ['  SIGNAL', 'VALUE', 'THRESHOLD', 'OK', 'DEVICES'],
        d.gates.signals.map((g) => [`  ${g.name}`, num(g.value), g.threshold === null || g.threshold === undefined ? '-' : `${AT_LEAST.has(g.name) ? '>=' : '<='} ${num(g.threshold)}`, g.ok === undefined || g.ok === null ? '-' : g.ok ? 'yes' : 'NO', g.devices === undefined ? '-' : String(g.devices)]),
      ))
        io.out(l);
    }
  }
  if (decisions > 0 && d.decisions.length) {
    io.out(`decisions (latest ${Math.min(decisions, d.decisions.length)} of ${d.decisions.length})`);
    for (const x of d.decisions.slice(0, decisions)) {
      const who = x.device_id ? ` ${x.device_id}` : x.actor ? ` by ${x.actor}` : '';
      io.out(`  ${clockTime(x.at)}  ${x.kind}${x.stage_name ? ` [${x.stage_name}]` : ''}${who}: ${x.reason}`);
    }
  }
  io.out(`commands: ${d.commands.join(', ') || '-'}`);
}

function rolloutCommand(cmd: PlainCommand): Command {
  const help = commandHelp(cmd);
  return apiCommand(help, cmd === 'promote' ? { force: { type: 'boolean' } } : {}, async (c) => {
    const [id] = positionalsOf(c.positionals, ['ID'], help) as [string];
    const force = (c.values as { force?: boolean }).force ?? false;
    const d = await (await c.client()).commandRollout(id, cmd, { force });
    c.emit(d, () => {
      c.io.out(`${cmd}${force ? ' (forced)' : ''}: ${progressLine(d.rollout)}`);
      const latest = d.decisions[0];
      if (latest) c.io.out(`  ${latest.kind}: ${latest.reason}`);
    });
  });
}

export const rolloutsCmd = group(ROLLOUTS_HELP, {
  create,
  status,
  pause: rolloutCommand('pause'),
  resume: rolloutCommand('resume'),
  abort: rolloutCommand('abort'),
  rollback: rolloutCommand('rollback'),
  promote: rolloutCommand('promote'),
  exclude,
});
