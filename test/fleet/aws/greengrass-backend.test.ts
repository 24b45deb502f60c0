import {
  CancelDeploymentCommand,
  CreateDeploymentCommand,
  GetDeploymentCommand,
  GreengrassV2Client,
  ListEffectiveDeploymentsCommand,
  type CreateDeploymentCommandInput,
} from '@aws-sdk/client-greengrassv2';
import {
  AddThingToThingGroupCommand,
  CreateThingGroupCommand,
  DescribeJobCommand,
  DescribeThingGroupCommand,
  IoTClient,
  ListJobExecutionsForJobCommand,
  ListThingsInThingGroupCommand,
  RemoveThingFromThingGroupCommand,
  ResourceAlreadyExistsException,
} from '@aws-sdk/client-iot';
import { mockClient } from 'aws-sdk-client-mock';
import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import { deploymentLimitProblems } from '../../../fleet/adapters/aws/deployment-config.js';
import { sdkExecutor, type AwsExecutor } from '../../../fleet/adapters/aws/calls.js';
import { GreengrassBackend, type BackendEventSink } from '../../../fleet/adapters/aws/greengrass-backend.js';
import { memoryLedgerStore } from '../../../fleet/adapters/aws/ledger.js';
import { initialState, step } from '../../../fleet/core/rollouts/machine.js';
import type { CommandEvent, DeviceReportEvent, RolloutEvent } from '../../../fleet/core/rollouts/event-schema.js';
import type { RolloutState } from '../../../fleet/core/rollouts/state-schema.js';
import { componentConfiguration } from '../../../shared/schemas/greengrass.js';
import { ACCOUNT, awsConfig, REGION, SHA_A } from './fixtures.js';
import { TEST_AWS } from './s3-server.js';

const PREV = { name: 'digits', version: '1.0.0' };
const CAND = { name: 'digits', version: '2.0.0' };
const THINGS = ['gw-a', 'gw-b', 'gw-c', 'gw-d'];
const arnOf = (name: string): string => `arn:aws:iot:${REGION}:${ACCOUNT}:thinggroup/${name}`;
const thingArn = (name: string): string => `arn:aws:iot:${REGION}:${ACCOUNT}:thing/${name}`;

