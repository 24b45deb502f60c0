import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import type { AlertRecord } from '../../../shared/schemas/index.js';
import { startTestAgent } from '../../helpers/agent.js';
import { BLUE, colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { tempDir } from '../../helpers/packages.js';
import { waitUntil } from '../../helpers/wait.js';

let tmp: ReturnType<typeof tempDir>;
let agent: Agent;
let url: string;
let lines: Array<Record<string, unknown>>;
const raised: AlertRecord[] = [];

beforeAll(async () => {
  tmp = tempDir();
  await colourPackage(join(tmp.dir, 'colours'));
  ({ agent, url, lines } = await startTestAgent(join(tmp.dir, 'data'), {
    models: { initial: join(tmp.dir, 'colours') },
    alerts: { rules: [{ id: 'red-seen', model: 'colours', labels: ['red'], min_score: 0.5, cooldown_s: 0, severity: 'critical' }] },
  }));
  agent.alerts!.onAlert((r) => raised.push(r));
});
afterAll(async () => {
  await agent?.stop();
  tmp.cleanup();
});

const post = async (body: Buffer): Promise<{ label: string }> => (await (await fetch(`${url}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body })).json()) as { label: string };

describe('alert rules in a running agent', () => {
  it('a frame the rule matches raises an alert (logged), one it does not match raises none', async () => {
    expect((await post(await solidFrame(BLUE))).label).toBe('blue');
    expect((await post(await solidFrame(RED))).label).toBe('red');
    await waitUntil(() => raised.length >= 1, 20_000, 'the alert');
    await agent.alerts!.idle();
    expect(raised).toHaveLength(1);
    expect(raised[0]).toMatchObject({ rule: 'red-seen', severity: 'critical', label: 'red', device_id: 'test-device', model: { name: 'colours', version: '1.0.0' } });
    expect(lines.find((l) => l['msg'] === 'alert raised')).toMatchObject({ rule: 'red-seen', severity: 'critical', component: 'alerts' });
    expect(agent.renderMetrics()).toMatch(/edgeloop_alerts_total\{rule="red-seen",severity="critical"\} 1/);
    expect(((await (await fetch(`${url}/healthz`)).json()) as { alerts: unknown }).alerts).toEqual({ rules: 1, rule_set: { source: 'config' }, site_brokers_connected: true, actions: {} });
  });

  it("a camera frame's alert goes uplink with the privacy-masked frame, never the full one the model saw", async () => {
    const full = await solidFrame(RED);
    const masked = await solidFrame([0, 0, 0]);
    const before = raised.length;
    await agent.infer({ kind: 'image', bytes: full }, { source: 'camera', camera: 'gate', captureImage: masked });
    await waitUntil(() => raised.length > before, 20_000, 'the camera alert');
    await waitUntil(() => agent.queue.lease(10, 60_000).some((i) => (i.meta as { alert?: { camera?: string } }).alert?.camera === 'gate' && Buffer.from(i.blob!).equals(masked)), 20_000, 'the masked frame in the queue');
  });

  it('a rule set with a bad key stops the start with AGENT_ALERT_RULES_INVALID', async () => {
    await expect(startTestAgent(join(tmp.dir, 'bad'), { alerts: { rules: [{ id: 'x', model: 'colours', cooldown: 5 }] } })).rejects.toMatchObject({ code: 'AGENT_ALERT_RULES_INVALID', message: expect.stringContaining('alerts.rules.0: Unrecognized key: "cooldown"') });
  });
});
