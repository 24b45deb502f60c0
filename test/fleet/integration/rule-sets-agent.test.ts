/**
 * Rule sets from the fleet to a running agent, with real parts: the fleet service (embedded
 * broker, HTTP API, CLI in process), an agent over MQTT, a site broker (aedes) whose subscriber
 * stands for the siren, and the console in headless Chromium. The agent starts with no rules;
 * the fleet's rule set is what makes a red frame sound the siren, a rule set it cannot run is
 * refused while the running one stays, and the rule set survives a restart without the fleet.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import { parseAgentConfig, type AgentConfig } from '../../../agent/config.js';
import type { FleetService } from '../../../fleet/boot/service.js';
import { captureLogger } from '../../helpers/agent.js';
import { colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { tempDir } from '../../helpers/packages.js';
import { downloadPackage, startFleet, until } from './harness.js';

const skipChromium = chromiumSkipReason();

describe('a rule set from the fleet on a running agent', () => {
  const tmp = tempDir('edgeloop-rule-sets-');
  let svc: FleetService;
  let token: string;
  let site: AedesHandle;
  let sub: MqttClient;
  let agent: Agent | null = null;
  let cfg: Readonly<AgentConfig>;
  const siren: string[] = [];
  const cli = (...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli([...argv, '--url', svc.urls.http, '--token', token]);
  const rulesOf = (): unknown => svc.ctx.devices.get('cam-gw').rules;
  const redFrame = async (a: Agent): Promise<void> => {
    const res = await fetch(`${a.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await solidFrame(RED, 64, 48) });
    expect(((await res.json()) as { label: string }).label).toBe('red');
  };

  beforeAll(async () => {
    svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
    token = svc.adminToken!;
    await colourPackage(join(tmp.dir, 'pkg'));
    await svc.ctx.registry.push(join(tmp.dir, 'pkg'), { actor: 'test' });
    const initial = await downloadPackage(svc, token, { name: 'colours', version: '1.0.0' }, join(tmp.dir, 'initial'));
    const { secret } = await svc.ctx.devices.register('cam-gw', { tags: { site: 'pit-3', camera: 'haul' } });
    site = await startAedes();
    sub = await mqtt.connectAsync(site.url);
    sub.on('message', (_t, p) => siren.push(p.toString()));
    await sub.subscribeAsync('site/alarms/#', { qos: 1 });
    const snippet = svc.ctx.devices.agentConfigFor('cam-gw', secret, { mqttUrl: svc.urls.mqtt, publicKeyPem: svc.ctx.publicKeyPem, httpUrl: svc.urls.http });
    cfg = parseAgentConfig({
      ...snippet,
      data_dir: join(tmp.dir, 'agent'),
      models: { initial },
      inference: { intra_op_threads: 1, warmup_runs: 0 },
      http: { port: 0 },
      outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 0 },
      uplink: { ...snippet.uplink, backoff_initial_ms: 200, backoff_max_ms: 500 },
      // No rules of its own: what sounds the siren comes from the fleet.
      alerts: { uplink: false },
    });
    agent = await Agent.start(cfg, { log: captureLogger('info').log });
    writeFileSync(
      join(tmp.dir, 'haul.json'),
      JSON.stringify({
        rules: [{ id: 'red-zone', model: 'colours', labels: ['red'], min_score: 0.5, cooldown_s: 0, gap_s: 0, severity: 'critical', actions: ['siren'] }],
        actions: { siren: { kind: 'mqtt', url: site.url, topic: 'site/alarms/{{rule}}', payload: '{{rule}} {{label}}' } },
      }),
    );
    // Valid for the fleet, but only a Greengrass component can run a greengrass action.
    writeFileSync(join(tmp.dir, 'gg.json'), JSON.stringify({ rules: [{ id: 'gg', model: 'colours', actions: ['gg'] }], actions: { gg: { kind: 'greengrass', topic: 'site/alarms' } } }));
  }, 60_000);
  afterAll(async () => {
    await agent?.stop();
    await sub?.endAsync();
    await site?.close();
    await svc?.stop();
    tmp.cleanup();
  });

  it('push and deploy: the device verifies, runs and reports it; a red frame sounds the siren', { timeout: 90_000 }, async () => {
    await until('the agent reports its (config) rules', () => (rulesOf() as { source?: string } | null)?.source === 'none');
    // Before: no rules, so a red frame sounds nothing (the siren subscriber is live: the positive case below).
    await redFrame(agent!);
    await agent!.alerts!.idle();
    expect(siren).toEqual([]);
    expect((await cli('rules', 'push', join(tmp.dir, 'haul.json'), '--name', 'haul')).out).toContain('stored haul@1');
    const d = await cli('rules', 'deploy', 'haul@1', '--selector', 'camera=haul');
    expect(d.code, d.err).toBe(0);
    expect(d.out).toContain('sent to 1 device(s): cam-gw');
    await until('the fleet shows the device running haul@1', () => (rulesOf() as { version?: number } | null)?.version === 1);
    expect(rulesOf()).toMatchObject({ source: 'fleet', name: 'haul', version: 1 });
    expect((await cli('devices', 'show', 'cam-gw')).out).toMatch(/rules\s+haul@1 \(sha256 [0-9a-f]{12}\.\.\.\)/);
    await redFrame(agent!);
    await until('the siren sounds', () => siren.length === 1, 30_000);
    expect(siren[0]).toBe('red-zone red');
  });

  it('a rule set the device cannot run is refused, reported, and the running one stays', { timeout: 60_000 }, async () => {
    expect((await cli('rules', 'push', join(tmp.dir, 'gg.json'), '--name', 'gg')).code).toBe(0);
    expect((await cli('rules', 'deploy', 'gg@1', '--selector', 'site=pit-3')).code).toBe(0);
    await until('the fleet shows the refusal', () => (rulesOf() as { refused?: unknown } | null)?.refused !== undefined);
    expect(rulesOf()).toMatchObject({ source: 'fleet', name: 'haul', version: 1, refused: { name: 'gg', version: 1, code: 'AGENT_RULE_SET_REFUSED' } });
    expect((rulesOf() as { refused: { message: string } }).refused.message).toContain('greengrass actions need Greengrass mode');
    await redFrame(agent!);
    await until('the siren still sounds (haul@1 runs)', () => siren.length === 2, 30_000);
  });

  it.skipIf(skipChromium !== null)('the console device page shows the rule set running, sent and refused', { timeout: 60_000 }, async () => {
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext()).newPage();
      await page.goto(`${svc.urls.http}/console/devices/cam-gw`);
      await page.fill('#token', token);
      await Promise.all([page.waitForURL(`${svc.urls.http}/console/devices/cam-gw`), page.click('#login-form button[type=submit]')]);
      await page.waitForSelector('#rule-set');
      expect((await page.textContent('#rule-set-running'))?.trim()).toBe('haul@1');
      expect(await page.textContent('#rule-set')).toContain('gg@1');
      expect(await page.textContent('#rule-set-refused')).toContain('AGENT_RULE_SET_REFUSED');
    } finally {
      await browser.close();
    }
  });

  it('survives a restart with the fleet out of reach: the kept rule set runs at once', { timeout: 60_000 }, async () => {
    await agent!.stop();
    agent = null;
    // Nothing listens on port 1: the uplink never connects.
    agent = await Agent.start(parseAgentConfig({ ...cfg, uplink: { ...cfg.uplink, url: 'mqtt://127.0.0.1:1' } }), { log: captureLogger('info').log });
    expect(agent.status().rules).toMatchObject({ source: 'fleet', name: 'haul', version: 1 });
    const before = siren.length;
    await redFrame(agent);
    await until('the siren sounds offline', () => siren.length === before + 1, 30_000);
  });
});