/** Real SDK clients (fixed region and credentials, a loopback endpoint that is never reached) with their send() mocked. */
function clients() {
  const iot = new IoTClient({ ...TEST_AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const greengrass = new GreengrassV2Client({ ...TEST_AWS, endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
  const iotMock = mockClient(iot);
  const ggMock = mockClient(greengrass);
  iotMock.on(CreateThingGroupCommand).callsFake((input: { thingGroupName: string }) => ({ thingGroupName: input.thingGroupName, thingGroupArn: arnOf(input.thingGroupName) }));
  iotMock.on(AddThingToThingGroupCommand).resolves({});
  iotMock.on(RemoveThingFromThingGroupCommand).resolves({});
  let n = 0;
  ggMock.on(CreateDeploymentCommand).callsFake(() => {
    n += 1;
    return { deploymentId: `dep-${n}`, iotJobId: `job-${n}` };
  });
  ggMock.on(CancelDeploymentCommand).resolves({});
  return { iot, greengrass, iotMock, ggMock };
}

class Rig {
  state: RolloutState;
  now = Date.UTC(2026, 11, 1, 12);
  readonly c = clients();
  readonly ledger = memoryLedgerStore();
  readonly events: Array<DeviceReportEvent | CommandEvent> = [];
  backend: GreengrassBackend;
  readonly sink: BackendEventSink = (_id, ev) => void this.events.push(ev);
  /** Command names in the order the backend sent them, through the real SDK executor. */
  readonly sent: string[] = [];
  private readonly sdk = sdkExecutor({ iot: this.c.iot, greengrass: this.c.greengrass });
  readonly recording: AwsExecutor = {
    send: (command, input) => {
      this.sent.push(command);
      return this.sdk.send(command, input);
    },
  };

  constructor(plan = { canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 50 } }, { devices: { percent: 100 } }], gates: { max_failures: 5, max_failure_ratio: 0.25 } }) {
    this.state = initialState('ro_1', CAND, plan);
    this.backend = this.newBackend();
  }

  newBackend(): GreengrassBackend {
    return new GreengrassBackend({
      cfg: awsConfig(),
      aws: this.recording,
      ledger: this.ledger,
      rollout: () => this.state,
      locate: async (m) => ({ base_url: `https://fleet.example.test/v1/models/${m.name}/${m.version}/package/`, manifest_sha256: SHA_A, urls: { 'manifest.json': `https://bucket.example.test/${m.version}/manifest?X-Amz-Signature=abc` } }),
      clock: { now: () => this.now },
      log: pino({ level: 'silent' }),
    });
  }

  async apply(ev: RolloutEvent): Promise<void> {
    this.now += 1000;
    const r = step(this.state, ev);
    this.state = r.state;
    await this.backend.deliver('ro_1', r.desired);
  }

  deployments(): CreateDeploymentCommandInput[] {
    return this.c.ggMock.commandCalls(CreateDeploymentCommand).map((c) => c.args[0].input);
  }

  /** The order of commands, as names (IoT and Greengrass interleaved by call time). */
  order(): string[] {
    return [...this.sent];
  }
}

const desiredOf = (req: CreateDeploymentCommandInput) => {
  const merge = req.components?.['com.edgeloop.Agent']?.configurationUpdate?.merge ?? '{}';
  // The agent validates this with the shared contract: so does the test.
  return componentConfiguration.parse(JSON.parse(merge)).desired;
};

describe('Greengrass rollout backend (SDK clients, aws-sdk-client-mock)', () => {
  let rig: Rig;
  beforeEach(() => {
    rig = new Rig();
  });

  it('a stage is a thing group with its devices and one deployment of the agent carrying the desired model', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    const groups = rig.c.iotMock.commandCalls(CreateThingGroupCommand).map((c) => c.args[0].input);
    expect(groups).toEqual([
      {
        thingGroupName: 'edgeloop-ro_1-canary',
        thingGroupProperties: { thingGroupDescription: 'edgeloop rollout ro_1: stage canary of digits@2.0.0', attributePayload: { attributes: { edgeloop_rollout: 'ro_1', edgeloop_label: 'canary' } } },
        tags: [
          { Key: 'edgeloop:rollout', Value: 'ro_1' },
          { Key: 'edgeloop:label', Value: 'canary' },
        ],
      },
    ]);
    const added = rig.c.iotMock.commandCalls(AddThingToThingGroupCommand).map((c) => c.args[0].input);
    expect(added).toHaveLength(1);
    expect(added[0]).toEqual({ thingGroupName: 'edgeloop-ro_1-canary', thingName: expect.stringMatching(/^gw-/) });
    const [dep] = rig.deployments();
    expect(dep?.targetArn).toBe(arnOf('edgeloop-ro_1-canary'));
    expect(deploymentLimitProblems(dep!)).toEqual([]);
    expect(dep?.deploymentPolicies).toEqual({ failureHandlingPolicy: 'ROLLBACK', componentUpdatePolicy: { action: 'NOTIFY_COMPONENTS', timeoutInSeconds: 60 }, configurationValidationPolicy: { timeoutInSeconds: 30 } });
    expect(dep?.iotJobConfiguration?.abortConfig?.criteriaList).toEqual([{ failureType: 'ALL', action: 'CANCEL', thresholdPercentage: 25, minNumberOfExecutedThings: 1 }]);
    // The first slot's `desired` for older agents, and the model's own slot in `desired_by_model`.
    expect(dep?.components?.['com.edgeloop.Agent']?.configurationUpdate?.reset).toEqual(['/desired', `/desired_by_model/${CAND.name}`]);
    expect((JSON.parse(dep!.components!['com.edgeloop.Agent']!.configurationUpdate!.merge!) as { desired_by_model: Record<string, unknown> }).desired_by_model[CAND.name]).toEqual(desiredOf(dep!));
    const d = desiredOf(dep!);
    expect(d).toMatchObject({ rollout_id: 'ro_1', revision: rig.now, active: { model: CAND, manifest_sha256: SHA_A } });
    expect(d?.active?.urls?.['manifest.json']).toContain('X-Amz-Signature');
    expect(rig.order()).toEqual(['CreateThingGroup', 'AddThingToThingGroup', 'CreateDeployment']);
  });

  it('each wave is its own group; a top-up joins the existing group without a new deployment', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.slice(0, 3).map((id) => ({ id, active: PREV })) });
    await rig.apply({ type: 'command', at: rig.now, command: 'promote', actor: 'op', force: true });
    expect(rig.deployments().map((d) => d.targetArn)).toEqual([arnOf('edgeloop-ro_1-canary'), arnOf('edgeloop-ro_1-wave-1')]);
    const beforeTopUp = rig.deployments().length;
    expect(rig.backend.ledger().groups['edgeloop-ro_1-wave-1']?.members).toHaveLength(1);
    // Two new devices match the target while wave 1 holds 50%: 50% of 5 is 3, one more joins wave 1.
    await rig.apply({ type: 'devices_changed', at: rig.now, added: [{ id: 'gw-d', active: PREV }, { id: 'gw-e', active: PREV }], removed: [] });
    expect(rig.backend.ledger().groups['edgeloop-ro_1-wave-1']?.members).toHaveLength(2);
    expect(rig.c.iotMock.commandCalls(AddThingToThingGroupCommand).at(-1)?.args[0].input.thingGroupName).toBe('edgeloop-ro_1-wave-1');
    // Group deployments are continuous: the new member gets the existing one.
    expect(rig.deployments()).toHaveLength(beforeTopUp);
    const revisions = rig.deployments().map((d) => desiredOf(d)?.revision ?? 0);
    expect(revisions[1]).toBeGreaterThan(revisions[0] ?? Infinity);
  });

  it('a failed device (IoT Jobs FAILED + its Greengrass reason) becomes a failed report; its revert moves it to a revert group with a newer revision', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    const canaryThing = rig.backend.ledger().groups['edgeloop-ro_1-canary']?.members[0] ?? '';
    rig.c.ggMock.on(GetDeploymentCommand).resolves({ deploymentStatus: 'ACTIVE' });
    rig.c.iotMock.on(DescribeJobCommand).resolves({ job: { status: 'IN_PROGRESS' } });
    rig.c.iotMock.on(ListJobExecutionsForJobCommand).resolves({
      executionSummaries: [
        { thingArn: thingArn(canaryThing), jobExecutionSummary: { status: 'FAILED' } },
        // A thing the backend did not put in this group says nothing about it.
        { thingArn: thingArn('stranger'), jobExecutionSummary: { status: 'FAILED' } },
      ],
    });
    rig.c.ggMock.on(ListEffectiveDeploymentsCommand).resolves({
      effectiveDeployments: [
        { deploymentId: 'other', deploymentName: 'x', targetArn: 'x', coreDeviceExecutionStatus: 'SUCCEEDED', creationTimestamp: new Date(), modifiedTimestamp: new Date() },
        { deploymentId: 'dep-1', deploymentName: 'x', targetArn: arnOf('edgeloop-ro_1-canary'), coreDeviceExecutionStatus: 'FAILED', reason: 'component com.edgeloop.Agent failed to update', statusDetails: { errorTypes: ['COMPONENT_ERROR'] }, creationTimestamp: new Date(), modifiedTimestamp: new Date() },
      ],
    });
    expect(await rig.backend.poll(rig.sink)).toBe(1);
    expect(rig.events).toEqual([{ type: 'device_report', at: rig.now, device_id: canaryThing, phase: 'failed', model: CAND, reason: expect.stringContaining('COMPONENT_ERROR') }]);
    expect(rig.c.ggMock.commandCalls(ListEffectiveDeploymentsCommand)[0]?.args[0].input).toEqual({ coreDeviceThingName: canaryThing, maxResults: 100 });
    // The same status again is not news.
    expect(await rig.backend.poll(rig.sink)).toBe(0);
    await rig.apply(rig.events[0]!);
    const deps = rig.deployments();
    expect(deps).toHaveLength(2);
    const revert = deps[1]!;
    expect(revert.targetArn).toMatch(/thinggroup\/edgeloop-ro_1-revert-[0-9a-f]{8}$/);
    expect(desiredOf(revert)?.active?.model).toEqual(PREV);
    expect(desiredOf(revert)!.revision).toBeGreaterThan(desiredOf(deps[0]!)!.revision);
    // Added to the revert group and deployed before it leaves the canary group.
    const order = rig.order();
    expect(order.slice(-4)).toEqual(['CreateThingGroup', 'AddThingToThingGroup', 'CreateDeployment', 'RemoveThingFromThingGroup']);
    expect(rig.c.iotMock.commandCalls(RemoveThingFromThingGroupCommand)[0]?.args[0].input).toEqual({ thingGroupName: 'edgeloop-ro_1-canary', thingName: canaryThing });
  });

  it('abort cancels every active stage deployment, then deploys last-known-good to the touched devices', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    await rig.apply({ type: 'command', at: rig.now, command: 'promote', actor: 'op', force: true });
    const callsBefore = rig.order().length;
    await rig.apply({ type: 'command', at: rig.now, command: 'abort', actor: 'op' });
    const after = rig.order().slice(callsBefore);
    expect(after.slice(0, 2)).toEqual(['CancelDeployment', 'CancelDeployment']);
    expect(rig.c.ggMock.commandCalls(CancelDeploymentCommand).map((c) => c.args[0].input)).toEqual([{ deploymentId: 'dep-1' }, { deploymentId: 'dep-2' }]);
    const revert = rig.deployments().at(-1)!;
    expect(desiredOf(revert)?.active?.model).toEqual(PREV);
    const led = rig.backend.ledger();
    const revertGroup = Object.values(led.groups).find((g) => g.kind === 'revert');
    expect(revertGroup?.members.sort()).toEqual(Object.keys(led.member_of).sort());
    expect(led.groups['edgeloop-ro_1-canary']?.members).toEqual([]);
    expect(led.groups['edgeloop-ro_1-canary']?.lifecycle).toBe('canceled');
    // Our own cancel is not an IoT Jobs abort.
    rig.c.ggMock.on(GetDeploymentCommand).resolves({ deploymentStatus: 'CANCELED' });
    rig.c.iotMock.on(DescribeJobCommand).resolves({ job: { status: 'CANCELED' } });
    rig.c.iotMock.on(ListJobExecutionsForJobCommand).resolves({ executionSummaries: [] });
    await rig.backend.poll(rig.sink);
    expect(rig.events.filter((e) => e.type === 'command')).toEqual([]);
  });

  it('a job that IoT Jobs cancelled by its abort criteria pauses the rollout (once)', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    rig.c.ggMock.on(GetDeploymentCommand).resolves({ deploymentStatus: 'ACTIVE' });
    rig.c.iotMock.on(DescribeJobCommand).resolves({ job: { status: 'CANCELED', reasonCode: 'FAILURE_THRESHOLD_EXCEEDED', comment: 'abort criteria' } });
    rig.c.iotMock.on(ListJobExecutionsForJobCommand).resolves({ executionSummaries: [] });
    await rig.backend.poll(rig.sink);
    await rig.backend.poll(rig.sink);
    expect(rig.events).toEqual([expect.objectContaining({ type: 'command', command: 'pause', actor: 'aws-iot-jobs' })]);
    await rig.apply(rig.events[0]!);
    expect(rig.state.status).toBe('paused');
    expect(rig.c.iotMock.commandCalls(DescribeJobCommand)[0]?.args[0].input).toEqual({ jobId: 'job-1' });
  });

  it('pages through job executions', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    const member = rig.backend.ledger().groups['edgeloop-ro_1-canary']?.members[0] ?? '';
    rig.c.ggMock.on(GetDeploymentCommand).resolves({ deploymentStatus: 'ACTIVE' });
    rig.c.iotMock.on(DescribeJobCommand).resolves({ job: { status: 'IN_PROGRESS' } });
    rig.c.iotMock
      .on(ListJobExecutionsForJobCommand)
      .resolvesOnce({ executionSummaries: [{ thingArn: thingArn('gw-x'), jobExecutionSummary: { status: 'QUEUED' } }], nextToken: 'p2' })
      .resolvesOnce({ executionSummaries: [{ thingArn: thingArn(member), jobExecutionSummary: { status: 'IN_PROGRESS' } }] });
    expect(await rig.backend.poll(rig.sink)).toBe(1);
    expect(rig.c.iotMock.commandCalls(ListJobExecutionsForJobCommand).map((c) => c.args[0].input)).toEqual([
      { jobId: 'job-1', maxResults: 250 },
      { jobId: 'job-1', maxResults: 250, nextToken: 'p2' },
    ]);
    expect(rig.events[0]).toMatchObject({ phase: 'downloading', device_id: member });
  });

  it('after a restart (same ledger) a re-delivery creates no group or deployment twice', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    const calls = rig.order().length;
    rig.backend = rig.newBackend();
    const { desiredStates } = await import('../../../fleet/core/rollouts/machine.js');
    await rig.backend.deliver('ro_1', desiredStates(rig.state));
    expect(rig.order().length).toBe(calls);
  });

  it('reconciles the ledger with ListThingsInThingGroup (paged): a thing removed by hand is forgotten, one added by hand is reported', async () => {
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    await rig.apply({ type: 'command', at: rig.now, command: 'promote', actor: 'op', force: true });
    const led = rig.backend.ledger();
    const canary = led.groups['edgeloop-ro_1-canary']!.members[0]!;
    const wave1 = led.groups['edgeloop-ro_1-wave-1']!.members;
    rig.c.iotMock
      .on(ListThingsInThingGroupCommand, { thingGroupName: 'edgeloop-ro_1-canary' })
      .resolves({ things: [] })
      .on(ListThingsInThingGroupCommand, { thingGroupName: 'edgeloop-ro_1-wave-1' })
      .resolvesOnce({ things: wave1.slice(0, 1), nextToken: 't2' })
      .resolvesOnce({ things: [...wave1.slice(1), 'gw-by-hand'] });
    const r = await rig.backend.reconcile();
    expect(r).toEqual({ missing: [`edgeloop-ro_1-canary/${canary}`], unexpected: ['edgeloop-ro_1-wave-1/gw-by-hand'] });
    expect(rig.backend.ledger().member_of[canary]).toBeUndefined();
    expect(rig.c.iotMock.commandCalls(ListThingsInThingGroupCommand).map((c) => c.args[0].input)).toEqual([
      { thingGroupName: 'edgeloop-ro_1-canary', recursive: false, maxResults: 250 },
      { thingGroupName: 'edgeloop-ro_1-wave-1', recursive: false, maxResults: 250 },
      { thingGroupName: 'edgeloop-ro_1-wave-1', recursive: false, maxResults: 250, nextToken: 't2' },
    ]);
  });

  it('an existing group (a crash before the ledger save) is described, not recreated', async () => {
    rig.c.iotMock.on(CreateThingGroupCommand).rejects(new ResourceAlreadyExistsException({ message: 'exists', $metadata: {}, resourceId: 'x', resourceArn: 'x' }));
    rig.c.iotMock.on(DescribeThingGroupCommand).resolves({ thingGroupName: 'edgeloop-ro_1-canary', thingGroupArn: arnOf('edgeloop-ro_1-canary') });
    await rig.apply({ type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    expect(rig.c.iotMock.commandCalls(DescribeThingGroupCommand).map((c) => c.args[0].input)).toEqual([{ thingGroupName: 'edgeloop-ro_1-canary' }]);
    expect(rig.deployments()[0]?.targetArn).toBe(arnOf('edgeloop-ro_1-canary'));
  });

  it('an AWS failure surfaces as FLEET_AWS_CALL_FAILED naming the command and the SDK error', async () => {
    rig.c.ggMock.on(CreateDeploymentCommand).rejects(Object.assign(new Error('User is not authorized'), { name: 'AccessDeniedException' }));
    const r = step(rig.state, { type: 'start', at: rig.now, devices: THINGS.map((id) => ({ id, active: PREV })) });
    rig.state = r.state;
    await expect(rig.backend.deliver('ro_1', r.desired)).rejects.toMatchObject({ code: 'FLEET_AWS_CALL_FAILED', message: expect.stringContaining('CreateDeployment failed: AccessDeniedException') });
  });

  it('refuses a device id that is not a valid thing name before calling AWS', async () => {
    await expect(rig.apply({ type: 'start', at: rig.now, devices: [{ id: 'gw.bad', active: PREV }] })).rejects.toMatchObject({ code: 'FLEET_AWS_LIMIT_EXCEEDED' });
    expect(rig.c.iotMock.commandCalls(AddThingToThingGroupCommand)).toHaveLength(0);
  });
});
