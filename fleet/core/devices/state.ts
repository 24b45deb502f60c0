import type { DeploymentPhase, DeviceRules, DeviceStatus, ModelRef, ModelSlot, ModelWindow, Telemetry } from '../../../shared/schemas/index.js';

/** Online: connected, and heard from within `offlineAfterMs`. Everything else is offline. */
export type DeviceState = 'online' | 'offline';

/** The numbers an operator watches per device, from the latest telemetry. */
export interface DeviceHealth {
  inference_rate_per_s: number;
  latency_p95_ms: number;
  outlier_rate: number;
  drift_psi: { class: number | null; brightness: number | null; contrast: number | null };
  queue: { depth: number; bytes: number; evicted_total: number };
}

/** A device as the API and the CLI show it. Times are ISO strings. */
export interface DeviceRecord {
  id: string;
  tags: Record<string, string>;
  created_at: string;
  secret_set_at: string;
  /** Computed at read time from `last_seen`, the fleet clock and `offlineAfterMs`. */
  state: DeviceState;
  last_seen: string | null;
  /** When the device was last marked offline (will, shutdown status, broker disconnect). */
  offline_at: string | null;
  agent_version: string | null;
  models: {
    active: ModelRef | null;
    previous: ModelRef | null;
    installed: ModelRef[];
    /** The deployment target while it is on its way in (downloading .. shadow); null otherwise. */
    staged: ModelRef | null;
  };
  deployment: NonNullable<DeviceStatus['deployment']> | null;
  /**
   * Every model slot the device serves (a device with several models), the default first, as
   * it reported them; null from agents older than model slots (see {@link deviceSlots}).
   */
  slots: ModelSlot[] | null;
  /** The alert rule set the device says it runs (and the last it refused); null until a status carried it. */
  rules: DeviceRules | null;
  health: DeviceHealth | null;
  /** The latest telemetry message as received. */
  telemetry: Telemetry | null;
  /** How the device logs in to the broker: its X.509 certificate from the fleet CA, or null (its secret only). */
  certificate: DeviceCertificate | null;
}

/** The device's current certificate as the fleet stored it at issue (never the certificate itself). */
export interface DeviceCertificate {
  /** sha256 of the DER, lowercase hex: the only certificate of this device the broker accepts. */
  sha256: string;
  serial: string;
  issued_at: string;
  not_after: string;
  /** Set once `devices revoke` ran: refused at connect from then on. */
  revoked_at: string | null;
}

/** One telemetry message's drift and outlier numbers, for the history charts (ts in ms). */
export interface DriftPoint {
  ts: number;
  class_psi: number | null;
  brightness_psi: number | null;
  contrast_psi: number | null;
  outlier_rate: number;
  inference_rate: number;
}

/** Row of `devices` LEFT JOIN `device_state`. */
export interface DeviceRow {
  id: string;
  tags: string;
  created_at: number;
  secret_set_at: number;
  last_seen: number | null;
  connected: number | null;
  offline_at: number | null;
  agent_version: string | null;
  active_model: string | null;
  previous_model: string | null;
  installed_models: string | null;
  deployment: string | null;
  telemetry: string | null;
  slots: string | null;
  rules: string | null;
  cert_sha256: string | null;
  cert_serial: string | null;
  cert_issued_at: number | null;
  cert_not_after: number | null;
  cert_revoked_at: number | null;
}

/** Columns of `device_state` that a telemetry message sets. */
export interface TelemetryColumns {
  telemetry_ts: number;
  telemetry: string;
  inference_rate: number;
  latency_p95_ms: number;
  outlier_rate: number;
  class_psi: number | null;
  brightness_psi: number | null;
  contrast_psi: number | null;
  queue_depth: number;
  queue_bytes: number;
  queue_evicted_total: number;
}

/** Columns of `device_state` that a status message sets (besides connectivity). */
export interface StatusColumns {
  status_ts: number;
  agent_version: string;
  active_model: string | null;
  previous_model: string | null;
  installed_models: string;
  deployment: string | null;
  deployment_phase: DeploymentPhase | null;
  slots: string | null;
  rules: string | null;
}

export function telemetryColumns(t: Telemetry): TelemetryColumns {
  return {
    telemetry_ts: Date.parse(t.ts),
    telemetry: JSON.stringify(t),
    inference_rate: t.inference.rate_per_s,
    latency_p95_ms: t.inference.latency_ms.p95,
    outlier_rate: t.outliers.rate,
    class_psi: t.drift.class_psi,
    brightness_psi: t.drift.brightness_psi,
    contrast_psi: t.drift.contrast_psi,
    queue_depth: t.queue.depth,
    queue_bytes: t.queue.bytes,
    queue_evicted_total: t.queue.evicted_total,
  };
}

