/**
 * Rule sets from the fleet to a running agent, with real parts: the fleet service (embedded
 * broker, HTTP API, CLI in process), an agent over MQTT, a site broker (aedes) whose subscriber
 * stands for the siren, and the console in headless Chromium. The agent starts with no rules;
 * the fleet's rule set is what makes a red frame sound the siren, a rule set it cannot run is
 * refused while the running one stays, and the rule set survives a restart without the fleet.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { parseAgentConfig, type AgentConfig } from '../../../agent/config.js';
import { colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { runFleetCli } from '../../helpers/fleet-cli.js';
import { until } from './harness.js';
import { closeSite, consoleLogin, siteAgentConfig, startSite, startSiteAgent, type Site } from './site-harness.js';

const skipChromium = chromiumSkipReason();

describe('a rule set from the fleet on a running agent', () => {
  let s: Site;
  let cfg: Readonly<AgentConfig>;
  const agent = (): Agent => s.agent!;
  const siren = (): string[] => s.siren.map((m) => m.payload);
  const cli = (...argv: string[]): ReturnType<typeof runFleetCli> => runFleetCli([...argv, '--url', s.svc.urls.http, '--token', s.token]);
  const rulesOf = (): unknown => s.svc.ctx.devices.get('cam-gw').rules;
  const redFrame = async (a: Agent): Promise<void> => {
    const res = await fetch(`${a.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: await solidFrame(RED, 64, 48) });
    expect(((await res.json()) as { label: string }).label).toBe('red');
  };

  beforeAll(async () => {
    s = await startSite({ prefix: 'edgeloop-rule-sets-', device: 'cam-gw', tags: { site: 'pit-3', camera: 'haul' }, model: { name: 'colours', version: '1.0.0' }, pack: (outDir) => colourPackage(outDir) });
    // No rules of its own: what sounds the siren comes from the fleet.
    cfg = siteAgentConfig(s, { alerts: { uplink: false } });
    await startSiteAgent(s, cfg);
    writeFileSync(
      join(s.tmp.dir, 'haul.json'),
      JSON.stringify({
        rules: [{ id: 'red-zone', model: 'colours', labels: ['red'], min_score: 0.5, cooldown_s: 0, gap_s: 0, severity: 'critical', actions: ['siren'] }],
        actions: { siren: { kind: 'mqtt', url: s.site.url, topic: 'site/alarms/{{rule}}', payload: '{{rule}} {{label}}' } },
      }),
    );
    // Valid for the fleet, but only a Greengrass component can run a greengrass action.
    writeFileSync(join(s.tmp.dir, 'gg.json'), JSON.stringify({ rules: [{ id: 'gg', model: 'colours', actions: ['gg'] }], actions: { gg: { kind: 'greengrass', topic: 'site/alarms' } } }));
  }, 60_000);
  afterAll(async () => {
    await closeSite(s);
  });

  it('push and deploy: the device verifies, runs and reports it; a red frame sounds the siren', { timeout: 90_000 }, async () => {
    await until('the agent reports its (config) rules', () => (rulesOf() as { source?: string } | null)?.source === 'none');
    // Before: no rules, so a red frame sounds nothing (the siren subscriber is live: the positive case below).
    await redFrame(agent());
    await agent().alerts!.idle();
    expect(siren()).toEqual([]);
    expect((await cli('rules', 'push', join(s.tmp.dir, 'haul.json'), '--name', 'haul')).out).toContain('stored haul@1');
    const d = await cli('rules', 'deploy', 'haul@1', '--selector', 'camera=haul');
    expect(d.code, d.err).toBe(0);
    expect(d.out).toContain('sent to 1 device(s): cam-gw');
    await until('the fleet shows the device running haul@1', () => (rulesOf() as { version?: number } | null)?.version === 1);
    expect(rulesOf()).toMatchObject({ source: 'fleet', name: 'haul', version: 1 });
    expect((await cli('devices', 'show', 'cam-gw')).out).toMatch(/rules\s+haul@1 \(sha256 [0-9a-f]{12}\.\.\.\)/);
    await redFrame(agent());
    await until('the siren sounds', () => s.siren.length === 1, 30_000);
    expect(siren()[0]).toBe('red-zone red');
  });

  it('a rule set the device cannot run is refused, reported, and the running one stays', { timeout: 60_000 }, async () => {
    expect((await cli('rules', 'push', join(s.tmp.dir, 'gg.json'), '--name', 'gg')).code).toBe(0);
    expect((await cli('rules', 'deploy', 'gg@1', '--selector', 'site=pit-3')).code).toBe(0);
    await until('the fleet shows the refusal', () => (rulesOf() as { refused?: unknown } | null)?.refused !== undefined);
    expect(rulesOf()).toMatchObject({ source: 'fleet', name: 'haul', version: 1, refused: { name: 'gg', version: 1, code: 'AGENT_RULE_SET_REFUSED' } });
    expect((rulesOf() as { refused: { message: string } }).refused.message).toContain('greengrass actions need Greengrass mode');
    await redFrame(agent());
    await until('the siren still sounds (haul@1 runs)', () => s.siren.length === 2, 30_000);
  });

  it.skipIf(skipChromium !== null)('the console device page shows the rule set running, sent and refused', { timeout: 60_000 }, async () => {
    const browser = await launchChromium();
    try {
      const page = await (await browser.newContext()).newPage();
      await consoleLogin(page, s, '/console/devices/cam-gw');
      await page.waitForSelector('#rule-set');
      expect((await page.textContent('#rule-set-running'))?.trim()).toBe('haul@1');
      expect(await page.textContent('#rule-set')).toContain('gg@1');
      expect(await page.textContent('#rule-set-refused')).toContain('AGENT_RULE_SET_REFUSED');
    } finally {
      await browser.close();
    }
  });

  it('survives a restart with the fleet out of reach: the kept rule set runs at once', { timeout: 60_000 }, async () => {
    await agent().stop();
    s.agent = null;
    // Nothing listens on port 1: the uplink never connects.
    const agent2 = await startSiteAgent(s, parseAgentConfig({ ...cfg, uplink: { ...cfg.uplink, url: 'mqtt://127.0.0.1:1' } }));
    expect(agent2.status().rules).toMatchObject({ source: 'fleet', name: 'haul', version: 1 });
    const before = s.siren.length;
    await redFrame(agent2);
    await until('the siren sounds offline', () => s.siren.length === before + 1, 30_000);
  });
});
