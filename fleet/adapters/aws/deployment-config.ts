/**
 * Pure: a rollout stage (its gates and size) plus the desired model -> the Greengrass v2
 * `CreateDeployment` input, and the checks every such input must pass against the documented
 * limits before it is sent. No I/O, no clock: the backend passes the revision and ARN in.
 */
import { createHash } from 'node:crypto';
import type { CreateDeploymentRequest, DeploymentIoTJobConfiguration, DeploymentPolicies } from '@aws-sdk/client-greengrassv2';
import { componentDesired, type ComponentDesired } from '../../../shared/schemas/greengrass.js';
import { FleetError } from '../../errors.js';
import type { Gates } from '../../core/rollouts/plan-schema.js';
import { AWS_LIMITS, type GreengrassConfig } from './aws-config.js';

/** What a stage deployment is derived from. */
export interface StageDeploymentSpec {
  rolloutId: string;
  /** `canary`, `wave-2`, `shadow-<hash>`, `revert-<hash>`: the thing group's suffix. */
  label: string;
  /** ARN of the thing group (from CreateThingGroup / DescribeThingGroup). */
  targetArn: string;
  desired: ComponentDesired;
  /** The stage's effective gates (plan gates with the stage's overrides). */
  gates: Gates;
  /** Devices in the group when the deployment is created (the job is continuous: later members get it too). */
  stageSize: number;
}

/** `<prefix>-<rollout id>-<label>`, restricted to what IoT accepts (`[a-zA-Z0-9:_-]`, 128 chars). */
export function thingGroupName(prefix: string, rolloutId: string, label: string): string {
  const name = `${prefix}-${rolloutId}-${label}`.replace(/[^a-zA-Z0-9:_-]/g, '-');
  if (name.length <= AWS_LIMITS.thingGroupName.max) return name;
  // Keep it unique when cut: the tail becomes a hash of the whole name.
  const h = createHash('sha256').update(name).digest('hex').slice(0, 16);
  return `${name.slice(0, AWS_LIMITS.thingGroupName.max - 17)}-${h}`;
}

/** A short stable key of a desired slot, for group labels and idempotency tokens. */
export function slotKey(desired: Pick<ComponentDesired, 'active' | 'shadow'>): string {
  const canon = JSON.stringify({
    a: desired.active ? [desired.active.model.name, desired.active.model.version, desired.active.manifest_sha256] : null,
    s: desired.shadow ? [desired.shadow.model.name, desired.shadow.model.version, desired.shadow.manifest_sha256, desired.shadow.sample_rate] : null,
  });
  return createHash('sha256').update(canon).digest('hex').slice(0, 12);
}

/** Deterministic `clientToken` (hex fits `[a-zA-Z0-9-]{1,64}`): a retried CreateDeployment is not a second deployment. */
function deploymentClientToken(groupName: string, revision: number): string {
  return createHash('sha256').update(`${groupName}\n${revision}`).digest('hex').slice(0, 64);
}

/** Percentages with at most two decimals, as IoT Jobs accepts them. */
const pct2 = (x: number): number => Math.floor(x * 100 + 1e-9) / 100;

/**
 * IoT Jobs configuration of a stage: exponential rollout from the configured base rate,
 * one abort criterion (all failure types, CANCEL), and the in-progress timeout. IoT Jobs only
 * counts failures; the fleet's quality gates (confidence, latency, error rate) stay in the
 * fleet, which pauses or aborts the rollout itself.
 */
export function stageJobConfiguration(cfg: GreengrassConfig, gates: Gates, stageSize: number): DeploymentIoTJobConfiguration {
  const r = cfg.rollout;
  const threshold = gates.max_failure_ratio !== null ? Math.max(0.01, pct2(gates.max_failure_ratio * 100)) : cfg.abort.threshold_percentage;
  // The abort needs enough executions to mean something, but never more than the group holds
  // (it could never trigger).
  const minExecuted = Math.max(1, Math.min(Math.max(1, stageSize), Math.max(cfg.abort.min_executed_things, gates.min_devices_reporting)));
  return {
    jobExecutionsRolloutConfig: {
      exponentialRate: {
        baseRatePerMinute: Math.min(r.base_rate_per_minute, r.maximum_per_minute),
        incrementFactor: r.increment_factor,
        rateIncreaseCriteria: { numberOfNotifiedThings: r.notified_things_per_increase },
      },
      maximumPerMinute: r.maximum_per_minute,
    },
    abortConfig: {
      criteriaList: [{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: pct2(threshold), minNumberOfExecutedThings: minExecuted }],
    },
    timeoutConfig: { inProgressTimeoutInMinutes: cfg.in_progress_timeout_minutes },
  };
}

