import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { FleetClient } from '../fleet/edges/client/api-client.js';
import { brokerAddress, startSiteLink } from '../fleet/demo/link.js';
import type { RolloutPlanInput } from '../fleet/core/rollouts/plan-schema.js';
import { seededRandom, type Random } from '../shared/ids.js';
import { accountDevice, sumAccounts, type DeviceAccount } from './accounting.js';
import { ChaosDevice } from './device.js';
import { FAULT_KINDS, noFaults, pickFault, type FaultKind } from './faults.js';
import { FleetProcess } from './fleet-process.js';
import { chaosPackage, MODEL_NAME } from './model.js';

export interface CampaignOptions {
  /** How long faults are injected; the settling and the accounting come after. */
  minutes: number;
  agents: number;
  seed: number;
  /** Fresh working directory: the fleet's and the agents' data. */
  dir: string;
  /** Mean time between two faults (ms); each is drawn between half and one and a half of it. */
  faultEveryMs?: number;
  /** Each camera's period (ms). */
  frameEveryMs?: number;
  /** Longest wait for queues to drain and the last rollout to converge, after the faults stop. */
  settleMs?: number;
  /** Start the fleet and agents from dist/ (`npm run build` first) rather than the sources through tsx: faster restarts. */
  compiled?: boolean;
  /** Progress lines (stderr in the CLI). */
  say(line: string): void;
  log: Logger;
}

export interface CampaignResult {
  faults: Record<FaultKind, number>;
  faults_total: number;
  captured: number;
  received: number;
  evicted: number;
  /** Returned ids the fleet does not have, each matched to a drop on its device's record ... */
  missing: number;
  /** ... except these, covered by a device's counts only (0: the ledger balanced id by id). */
  by_count: number;
  lost: number;
  duplicated: number;
  converged: boolean;
  /** The version every device should run at the end, and the rollouts it took. */
  final_version: string;
  rollouts: number;
  /** Resent samples the fleet recognised and did not store again (since its last start). */
  resends_seen: number;
  seconds: number;
  devices: DeviceAccount[];
  problems: string[];
}

/** Canary of one, then half, then all, baked briefly; gates off (no telemetry gate under faults), failures tolerated. */
const PLAN: RolloutPlanInput = {
  canary: { devices: { count: 1 }, bake_s: 2 },
  waves: [
    { devices: { percent: 50 }, bake_s: 2 },
    { devices: { percent: 100 }, bake_s: 0 },
  ],
  gates: { min_devices_reporting: 0, min_reporting_ratio: 0, max_failures: null, max_error_rate_increase: null, max_latency_p95_ratio: null, max_confidence_drop: null, max_outlier_rate_increase: null, min_shadow_agreement: null },
};
const ALL_AT_ONCE: RolloutPlanInput = { ...PLAN, canary: { devices: { percent: 100 }, bake_s: 0 }, waves: [{ devices: { percent: 100 }, bake_s: 0 }] };
const SELECTOR = { app: 'chaos' };
/** Small, so a link cut plus a burst of big frames makes the device evict. */
const QUOTA_BYTES = 512 * 1024;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Poll `cond` every `everyMs` until it holds or `ms` passed; whether it held. */
async function within(ms: number, cond: () => boolean | Promise<boolean>, everyMs = 250): Promise<boolean> {
  const end = Date.now() + ms;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= end) return false;
    await sleep(everyMs);
  }
}

/**
 * A fault campaign: the fleet and `agents` agents as real processes, cameras feeding every
 * agent, a rollout after another, and faults drawn at random (seeded) for `minutes`; then every
 * fault is undone, the queues drain, the last rollout converges, and the ledger is balanced.
 */
