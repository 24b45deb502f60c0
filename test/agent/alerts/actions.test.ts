import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AlertActions } from '../../../agent/alerts/actions.js';
import type { Firing } from '../../../shared/alerts/engine.js';
import { parseRuleSet } from '../../../agent/alerts/load.js';
import { ActionRunner } from '../../../agent/alerts/runner.js';
import { createIpcClient } from '../../../agent/greengrass/ipc-client.js';
import type { AlertRecord, AlertRule } from '../../../shared/schemas/index.js';
import { captureLogger } from '../../helpers/agent.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { waitUntil } from '../../helpers/wait.js';
import { GreengrassIpcServer } from '../../greengrass/ipc-server.js';

const RECORD: AlertRecord = {
  alert_id: 'alr_1',
  rule: 'haul-road',
  severity: 'critical',
  device_id: 'gw-1',
  camera: 'pit-east',
  model: { name: 'det', version: '1.0.0' },
  ts: '2026-12-03T07:00:00.000Z',
  label: 'person',
  score: 0.91,
  count: 1,
  detections: [{ label: 'person', score: 0.91, box: [1, 2, 3, 4], track: 7 }],
};
const noDelay = (): Promise<void> => Promise.resolve();

function firing(actions: string[], record: AlertRecord = RECORD): Firing {
  return { rule: { id: record.rule, actions } as unknown as AlertRule, record };
}

function actionsOf(actions: Record<string, unknown>, deps: Partial<Parameters<typeof AlertActions.create>[1]> = {}): { a: AlertActions; lines: Array<Record<string, unknown>> } {
  const { log, lines } = captureLogger('info');
  const set = parseRuleSet({ rules: [{ id: 'r', model: 'det', actions: Object.keys(actions) }], actions });
  return { a: AlertActions.create(set, { log, deviceId: 'gw-1', delay: noDelay, ...deps }), lines };
}

let server: Server;
let hookUrl: string;
const hookBodies: string[] = [];
let hookFailFirst = 0;
const hung: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      if (req.url === '/hang') return void hung.push(res);
      if (hookFailFirst > 0) {
        hookFailFirst--;
        res.writeHead(503).end();
        return;
      }
      hookBodies.push(body);
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  hookUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  for (const r of hung) r.destroy();
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

describe('ActionRunner', () => {
  it('refuses beyond max_queue with AGENT_ALERT_ACTION_OVERLOADED and a log line; what it accepted still runs', async () => {
    const { log, lines } = captureLogger('info');
    const release: Array<() => void> = [];
    const r = new ActionRunner<AlertRecord>('slow', { timeoutMs: 10_000, retries: 0, maxQueue: 2, concurrency: 1 }, () => new Promise<void>((resolve) => release.push(resolve)), log);
    const accepted = [1, 2, 3, 4].map((i) => r.submit({ ...RECORD, alert_id: `alr_${i}` }));
    // One running, two waiting, the fourth refused.
    expect(accepted).toEqual([true, true, true, false]);
    expect(lines.find((l) => l['code'] === 'AGENT_ALERT_ACTION_OVERLOADED')).toMatchObject({ action: 'slow', alert: 'alr_4' });
    await waitUntil(() => release.length === 1);
    release.shift()!();
    await waitUntil(() => release.length === 1);
    release.shift()!();
    await waitUntil(() => release.length === 1);
    release.shift()!();
    await r.idle();
    expect(r.counts).toMatchObject({ ok: 3, overloaded: 1 });
  });

  it('cuts an attempt at timeout_ms (AGENT_ALERT_ACTION_TIMEOUT), retries failures, then logs AGENT_ALERT_ACTION_FAILED', async () => {
    const { log, lines } = captureLogger('info');
    const t = new ActionRunner<AlertRecord>('never', { timeoutMs: 50, retries: 0, maxQueue: 5, concurrency: 1 }, () => new Promise<void>(() => undefined), log, noDelay);
    t.submit(RECORD);
    await t.idle();
    expect(lines.find((l) => l['msg'] === 'alert action failed')).toMatchObject({ action: 'never', code: 'AGENT_ALERT_ACTION_TIMEOUT' });
    let calls = 0;
    const f = new ActionRunner<AlertRecord>('flaky', { timeoutMs: 1000, retries: 2, maxQueue: 5, concurrency: 1 }, () => (++calls < 3 ? Promise.reject(new Error('boom')) : Promise.resolve()), log, noDelay);
    f.submit(RECORD);
    await f.idle();
    expect([calls, f.counts.ok]).toEqual([3, 1]);
    calls = -10;
    f.submit(RECORD);
    await f.idle();
    expect(lines.filter((l) => l['msg'] === 'alert action failed' && l['action'] === 'flaky')).toEqual([expect.objectContaining({ code: 'AGENT_ALERT_ACTION_FAILED', attempts: 3, reason: expect.stringContaining('boom') })]);
  });
});