export function statusColumns(s: DeviceStatus): StatusColumns {
  return {
    status_ts: Date.parse(s.ts),
    agent_version: s.agent_version,
    active_model: s.models.active ? JSON.stringify(s.models.active) : null,
    previous_model: s.models.previous ? JSON.stringify(s.models.previous) : null,
    installed_models: JSON.stringify(s.models.installed),
    deployment: s.deployment ? JSON.stringify(s.deployment) : null,
    deployment_phase: s.deployment?.phase ?? null,
    slots: s.slots ? JSON.stringify(s.slots) : null,
    rules: s.rules ? JSON.stringify(s.rules) : null,
  };
}

const IN_FLIGHT: ReadonlySet<DeploymentPhase> = new Set(['downloading', 'verifying', 'staged', 'shadow']);

/** online/offline from the stored facts and the time now. */
function deviceState(connected: number | null, lastSeen: number | null, now: number, offlineAfterMs: number): DeviceState {
  return connected === 1 && lastSeen !== null && now - lastSeen <= offlineAfterMs ? 'online' : 'offline';
}

const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());
const json = <T>(text: string | null): T | null => (text === null ? null : (JSON.parse(text) as T));

export function toDeviceRecord(r: DeviceRow, now: number, offlineAfterMs: number): DeviceRecord {
  const deployment = json<NonNullable<DeviceStatus['deployment']>>(r.deployment);
  const telemetry = json<Telemetry>(r.telemetry);
  return {
    id: r.id,
    tags: JSON.parse(r.tags) as Record<string, string>,
    created_at: iso(r.created_at) as string,
    secret_set_at: iso(r.secret_set_at) as string,
    state: deviceState(r.connected, r.last_seen, now, offlineAfterMs),
    last_seen: iso(r.last_seen),
    offline_at: iso(r.offline_at),
    agent_version: r.agent_version,
    models: {
      active: json<ModelRef>(r.active_model),
      previous: json<ModelRef>(r.previous_model),
      installed: json<ModelRef[]>(r.installed_models) ?? [],
      staged: deployment && IN_FLIGHT.has(deployment.phase) ? deployment.target : null,
    },
    deployment,
    slots: json<ModelSlot[]>(r.slots),
    rules: json<DeviceRules>(r.rules),
    health: telemetry ? healthOf(telemetry) : null,
    telemetry,
    certificate:
      r.cert_sha256 !== null && r.cert_serial !== null && r.cert_issued_at !== null && r.cert_not_after !== null
        ? { sha256: r.cert_sha256, serial: r.cert_serial, issued_at: iso(r.cert_issued_at) as string, not_after: iso(r.cert_not_after) as string, revoked_at: iso(r.cert_revoked_at) }
        : null,
  };
}

function healthOf(t: Telemetry): DeviceHealth {
  return {
    inference_rate_per_s: t.inference.rate_per_s,
    latency_p95_ms: t.inference.latency_ms.p95,
    outlier_rate: t.outliers.rate,
    drift_psi: { class: t.drift.class_psi, brightness: t.drift.brightness_psi, contrast: t.drift.contrast_psi },
    queue: { depth: t.queue.depth, bytes: t.queue.bytes, evicted_total: t.queue.evicted_total },
  };
}

/**
 * A device's model slots for display and targeting: as reported, or, for an agent older than
 * slots, its one model as one slot (none when it never ran one).
 */
export function deviceSlots(d: Pick<DeviceRecord, 'slots' | 'models' | 'deployment'>): ModelSlot[] {
  if (d.slots) return d.slots;
  const name = d.models.active?.name ?? d.models.previous?.name ?? d.deployment?.target.name;
  if (!name) return [];
  return [{ name, active: d.models.active, previous: d.models.previous, shadow: null, installed: d.models.installed, ...(d.deployment ? { deployment: d.deployment } : {}) }];
}

/**
 * What a rollout of `modelName` moves on this device: the active version of that model's slot
 * (null when the device does not serve it yet). An agent older than slots has one model, and a
 * rollout replaces it whatever its name, as before slots.
 */
export function slotActive(d: Pick<DeviceRecord, 'slots' | 'models'>, modelName: string): ModelRef | null {
  if (!d.slots) return d.models.active;
  return d.slots.find((s) => s.name === modelName)?.active ?? null;
}

/** The latest telemetry window of one model (the whole window from agents with one model). */
export function modelWindowOf(t: Telemetry, modelName: string): ModelWindow | null {
  if (t.models) return t.models.find((w) => w.model.name === modelName) ?? null;
  return t.model ? { ...t, model: t.model } : null;
}
