import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { parseFlags, type Io } from '../../../shared/cli.js';
import { modelRef } from '../../../shared/schemas/common.js';
import { FleetError } from '../../errors.js';
import { rolloutPlan, type RolloutPlanInput } from '../../core/rollouts/plan-schema.js';
import { parseModelRef, planFromFlags } from './args.js';
import { formatIssues } from '../../../shared/validate.js';

export const AWS_HELP = `Usage: edgeloop aws plan NAME@VERSION --aws-config FILE (--devices FILE | --things N) [plan options] [--json]

Prints every AWS call the Greengrass rollout backend would make for a rollout, in order,
without credentials and without sending anything: one thing group, its members and one
CreateDeployment per stage (each stage promoted in turn), the abort path with --abort-at,
then one status sweep (the read calls). The same code plans a real run; only the ids and
ARNs in the answers are made up. Review it before the first real rollout.

  --aws-config F    AWS mode configuration (JSON; see the README, "Fleet on AWS")
  --devices F       JSON list of target devices: [{ "id": "<thing name>", "active": { "name", "version" } | null }]
  --things N        or N made-up things (gw-000...), running --active NAME@VERSION
  --active M        with --things: what they run now (default: nothing)
  --plan F          the rollout plan as JSON; or the flags below
  --canary A        canary allowance: 10% or a device count (default 5%)
  --waves A,A       cumulative waves, the last one 100% (default 25%,50%,100%)
  --bake D          bake time of every stage (no effect on the calls)
  --shadow P%       a shadow stage first
  --abort-at STAGE  also show the abort path, taken at this stage (canary, "wave 1", ...)
  --id ID           rollout id used in group names (default ro_dryrun)
  --json            one JSON line per call: { step, service, command, input }`;

const deviceList = z.array(z.object({ id: z.string().min(1), active: modelRef.nullable().default(null) }));

export async function awsCmd(argv: string[], io: Io): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    (sub ? io.out : io.err)(AWS_HELP);
    return sub ? 0 : 2;
  }
  if (sub !== 'plan') throw new FleetError('USAGE', `unknown aws command ${sub}; try 'edgeloop aws --help'`);
  const { values, positionals } = parseFlags(
    rest,
    {
      'aws-config': { type: 'string' },
      devices: { type: 'string' },
      things: { type: 'string' },
      active: { type: 'string' },
      plan: { type: 'string' },
      canary: { type: 'string' },
      waves: { type: 'string' },
      bake: { type: 'string' },
      shadow: { type: 'string' },
      'abort-at': { type: 'string' },
      id: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    AWS_HELP,
  );
  if (values.help) {
    io.out(AWS_HELP);
    return 0;
  }
  const model = parseModelRef(positionals[0]);
  if (!values['aws-config']) throw new FleetError('USAGE', '--aws-config FILE is required');
  if ((values.devices === undefined) === (values.things === undefined)) throw new FleetError('USAGE', 'name the targets with --devices FILE or --things N');
  const { loadAwsConfig } = await import('../../adapters/aws/aws-config.js');
  const { dryRunRollout } = await import('../../adapters/aws/dry-run.js');
  const cfg = await loadAwsConfig(values['aws-config']);
  let devices: z.infer<typeof deviceList>;
  if (values.devices !== undefined) {
    const r = deviceList.safeParse(JSON.parse(await readFile(values.devices, 'utf8')));
    if (!r.success) throw new FleetError('INPUT_INVALID', `--devices ${values.devices}: ${formatIssues(r.error.issues).join('; ')}`);
    devices = r.data;
  } else {
    const n = Number(values.things);
    if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new FleetError('USAGE', `--things expects 1..100000, got ${values.things}`);
    const active = values.active ? parseModelRef(values.active) : null;
    devices = Array.from({ length: n }, (_, i) => ({ id: `gw-${String(i).padStart(3, '0')}`, active }));
  }
  let plan: RolloutPlanInput = planFromFlags({ canary: values.canary, waves: values.waves, bake: values.bake, shadow: values.shadow }) ?? {};
  if (values.plan !== undefined) plan = JSON.parse(await readFile(values.plan, 'utf8')) as RolloutPlanInput;
  const checked = rolloutPlan.safeParse(plan);
  if (!checked.success) throw new FleetError('INPUT_INVALID', `rollout plan: ${formatIssues(checked.error.issues).join('; ')}`);
  const r = await dryRunRollout({ cfg, model, plan, devices, now: Date.now(), ...(values.id ? { rolloutId: values.id } : {}), ...(values['abort-at'] ? { abortAt: values['abort-at'] } : {}) });
  if (values.json) {
    for (const c of r.calls) io.out(JSON.stringify(c));
    for (const n of r.notes) io.err(`note: ${n}`);
    return 0;
  }
  io.out(`${r.calls.length} AWS calls for ${model.name}@${model.version} on ${devices.length} devices (stages: ${r.stages.join(' -> ')})`);
  let step = '';
  r.calls.forEach((c, i) => {
    if (c.step !== step) {
      step = c.step;
      io.out(`\n${step}`);
    }
    const target = (c.input as { thingGroupName?: string; targetArn?: string; deploymentId?: string; jobId?: string }).thingGroupName ?? (c.input as { targetArn?: string }).targetArn ?? (c.input as { deploymentId?: string }).deploymentId ?? (c.input as { jobId?: string }).jobId ?? '';
    const thing = (c.input as { thingName?: string }).thingName;
    io.out(`  ${String(i + 1).padStart(4)}. ${c.service} ${c.command} ${target}${thing ? ` <- ${thing}` : ''}`);
  });
  for (const n of r.notes) io.out(`note: ${n}`);
  return 0;
}
