/**
 * Issue 15 end to end with real parts: the fleet service, an agent whose uplink goes through a
 * site link that can be cut, a site MQTT broker (aedes) with a subscriber, and the console in
 * headless Chromium. A frame that triggers a rule reaches the site subscriber while the fleet
 * link is down; when the link returns the alert with its frame is in the fleet and on the console.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Agent } from '../../../agent/agent.js';
import { colourPackage, RED, solidFrame } from '../../helpers/alerts.js';
import { chromiumSkipReason, launchChromium } from '../../helpers/chromium.js';
import { until } from './harness.js';
import { alertCardWithFrame, closeSite, consoleLogin, fleetAlerts, siteAgentConfig, startSite, startSiteAgent, type Site } from './site-harness.js';

const skipChromium = chromiumSkipReason();

describe('an alert on site with the fleet link down', () => {
  let s: Site;
  let agent: Agent;
  let browser: Browser | null = null;

  beforeAll(async () => {
    s = await startSite({ prefix: 'edgeloop-alerts-e2e-', device: 'cam-gw', tags: { site: 'pit-3' }, model: { name: 'colours', version: '1.0.0' }, pack: (outDir) => colourPackage(outDir), link: true });
    agent = await startSiteAgent(
      s,
      siteAgentConfig(s, {
        alerts: {
          rules: [{ id: 'red-zone', model: 'colours', labels: ['red'], min_score: 0.5, severity: 'critical', actions: ['siren'] }],
          actions: { siren: { kind: 'mqtt', url: s.site.url, topic: 'site/alarms/{{rule}}', payload: '{"rule":"{{rule}}","device":"{{device_id}}","label":"{{label}}","severity":"{{severity}}"}' } },
        },
      }),
    );
    if (!skipChromium) browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await closeSite(s);
  });

  const uplinkUp = (): boolean => (agent.health().uplink as { connected: boolean }).connected;

  it('the site siren gets the templated payload while the link is down; the alert and its frame reach the fleet when it returns', { timeout: 120_000 }, async () => {
    await until('the agent connects to the fleet', uplinkUp);
    s.link!.cut();
    await until('the agent sees the link down', () => !uplinkUp());
    const frame = await solidFrame(RED, 96, 72);
    const res = await fetch(`${agent.httpUrl}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: frame });
    expect(((await res.json()) as { label: string }).label).toBe('red');
    await until('the site subscriber gets the siren message', () => s.siren.length === 1, 30_000);
    expect(s.siren[0]!.topic).toBe('site/alarms/red-zone');
    expect(JSON.parse(s.siren[0]!.payload)).toEqual({ rule: 'red-zone', device: 'cam-gw', label: 'red', severity: 'critical' });
    await until('the alert frame waits in the agent queue', () => agent.queue.stats().depth === 1, 30_000);
    expect(await fleetAlerts(s)).toEqual([]);

    s.link!.restore();
    await until('the alert is in the fleet', async () => (await fleetAlerts(s)).length === 1, 60_000);
    const [a] = await fleetAlerts(s);
    expect(a).toMatchObject({ device_id: 'cam-gw', site: 'pit-3', rule: 'red-zone', severity: 'critical', label: 'red', model: { name: 'colours', version: '1.0.0' }, acknowledged: null, resolved: null });
    const blob = await fetch(`${s.svc.urls.http}/v1/samples/${String(a!['sample_id'])}/blob`, { headers: { authorization: `Bearer ${s.token}` } });
    expect(blob.headers.get('content-type')).toBe('image/jpeg');
    expect(Buffer.from(await blob.arrayBuffer()).equals(frame)).toBe(true);
    await until('the agent deleted the delivered alert', () => agent.queue.stats().depth === 0, 45_000);
  });

  it.skipIf(skipChromium !== null)('shows on the console with its frame; acknowledge and resolve from the page; counts on the overview', { timeout: 60_000 }, async () => {
    const [a] = await fleetAlerts(s);
    const id = String(a!['alert_id']);
    const page: Page = await (await browser!.newContext()).newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await consoleLogin(page, s, '/console/alerts');
    const card = await alertCardWithFrame(page, id, 96);
    expect(await page.textContent(card)).toContain('red-zone');
    await Promise.all([page.waitForEvent('load'), page.click(`${card} button[data-alert-command="ack"]`)]);
    await page.waitForSelector(`${card}[data-state="acknowledged"]`);
    await Promise.all([page.waitForEvent('load'), page.click(`${card} button[data-alert-command="resolve"]`)]);
    await page.waitForSelector(`${card}[data-state="resolved"]`);
    expect(await page.textContent(card)).toContain('resolved by admin');
    // Filters: a severity with no alerts shows none.
    await page.goto(`${s.svc.urls.http}/console/alerts?severity=info`);
    await page.waitForSelector('#alerts-empty');
    await page.goto(`${s.svc.urls.http}/console/`);
    expect((await page.textContent('tr[data-device="cam-gw"] td.alerts'))?.trim()).toBe('0 / 1');
    expect(s.svc.ctx.audit.list({}).items.filter((e) => e.target === id).map((e) => e.action)).toEqual(['alert.resolve', 'alert.ack']);
    expect(errors).toEqual([]);
  });
});