export async function runCampaign(o: CampaignOptions): Promise<CampaignResult> {
  const t0 = Date.now();
  const random: Random = seededRandom(o.seed);
  const problems: string[] = [];
  const faults = noFaults();
  const fleet = new FleetProcess(join(o.dir, 'fleet'), o.compiled === true);
  const devices: ChaosDevice[] = [];
  let fleetBusy = false;
  let version = 1;
  let rollouts = 0;
  /** When faults stop: `minutes` after the cameras start (setup does not count). */
  let faultsEnd = Infinity;
  const inFlight = new Set<Promise<void>>();
  const uniform = (lo: number, hi: number): number => lo + random() * (hi - lo);

  // One handler per kind (a table, not a switch): each undoes its own fault before it returns.
  const HANDLERS: Record<FaultKind, (d: ChaosDevice) => Promise<void>> = {
    agent_kill: async (d) => {
      await d.kill();
      await sleep(uniform(0, 1000));
      await d.start();
    },
    fleet_kill: async () => {
      await fleet.stop('SIGKILL');
      await sleep(uniform(0, 2000));
      await fleet.start();
    },
    link_cut: async (d) => {
      d.link.cut();
      await sleep(uniform(1000, 5000));
      d.link.restore();
    },
    broker_outage: async () => {
      for (const x of devices) x.link.cut();
      await sleep(uniform(1000, 4000));
      for (const x of devices) if (!x.busy) x.link.restore();
    },
    quota_fill: async (d) => {
      // Link down, then big frames until the device's own counter shows an eviction.
      d.link.cut();
      try {
        const before = (await d.health())?.queue?.evicted_total ?? 0;
        for (let i = 0; i < 60 && d.url; i++) {
          await d.capture(true);
          if (i % 5 === 4 && ((await d.health())?.queue?.evicted_total ?? 0) > before) return;
        }
        o.log.warn({ device: d.id }, 'quota fill ended without an eviction');
      } finally {
        d.link.restore();
      }
    },
  };

  await mkdir(o.dir, { recursive: true });
  const urls = await fleet.start();
  const token = (await readFile(join(fleet.dataDir, 'admin.token'), 'utf8')).trim();
  const client = new FleetClient({ url: urls.http, token, timeoutMs: 15_000 });
  o.say(`fleet ${urls.http} (MQTT ${urls.mqtt}); data in ${o.dir}`);

  try {
    // Devices: registered over the API, each agent behind its own relay to the broker.
    for (let i = 0; i < o.agents; i++) {
      const reg = await client.registerDevice(`chaos-${i}`, SELECTOR);
      const link = await startSiteLink(reg.device.id, brokerAddress(urls.mqtt));
      const dir = join(o.dir, 'devices', reg.device.id);
      await mkdir(dir, { recursive: true });
      const config = {
        ...reg.agent_config,
        data_dir: join(dir, 'agent'),
        http: { port: 0 },
        inference: { intra_op_threads: 1, warmup_runs: 0 },
        // Every inference is captured: the model is never sure, and the limit is far above the cameras' rate.
        outlier: { min_confidence: 1, rate_limits: { low_confidence: { per_minute: 600_000, burst: 100_000 } } },
        queue: { quota_bytes: QUOTA_BYTES },
        uplink: { ...reg.agent_config.uplink, url: link.url, backoff_initial_ms: 200, backoff_max_ms: 2000, ack_timeout_ms: 5000, telemetry_interval_s: 5 },
        log: { level: 'warn' },
      };
      await writeFile(join(dir, 'agent.json'), `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
      devices.push(new ChaosDevice(reg.device.id, i, join(dir, 'agent.json'), join(dir, 'agent'), link, o.log, o.compiled === true));
    }
    await Promise.all(devices.map((d) => d.start()));
    o.say(`${devices.length} agents up: ${devices.map((d) => d.url).join(' ')}`);

    // Version 1 everywhere before the cameras start (an agent without a model answers 503).
    await pushVersion(1);
    await client.createRollout({ id: 'chaos-v1', model: { name: MODEL_NAME, version: '1.0.0' }, selector: SELECTOR, plan: ALL_AT_ONCE });
    rollouts++;
    const v1 = await within(180_000, async () => (await client.getRollout('chaos-v1')).rollout.status === 'completed' && (await Promise.all(devices.map((d) => d.health()))).every((h) => h?.model?.version === '1.0.0'));
    if (!v1) throw new Error(`version 1 did not reach every agent within 180 s: rollout ${(await client.getRollout('chaos-v1')).rollout.status}`);
    for (const d of devices) d.startCamera(o.frameEveryMs ?? 100);
    o.say(`cameras feeding; faults for ${o.minutes} min, one every ~${o.faultEveryMs ?? 1000} ms (seed ${o.seed})`);

    faultsEnd = Date.now() + o.minutes * 60_000;
    const rolling = rolloutLoop(faultsEnd);
    let lastLine = Date.now();
    while (Date.now() < faultsEnd) {
      const pick = pickFault(random, { idleDevices: devices.filter((d) => !d.busy).map((d) => d.id), fleetIdle: !fleetBusy, undrawn: FAULT_KINDS.filter((k) => faults[k] === 0) });
      if (pick) {
        faults[pick.kind]++;
        const p: Promise<void> = inject(pick.kind, pick.device).catch((err: unknown) => void problems.push(`${pick.kind}${pick.device ? ` ${pick.device}` : ''}: ${(err as Error).message}`));
        inFlight.add(p);
        void p.finally(() => inFlight.delete(p));
      }
      if (Date.now() - lastLine >= 10_000) {
        lastLine = Date.now();
        o.say(progress());
      }
      const mean = o.faultEveryMs ?? 1000;
      await sleep(uniform(mean / 2, (mean * 3) / 2));
    }

    // Undo: every fault finishes its own restore; then make sure everything is up.
    o.say(`faults stopped; waiting for ${inFlight.size} in progress to end`);
    await Promise.all([...inFlight]);
    for (const d of devices) d.link.restore();
    if (!fleet.running) await fleet.start();
    for (const d of devices) if (!d.url) await d.start();
    await rolling;
    for (const d of devices) await d.stopCamera();
    const finalVersion = `${version}.0.0`;
    o.say(`settling: queues drain, every device reaches ${finalVersion}`);
    const settleMs = o.settleMs ?? 180_000;
    const converged = await within(settleMs, async () => {
      const hs = await Promise.all(devices.map((d) => d.health()));
      return hs.every((h) => h?.model?.version === finalVersion);
    });
    if (!converged) problems.push(`not every device runs ${finalVersion}: ${(await Promise.all(devices.map(async (d) => `${d.id}=${(await d.health())?.model?.version ?? '?'}`))).join(' ')}`);
    const drained = await within(settleMs, async () => (await Promise.all(devices.map((d) => d.health()))).every((h) => h?.queue?.depth === 0));
    if (!drained) problems.push('queues did not drain in time (what is left counts as queued, not lost)');

    const stats = await client.sampleStats();
    await Promise.all(devices.map((d) => d.stop()));
    const accounts: DeviceAccount[] = [];
    for (const d of devices) {
      accounts.push(accountDevice({ device_id: d.id, returned: d.returned, stored: await storedIds(d.id), counters: await d.counters(), dropped: await d.droppedIds() }));
    }
    const totals = sumAccounts(accounts);
    return {
      faults,
      faults_total: FAULT_KINDS.reduce((n, k) => n + faults[k], 0),
      ...totals,
      converged,
      final_version: finalVersion,
      rollouts,
      resends_seen: stats.totals.duplicates,
      seconds: Math.round((Date.now() - t0) / 1000),
      devices: accounts,
      problems,
    };
  } finally {
    for (const d of devices) await d.stopCamera();
    await Promise.all(devices.map((d) => d.stop()));
    await fleet.stop();
    for (const d of devices) await d.link.close();
  }

  function progress(): string {
    const captured = devices.reduce((n, d) => n + d.returned.size, 0);
    const total = FAULT_KINDS.reduce((n, k) => n + faults[k], 0);
    return `t=${Math.round((Date.now() - t0) / 1000)}s faults ${total} (${FAULT_KINDS.map((k) => `${k} ${faults[k]}`).join(', ')}) | captured ${captured} | fleet ${fleet.running ? 'up' : 'DOWN'} | agents up ${devices.filter((d) => d.url).length}/${devices.length} | rollout v${version}`;
  }

  /** The fault handlers: each injects, waits, and undoes what it did. */
  async function inject(kind: FaultKind, id: string | null): Promise<void> {
    const d = devices.find((x) => x.id === id);
    if (kind === 'fleet_kill' || kind === 'broker_outage') fleetBusy = true;
    else d!.busy = true;
    try {
      await HANDLERS[kind](d!);
    } finally {
      if (kind === 'fleet_kill' || kind === 'broker_outage') fleetBusy = false;
      else d!.busy = false;
    }
  }

  /** Push versions 2, 3, ... and roll each out once the previous one finished, while faults run. */
  async function rolloutLoop(until: number): Promise<void> {
    while (Date.now() < until) {
      const next = version + 1;
      if (!(await retrying(() => pushVersion(next)))) continue;
      const id = `chaos-v${next}`;
      if (!(await retrying(() => client.createRollout({ id, model: { name: MODEL_NAME, version: `${next}.0.0` }, selector: SELECTOR, plan: PLAN }).catch(async (err: unknown) => {
        // A create that reached the fleet before a kill exists already: that is fine.
        await client.getRollout(id).catch(() => Promise.reject(err));
      })))) continue;
      version = next;
      rollouts++;
      // Until it ends (a kill of the fleet in between is fine: it resumes from SQLite); then a pause.
      await within(Math.max(0, until - Date.now()) + (o.settleMs ?? 180_000), async () => {
        const st = await client.getRollout(id).then((r) => r.rollout.status, () => null);
        if (st === 'paused' || st === 'aborted' || st === 'rolled_back') {
          problems.push(`rollout ${id} ${st}`);
          return true;
        }
        return st === 'completed';
      }, 500);
      await sleep(2000);
    }
  }

  /** Retry `fn` (the fleet may be down for a few seconds) until it succeeds or the faults end. */
  async function retrying(fn: () => Promise<unknown>): Promise<boolean> {
    for (;;) {
      try {
        await fn();
        return true;
      } catch (err) {
        if (Date.now() > faultsEnd + 60_000) {
          problems.push((err as Error).message);
          return false;
        }
        await sleep(1000);
      }
    }
  }

  async function pushVersion(v: number): Promise<void> {
    const dir = await chaosPackage(join(o.dir, 'models'), `${v}.0.0`, v);
    await client.pushModel(dir).catch(async (err: unknown) => {
      // Pushed before a fleet kill, answer lost: the version is there.
      await client.getModel({ name: MODEL_NAME, version: `${v}.0.0` }).catch(() => Promise.reject(err));
    });
  }

  async function storedIds(device: string): Promise<string[]> {
    const ids: string[] = [];
    let cursor: string | undefined;
    do {
      const page = await client.listSamples({ device, limit: 1000, ...(cursor ? { cursor } : {}) });
      for (const s of page.items) ids.push(s.sample_id);
      cursor = page.next_cursor ?? undefined;
    } while (cursor);
    return ids;
  }
}
