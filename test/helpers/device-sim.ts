import mqtt, { type MqttClient } from 'mqtt';
import { desiredState, type DesiredState, type DeviceStatus, type ModelRef, type Telemetry } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';

export interface SimDevice {
  id: string;
  secret?: string;
  active: ModelRef | null;
}

export interface SimOptions {
  url: string;
  devices: SimDevice[];
  /**
   * Telemetry period per device; 0 = none. Devices are spread over the period in 10 slices
   * (as real devices, which started at different times, are): a slice every period/10.
   */
  telemetryIntervalMs?: number;
  /** Versions whose install "fails its smoke test" on these devices (by device id). */
  failOn?: (deviceId: string, model: ModelRef) => boolean;
  /** Per-version quality the simulated model reports (confidence, error rate...). */
  quality?: (deviceId: string, model: ModelRef) => Partial<Telemetry['inference']> & { confidence?: number; outlierRate?: number };
  /** Connections opened per batch, so a thousand devices do not storm the broker at once. */
  connectBatch?: number;
}

const SLICES = 10;

export type SimQuality = ReturnType<NonNullable<SimOptions['quality']>>;

/** One telemetry window of a simulated device running `model` with quality `q` (defaults: a healthy model, 100 inferences). */
export function simulatedTelemetry(deviceId: string, model: ModelRef | null, o: { ts: string; windowS: number; q?: SimQuality }): Telemetry {
  const q = o.q ?? {};
  const count = q.count ?? 100;
  return {
    type: 'telemetry',
    v: 1,
    device_id: deviceId,
    ts: o.ts,
    window_s: o.windowS,
    model,
    inference: { count, errors: q.errors ?? 0, rate_per_s: q.rate_per_s ?? count, latency_ms: q.latency_ms ?? { p50: 5, p95: 8, p99: 10 } },
    confidence_mean: q.confidence ?? 0.9,
    outliers: { count: Math.round(count * (q.outlierRate ?? 0.05)), rate: q.outlierRate ?? 0.05, by_reason: {} },
    drift: { class_psi: null, brightness_psi: null, contrast_psi: null },
    queue: { depth: 0, bytes: 0, quota_bytes: 0, evicted_total: 0, oldest_age_s: null },
  };
}

interface Sim {
  d: SimDevice;
  client: MqttClient;
  revision: number;
  deployment?: DeviceStatus['deployment'];
  online: boolean;
}

/**
 * Light devices that speak the real device protocol over MQTT (desired state in, status
 * and telemetry out) without running inference: for rollout scale tests and benchmarks.
 * A desired version is "installed" at once (or fails, per `failOn`) and reported with the
 * same phases a real agent reports.
 */
export class SimulatedDevices {
  private readonly sims = new Map<string, Sim>();
  private timer: NodeJS.Timeout | null = null;

  constructor(private readonly o: SimOptions) {}

  async start(): Promise<void> {
    const batch = this.o.connectBatch ?? 50;
    for (let i = 0; i < this.o.devices.length; i += batch) {
      await Promise.all(this.o.devices.slice(i, i + batch).map((d) => this.connect(d)));
    }
    const every = this.o.telemetryIntervalMs ?? 0;
    if (every > 0) {
      let slice = 0;
      this.timer = setInterval(() => this.telemetryAll((slice = (slice + 1) % SLICES)), every / SLICES);
    }
  }

  private async connect(d: SimDevice): Promise<void> {
    const client = await mqtt.connectAsync(this.o.url, { clientId: d.id, username: d.id, ...(d.secret ? { password: d.secret } : {}), reconnectPeriod: 1000, keepalive: 60 });
    // A device coming back keeps what it had applied (a real agent persists its revision).
    const prev = this.sims.get(d.id);
    const sim: Sim = { d, client, revision: prev?.revision ?? 0, online: true, ...(prev?.deployment ? { deployment: prev.deployment } : {}) };
    this.sims.set(d.id, sim);
    client.on('message', (_t, payload) => this.onDesired(sim, payload));
    await client.subscribeAsync(topics.desired(d.id), { qos: 1 });
    this.publishStatus(sim);
  }

  private onDesired(sim: Sim, payload: Buffer): void {
    let d: DesiredState;
    try {
      d = desiredState.parse(JSON.parse(payload.toString()));
    } catch {
      return;
    }
    if (d.revision <= sim.revision || !d.active) return;
    sim.revision = d.revision;
    const target = d.active.model;
    if (sim.d.active && sim.d.active.name === target.name && sim.d.active.version === target.version) return;
    const base = { revision: d.revision, ...(d.rollout_id ? { rollout_id: d.rollout_id } : {}), target };
    if (this.o.failOn?.(sim.d.id, target)) {
      sim.deployment = { ...base, phase: 'failed', reason: 'MODEL_SMOKE_TEST_FAILED: simulated', error_code: 'MODEL_SMOKE_TEST_FAILED' };
    } else {
      sim.d.active = target;
      sim.deployment = { ...base, phase: 'active' };
    }
    this.publishStatus(sim);
  }

  private publishStatus(sim: Sim): void {
    const s: DeviceStatus = {
      type: 'device_status',
      v: 1,
      device_id: sim.d.id,
      ts: new Date().toISOString(),
      online: true,
      agent_version: 'sim',
      models: { active: sim.d.active, previous: null, installed: sim.d.active ? [sim.d.active] : [] },
      ...(sim.deployment ? { deployment: sim.deployment } : {}),
    };
    sim.client.publish(topics.status(sim.d.id), JSON.stringify(s), { qos: 1, retain: true });
  }

  /** One telemetry window per device (of one slice, 0..9, when given) with the simulated quality of its active model. */
  telemetryAll(slice?: number): void {
    let i = -1;
    for (const sim of this.sims.values()) {
      i++;
      if (slice !== undefined && i % SLICES !== slice) continue;
      const m = sim.d.active;
      const q = m ? this.o.quality?.(sim.d.id, m) : undefined;
      const t = simulatedTelemetry(sim.d.id, m, { ts: new Date().toISOString(), windowS: (this.o.telemetryIntervalMs ?? 1000) / 1000, ...(q ? { q } : {}) });
      sim.client.publish(topics.telemetry(sim.d.id), JSON.stringify(t), { qos: 0 });
    }
  }

  activeOf(id: string): ModelRef | null {
    return this.sims.get(id)?.d.active ?? null;
  }

  /** Disconnect one device (it keeps its state) and bring it back later. */
  async setOnline(id: string, online: boolean): Promise<void> {
    const sim = this.sims.get(id);
    if (!sim || sim.online === online) return;
    sim.online = online;
    if (!online) await sim.client.endAsync(true);
    else await this.connect(sim.d);
  }

  /** Every online device drops its connection and connects again (a broker restart, a site's network coming back). */
  async reconnectAll(): Promise<void> {
    const batch = this.o.connectBatch ?? 50;
    const online = [...this.sims.values()].filter((s) => s.online);
    for (let i = 0; i < online.length; i += batch) {
      await Promise.all(
        online.slice(i, i + batch).map(async (s) => {
          await s.client.endAsync(true);
          await this.connect(s.d);
        }),
      );
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all([...this.sims.values()].filter((s) => s.online).map((s) => s.client.endAsync(true)));
  }
}
