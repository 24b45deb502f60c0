import { DeploymentStatus, EffectiveDeploymentExecutionStatus } from '@aws-sdk/client-greengrassv2';
import { JobExecutionStatus, JobStatus } from '@aws-sdk/client-iot';
import { describe, expect, it } from 'vitest';
import {
  deploymentLifecycle,
  effectiveDeploymentEvent,
  jobAbortEvent,
  jobExecutionEvent,
  thingNameFromArn,
} from '../../../fleet/adapters/aws/status-mapping.js';
import { initialState, step } from '../../../fleet/core/rollouts/machine.js';
import { rolloutEvent } from '../../../fleet/core/rollouts/event-schema.js';

const CAND = { name: 'digits', version: '2.0.0' };
const ctx = { deviceId: 'gw-1', model: CAND, at: 1000 };

// Written out here, independently of the implementation's tables: what each status must become.
const EXPECTED_EXECUTION: Record<string, 'failed' | 'downloading' | null> = {
  QUEUED: null,
  IN_PROGRESS: 'downloading',
  SUCCEEDED: null,
  FAILED: 'failed',
  REJECTED: 'failed',
  TIMED_OUT: 'failed',
  REMOVED: null,
  CANCELED: null,
};
const EXPECTED_EFFECTIVE: Record<string, 'failed' | 'downloading' | null> = {
  QUEUED: null,
  IN_PROGRESS: 'downloading',
  SUCCEEDED: null,
  COMPLETED: null,
  FAILED: 'failed',
  REJECTED: 'failed',
  TIMED_OUT: 'failed',
  CANCELED: null,
};

describe('status mapping (pure): every SDK status value', () => {
  it('covers exactly the SDK enums (a new SDK value fails here until mapped)', () => {
    expect(Object.values(JobExecutionStatus).sort()).toEqual(Object.keys(EXPECTED_EXECUTION).sort());
    expect(Object.values(EffectiveDeploymentExecutionStatus).sort()).toEqual(Object.keys(EXPECTED_EFFECTIVE).sort());
  });

  for (const s of Object.values(JobExecutionStatus)) {
    it(`IoT job execution ${s} -> ${EXPECTED_EXECUTION[s] ?? 'no event'}`, () => {
      const ev = jobExecutionEvent(s, { ...ctx, detail: 'detail text' });
      if (EXPECTED_EXECUTION[s] === null) expect(ev).toBeNull();
      else {
        expect(ev).toMatchObject({ type: 'device_report', at: 1000, device_id: 'gw-1', phase: EXPECTED_EXECUTION[s], model: CAND });
        expect(ev?.reason).toContain('detail text');
        // It is an event the machine's own schema accepts.
        expect(rolloutEvent.safeParse(ev).success).toBe(true);
      }
    });
  }

  for (const s of Object.values(EffectiveDeploymentExecutionStatus)) {
    it(`Greengrass effective deployment ${s} -> ${EXPECTED_EFFECTIVE[s] ?? 'no event'}`, () => {
      const ev = effectiveDeploymentEvent(s, ctx);
      if (EXPECTED_EFFECTIVE[s] === null) expect(ev).toBeNull();
      else {
        expect(ev).toMatchObject({ phase: EXPECTED_EFFECTIVE[s], device_id: 'gw-1' });
        expect(rolloutEvent.safeParse(ev).success).toBe(true);
      }
    });
  }

  it('deployment statuses (GetDeployment): only ACTIVE keeps polling', () => {
    const want = { ACTIVE: 'active', CANCELED: 'canceled', COMPLETED: 'completed', FAILED: 'failed', INACTIVE: 'superseded' };
    expect(Object.values(DeploymentStatus).sort()).toEqual(Object.keys(want).sort());
    for (const s of Object.values(DeploymentStatus)) expect(deploymentLifecycle(s)).toBe(want[s]);
  });

  it('job statuses (DescribeJob): a cancel the fleet did not ask for pauses the rollout; nothing else does', () => {
    for (const s of Object.values(JobStatus)) {
      const ev = jobAbortEvent(s, { canceledByFleet: false, at: 5, jobId: 'job-1', reasonCode: 'FAILURE_THRESHOLD' });
      if (s === 'CANCELED') {
        expect(ev).toMatchObject({ type: 'command', command: 'pause', actor: 'aws-iot-jobs', at: 5 });
        expect(ev?.note).toContain('FAILURE_THRESHOLD');
        expect(rolloutEvent.safeParse(ev).success).toBe(true);
      } else expect(ev).toBeNull();
      expect(jobAbortEvent(s, { canceledByFleet: true, at: 5, jobId: 'job-1' })).toBeNull();
    }
    expect(Object.values(JobStatus).sort()).toEqual(['CANCELED', 'COMPLETED', 'DELETION_IN_PROGRESS', 'IN_PROGRESS', 'SCHEDULED']);
  });

  it('unknown status values (a newer service) map to nothing', () => {
    expect(jobExecutionEvent('SOMETHING_NEW', ctx)).toBeNull();
    expect(effectiveDeploymentEvent(undefined, ctx)).toBeNull();
    expect(deploymentLifecycle('PAUSED')).toBeNull();
  });

  it('a mapped failure drives the real machine: the device is reverted alone', () => {
    let s = initialState('ro_1', CAND, { canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 100 } }], gates: { max_failures: 5 } });
    const r0 = step(s, { type: 'start', at: 0, devices: [{ id: 'gw-1', active: { name: 'digits', version: '1.0.0' } }, { id: 'gw-2', active: { name: 'digits', version: '1.0.0' } }] });
    s = r0.state;
    const picked = r0.desired.find((d) => d.active?.version === '2.0.0')?.device_id ?? '';
    const ev = jobExecutionEvent('REJECTED', { deviceId: picked, model: CAND, at: 10, detail: 'desired.active.manifest_sha256: expected hex' });
    const r1 = step(s, ev!);
    expect(r1.decisions.map((d) => d.kind)).toContain('device_failed');
    expect(r1.desired).toEqual([{ device_id: picked, active: { name: 'digits', version: '1.0.0' }, shadow: null }]);
  });

  it('reads thing names from thing ARNs only', () => {
    expect(thingNameFromArn('arn:aws:iot:eu-west-1:123456789012:thing/gw-1')).toBe('gw-1');
    expect(thingNameFromArn('arn:aws:iot:eu-west-1:123456789012:thinggroup/gw-1')).toBeNull();
  });
});
