/**
 * Issue 15 end to end with real parts: the fleet service, an agent whose uplink goes through a
 * site link that can be cut, a site MQTT broker (aedes) with a subscriber, and the console in
 * headless Chromium. A frame that triggers a rule reaches the site subscriber while the fleet
 * link is down; when the link returns the alert with its frame is in the fleet and on the console.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import { parseAgentConfig } from '../../../agent/config.js';
import type { FleetService } from '../../../fleet/boot/service.js';
import { startSiteLink, type SiteLink } from '../../../fleet/demo/link.js';
import { captureLogger } from '../../helpers/agent.js';
import { colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { tempDir } from '../../helpers/packages.js';
import { downloadPackage, startFleet, until } from './harness.js';

const skipChromium = chromiumSkipReason();

describe('an alert on site with the fleet link down', () => {
  const tmp = tempDir('edgeloop-alerts-e2e-');
  let svc: FleetService;
  let token: string;
  let site: AedesHandle;
  let link: SiteLink;
  let sub: MqttClient;
  let agent: Agent;
  let browser: Browser | null = null;
  const siren: Array<{ topic: string; payload: string }> = [];

  beforeAll(async () => {
    svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') });
    token = svc.adminToken!;
    await colourPackage(join(tmp.dir, 'pkg'));
    await svc.ctx.registry.push(join(tmp.dir, 'pkg'), { actor: 'test' });
    const initial = await downloadPackage(svc, token, { name: 'colours', version: '1.0.0' }, join(tmp.dir, 'initial'));
    const { secret } = await svc.ctx.devices.register('cam-gw', { tags: { site: 'pit-3' } });
    site = await startAedes();
    sub = await mqtt.connectAsync(site.url);
    sub.on('message', (topic, p) => siren.push({ topic, payload: p.toString() }));
    await sub.subscribeAsync('site/alarms/#', { qos: 1 });
    const fleetMqtt = new URL(svc.urls.mqtt);
    link = await startSiteLink('pit-3', { host: fleetMqtt.hostname, port: Number(fleetMqtt.port) });
    const snippet = svc.ctx.devices.agentConfigFor('cam-gw', secret, { mqttUrl: svc.urls.mqtt, publicKeyPem: svc.ctx.publicKeyPem, httpUrl: svc.urls.http });
    const cfg = parseAgentConfig({
      ...snippet,
      data_dir: join(tmp.dir, 'agent'),
      models: { initial },
      inference: { intra_op_threads: 1, warmup_runs: 0 },
      http: { port: 0 },
      outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 0 },
      uplink: { ...snippet.uplink, url: link.url, backoff_initial_ms: 200, backoff_max_ms: 500 },
      alerts: {
        rules: [{ id: 'red-zone', model: 'colours', labels: ['red'], min_score: 0.5, severity: 'critical', actions: ['siren'] }],
        actions: { siren: { kind: 'mqtt', url: site.url, topic: 'site/alarms/{{rule}}', payload: '{"rule":"{{rule}}","device":"{{device_id}}","label":"{{label}}","severity":"{{severity}}"}' } },
      },
    });
    agent = await Agent.start(cfg, { log: captureLogger('info').log });
    if (!skipChromium) browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await sub?.endAsync();
    await link?.close();
    await site?.close();
    await svc?.stop();
    tmp.cleanup();
  });

  const alerts = async (): Promise<Array<Record<string, unknown>>> => {
    const res = await fetch(`${svc.urls.http}/v1/alerts`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    return ((await res.json()) as { items: Array<Record<string, unknown>> }).items;
  };
  const uplinkUp = (): boolean => (agent.health().uplink as { connected: boolean }).connected;

  it('the site siren gets the templated payload while the link is down; the alert and its frame reach the fleet when it returns', { timeout: 120_000 }, async () => {
    await until('the agent connects to the fleet', uplinkUp);
    link.cut();
    await until('the agent sees the link down', () => !uplinkUp());
    const frame = await solidFrame(RED, 96, 72);
    const res = await fetch(`${agent.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: frame });
    expect(((await res.json()) as { label: string }).label).toBe('red');
    await until('the site subscriber gets the siren message', () => siren.length === 1, 30_000);
    expect(siren[0]!.topic).toBe('site/alarms/red-zone');
    expect(JSON.parse(siren[0]!.payload)).toEqual({ rule: 'red-zone', device: 'cam-gw', label: 'red', severity: 'critical' });
    await until('the alert frame waits in the agent queue', () => agent.queue.stats().depth === 1, 30_000);
    expect(await alerts()).toEqual([]);

    link.restore();
    await until('the alert is in the fleet', async () => (await alerts()).length === 1, 60_000);
    const [a] = await alerts();
    expect(a).toMatchObject({ device_id: 'cam-gw', site: 'pit-3', rule: 'red-zone', severity: 'critical', label: 'red', model: { name: 'colours', version: '1.0.0' }, acknowledged: null, resolved: null });
    const blob = await fetch(`${svc.urls.http}/v1/samples/${String(a!['sample_id'])}/blob`, { headers: { authorization: `Bearer ${token}` } });
    expect(blob.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await blob.arrayBuffer()).equals(frame)).toBe(true);
    await until('the agent deleted the delivered alert', () => agent.queue.stats().depth === 0, 45_000);
  });

  it.skipIf(skipChromium !== null)('shows on the console with its frame; acknowledge and resolve from the page; counts on the overview', { timeout: 60_000 }, async () => {
    const [a] = await alerts();
    const id = String(a!['alert_id']);
    const page: Page = await (await browser!.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${svc.urls.http}/console/alerts`);
    await page.fill('#token', token);
    await Promise.all([page.waitForURL(`${svc.urls.http}/console/alerts`), page.click('#login-form button[type=submit]')]);
    const card = `.card[data-alert="${id}"]`;
    await page.waitForSelector(card);
    await page.waitForFunction((sel) => {
      const img = (globalThis as unknown as { document: { querySelector(s: string): { complete: boolean; naturalWidth: number } | null } }).document.querySelector(sel);
      return img !== null && img.complete && img.naturalWidth === 96;
    }, `${card} img`);
    expect(await page.textContent(card)).toContain('red-zone');
    await Promise.all([page.waitForEvent('load'), page.click(`${card} button[data-alert-command="ack"]`)]);
    await page.waitForSelector(`${card}[data-state="acknowledged"]`);
    await Promise.all([page.waitForEvent('load'), page.click(`${card} button[data-alert-command="resolve"]`)]);
    await page.waitForSelector(`${card}[data-state="resolved"]`);
    expect(await page.textContent(card)).toContain('resolved by admin');
    // Filters: a severity with no alerts shows none.
    await page.goto(`${svc.urls.http}/console/alerts?severity=info`);
    await page.waitForSelector('#alerts-empty');
    await page.goto(`${svc.urls.http}/console/`);
    expect((await page.textContent('tr[data-device="cam-gw"] td.alerts'))?.trim()).toBe('0 / 1');
    expect(svc.ctx.audit.list({}).items.filter((e) => e.target === id).map((e) => e.action)).toEqual(['alert.resolve', 'alert.ack']);
    expect(errors).toEqual([]);
  });
});
