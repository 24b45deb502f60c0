import { Readable } from 'node:stream';
import { GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { IoTClient } from '@aws-sdk/client-iot';
import { CreateTrainingJobCommand, SageMakerClient } from '@aws-sdk/client-sagemaker';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { sdkExecutor, type AwsCommandName } from '../../../fleet/adapters/aws/calls.js';
import { dryRunRollout } from '../../../fleet/adapters/aws/dry-run.js';
import { managerSink } from '../../../fleet/adapters/aws/manager-sink.js';
import { jobExecutionEvent } from '../../../fleet/adapters/aws/status-mapping.js';
import { memoryRolloutRepo, RolloutManager } from '../../../fleet/app/rollouts/manager.js';
import { awsConfig } from './fixtures.js';

interface Seen {
  method: string;
  path: string;
  query: Record<string, unknown>;
  body: string;
  auth: string;
}

/** A request handler inside the process: the SDK serializes and signs; nothing leaves the process. */
function capture(seen: Seen[], reply: (req: Seen) => object = () => ({})) {
  return {
    handle: async (req: { method: string; path: string; query?: Record<string, unknown>; body?: unknown; headers: Record<string, string> }) => {
      const s: Seen = { method: req.method, path: req.path, query: req.query ?? {}, body: req.body === undefined ? '' : String(req.body), auth: req.headers.authorization ?? '' };
      seen.push(s);
      return { response: { statusCode: 200, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(JSON.stringify(reply(s)))]) } };
    },
  } as never;
}

const CREDS = { region: 'eu-west-1', credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }, maxAttempts: 1 };

// The REST route of each command (from the service models), to check the serializer's output.
const ROUTE: Record<AwsCommandName, RegExp> = {
  CreateThingGroup: /^POST \/thing-groups\/edgeloop-/,
  DescribeThingGroup: /^GET \/thing-groups\//,
  AddThingToThingGroup: /^PUT \/thing-groups\/addThingToThingGroup$/,
  RemoveThingFromThingGroup: /^PUT \/thing-groups\/removeThingFromThingGroup$/,
  ListThingsInThingGroup: /^GET \/thing-groups\/.+\/things$/,
  DescribeJob: /^GET \/jobs\//,
  ListJobExecutionsForJob: /^GET \/jobs\/.+\/things$/,
  CreateDeployment: /^POST \/greengrass\/v2\/deployments$/,
  CancelDeployment: /^POST \/greengrass\/v2\/deployments\/.+\/cancel$/,
  GetDeployment: /^GET \/greengrass\/v2\/deployments\//,
  ListEffectiveDeployments: /^GET \/greengrass\/v2\/coreDevices\/.+\/effectiveDeployments$/,
};

