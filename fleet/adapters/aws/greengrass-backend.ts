/**
 * The rollout backend on AWS IoT Greengrass v2: the rollout machine's per-device desired
 * states become thing groups and deployments.
 *
 * - Each stage is a static thing group (`<prefix>-<rollout>-canary`, `...-wave-1`, ...): the
 *   devices a stage moves are added to it, and the group gets one `CreateDeployment` of the
 *   agent component whose configuration carries the desired model (reset + merge of
 *   `/desired`, see greengrass-recipes/README.md). Group deployments are continuous: a device
 *   added later (a top-up) receives the group's deployment without a new one.
 * - Devices whose desired state differs from their stage's (a failed device reverted to its
 *   last-known-good, every touched device on abort) move to a revert group per distinct
 *   desired state, which gets its own deployment; the device then leaves its old group (after
 *   the new deployment exists, so it is never without one). A device is in at most one
 *   edgeloop group at a time: IoT bounds how many groups a thing may join.
 * - Abort: `CancelDeployment` of every active stage deployment of the rollout (devices not yet
 *   notified never get the candidate), then the revert deployments.
 * - Status: `GetDeployment`, `DescribeJob` and `ListJobExecutionsForJob` (plus
 *   `ListEffectiveDeployments` for a failed device's reason), mapped by status-mapping.ts into
 *   the machine's own events. The agents' status and telemetry still arrive over IoT Core and
 *   drive installs and the quality gates, which stay in the fleet service: IoT Jobs only
 *   counts failures.
 *
 * Every call is planned as data and sent through an {@link AwsExecutor}: the SDK in a real
 * run, a recorder in `--dry-run`.
 */
import { createHash } from 'node:crypto';
import type { ListEffectiveDeploymentsCommandOutput } from '@aws-sdk/client-greengrassv2';
import type { JobExecutionStatus, ListJobExecutionsForJobCommandOutput, ListThingsInThingGroupCommandOutput } from '@aws-sdk/client-iot';
import type { Logger } from 'pino';
import type { Clock } from '../../../shared/ids.js';
import { modelRefString, type ModelRef } from '../../../shared/schemas/common.js';
import type { ComponentDesired } from '../../../shared/schemas/greengrass.js';
import type { RolloutBackend } from '../../app/rollouts/backend.js';
import type { CommandEvent, DeviceReportEvent } from '../../core/rollouts/event-schema.js';
import { sameModel } from '../../core/rollouts/draft.js';
import { stagesOf } from '../../core/rollouts/stages.js';
import type { DesiredChange, RolloutState } from '../../core/rollouts/state-schema.js';
import type { AwsFleetConfig } from './aws-config.js';
import { awsErrorName, type AwsExecutor } from './calls.js';
import { stageDeploymentRequest, thingGroupName } from './deployment-config.js';
import { addThingInput, createThingGroupInput, listThingsInput, removeThingInput } from './iot-groups.js';
import type { GroupRecord, Ledger, LedgerStore } from './ledger.js';
import { deploymentLifecycle, effectiveDeploymentEvent, JOB_EXECUTION_MEANING, jobAbortEvent, jobExecutionEvent, stillPolling, thingNameFromArn } from './status-mapping.js';

/** Where a device fetches a model version (the desired-state artifact fields). */
export interface ModelLocation {
  base_url: string;
  manifest_sha256: string;
  /** Per-file URLs (S3 presigned GETs), keys `manifest.json` and `files/<path>`. */
  urls?: Record<string, string>;
}

export interface GreengrassBackendDeps {
  cfg: AwsFleetConfig;
  aws: AwsExecutor;
  ledger: LedgerStore;
  /** The rollout's current state, to name stages and read their gates. */
  rollout(rolloutId: string): RolloutState | null;
  locate(model: ModelRef): Promise<ModelLocation>;
  clock: Clock;
  log: Logger;
}

/** Where mapped status events go: the rollout manager. */
export type BackendEventSink = (rolloutId: string, event: DeviceReportEvent | CommandEvent) => void;

interface Bucket {
  name: string;
  label: string;
  kind: 'stage' | 'revert';
  change: DesiredChange;
  model: ModelRef;
  stageIndex: number;
  devices: string[];
}

function changeKey(c: DesiredChange): string {
  const canon = JSON.stringify([c.active ? modelRefString(c.active) : null, c.shadow ? [modelRefString(c.shadow.model), c.shadow.sample_rate] : null]);
  return createHash('sha256').update(canon).digest('hex').slice(0, 8);
}

export class GreengrassBackend implements RolloutBackend {
  readonly name = 'greengrass';
  private led: Ledger;
  /** Last job execution status seen per `<job>/<thing>`: only changes become events. */
  private readonly seen = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private polling: Promise<number> | null = null;