/**
 * Per device: a failed update rolls the component back to its previous configuration; the
 * agent is notified (it defers while inference is in flight and the queue checkpoints) and
 * validates the new configuration before it applies.
 */
function deploymentPolicies(cfg: GreengrassConfig): DeploymentPolicies {
  return {
    failureHandlingPolicy: 'ROLLBACK',
    componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutInSeconds: cfg.component_update_timeout_s },
    configurationValidationPolicy: { timeoutInSeconds: cfg.config_validation_timeout_s },
  };
}

/**
 * The configuration update carrying the desired model (greengrass-recipes/README.md):
 * reset `/desired` first, so keys of an older desired model (a per-file URL of a file the new
 * version lacks) do not survive Greengrass's deep merge, then merge the new one. A desired
 * state naming its model slot also goes to `/desired_by_model/NAME` (reset the same way), which
 * agents serving several models read per slot; `desired` stays for agents older than slots.
 */
function desiredConfigurationUpdate(desired: ComponentDesired): { reset: string[]; merge: string } {
  const d = componentDesired.parse(desired);
  const slot = d.model_name;
  if (!slot) return { reset: ['/desired'], merge: JSON.stringify({ desired: d }) };
  return { reset: ['/desired', `/desired_by_model/${slot}`], merge: JSON.stringify({ desired: d, desired_by_model: { [slot]: d } }) };
}

/** The `CreateDeployment` input of one stage (or revert) group. Throws `FLEET_AWS_LIMIT_EXCEEDED`. */
export function stageDeploymentRequest(cfg: GreengrassConfig, s: StageDeploymentSpec): CreateDeploymentRequest {
  const groupName = thingGroupName(cfg.thing_group_prefix, s.rolloutId, s.label);
  const req: CreateDeploymentRequest = {
    targetArn: s.targetArn,
    deploymentName: `edgeloop ${s.rolloutId} ${s.label} r${s.desired.revision}`.slice(0, AWS_LIMITS.deploymentName.max),
    components: {
      [cfg.component_name]: { componentVersion: cfg.component_version, configurationUpdate: desiredConfigurationUpdate(s.desired) },
    },
    deploymentPolicies: deploymentPolicies(cfg),
    iotJobConfiguration: stageJobConfiguration(cfg, s.gates, s.stageSize),
    tags: { 'edgeloop:rollout': s.rolloutId, 'edgeloop:group': groupName },
    clientToken: deploymentClientToken(groupName, s.desired.revision),
  };
  assertWithinLimits(req);
  return req;
}

const inRange = (x: number | undefined, min: number, max: number): boolean => x !== undefined && Number.isFinite(x) && x >= min && x <= max;
const twoDecimals = (x: number): boolean => Math.abs(Math.round(x * 100) - x * 100) < 1e-6;

/**
 * Every documented limit a deployment input must meet, checked on the input itself (not on
 * how it was built): the backend runs it before each send, the tests on every request.
 */