describe('every planned call goes through the real SDK serializer and signer', () => {
  it('replays a dry run (all stages, abort, status sweep) through IoT and Greengrass clients', async () => {
    const plan = await dryRunRollout({
      cfg: awsConfig(),
      model: { name: 'digits', version: '2.0.0' },
      plan: { shadow: { sample_rate: 0.2 }, canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 100 } }] },
      devices: Array.from({ length: 3 }, (_, i) => ({ id: `gw-${i}`, active: { name: 'digits', version: '1.0.0' } })),
      now: 0,
      abortAt: 'wave 1',
    });
    const seen: Seen[] = [];
    const exec = sdkExecutor({ iot: new IoTClient({ ...CREDS, requestHandler: capture(seen) }), greengrass: new GreengrassV2Client({ ...CREDS, requestHandler: capture(seen) }) });
    const commands = new Set<string>();
    for (const c of plan.calls) {
      await exec.send(c.command, c.input as never);
      const s = seen.at(-1)!;
      expect(`${s.method} ${decodeURIComponent(s.path)}`).toMatch(ROUTE[c.command]);
      expect(s.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/(iot|greengrass)\/aws4_request/);
      if (s.body) expect(() => JSON.parse(s.body)).not.toThrow();
      commands.add(c.command);
    }
    expect([...commands].sort()).toEqual(['AddThingToThingGroup', 'CancelDeployment', 'CreateDeployment', 'CreateThingGroup', 'DescribeJob', 'GetDeployment', 'ListJobExecutionsForJob', 'RemoveThingFromThingGroup']);
    const created = seen.find((s) => s.path.startsWith('/thing-groups/edgeloop-'));
    expect(JSON.parse(created!.body)).toMatchObject({ tags: [{ Key: 'edgeloop:rollout', Value: 'ro_dryrun' }, { Key: 'edgeloop:label' }] });
  });

  it('CreateTrainingJob serializes as the SageMaker JSON protocol', async () => {
    const seen: Seen[] = [];
    const sm = new SageMakerClient({ ...CREDS, requestHandler: capture(seen, () => ({ TrainingJobArn: 'arn:aws:sagemaker:eu-west-1:123456789012:training-job/x' })) });
    const out = await sm.send(
      new CreateTrainingJobCommand({
        TrainingJobName: 'edgeloop-x-1',
        AlgorithmSpecification: { TrainingImage: 'img', TrainingInputMode: 'File' },
        RoleArn: 'arn:aws:iam::123456789012:role/r',
        OutputDataConfig: { S3OutputPath: 's3://b/p/' },
        ResourceConfig: { InstanceType: 'ml.m5.large', InstanceCount: 1, VolumeSizeInGB: 30 },
        StoppingCondition: { MaxRuntimeInSeconds: 60 },
        HyperParameters: { epochs: '3' },
      }),
    );
    expect(out.TrainingJobArn).toContain('training-job/x');
    expect(seen[0]?.method).toBe('POST');
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ TrainingJobName: 'edgeloop-x-1', HyperParameters: { epochs: '3' } });
  });
});

describe('manager sink', () => {
  it("an IoT Jobs abort pauses a running rollout once; a second one is a logged no-op", async () => {
    const delivered: unknown[] = [];
    const m = new RolloutManager({ repo: memoryRolloutRepo(), backend: { name: 'rec', deliver: async (_id, c) => void delivered.push(...c) }, resolveTargets: () => [{ id: 'gw-1', active: { name: 'd', version: '1.0.0' } }], clock: { now: () => 1000 }, log: pino({ level: 'silent' }) });
    const r = m.create({ model: { name: 'd', version: '2.0.0' }, selector: {}, plan: {}, actor: 't' });
    const sink = managerSink(m, pino({ level: 'silent' }));
    const pause = { type: 'command' as const, at: 1000, command: 'pause' as const, actor: 'aws-iot-jobs', note: 'IoT job j was cancelled by its abort criteria' };
    sink(r.state.id, pause);
    expect(m.get(r.state.id).state.status).toBe('paused');
    expect(() => sink(r.state.id, pause)).not.toThrow();
    expect(m.get(r.state.id).state.decisions.filter((d) => d.kind === 'paused')).toHaveLength(1);
  });

  it('a mapped Greengrass report reaches its rollout as it is; one about a device or rollout it does not follow is ignored', () => {
    const m = new RolloutManager({ repo: memoryRolloutRepo(), backend: { name: 'rec', deliver: async () => undefined }, resolveTargets: () => [{ id: 'gw-1', active: { name: 'd', version: '1.0.0' } }], clock: { now: () => 1000 }, log: pino({ level: 'silent' }) });
    const r = m.create({ model: { name: 'd', version: '2.0.0' }, selector: {}, plan: {}, actor: 't' });
    const sink = managerSink(m, pino({ level: 'silent' }));
    const failed = jobExecutionEvent('REJECTED', { deviceId: 'gw-1', model: { name: 'd', version: '2.0.0' }, at: 1000, detail: 'desired.active: bad' })!;
    sink('ro_unknown', failed);
    sink(r.state.id, { ...failed, device_id: 'gw-9' });
    expect(m.get(r.state.id).state.devices['gw-1']?.failure ?? null).toBeNull();
    sink(r.state.id, failed);
    expect(m.get(r.state.id).state.devices['gw-1']?.failure?.reason).toBe('the device rejected the Greengrass deployment (configuration validation or platform): desired.active: bad');
  });
});