  constructor(private readonly deps: GreengrassBackendDeps) {
    this.led = deps.ledger.load();
  }

  /** A copy of what the backend knows (tests, the status page). */
  ledger(): Ledger {
    return structuredClone(this.led);
  }

  async deliver(rolloutId: string, changes: readonly DesiredChange[]): Promise<void> {
    if (changes.length === 0) return;
    const state = this.deps.rollout(rolloutId);
    if (state && (state.status === 'aborted' || state.status === 'rolled_back')) await this.cancelStages(rolloutId, state.status);
    for (const b of this.buckets(rolloutId, state, changes)) await this.deliverBucket(rolloutId, state, b);
  }

  /** Group the changes by the thing group they belong in, in the order they came. */
  private buckets(rolloutId: string, state: RolloutState | null, changes: readonly DesiredChange[]): Bucket[] {
    const stages = state ? stagesOf(state.plan) : [];
    const out = new Map<string, Bucket>();
    for (const c of changes) {
      const rec = state?.devices[c.device_id];
      const cand = state?.candidate;
      let kind: Bucket['kind'] = 'revert';
      let stageIndex = state?.stage ?? 0;
      let label: string;
      if (cand && sameModel(c.active, cand)) {
        kind = 'stage';
        stageIndex = rec?.assigned_stage ?? stageIndex;
        const base = (stages[stageIndex]?.name ?? 'stage').replace(/\s+/g, '-');
        label = c.shadow === null ? base : `${base}-${changeKey(c)}`;
      } else if (cand && c.shadow && sameModel(c.shadow.model, cand)) {
        kind = 'stage';
        stageIndex = rec?.shadow_stage ?? stageIndex;
        // Shadow devices keep their own active model: one group per distinct desired state.
        label = `${(stages[stageIndex]?.name ?? 'shadow').replace(/\s+/g, '-')}-${changeKey(c)}`;
      } else {
        label = `revert-${changeKey(c)}`;
      }
      const name = thingGroupName(this.deps.cfg.greengrass.thing_group_prefix, rolloutId, label);
      const model = kind === 'stage' ? (cand as ModelRef) : (c.active ?? cand ?? { name: 'unknown', version: '0.0.0' });
      const b = out.get(name) ?? { name, label, kind, change: c, model, stageIndex, devices: [] };
      b.devices.push(c.device_id);
      out.set(name, b);
    }
    return [...out.values()];
  }

  private async deliverBucket(rolloutId: string, state: RolloutState | null, b: Bucket): Promise<void> {
    const { aws, log } = this.deps;
    let g = this.led.groups[b.name];
    if (!g) {
      const arn = await this.ensureGroup(rolloutId, b);
      g = { name: b.name, arn, rollout_id: rolloutId, label: b.label, kind: b.kind, model: b.model, revision: 0, deployment_id: null, iot_job_id: null, lifecycle: 'none', canceled_by_fleet: false, abort_reported: false, members: [] };
      this.led.groups[b.name] = g;
      this.save();
    }
    for (const d of b.devices) {
      if (g.members.includes(d)) continue;
      await aws.send('AddThingToThingGroup', addThingInput(g.name, d));
      g.members.push(d);
      this.save();
    }
    // A device ignores a revision not newer than the one it applied: a group whose deployment
    // is older than what an incoming device already got (or that was cancelled) deploys anew.
    const newest = Math.max(0, ...b.devices.filter((d) => this.led.member_of[d] !== g.name).map((d) => this.led.device_revision[d] ?? 0));
    if (!g.deployment_id || g.lifecycle !== 'active' || g.revision <= newest) {
      g.revision = this.nextRevision();
      this.save();
      const desired = await this.desiredFor(rolloutId, b.change, g.revision, state?.candidate.name);
      const stages = state ? stagesOf(state.plan) : [];
      const gates = state ? (stages[Math.min(b.stageIndex, stages.length - 1)]?.gates ?? state.plan.gates) : null;
      if (!gates) throw new Error(`rollout ${rolloutId} is unknown to the manager`);
      const req = stageDeploymentRequest(this.deps.cfg.greengrass, { rolloutId, label: b.label, targetArn: g.arn, desired, gates, stageSize: g.members.length });
      const res = await aws.send('CreateDeployment', req);
      g.deployment_id = res.deploymentId ?? null;
      g.iot_job_id = res.iotJobId ?? null;
      g.lifecycle = 'active';
      g.canceled_by_fleet = false;
      g.abort_reported = false;
      log.info({ rollout: rolloutId, group: g.name, deployment: g.deployment_id, job: g.iot_job_id, devices: g.members.length, revision: g.revision }, 'greengrass deployment created');
    }
    for (const d of b.devices) this.led.device_revision[d] = g.revision;
    this.save();
    for (const d of b.devices) {
      const old = this.led.member_of[d];
      if (old && old !== g.name) {
        await aws.send('RemoveThingFromThingGroup', removeThingInput(old, d));
        const og = this.led.groups[old];
        if (og) og.members = og.members.filter((m) => m !== d);
        // Saved after each AWS call, so a crash mid-wave never forgets a group it left.
        this.led.member_of[d] = g.name;
        this.save();
      } else {
        this.led.member_of[d] = g.name;
      }
    }
    this.save();
  }