describe('mqtt action (site broker)', () => {
  let broker: AedesHandle;
  beforeAll(async () => {
    broker = await startAedes();
  });
  afterAll(async () => {
    await broker.close();
  });

  it('publishes the templated payload on the templated topic; with the site broker down it fails fast, and works again when it is back', { timeout: 120_000 }, async () => {
    const sub = await mqtt.connectAsync(broker.url);
    const got: Array<{ topic: string; payload: string }> = [];
    sub.on('message', (topic, p) => got.push({ topic, payload: p.toString() }));
    await sub.subscribeAsync('site/#');
    const { a, lines } = actionsOf({ siren: { kind: 'mqtt', url: broker.url, topic: 'site/alarms/{{rule}}', payload: '{"alarm":"{{rule}}","camera":"{{camera}}","n":{{count}},"sev":"{{severity}}"}', retries: 0, timeout_ms: 2000 } });
    try {
      await waitUntil(() => a.brokersConnected(), 20_000, 'the site broker connection');
      a.fire(firing(['siren']));
      await waitUntil(() => got.length === 1, 20_000, 'the siren message');
      expect(got[0]!.topic).toBe('site/alarms/haul-road');
      expect(JSON.parse(got[0]!.payload)).toEqual({ alarm: 'haul-road', camera: 'pit-east', n: 1, sev: 'critical' });
      await sub.endAsync();
      await broker.stop();
      await waitUntil(() => !a.brokersConnected(), 20_000, 'the site broker to be seen down');
      a.fire(firing(['siren']));
      await a.idle();
      expect(lines.find((l) => l['msg'] === 'alert action failed')).toMatchObject({ action: 'siren', code: 'AGENT_ALERT_ACTION_FAILED', reason: expect.stringContaining('not connected') });
      await broker.restart();
      const sub2 = await mqtt.connectAsync(broker.url);
      const got2: string[] = [];
      sub2.on('message', (_t, p) => got2.push(p.toString()));
      await sub2.subscribeAsync('site/#');
      await waitUntil(() => a.brokersConnected(), 30_000, 'the site broker connection to come back');
      a.fire(firing(['siren'], { ...RECORD, alert_id: 'alr_2' }));
      await waitUntil(() => got2.length === 1, 20_000, 'the siren message after the broker returned');
      await sub2.endAsync();
    } finally {
      await a.close();
    }
  });
});

