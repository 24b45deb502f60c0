/**
 * Pure: Greengrass v2 and IoT Jobs status values -> the rollout events the machine already
 * consumes (`device_report`, and a `pause` command when IoT Jobs cancelled a deployment by its
 * abort criteria). Every value of every SDK enum has an entry (the `Record<Enum, ...>` types
 * make a new SDK value a compile error here, and the tests walk each enum).
 *
 * What Greengrass can and cannot say: a SUCCEEDED execution means the component's new
 * configuration reached the agent and it accepted it (validation passed, update applied); it
 * does not mean the model downloaded, verified and passed its smoke test. That proof comes
 * from the agent's own status over IoT Core (phase `active`/`shadow`), so success maps to no
 * event. Failures map to `failed` with a reason: the machine reverts that device alone and
 * counts it against the gates.
 */
import type { DeploymentStatus, EffectiveDeploymentExecutionStatus } from '@aws-sdk/client-greengrassv2';
import type { JobExecutionStatus, JobStatus } from '@aws-sdk/client-iot';
import type { ModelRef } from '../../../shared/schemas/index.js';
import type { DeploymentPhase } from '../../../shared/schemas/messages.js';
import type { CommandEvent, DeviceReportEvent } from '../../core/rollouts/event-schema.js';

/** What a per-device status means for the rollout: a phase with a reason, or nothing new. */
export type DeviceStatusMeaning = { phase: DeploymentPhase; reason: string } | null;

/** IoT Jobs execution status of one thing (ListJobExecutionsForJob). */
export const JOB_EXECUTION_MEANING: Record<JobExecutionStatus, DeviceStatusMeaning> = {
  // Notified, not started: nothing happened on the device yet.
  QUEUED: null,
  // The nucleus took the deployment: resolving, downloading, notifying components.
  IN_PROGRESS: { phase: 'downloading', reason: 'Greengrass deployment in progress on the device' },
  // Configuration applied; the agent's own status reports the model phases.
  SUCCEEDED: null,
  FAILED: { phase: 'failed', reason: 'Greengrass deployment failed on the device; ROLLBACK restored its previous configuration' },
  // The device refused the job, e.g. the agent rejected the configuration in validation.
  REJECTED: { phase: 'failed', reason: 'the device rejected the Greengrass deployment (configuration validation or platform)' },
  TIMED_OUT: { phase: 'failed', reason: 'the Greengrass deployment did not finish within the in-progress timeout' },
  // The thing left the target group (the backend moved it): not news about this deployment.
  REMOVED: null,
  // Cancelled by the fleet (abort) or by the job's abort criteria; the job-level status says which.
  CANCELED: null,
};

/** Greengrass execution status of a deployment on one core device (ListEffectiveDeployments). */
const EFFECTIVE_DEPLOYMENT_MEANING: Record<EffectiveDeploymentExecutionStatus, DeviceStatusMeaning> = {
  QUEUED: null,
  IN_PROGRESS: { phase: 'downloading', reason: 'Greengrass deployment in progress on the device' },
  SUCCEEDED: null,
  // Terminal success of a deployment that needed no component change on this device.
  COMPLETED: null,
  FAILED: { phase: 'failed', reason: 'Greengrass deployment failed on the device; ROLLBACK restored its previous configuration' },
  REJECTED: { phase: 'failed', reason: 'the device rejected the Greengrass deployment (configuration validation or platform)' },
  TIMED_OUT: { phase: 'failed', reason: 'the Greengrass deployment did not finish within the in-progress timeout' },
  CANCELED: null,
};

/** Lifecycle of a deployment as the backend tracks it (GetDeployment). */
export type DeploymentLifecycle = 'active' | 'completed' | 'canceled' | 'failed' | 'superseded';
const DEPLOYMENT_LIFECYCLE: Record<DeploymentStatus, DeploymentLifecycle> = {
  ACTIVE: 'active',
  COMPLETED: 'completed',
  CANCELED: 'canceled',
  FAILED: 'failed',
  // A newer deployment to the same target replaced it.
  INACTIVE: 'superseded',
};

/** Whether the backend keeps polling a deployment's job executions. */
export const stillPolling = (l: DeploymentLifecycle): boolean => l === 'active';

/** IoT job status (DescribeJob): whether it still runs, and whether a cancel means an abort by IoT Jobs. */
export type JobLifecycle = 'scheduled' | 'running' | 'completed' | 'canceled' | 'deleting';
const JOB_LIFECYCLE: Record<JobStatus, JobLifecycle> = {
  SCHEDULED: 'scheduled',
  IN_PROGRESS: 'running',
  COMPLETED: 'completed',
  CANCELED: 'canceled',
  DELETION_IN_PROGRESS: 'deleting',
};

/** The thing name of an IoT thing ARN (`arn:aws:iot:<region>:<account>:thing/<name>`). */
export function thingNameFromArn(arn: string): string | null {
  const m = /^arn:aws[a-z-]*:iot:[a-z0-9-]+:\d{12}:thing\/([a-zA-Z0-9:_-]+)$/.exec(arn);
  return m?.[1] ?? null;
}

/** Unknown values (a newer service than this SDK) mean nothing rather than a guess. */
function lookup<K extends string, V>(table: Record<K, V>, status: string | undefined): V | null {
  return status !== undefined && Object.hasOwn(table, status) ? table[status as K] : null;
}

export interface DeviceStatusContext {
  deviceId: string;
  /** The model this deployment is about: the candidate for stage groups, last-known-good for reverts. */
  model: ModelRef;
  at: number;
  /** Extra detail from the service (statusDetails, reason, error types). */
  detail?: string;
}

function toEvent(meaning: DeviceStatusMeaning, c: DeviceStatusContext): DeviceReportEvent | null {
  if (!meaning) return null;
  const reason = c.detail ? `${meaning.reason}: ${c.detail}` : meaning.reason;
  return { type: 'device_report', at: c.at, device_id: c.deviceId, phase: meaning.phase, model: c.model, reason: reason.slice(0, 1000) };
}

export function jobExecutionEvent(status: string | undefined, c: DeviceStatusContext): DeviceReportEvent | null {
  return toEvent(lookup(JOB_EXECUTION_MEANING, status), c);
}

export function effectiveDeploymentEvent(status: string | undefined, c: DeviceStatusContext): DeviceReportEvent | null {
  return toEvent(lookup(EFFECTIVE_DEPLOYMENT_MEANING, status), c);
}

export function deploymentLifecycle(status: string | undefined): DeploymentLifecycle | null {
  return lookup(DEPLOYMENT_LIFECYCLE, status);
}

/**
 * A stage job that IoT Jobs cancelled while the fleet did not ask for it: its abort criteria
 * fired (too many failures). The fleet pauses the rollout, so an operator decides; the failed
 * devices arrive as their own `failed` reports and are reverted one by one.
 */
export function jobAbortEvent(status: string | undefined, o: { canceledByFleet: boolean; at: number; jobId: string; reasonCode?: string; comment?: string }): CommandEvent | null {
  if (lookup(JOB_LIFECYCLE, status) !== 'canceled' || o.canceledByFleet) return null;
  const why = [o.reasonCode, o.comment].filter(Boolean).join(': ');
  return { type: 'command', at: o.at, command: 'pause', actor: 'aws-iot-jobs', note: `IoT job ${o.jobId} was cancelled by its abort criteria${why ? ` (${why})` : ''}`.slice(0, 1000) };
}
