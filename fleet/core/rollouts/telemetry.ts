/**
 * Mapping the devices' wire messages (shared/schemas) to rollout events, so the ingest path
 * does not restate which telemetry fields the gates read.
 */
import type { DeviceStatus, ModelWindow, Telemetry } from '../../../shared/schemas/messages.js';
import type { DeviceMetricsEvent, DeviceReportEvent } from './event-schema.js';

/** A telemetry window as a `device_metrics` event (its first model slot's); `null` when the device ran no model. */
export function metricsEventFromTelemetry(t: Telemetry): DeviceMetricsEvent | null {
  if (!t.model) return null;
  return windowEvent(t, { ...t, model: t.model });
}

/**
 * A telemetry window as one `device_metrics` event per model slot (an agent serving several
 * models reports each in `models`), each tagged with its model: a rollout folds only the
 * windows of its candidate and of the device's last-known-good version of that model.
 */
export function metricsEventsFromTelemetry(t: Telemetry): DeviceMetricsEvent[] {
  if (t.models?.length) return t.models.map((w) => windowEvent(t, w));
  const one = metricsEventFromTelemetry(t);
  return one ? [one] : [];
}

function windowEvent(t: Telemetry, w: ModelWindow): DeviceMetricsEvent {
  const count = w.inference.count;
  return {
    type: 'device_metrics',
    at: Date.parse(t.ts),
    device_id: t.device_id,
    model: w.model,
    window: {
      count,
      errors: w.inference.errors,
      // An empty window's latency and confidence are placeholders, not measurements.
      latency_p95_ms: count > 0 ? w.inference.latency_ms.p95 : null,
      confidence_mean: count > 0 ? clamp01(w.confidence_mean) : null,
      outlier_rate: count > 0 ? clamp01(w.outliers.rate) : null,
    },
    ...(w.shadow
      ? {
          shadow: {
            model: w.shadow.model,
            count: w.shadow.count,
            agreement: w.shadow.agreement,
            confidence_mean: clamp01(w.shadow.confidence_mean),
            latency_p95_ms: w.shadow.latency_p95_ms,
          },
        }
      : {}),
  };
}

function clamp01(x: number | null): number | null {
  return x === null ? null : Math.min(1, Math.max(0, x));
}

/**
 * A device status as a `device_report` event for a rollout of model `modelName`. A device
 * serving several models (`slots`) is read in that model's slot only, so its other models
 * never look like this rollout's device going elsewhere; a device without the slot yet has no
 * news (`null`). A status without slots (an agent with one model) is read whole, as before.
 * A deployment that names another rollout is not this rollout's news (`null`); a status
 * without a deployment reports the active model.
 */
export function reportEventFromStatus(s: DeviceStatus, rolloutId: string, modelName?: string): DeviceReportEvent | null {
  const at = Date.parse(s.ts);
  let dep = s.deployment;
  let active = s.models.active;
  if (modelName !== undefined && s.slots) {
    const slot = s.slots.find((x) => x.name === modelName);
    if (!slot) return null;
    dep = slot.deployment;
    active = slot.active;
  }
  if (dep && (dep.rollout_id === undefined || dep.rollout_id === rolloutId)) {
    const reason = [dep.error_code, dep.reason].filter((x) => x !== undefined).join(': ');
    return { type: 'device_report', at, device_id: s.device_id, phase: dep.phase, model: dep.target, ...(reason ? { reason } : {}) };
  }
  if (!active) return null;
  return { type: 'device_report', at, device_id: s.device_id, phase: 'active', model: active };
}
