import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAwsConfig } from '../../../fleet/adapters/aws/aws-config.js';
import { recordingExecutor } from '../../../fleet/adapters/aws/dry-run.js';
import { managerSink } from '../../../fleet/adapters/aws/manager-sink.js';
import { awsServeParts } from '../../../fleet/boot/aws.js';
import { jobExecutionEvent } from '../../../fleet/adapters/aws/status-mapping.js';
import { startFleetService, type FleetService } from '../../../fleet/boot/service.js';
import { componentConfiguration } from '../../../shared/schemas/greengrass.js';
import { imagePackage, tempDir } from '../../helpers/packages.js';
import { startLocalS3, type LocalS3 } from './s3-server.js';

const V1 = { name: 'pets', version: '1.0.0' };
const V2 = { name: 'pets', version: '2.0.0' };
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

describe('fleet service in AWS mode (S3 on s3rver, Greengrass calls recorded)', () => {
  let s3: LocalS3;
  let svc: FleetService;
  let tmp: ReturnType<typeof tempDir>;
  const cfg = parseAwsConfig({ region: 'eu-west-1', account_id: '123456789012', greengrass: { component_version: '1.4.0' }, s3: { bucket: 'edgeloop-fleet', prefix: 'prod/' } });
  const exec = recordingExecutor(cfg);

  beforeAll(async () => {
    s3 = await startLocalS3('edgeloop-fleet');
    tmp = tempDir('edgeloop-aws-serve-');
    const parts = awsServeParts({ cfg, dataDir: join(tmp.dir, 'fleet'), executor: exec, s3Client: s3.client });
    svc = await startFleetService({
      dataDir: join(tmp.dir, 'fleet'),
      log: pino({ level: 'warn' }),
      tickMs: 50,
      mqttPort: 0,
      http: () => createServer((_req, res) => res.writeHead(404).end()),
      artifacts: parts.artifacts,
      rolloutBackend: parts.rolloutBackend,
    });
  });
  afterAll(async () => {
    await svc?.stop();
    await s3?.close();
    tmp?.cleanup();
  });

  it('models go to S3; a rollout becomes thing groups and deployments whose desired model devices can fetch by presigned URL', async () => {
    await imagePackage(join(tmp.dir, 'v1'), { version: '1.0.0' });
    await imagePackage(join(tmp.dir, 'v2'), { version: '2.0.0', seed: 2 });
    await svc.ctx.registry.push(join(tmp.dir, 'v1'), { actor: 'test' });
    await svc.ctx.registry.push(join(tmp.dir, 'v2'), { actor: 'test' });
    for (let i = 0; i < 4; i++) {
      await svc.ctx.devices.register(`gw-${i}`, { tags: { site: 'pit-3' } });
      svc.ctx.devices.applyStatus({ type: 'device_status', v: 1, device_id: `gw-${i}`, ts: new Date().toISOString(), online: true, agent_version: 't', models: { active: V1, previous: null, installed: [V1] } });
    }
    const m = svc.ctx.registry.get('pets', '2.0.0');

    const r = svc.ctx.rollouts.create({ model: V2, selector: { site: 'pit-3' }, plan: { canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 100 } }] }, actor: 'test' });
    await svc.ctx.rollouts.settled();
    const cmds = exec.calls.map((c) => c.command);
    expect(cmds).toEqual(['CreateThingGroup', 'AddThingToThingGroup', 'CreateDeployment']);
    const dep = exec.calls[2]?.input as { targetArn: string; components: Record<string, { componentVersion: string; configurationUpdate: { merge: string } }> };
    expect(dep.targetArn).toBe(`arn:aws:iot:eu-west-1:123456789012:thinggroup/edgeloop-${r.state.id}-canary`);
    expect(dep.components['com.edgeloop.Agent']?.componentVersion).toBe('1.4.0');
    const desired = componentConfiguration.parse(JSON.parse(dep.components['com.edgeloop.Agent']!.configurationUpdate.merge)).desired!;
    expect(desired.active?.manifest_sha256).toBe(m.manifest_sha256);
    expect(desired.active?.base_url).toBe(`${svc.urls.http}/v1/models/pets/2.0.0/package`);
    // Every file a device needs has its own presigned URL, and what it serves hashes right.
    const urls = desired.active?.urls ?? {};
    expect(Object.keys(urls).sort()).toEqual(['manifest.json', ...m.files.map((f) => `files/${f.path}`)].sort());
    const manifest = Buffer.from(await (await fetch(urls['manifest.json']!)).arrayBuffer());
    expect(sha(manifest)).toBe(m.manifest_sha256);
    for (const f of m.files) {
      const res = await fetch(urls[`files/${f.path}`]!);
      expect(res.status).toBe(200);
      expect(sha(Buffer.from(await res.arrayBuffer()))).toBe(f.sha256);
    }

    // A device rejects the deployment (as IoT Jobs reports it): the manager reverts it through a revert group.
    const canary = Object.entries(r.state.devices).find(([, d]) => d.assigned_stage !== null)?.[0] ?? '';
    managerSink(svc.ctx.rollouts, pino({ level: 'silent' }))(r.state.id, jobExecutionEvent('REJECTED', { deviceId: canary, model: V2, at: Date.now(), detail: 'desired.active: bad' })!);
    await svc.ctx.rollouts.settled();
    expect(svc.ctx.rollouts.get(r.state.id).state.devices[canary]?.failure?.reason).toContain('rejected');
    const revert = exec.calls.slice(3);
    expect(revert.map((c) => c.command)).toEqual(['CreateThingGroup', 'AddThingToThingGroup', 'CreateDeployment', 'RemoveThingFromThingGroup']);
    const rd = revert[2]?.input as { components: Record<string, { configurationUpdate: { merge: string } }> };
    expect(componentConfiguration.parse(JSON.parse(rd.components['com.edgeloop.Agent']!.configurationUpdate.merge)).desired?.active?.model).toEqual(V1);
  });
});
