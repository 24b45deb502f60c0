import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { detectGreengrass } from '../../agent/greengrass/env.js';
import { startGreengrassAgent, type GreengrassRun } from '../../agent/greengrass/run.js';
import { sampleMessage } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { colourPackage, RED, solidFrame } from '../helpers/alerts.js';
import { fleetKeys, tempDir } from '../helpers/packages.js';
import { waitUntil } from '../helpers/wait.js';
import { GreengrassIpcServer } from './ipc-server.js';
import { mqttAclFromRecipe } from './recipe.js';

const THING = 'gg-alerts-1';
const TOKEN = 'svcuid-alerts-test';
let tmp: ReturnType<typeof tempDir>;
let ipc: GreengrassIpcServer;
let run: GreengrassRun;

beforeAll(async () => {
  tmp = tempDir('edgeloop-gg-alerts-');
  await colourPackage(join(tmp.dir, 'colours'));
  ipc = await GreengrassIpcServer.start({
    socketPath: join(tmp.dir, 'nucleus.sock'),
    svcuid: TOKEN,
    componentName: 'com.edgeloop.Agent',
    mqttAcl: mqttAclFromRecipe(THING),
    configuration: {
      agent: {
        fleet_public_key: fleetKeys().publicKeyPem,
        http: { port: 0 },
        inference: { warmup_runs: 0, intra_op_threads: 1 },
        uplink: { telemetry_interval_s: 3600 },
        models: { initial: join(tmp.dir, 'colours') },
        alerts: {
          rules: [{ id: 'red-seen', model: 'colours', labels: ['red'], severity: 'critical', actions: ['local'] }],
          actions: { local: { kind: 'greengrass', topic: 'edgeloop/local/alerts/{{rule}}', payload: '{{json}}' } },
        },
      },
    },
  });
  const gg = detectGreengrass({ SVCUID: TOKEN, AWS_GG_NUCLEUS_DOMAIN_SOCKET_FILEPATH_FOR_COMPONENT: ipc.socketPath, AWS_IOT_THING_NAME: THING })!;
  run = await startGreengrassAgent({ gg, workDir: join(tmp.dir, 'work') });
});
afterAll(async () => {
  await run?.stop();
  await ipc?.close();
  tmp?.cleanup();
});

describe('alerts in Greengrass mode', () => {
  it('a greengrass action publishes the alert on local pub/sub, and the frame goes to IoT Core as an alert sample', { timeout: 120_000 }, async () => {
    const res = await fetch(`${run.agent.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await solidFrame(RED) });
    expect(res.status).toBe(200);
    await waitUntil(() => ipc.localPublished.some((m) => m.topic === 'edgeloop/local/alerts/red-seen'), 30_000, 'the local pub/sub alert');
    const local = ipc.localPublished.find((m) => m.topic === 'edgeloop/local/alerts/red-seen')!;
    expect(JSON.parse(String(local.message))).toMatchObject({ rule: 'red-seen', severity: 'critical', device_id: THING, label: 'red' });
    // The same frame is also a low-confidence outlier of this model: pick the alert's sample.
    const alertSamples = () => ipc.published.filter((p) => p.topic === topics.samples(THING)).map((p) => sampleMessage.parse(JSON.parse(p.payload.toString()))).filter((m) => m.meta.reasons.includes('alert'));
    await waitUntil(() => alertSamples().length > 0, 45_000, 'the alert sample over PublishToIoTCore');
    expect(alertSamples()[0]!.meta).toMatchObject({ reasons: ['alert'], priority: 9, alert: { rule: 'red-seen' } });
  });
});
