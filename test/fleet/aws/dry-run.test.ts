import { CreateDeploymentCommand, GreengrassV2Client } from '@aws-sdk/client-greengrassv2';
import { describe, expect, it } from 'vitest';
import { deploymentLimitProblems } from '../../../fleet/adapters/aws/deployment-config.js';
import { dryRunRollout } from '../../../fleet/adapters/aws/dry-run.js';
import { awsConfig } from './fixtures.js';

const PREV = { name: 'digits', version: '1.0.0' };
const CAND = { name: 'digits', version: '2.0.0' };
const devices = Array.from({ length: 10 }, (_, i) => ({ id: `gw-${i}`, active: PREV }));
const plan = { canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 50 } }, { devices: { percent: 100 } }] };

describe('--dry-run: every AWS call of a rollout plan, in order, without credentials', () => {
  it('walks every stage: one group, its things and one deployment per stage, then the status reads', async () => {
    const r = await dryRunRollout({ cfg: awsConfig(), model: CAND, plan, devices, now: Date.UTC(2026, 11, 1) });
    expect(r.stages).toEqual(['canary', 'wave 1', 'wave 2']);
    const seq = r.calls.map((c) => `${c.step} | ${c.command}`);
    const stage = (step: string, adds: number): string[] => [`${step} | CreateThingGroup`, ...Array<string>(adds).fill(`${step} | AddThingToThingGroup`), `${step} | CreateDeployment`];
    // Canary 1 device, wave 1 to 5 (4 more), wave 2 to 10 (5 more); then one status sweep per deployment.
    expect(seq).toEqual([
      ...stage('start: canary', 1),
      ...stage('promote: wave 1', 4),
      ...stage('promote: wave 2', 5),
      ...Array.from({ length: 3 }, () => ['status sweep | GetDeployment', 'status sweep | DescribeJob', 'status sweep | ListJobExecutionsForJob']).flat(),
    ]);
    for (const c of r.calls) {
      if (c.command === 'CreateDeployment') expect(deploymentLimitProblems(c.input as never)).toEqual([]);
      expect(c.service).toBe(c.command.match(/Deployment/) ? 'greengrassv2' : 'iot');
    }
    const targets = r.calls.filter((c) => c.command === 'CreateDeployment').map((c) => (c.input as { targetArn: string }).targetArn);
    expect(targets).toEqual(['canary', 'wave-1', 'wave-2'].map((l) => `arn:aws:iot:eu-west-1:123456789012:thinggroup/edgeloop-ro_dryrun-${l}`));
    expect(r.notes.join(' ')).toContain('placeholders');
  });

  it('shows the abort path: cancel every stage deployment, then revert to last-known-good', async () => {
    const r = await dryRunRollout({ cfg: awsConfig(), model: CAND, plan, devices, now: 0, abortAt: 'wave 1' });
    const abort = r.calls.filter((c) => c.step === 'abort').map((c) => c.command);
    expect(abort).toEqual(['CancelDeployment', 'CancelDeployment', 'CreateThingGroup', ...Array<string>(5).fill('AddThingToThingGroup'), 'CreateDeployment', ...Array<string>(5).fill('RemoveThingFromThingGroup')]);
    const revert = r.calls.filter((c) => c.step === 'abort' && c.command === 'CreateDeployment')[0]?.input as { components: Record<string, { configurationUpdate: { merge: string } }> };
    expect(JSON.parse(revert.components['com.edgeloop.Agent']!.configurationUpdate.merge).desired.active.model).toEqual(PREV);
  });

  it('the recorded CreateDeployment input serializes through the real SDK pipeline (signing, JSON body) to the documented REST call', async () => {
    const r = await dryRunRollout({ cfg: awsConfig(), model: CAND, plan, devices, now: 0 });
    const input = r.calls.find((c) => c.command === 'CreateDeployment')?.input as ConstructorParameters<typeof CreateDeploymentCommand>[0];
    let seen: { method: string; path: string; body: string; auth: string } | null = null;
    // An in-process request handler: the SDK builds, signs and sends to it; nothing leaves the process.
    const client = new GreengrassV2Client({
      region: 'eu-west-1',
      credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
      maxAttempts: 1,
      requestHandler: {
        handle: async (req: { method: string; path: string; body: string; headers: Record<string, string> }) => {
          seen = { method: req.method, path: req.path, body: String(req.body), auth: req.headers.authorization ?? '' };
          const { Readable } = await import('node:stream');
          return { response: { statusCode: 201, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(JSON.stringify({ deploymentId: 'd-1', iotJobId: 'j-1' }))]) } };
        },
      } as never,
    });
    const out = await client.send(new CreateDeploymentCommand(input));
    expect(out.deploymentId).toBe('d-1');
    expect(seen).not.toBeNull();
    const s = seen as unknown as { method: string; path: string; body: string; auth: string };
    expect(s.method).toBe('POST');
    expect(s.path).toBe('/greengrass/v2/deployments');
    expect(s.auth).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/eu-west-1\/greengrass\/aws4_request/);
    const body = JSON.parse(s.body);
    expect(body).toEqual(JSON.parse(JSON.stringify(input)));
    expect(body.iotJobConfiguration.jobExecutionsRolloutConfig.exponentialRate.rateIncreaseCriteria).toEqual({ numberOfNotifiedThings: 10 });
    client.destroy();
  });
});
