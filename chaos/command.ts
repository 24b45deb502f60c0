/** `npm run chaos -- --minutes N`: the fault campaign as a command; one JSON line on stdout. */
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import pino from 'pino';
import { numberFlag, parseFlags, type Io } from '../shared/cli.js';
import { sharedError } from '../shared/errors.js';
import { createLogger } from '../shared/log.js';
import { runCampaign, type CampaignResult } from './campaign.js';

export const CHAOS_HELP = `Usage: npm run chaos -- [--minutes N] [--agents N] [--seed N] [--fault-every-ms N] [--data DIR] [--compiled]

Starts the fleet service and N agents as real processes, cameras feeding every agent and one
rollout after another, and for --minutes injects faults drawn at random (seeded): SIGKILL an
agent and restart it, SIGKILL the fleet (and with it the embedded MQTT broker) and restart it
on the same ports and data, cut and restore an agent's link to the broker, cut every link at
once, fill an agent's queue quota while its link is down. Then it restores everything, waits
for the queues to drain and the last rollout to converge, and accounts: every sample id
returned to a caller is stored by the fleet exactly once, or is on its device's own record of
samples dropped for space (edgeloop-agent queue dropped); only what that record cannot show
(samples still queued, drops older than the record keeps) is accepted by count, as by_count.

Progress goes to stderr; stdout gets one JSON line: faults by kind, faults_total, captured,
received, evicted, missing, by_count, lost, duplicated, converged, seconds. Exit code 1 when anything was lost
or stored twice, or a device did not converge.

  --minutes N         how long faults are injected (default 2)
  --agents N          agent processes (default 3)
  --seed N            seed of the fault schedule (default 1)
  --fault-every-ms N  mean time between faults (default 1000)
  --data DIR          working directory (default: a new temp directory)
  --compiled          start the fleet and agents from dist/ (run npm run build first): faster
                      restarts than the sources through tsx
  --devices           per-device accounts in the JSON line too`;

export async function chaosCmd(argv: string[], io: Io): Promise<number> {
  const { values } = parseFlags(
    argv,
    {
      minutes: { type: 'string' },
      agents: { type: 'string' },
      seed: { type: 'string' },
      'fault-every-ms': { type: 'string' },
      data: { type: 'string' },
      devices: { type: 'boolean' },
      compiled: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    CHAOS_HELP,
  );
  if (values.help) {
    io.out(CHAOS_HELP);
    return 0;
  }
  const minutes = numberFlag(values.minutes, 'minutes') ?? 2;
  const agents = numberFlag(values.agents, 'agents') ?? 3;
  const faultEveryMs = numberFlag(values['fault-every-ms'], 'fault-every-ms') ?? 1000;
  if (!(minutes > 0)) throw sharedError('USAGE', `--minutes must be positive, got ${values.minutes}`);
  if (!Number.isInteger(agents) || agents < 1) throw sharedError('USAGE', `--agents must be a positive integer, got ${values.agents}`);
  if (!(faultEveryMs > 0)) throw sharedError('USAGE', `--fault-every-ms must be positive, got ${values['fault-every-ms']}`);
  const dir = values.data ? resolve(values.data) : await mkdtemp(join(tmpdir(), 'edgeloop-chaos-'));
  const result = await runCampaign({
    minutes,
    agents,
    seed: numberFlag(values.seed, 'seed') ?? 1,
    faultEveryMs,
    compiled: values.compiled === true,
    dir,
    say: (l) => io.err(l),
    log: createLogger(process.env.EDGELOOP_LOG_LEVEL ?? 'warn', pino.destination(2), { component: 'chaos' }),
  });
  for (const p of result.problems) io.err(`problem: ${p}`);
  io.out(JSON.stringify(summary(result, values.devices === true)));
  return verdict(result) ? 0 : 1;
}

/** The JSON line: the figures first, the per-device accounts only when asked for. */
export function summary(r: CampaignResult, withDevices: boolean): Record<string, unknown> {
  const { devices, problems, ...figures } = r;
  return { ...figures, problems: problems.length, ...(withDevices ? { devices } : {}) };
}

/** A campaign passes when nothing was lost or stored twice and every device converged. */
export function verdict(r: CampaignResult): boolean {
  return r.lost === 0 && r.duplicated === 0 && r.converged;
}