  private async ensureGroup(rolloutId: string, b: Bucket): Promise<string> {
    const { aws } = this.deps;
    const what = b.kind === 'stage' ? `stage ${b.label} of ${modelRefString(b.model)}` : `revert to ${modelRefString(b.model)}`;
    try {
      const r = await aws.send('CreateThingGroup', createThingGroupInput(b.name, { rolloutId, label: b.label, description: `edgeloop rollout ${rolloutId}: ${what}` }));
      if (r.thingGroupArn) return r.thingGroupArn;
    } catch (err) {
      // A restart between CreateThingGroup and the ledger save: the group is ours already.
      if (awsErrorName(err) !== 'ResourceAlreadyExistsException') throw err;
    }
    const d = await aws.send('DescribeThingGroup', { thingGroupName: b.name });
    if (!d.thingGroupArn) throw new Error(`DescribeThingGroup ${b.name} returned no ARN`);
    return d.thingGroupArn;
  }

  private async cancelStages(rolloutId: string, status: string): Promise<void> {
    for (const g of Object.values(this.led.groups)) {
      if (g.rollout_id !== rolloutId || g.kind !== 'stage' || !g.deployment_id || g.lifecycle !== 'active') continue;
      // Mark first: the cancel's own job status must not read as an IoT Jobs abort.
      g.canceled_by_fleet = true;
      this.save();
      await this.deps.aws.send('CancelDeployment', { deploymentId: g.deployment_id });
      g.lifecycle = 'canceled';
      this.save();
      this.deps.log.warn({ rollout: rolloutId, group: g.name, deployment: g.deployment_id, status }, 'greengrass stage deployment cancelled');
    }
  }

  private async desiredFor(rolloutId: string, c: DesiredChange, revision: number, candidateName?: string): Promise<ComponentDesired> {
    const loc = async (m: ModelRef) => ({ model: m, ...(await this.deps.locate(m)) });
    const slot = c.model_name ?? candidateName;
    return {
      v: 1,
      revision,
      rollout_id: rolloutId,
      issued_at: new Date(this.deps.clock.now()).toISOString(),
      ...(slot ? { model_name: slot } : {}),
      active: c.active ? await loc(c.active) : null,
      ...(c.shadow ? { shadow: { ...(await loc(c.shadow.model)), sample_rate: c.shadow.sample_rate } } : {}),
    };
  }

  /** Fleet-wide monotonic: epoch ms, or one more than the last issued (a clock step back never reuses one). */
  private nextRevision(): number {
    this.led.last_revision = Math.max(this.deps.clock.now(), this.led.last_revision + 1);
    return this.led.last_revision;
  }

  private save(): void {
    this.deps.ledger.save(this.led);
  }