export function deploymentLimitProblems(req: CreateDeploymentRequest): string[] {
  const p: string[] = [];
  const L = AWS_LIMITS;
  if (!req.targetArn || !/^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:(thing|thinggroup)\/[a-zA-Z0-9:_-]+$/.test(req.targetArn)) p.push(`targetArn: not a thing or thing group ARN: ${req.targetArn ?? '(missing)'}`);
  if (req.deploymentName !== undefined && (req.deploymentName.length < 1 || req.deploymentName.length > L.deploymentName.max)) p.push(`deploymentName: 1..${L.deploymentName.max} characters`);
  if (req.clientToken !== undefined && (req.clientToken.length > L.clientToken.max || !L.clientToken.pattern.test(req.clientToken))) p.push('clientToken: 1..64 of [a-zA-Z0-9-]');
  for (const [name, c] of Object.entries(req.components ?? {})) {
    if (!c.componentVersion) p.push(`components.${name}.componentVersion: missing`);
    const merge = c.configurationUpdate?.merge;
    if (merge !== undefined) {
      try {
        JSON.parse(merge);
      } catch {
        p.push(`components.${name}.configurationUpdate.merge: not JSON`);
      }
    }
    for (const ptr of c.configurationUpdate?.reset ?? []) if (!ptr.startsWith('/')) p.push(`components.${name}.configurationUpdate.reset: ${ptr} is not a JSON pointer`);
  }
  const pol = req.deploymentPolicies;
  if (pol?.componentUpdatePolicy?.timeoutInSeconds !== undefined && !(pol.componentUpdatePolicy.timeoutInSeconds >= 1)) p.push('deploymentPolicies.componentUpdatePolicy.timeoutInSeconds: at least 1');
  if (pol?.configurationValidationPolicy?.timeoutInSeconds !== undefined && !(pol.configurationValidationPolicy.timeoutInSeconds >= 1)) p.push('deploymentPolicies.configurationValidationPolicy.timeoutInSeconds: at least 1');
  const job = req.iotJobConfiguration;
  const ro = job?.jobExecutionsRolloutConfig;
  if (ro?.maximumPerMinute !== undefined && !(Number.isInteger(ro.maximumPerMinute) && inRange(ro.maximumPerMinute, L.ratePerMinute.min, L.ratePerMinute.max))) p.push(`jobExecutionsRolloutConfig.maximumPerMinute: integer ${L.ratePerMinute.min}..${L.ratePerMinute.max}`);
  const ex = ro?.exponentialRate;
  if (ex) {
    if (!(Number.isInteger(ex.baseRatePerMinute) && inRange(ex.baseRatePerMinute, L.ratePerMinute.min, L.ratePerMinute.max))) p.push(`exponentialRate.baseRatePerMinute: integer ${L.ratePerMinute.min}..${L.ratePerMinute.max}`);
    if (!inRange(ex.incrementFactor, L.incrementFactor.min, L.incrementFactor.max)) p.push(`exponentialRate.incrementFactor: ${L.incrementFactor.min}..${L.incrementFactor.max}`);
    const c = ex.rateIncreaseCriteria;
    const notified = c?.numberOfNotifiedThings;
    const succeeded = c?.numberOfSucceededThings;
    if ((notified === undefined) === (succeeded === undefined)) p.push('exponentialRate.rateIncreaseCriteria: exactly one of numberOfNotifiedThings, numberOfSucceededThings');
    for (const [k, v] of [['numberOfNotifiedThings', notified], ['numberOfSucceededThings', succeeded]] as const) if (v !== undefined && !(Number.isInteger(v) && v >= L.increaseCriteria.min)) p.push(`rateIncreaseCriteria.${k}: integer >= 1`);
    if (ro?.maximumPerMinute !== undefined && ex.baseRatePerMinute !== undefined && ex.baseRatePerMinute > ro.maximumPerMinute) p.push('exponentialRate.baseRatePerMinute: above maximumPerMinute');
  }
  for (const [i, c] of (job?.abortConfig?.criteriaList ?? []).entries()) {
    if (!['FAILED', 'REJECTED', 'TIMED_OUT', 'ALL'].includes(c.failureType ?? '')) p.push(`abortConfig.criteriaList.${i}.failureType: FAILED | REJECTED | TIMED_OUT | ALL`);
    if (c.action !== 'CANCEL') p.push(`abortConfig.criteriaList.${i}.action: CANCEL is the only action`);
    if (!(inRange(c.thresholdPercentage, L.thresholdPercentage.min, L.thresholdPercentage.max) && twoDecimals(c.thresholdPercentage ?? NaN))) p.push(`abortConfig.criteriaList.${i}.thresholdPercentage: 0..100 with at most two decimals`);
    if (!(Number.isInteger(c.minNumberOfExecutedThings) && (c.minNumberOfExecutedThings ?? 0) >= L.minNumberOfExecutedThings.min)) p.push(`abortConfig.criteriaList.${i}.minNumberOfExecutedThings: integer >= 1`);
  }
  if (job?.abortConfig && (job.abortConfig.criteriaList ?? []).length === 0) p.push('abortConfig.criteriaList: at least one criterion');
  const t = job?.timeoutConfig?.inProgressTimeoutInMinutes;
  if (t !== undefined && !(Number.isInteger(t) && inRange(t, L.inProgressTimeoutMinutes.min, L.inProgressTimeoutMinutes.max))) p.push(`timeoutConfig.inProgressTimeoutInMinutes: integer ${L.inProgressTimeoutMinutes.min}..${L.inProgressTimeoutMinutes.max} (1 minute to 7 days)`);
  return p;
}

function assertWithinLimits(req: CreateDeploymentRequest): void {
  const problems = deploymentLimitProblems(req);
  if (problems.length) throw new FleetError('AWS_LIMIT_EXCEEDED', `CreateDeployment for ${req.targetArn ?? '?'} would be refused: ${problems.join('; ')}`, { details: { problems } });
}
