/**
 * Mapping the devices' wire messages (shared/schemas) to rollout events, so the ingest path
 * does not restate which telemetry fields the gates read.
 */
import type { DeviceStatus, Telemetry } from '../../../shared/schemas/messages.js';
import type { DeviceMetricsEvent, DeviceReportEvent } from './event-schema.js';

/** A telemetry window as a `device_metrics` event; `null` when the device ran no model. */
export function metricsEventFromTelemetry(t: Telemetry): DeviceMetricsEvent | null {
  if (!t.model) return null;
  const count = t.inference.count;
  return {
    type: 'device_metrics',
    at: Date.parse(t.ts),
    device_id: t.device_id,
    model: t.model,
    window: {
      count,
      errors: t.inference.errors,
      // An empty window's latency and confidence are placeholders, not measurements.
      latency_p95_ms: count > 0 ? t.inference.latency_ms.p95 : null,
      confidence_mean: count > 0 ? clamp01(t.confidence_mean) : null,
      outlier_rate: count > 0 ? clamp01(t.outliers.rate) : null,
    },
    ...(t.shadow
      ? {
          shadow: {
            model: t.shadow.model,
            count: t.shadow.count,
            agreement: t.shadow.agreement,
            confidence_mean: clamp01(t.shadow.confidence_mean),
            latency_p95_ms: t.shadow.latency_p95_ms,
          },
        }
      : {}),
  };
}

function clamp01(x: number | null): number | null {
  return x === null ? null : Math.min(1, Math.max(0, x));
}

/**
 * A device status as a `device_report` event. A deployment that names another rollout is not
 * this rollout's news (`null`); a status without a deployment reports the active model.
 */
export function reportEventFromStatus(s: DeviceStatus, rolloutId: string): DeviceReportEvent | null {
  const at = Date.parse(s.ts);
  const dep = s.deployment;
  if (dep && (dep.rollout_id === undefined || dep.rollout_id === rolloutId)) {
    const reason = [dep.error_code, dep.reason].filter((x) => x !== undefined).join(': ');
    return { type: 'device_report', at, device_id: s.device_id, phase: dep.phase, model: dep.target, ...(reason ? { reason } : {}) };
  }
  if (!s.models.active) return null;
  return { type: 'device_report', at, device_id: s.device_id, phase: 'active', model: s.models.active };
}