describe('webhook action', () => {
  it('posts the body template, retrying a 503', async () => {
    hookFailFirst = 1;
    hookBodies.length = 0;
    const { a } = actionsOf({ hook: { kind: 'webhook', url: `${hookUrl}/alerts`, body: '{{json}}', retries: 2 } });
    a.fire(firing(['hook']));
    await a.idle();
    expect(hookBodies).toHaveLength(1);
    expect(JSON.parse(hookBodies[0]!)).toEqual(RECORD);
    expect(a.runner('hook')!.counts).toMatchObject({ ok: 1, failed: 0 });
    await a.close();
  });

  it('a webhook that never answers times out, and a flood of alerts to it is refused past max_queue', async () => {
    const { a, lines } = actionsOf({ dead: { kind: 'webhook', url: `${hookUrl}/hang`, timeout_ms: 200, retries: 0, max_queue: 3, concurrency: 1 } });
    for (let i = 0; i < 50; i++) a.fire(firing(['dead'], { ...RECORD, alert_id: `alr_${i}` }));
    expect(a.runner('dead')!.depth).toBe(4);
    await a.idle();
    expect(a.runner('dead')!.counts).toMatchObject({ timeout: 4, overloaded: 46, ok: 0 });
    expect(lines.filter((l) => l['code'] === 'AGENT_ALERT_ACTION_TIMEOUT')).toHaveLength(4);
    await a.close();
  });
});

describe('command action', () => {
  const dir = mkdtempSync(join(tmpdir(), 'alert-cmd-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs the file with templated arguments and no shell: a hostile label stays one argument', async () => {
    const out = join(dir, 'args.json');
    const hostile = { ...RECORD, label: 'person; touch pwned' };
    const { a } = actionsOf({ log: { kind: 'command', file: process.execPath, args: ['-e', 'require("fs").writeFileSync(process.argv[1], JSON.stringify(process.argv.slice(2)))', out, '{{rule}}', '{{label}}', '$(id)'] } });
    a.fire(firing(['log'], hostile));
    await a.idle();
    expect(JSON.parse(readFileSync(out, 'utf8'))).toEqual(['haul-road', 'person; touch pwned', '$(id)']);
    await a.close();
  });

  it('a command that exits non-zero fails, one that runs too long is killed (timeout)', async () => {
    const { a, lines } = actionsOf({
      bad: { kind: 'command', file: process.execPath, args: ['-e', 'process.stderr.write("no siren"); process.exit(3)'] },
      slow: { kind: 'command', file: process.execPath, args: ['-e', 'setTimeout(() => {}, 60000)'], timeout_ms: 300 },
    });
    a.fire(firing(['bad', 'slow']));
    await a.idle();
    expect(lines.find((l) => l['action'] === 'bad' && l['msg'] === 'alert action failed')).toMatchObject({ code: 'AGENT_ALERT_ACTION_FAILED', reason: expect.stringMatching(/exited with 3: no siren/) });
    expect(lines.find((l) => l['action'] === 'slow' && l['msg'] === 'alert action failed')).toMatchObject({ code: 'AGENT_ALERT_ACTION_TIMEOUT' });
    await a.close();
  });
});

describe('greengrass action', () => {
  it('publishes on local pub/sub through the IPC client; refused outside Greengrass mode', async () => {
    expect(() => actionsOf({ gg: { kind: 'greengrass', topic: 'site/alerts' } })).toThrow(/actions\.gg\.kind: greengrass actions need Greengrass mode/);
    const dir = mkdtempSync(join(tmpdir(), 'alert-gg-'));
    const ipc = await GreengrassIpcServer.start({ socketPath: join(dir, 'ipc.sock'), svcuid: 'svcuid-test', componentName: 'com.edgeloop.Agent' });
    const client = createIpcClient({ socketPath: ipc.socketPath, authToken: 'svcuid-test' });
    try {
      await client.connect();
      const { a } = actionsOf(
        { gg: { kind: 'greengrass', topic: 'site/alerts/{{severity}}', payload: '{{rule}}@{{device_id}}' } },
        { ipcPublish: async (topic, payload) => void (await client.publishToTopic({ topic, publishMessage: { binaryMessage: { message: payload } } })) },
      );
      a.fire(firing(['gg']));
      await a.idle();
      expect(ipc.localPublished.map((m) => ({ topic: m.topic, message: String(m.message) }))).toEqual([{ topic: 'site/alerts/critical', message: 'haul-road@gw-1' }]);
      await a.close();
    } finally {
      await client.close();
      await ipc.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
