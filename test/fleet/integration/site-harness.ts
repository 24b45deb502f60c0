/**
 * The alert tests' site: the fleet service with one model pushed and one device registered, a
 * site MQTT broker (aedes) whose subscriber on `site/alarms/#` stands for the siren, optionally a
 * site link (a fleet uplink that can be cut), and the device's agent started on the fleet-signed
 * package. Shared by done-check, alerts-e2e and rule-sets-agent.
 */
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Page } from 'playwright-core';
import { expect } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import { parseAgentConfig, type AgentConfig, type AgentConfigInput } from '../../../agent/config.js';
import type { FleetService } from '../../../fleet/boot/service.js';
import { startSiteLink, type SiteLink } from '../../../fleet/demo/link.js';
import type { ModelRef } from '../../../shared/schemas/index.js';
import { captureLogger } from '../../helpers/agent.js';
import { startAedes, type AedesHandle } from '../../helpers/broker.js';
import { tempDir } from '../../helpers/packages.js';
import { downloadPackage, startFleet } from './harness.js';

/** One message the siren subscriber got, with when it arrived. */
export interface SirenMessage {
  at: number;
  topic: string;
  payload: string;
}

export interface Site {
  tmp: ReturnType<typeof tempDir>;
  svc: FleetService;
  token: string;
  device: string;
  /** The device's registration secret. */
  secret: string;
  /** The fleet-signed package, as downloaded (`models.initial`). */
  initial: string;
  /** The site broker the rule actions publish to. */
  site: AedesHandle;
  sub: MqttClient;
  /** Every message on `site/alarms/#`, in arrival order. */
  siren: SirenMessage[];
  /** The agent's way to the fleet, when asked for; the agent's uplink goes through it. */
  link: SiteLink | null;
  /** Set by {@link startSiteAgent}; a test that restarts the agent replaces it. */
  agent: Agent | null;
}

/**
 * Start the fleet in a new temp dir, build the package with `pack` (into `<tmp>/pkg`; scratch
 * files go in the temp dir, its second argument), push it
 * as `model`, register `device` with `tags`, and start the site broker with its subscriber and,
 * with `link`, a site link to the fleet broker named after `tags.site`.
 */
export async function startSite(o: { prefix: string; device: string; tags: Record<string, string>; model: ModelRef; pack: (outDir: string, workDir: string) => Promise<unknown>; link?: boolean }): Promise<Site> {
  const tmp = tempDir(o.prefix);
  const s: Partial<Site> & { tmp: Site['tmp'] } = { tmp };
  try {
    const svc = (s.svc = await startFleet({ dataDir: join(tmp.dir, 'fleet') }));
    const token = svc.adminToken!;
    await o.pack(join(tmp.dir, 'pkg'), tmp.dir);
    await svc.ctx.registry.push(join(tmp.dir, 'pkg'), { actor: 'test' });
    const initial = await downloadPackage(svc, token, o.model, join(tmp.dir, 'initial'));
    const { secret } = await svc.ctx.devices.register(o.device, { tags: o.tags });
    const site = (s.site = await startAedes());
    const sub = (s.sub = await mqtt.connectAsync(site.url));
    const siren: SirenMessage[] = [];
    sub.on('message', (topic, p) => siren.push({ at: Date.now(), topic, payload: p.toString() }));
    await sub.subscribeAsync('site/alarms/#', { qos: 1 });
    let link: SiteLink | null = null;
    if (o.link) {
      const fleetMqtt = new URL(svc.urls.mqtt);
      link = s.link = await startSiteLink(o.tags['site'] ?? 'site', { host: fleetMqtt.hostname, port: Number(fleetMqtt.port) });
    }
    return { tmp, svc, token, device: o.device, secret, initial, site, sub, siren, link, agent: null };
  } catch (err) {
    await closeSite(s as Site);
    throw err;
  }
}

/**
 * The device's agent config: its fleet snippet, the downloaded package, one inference thread, no
 * outlier captures, a fast uplink backoff (through the site link when there is one), and `extra`.
 */
export function siteAgentConfig(s: Site, extra: AgentConfigInput = {}): Readonly<AgentConfig> {
  const snippet = s.svc.ctx.devices.agentConfigFor(s.device, s.secret, { mqttUrl: s.svc.urls.mqtt, publicKeyPem: s.svc.ctx.publicKeyPem, httpUrl: s.svc.urls.http });
  return parseAgentConfig({
    ...snippet,
    data_dir: join(s.tmp.dir, 'agent'),
    models: { initial: s.initial },
    inference: { intra_op_threads: 1, warmup_runs: 0 },
    http: { port: 0 },
    outlier: { min_confidence: 0, min_margin: 0, max_entropy: 1, random_sample_rate: 0 },
    uplink: { ...snippet.uplink, ...(s.link ? { url: s.link.url } : {}), backoff_initial_ms: 200, backoff_max_ms: 500 },
    ...extra,
  });
}

/** Start the agent on `cfg` (default {@link siteAgentConfig}) and keep it in `s.agent`. */
export async function startSiteAgent(s: Site, cfg: Readonly<AgentConfig> = siteAgentConfig(s)): Promise<Agent> {
  s.agent = await Agent.start(cfg, { log: captureLogger('info').log });
  return s.agent;
}

/** GET /v1/alerts as the admin: the items. */
export async function fleetAlerts(s: Site): Promise<Array<Record<string, unknown>>> {
  const res = await fetch(`${s.svc.urls.http}/v1/alerts`, { headers: { authorization: `Bearer ${s.token}` } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: Array<Record<string, unknown>> }).items;
}

/** Open the console page at `path` and sign in with the admin token on its login form. */
export async function consoleLogin(page: Page, s: Site, path: string): Promise<void> {
  await page.goto(`${s.svc.urls.http}${path}`);
  await page.fill('#token', s.token);
  await Promise.all([page.waitForURL(`${s.svc.urls.http}${path}`), page.click('#login-form button[type=submit]')]);
}

/** Wait until the alerts page shows the card of `alertId` with its frame loaded at `width` pixels; the card's selector. */
export async function alertCardWithFrame(page: Page, alertId: string, width: number): Promise<string> {
  const card = `.card[data-alert="${alertId}"]`;
  await page.waitForSelector(card);
  await page.waitForFunction(
    ([sel, w]) => {
      const img = (globalThis as unknown as { document: { querySelector(s: string): { complete: boolean; naturalWidth: number } | null } }).document.querySelector(sel);
      return img !== null && img.complete && img.naturalWidth === w;
    },
    [`${card} img`, width] as const,
  );
  return card;
}

/** Stop what runs (the agent first, the fleet last) and remove the temp dir; safe on a half-started site. */
export async function closeSite(s: Site | undefined): Promise<void> {
  if (!s) return;
  await s.agent?.stop();
  await s.sub?.endAsync();
  await s.link?.close();
  await s.site?.close();
  await s.svc?.stop();
  s.tmp.cleanup();
}
