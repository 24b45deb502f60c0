/**
 * `--dry-run`: every AWS call the Greengrass backend would make, in order, without
 * credentials or network. The real backend code plans the calls; a recording executor takes
 * the place of the SDK and answers with made-up ARNs and ids, so the plan an operator reviews
 * is the one a real run sends (the answers' ids are the only difference).
 */
import pino, { type Logger } from 'pino';
import type { ModelRef } from '../../../shared/schemas/common.js';
import type { TargetDevice } from '../../core/rollouts/event-schema.js';
import { initialState, step } from '../../core/rollouts/machine.js';
import type { RolloutPlanInput } from '../../core/rollouts/plan-schema.js';
import { stagesOf } from '../../core/rollouts/stages.js';
import type { RolloutEvent } from '../../core/rollouts/event-schema.js';
import type { RolloutState } from '../../core/rollouts/state-schema.js';
import type { AwsFleetConfig } from './aws-config.js';
import { COMMAND_SERVICE, type AwsCall, type AwsCommandName, type AwsCommands, type AwsExecutor } from './calls.js';
import { GreengrassBackend, type ModelLocation } from './greengrass-backend.js';
import { memoryLedgerStore } from './ledger.js';

/** Account id shown in ARNs when the configuration has none (a dry run needs no account). */
export const DRY_RUN_ACCOUNT = '000000000000';

export interface RecordedCall extends AwsCall {
  /** What the backend was doing: `start`, `stage wave 1`, `abort`, `poll`... */
  step: string;
}

/** An executor that records each call and answers like the service would, with fake ids. */
export function recordingExecutor(cfg: AwsFleetConfig, onCall?: (c: AwsCall) => void): AwsExecutor & { calls: AwsCall[] } {
  const account = cfg.account_id ?? DRY_RUN_ACCOUNT;
  let n = 0;
  const calls: AwsCall[] = [];
  const answer = (command: AwsCommandName, input: Record<string, unknown>): unknown => {
    switch (command) {
      case 'CreateThingGroup':
      case 'DescribeThingGroup': {
        const name = String(input.thingGroupName);
        return { thingGroupName: name, thingGroupArn: `arn:aws:iot:${cfg.region}:${account}:thinggroup/${name}`, thingGroupId: `dry-run-${name}` };
      }
      case 'CreateDeployment': {
        n += 1;
        const job = `dry-run-job-${n}`;
        return { deploymentId: `dry-run-deployment-${n}`, iotJobId: job, iotJobArn: `arn:aws:iot:${cfg.region}:${account}:job/${job}` };
      }
      case 'GetDeployment':
        return { deploymentId: input.deploymentId, deploymentStatus: 'ACTIVE' };
      case 'DescribeJob':
        return { job: { jobId: input.jobId, status: 'IN_PROGRESS' } };
      case 'ListJobExecutionsForJob':
        return { executionSummaries: [] };
      case 'ListEffectiveDeployments':
        return { effectiveDeployments: [] };
      default:
        return {};
    }
  };
  return {
    calls,
    async send<K extends AwsCommandName>(command: K, input: AwsCommands[K]['input']): Promise<AwsCommands[K]['output']> {
      const call = { service: COMMAND_SERVICE[command], command, input: structuredClone(input) } as AwsCall;
      calls.push(call);
      onCall?.(call);
      return { $metadata: {}, ...(answer(command, input as Record<string, unknown>) as object) } as AwsCommands[K]['output'];
    },
  };
}

export interface DryRunOptions {
  cfg: AwsFleetConfig;
  model: ModelRef;
  plan: RolloutPlanInput;
  /** Target devices (IoT thing names) with what they run now. */
  devices: TargetDevice[];
  rolloutId?: string;
  /** Where devices would fetch a model; default: a placeholder in the configured bucket. */
  locate?: (m: ModelRef) => Promise<ModelLocation>;
  /** Also show the abort path, taken at this stage name (`canary`, `wave 2`...). */
  abortAt?: string;
  /** The time the dry run pretends it is (revisions and issued_at derive from it). */
  now: number;
  log?: Logger;
}

export interface DryRunResult {
  calls: RecordedCall[];
  stages: string[];
  /** What the dry run could not know and filled in. */
  notes: string[];
}

/** A placeholder manifest hash (the real one comes from the registry when the rollout is created). */
export const PLACEHOLDER_SHA256 = '0'.repeat(64);

/**
 * Walk a rollout plan through the real rollout machine and the real backend: start, then a
 * forced promotion into every later stage (the calls each stage makes), optionally an abort,
 * then one status sweep (the read calls).
 */
export async function dryRunRollout(o: DryRunOptions): Promise<DryRunResult> {
  const id = o.rolloutId ?? 'ro_dryrun';
  const notes: string[] = [];
  const locate =
    o.locate ??
    (async (m: ModelRef): Promise<ModelLocation> => {
      if (!notes.some((n) => n.startsWith('model locations')))
        notes.push('model locations are placeholders: a real run uses the fleet URL, the manifest sha256 from the registry and per-file S3 presigned URLs');
      return { base_url: `https://${o.cfg.s3.bucket}.s3.${o.cfg.region}.amazonaws.com/${o.cfg.s3.prefix}models/${m.name}/${m.version}/`, manifest_sha256: PLACEHOLDER_SHA256 };
    });
  if (!o.cfg.account_id) notes.push(`ARNs use account ${DRY_RUN_ACCOUNT} (set account_id to see yours); deployment and job ids are made up`);
  else notes.push('deployment and job ids are made up');
  let state: RolloutState = initialState(id, o.model, o.plan);
  const exec = recordingExecutor(o.cfg);
  const backend = new GreengrassBackend({ cfg: o.cfg, aws: exec, ledger: memoryLedgerStore(), rollout: () => state, locate, clock: { now: () => now }, log: o.log ?? pino({ level: 'silent' }) });
  const calls: RecordedCall[] = [];
  let now = o.now;
  const run = async (label: string, ev: RolloutEvent): Promise<void> => {
    const r = step(state, ev);
    state = r.state;
    const before = exec.calls.length;
    await backend.deliver(id, r.desired);
    for (const c of exec.calls.slice(before)) calls.push({ step: label, ...c });
  };
  const stages = stagesOf(state.plan);
  await run(`start: ${stages[0]?.name ?? ''}`, { type: 'start', at: now, devices: o.devices });
  while (state.status === 'running' || state.status === 'paused') {
    const name = stages[state.stage]?.name ?? '';
    if (o.abortAt !== undefined && name === o.abortAt) {
      now += 60_000;
      await run('abort', { type: 'command', at: now, command: 'abort', actor: 'dry-run' });
      break;
    }
    const before = state.stage;
    now += 60_000;
    await run(`promote: ${stages[before + 1]?.name ?? 'complete'}`, { type: 'command', at: now, command: 'promote', actor: 'dry-run', force: true });
    // A promote that moved nothing (the machine refused it) would loop forever.
    if (state.stage === before && (state.status as string) !== 'completed') break;
  }
  if (o.abortAt !== undefined && !stages.some((s) => s.name === o.abortAt)) notes.push(`no stage named ${o.abortAt}: the abort path was not shown`);
  const before = exec.calls.length;
  await backend.poll(() => undefined);
  for (const c of exec.calls.slice(before)) calls.push({ step: 'status sweep', ...c });
  return { calls, stages: stages.map((s) => s.name), notes };
}