  /**
   * One status sweep over every active deployment: lifecycle, IoT Jobs aborts, and per-device
   * execution statuses that changed since the last sweep. Returns the number of events sent.
   */
  async poll(sink: BackendEventSink): Promise<number> {
    const { aws } = this.deps;
    let sent = 0;
    for (const g of Object.values(this.led.groups)) {
      if (!g.deployment_id || !stillPolling(g.lifecycle === 'none' ? 'active' : g.lifecycle)) continue;
      const at = this.deps.clock.now();
      const dep = await aws.send('GetDeployment', { deploymentId: g.deployment_id });
      const life = deploymentLifecycle(dep.deploymentStatus);
      if (life) g.lifecycle = life;
      const jobId = g.iot_job_id ?? dep.iotJobId ?? null;
      if (!jobId) continue;
      const job = await aws.send('DescribeJob', { jobId });
      const abort = jobAbortEvent(job.job?.status, { canceledByFleet: g.canceled_by_fleet, at, jobId, ...(job.job?.reasonCode ? { reasonCode: job.job.reasonCode } : {}), ...(job.job?.comment ? { comment: job.job.comment } : {}) });
      if (abort && !g.abort_reported && g.kind === 'stage') {
        // "Reported" and the pause it makes commit together: a crash between them would lose
        // the abort, or report it twice. The ledger first, so the rollout's save is the last
        // write before the commit; a failed report leaves the flag unset for the next sweep.
        const report = abort;
        try {
          this.deps.ledger.atomically(() => {
            g.abort_reported = true;
            this.save();
            sink(g.rollout_id, report);
          });
        } catch (err) {
          g.abort_reported = false;
          throw err;
        }
        sent++;
      }
      let nextToken: string | undefined;
      do {
        const page: ListJobExecutionsForJobCommandOutput = await aws.send('ListJobExecutionsForJob', { jobId, maxResults: 250, ...(nextToken ? { nextToken } : {}) });
        for (const s of page.executionSummaries ?? []) {
          const thing = s.thingArn ? thingNameFromArn(s.thingArn) : null;
          const status = s.jobExecutionSummary?.status;
          // Only the group a device is in now speaks for it (it may have moved on).
          if (!thing || !status || this.led.member_of[thing] !== g.name) continue;
          const key = `${jobId}/${thing}`;
          if (this.seen.get(key) === status) continue;
          this.seen.set(key, status);
          let ev = jobExecutionEvent(status, { deviceId: thing, model: g.model, at });
          if (JOB_EXECUTION_MEANING[status as JobExecutionStatus]?.phase === 'failed') ev = (await this.failureDetail(g, thing, at)) ?? ev;
          if (ev) {
            sink(g.rollout_id, ev);
            sent++;
          }
        }
        nextToken = page.nextToken;
      } while (nextToken);
    }
    this.save();
    return sent;
  }

  /** The device's own view of the failed deployment (Greengrass keeps a reason and error types). */
  private async failureDetail(g: GroupRecord, thing: string, at: number): Promise<DeviceReportEvent | null> {
    let nextToken: string | undefined;
    do {
      const r: ListEffectiveDeploymentsCommandOutput = await this.deps.aws.send('ListEffectiveDeployments', { coreDeviceThingName: thing, maxResults: 100, ...(nextToken ? { nextToken } : {}) });
      const e = r.effectiveDeployments?.find((x) => x.deploymentId === g.deployment_id);
      if (e) {
        const detail = [e.reason, ...(e.statusDetails?.errorTypes ?? []), ...(e.statusDetails?.errorStack ?? [])].filter(Boolean).join('; ');
        return effectiveDeploymentEvent(e.coreDeviceExecutionStatus, { deviceId: thing, model: g.model, at, ...(detail ? { detail } : {}) });
      }
      nextToken = r.nextToken;
    } while (nextToken);
    return null;
  }

  /**
   * Compare the ledger with the groups' real members (`ListThingsInThingGroup`): a thing that
   * someone removed by hand is forgotten (the fleet no longer speaks for it through that
   * group); a thing added by hand is reported, not adopted. Runs before the first sweep.
   */
  async reconcile(): Promise<{ missing: string[]; unexpected: string[] }> {
    const missing: string[] = [];
    const unexpected: string[] = [];
    for (const g of Object.values(this.led.groups)) {
      if (g.members.length === 0 && g.lifecycle !== 'active') continue;
      const listed = new Set<string>();
      let nextToken: string | undefined;
      do {
        const page: ListThingsInThingGroupCommandOutput = await this.deps.aws.send('ListThingsInThingGroup', listThingsInput(g.name, nextToken));
        for (const t of page.things ?? []) listed.add(t);
        nextToken = page.nextToken;
      } while (nextToken);
      for (const m of g.members) {
        if (listed.has(m)) continue;
        missing.push(`${g.name}/${m}`);
        if (this.led.member_of[m] === g.name) delete this.led.member_of[m];
      }
      g.members = g.members.filter((m) => listed.has(m));
      for (const t of listed) if (!g.members.includes(t)) unexpected.push(`${g.name}/${t}`);
    }
    this.save();
    if (missing.length || unexpected.length) this.deps.log.warn({ missing, unexpected }, 'thing group members differ from what the fleet put there');
    return { missing, unexpected };
  }

  /** Reconcile, then poll every `greengrass.status_poll_s` until {@link stop}; a failed sweep is logged and retried next time. */
  start(sink: BackendEventSink): void {
    if (this.timer) return;
    let reconciled = false;
    this.timer = setInterval(() => {
      if (this.polling) return;
      const sweep = async (): Promise<number> => {
        if (!reconciled) {
          await this.reconcile();
          reconciled = true;
        }
        return this.poll(sink);
      };
      this.polling = sweep()
        .catch((err: unknown) => {
          this.deps.log.warn({ err }, 'greengrass status sweep failed; retrying at the next interval');
          return 0;
        })
        .finally(() => {
          this.polling = null;
        });
    }, this.deps.cfg.greengrass.status_poll_s * 1000);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.polling;
  }
}
