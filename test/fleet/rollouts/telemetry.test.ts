import { describe, expect, it } from 'vitest';
import { currentGates } from '../../../fleet/core/rollouts/machine.js';
import { metricsEventFromTelemetry, metricsEventsFromTelemetry, reportEventFromStatus } from '../../../fleet/core/rollouts/telemetry.js';
import { deviceMetricsEvent, deviceReportEvent } from '../../../fleet/core/rollouts/types.js';
import type { DeviceStatus, Telemetry } from '../../../shared/schemas/messages.js';
import { CAND, devices, EASY_GATES, Harness, PREV } from './helpers.js';

const telemetry = (over: Partial<Telemetry> = {}): Telemetry => ({
  type: 'telemetry',
  v: 1,
  device_id: 'cam-1',
  ts: '2025-01-06T08:00:00.000Z',
  window_s: 60,
  model: CAND,
  inference: { count: 120, errors: 2, rate_per_s: 2, latency_ms: { p50: 10, p95: 18, p99: 25 } },
  confidence_mean: 0.91,
  outliers: { count: 3, rate: 0.025, by_reason: { low_confidence: 3 } },
  drift: { class_psi: null, brightness_psi: null, contrast_psi: null },
  queue: { depth: 0, bytes: 0, quota_bytes: 1, evicted_total: 0, oldest_age_s: null },
  ...over,
});

const status = (over: Partial<DeviceStatus> = {}): DeviceStatus => ({
  type: 'device_status',
  v: 1,
  device_id: 'cam-1',
  ts: '2025-01-06T08:00:00.000Z',
  online: true,
  agent_version: '0.1.0',
  models: { active: PREV, previous: null, installed: [PREV] },
  ...over,
});

describe('telemetry → rollout events', () => {
  it('maps a telemetry window, shadow side included, to a valid device_metrics event', () => {
    const e = metricsEventFromTelemetry(telemetry({ model: PREV, shadow: { model: CAND, count: 12, agreement: 0.9, confidence_mean: 0.88, latency_p95_ms: 21 } }));
    expect(deviceMetricsEvent.parse(e)).toEqual(e);
    expect(e).toMatchObject({ at: Date.UTC(2025, 0, 6, 8), model: PREV, window: { count: 120, errors: 2, latency_p95_ms: 18, confidence_mean: 0.91, outlier_rate: 0.025 }, shadow: { agreement: 0.9 } });
  });

  it('an empty window carries no measurements, and no model means no event', () => {
    const e = metricsEventFromTelemetry(telemetry({ inference: { count: 0, errors: 0, rate_per_s: 0, latency_ms: { p50: 0, p95: 0, p99: 0 } }, confidence_mean: null }));
    expect(e?.window).toEqual({ count: 0, errors: 0, latency_p95_ms: null, confidence_mean: null, outlier_rate: null });
    expect(metricsEventFromTelemetry(telemetry({ model: null }))).toBeNull();
  });

  it('maps a device status to a device_report, ignoring other rollouts', () => {
    const failed = reportEventFromStatus(status({ deployment: { revision: 3, rollout_id: 'ro-1', target: CAND, phase: 'failed', reason: 'golden 2 mismatched', error_code: 'MODEL_SMOKE_TEST_FAILED' } }), 'ro-1');
    expect(deviceReportEvent.parse(failed)).toEqual(failed);
    expect(failed).toMatchObject({ phase: 'failed', model: CAND, reason: 'MODEL_SMOKE_TEST_FAILED: golden 2 mismatched' });
    expect(reportEventFromStatus(status({ deployment: { revision: 3, rollout_id: 'ro-2', target: CAND, phase: 'active' } }), 'ro-1')).toMatchObject({ phase: 'active', model: PREV });
    expect(reportEventFromStatus(status({ models: { active: null, previous: null, installed: [] } }), 'ro-1')).toBeNull();
  });

  it('reads a device serving several models in the rollout\'s model slot only (issue 14)', () => {
    const other = { name: 'detector', version: '3.0.0' };
    const window = (model: typeof CAND, count: number) => ({ model, inference: { count, errors: 0, rate_per_s: 1, latency_ms: { p50: 1, p95: 2, p99: 3 } }, confidence_mean: 0.8, outliers: { count: 0, rate: 0, by_reason: {} }, drift: { class_psi: null, brightness_psi: null, contrast_psi: null } });
    // One event per model window, each tagged with its model; the top level (the first slot) is not counted twice.
    const evs = metricsEventsFromTelemetry(telemetry({ model: other, models: [window(other, 50), window(CAND, 7)] }));
    expect(evs.map((e) => [e.model, e.window.count])).toEqual([
      [other, 50],
      [CAND, 7],
    ]);
    expect(metricsEventsFromTelemetry(telemetry()).map((e) => e.model)).toEqual([CAND]);

    const st = status({
      models: { active: other, previous: null, installed: [other, PREV] },
      deployment: { revision: 9, rollout_id: 'ro-det', target: other, phase: 'failed', reason: 'smoke test' },
      slots: [
        { name: other.name, active: other, previous: null, shadow: null, installed: [other], deployment: { revision: 9, rollout_id: 'ro-det', target: other, phase: 'failed', reason: 'smoke test' } },
        { name: CAND.name, active: PREV, previous: null, shadow: null, installed: [PREV] },
      ],
    });
    // The detector's failed deployment is not news to a rollout of the other model: its slot runs PREV.
    expect(reportEventFromStatus(st, 'ro-1', CAND.name)).toMatchObject({ phase: 'active', model: PREV });
    expect(reportEventFromStatus(st, 'ro-det', other.name)).toMatchObject({ phase: 'failed', model: other });
    // A model the device does not serve yet: no news. A status without slots (an older agent) is read whole.
    expect(reportEventFromStatus(st, 'ro-x', 'helmet')).toBeNull();
    expect(reportEventFromStatus(status(), 'ro-1', 'helmet')).toMatchObject({ phase: 'active', model: PREV });
  });
});

describe('currentGates', () => {
  it('shows what a waiting gate waits for', () => {
    const h = new Harness({ canary: { devices: { count: 2 } }, gates: { ...EASY_GATES, min_devices_reporting: 2 } });
    expect(currentGates(h.state)).toBeNull();
    h.start(devices(5));
    expect(currentGates(h.state)).toMatchObject({ status: 'waiting', reason: 'waiting for devices: 0 of 2 required reporting (10 samples each)' });
  });

  it('names the devices that ran the candidate but sent too little of their previous version to compare with', () => {
    // One camera, idle right before the rollout: its previous version has no recent window.
    const h = new Harness({ canary: { devices: { count: 1 } }, waves: [{ devices: { percent: 100 } }], gates: EASY_GATES });
    const [cam] = h.start(devices(1, PREV, null)).desired.map((c) => c.device_id);
    h.report(cam!, 'active');
    h.metrics(cam!, CAND, { count: 50 });
    const waiting = currentGates(h.state)!;
    expect(waiting.status).toBe('waiting');
    expect(waiting.reason).toContain(`1 of them (${cam}) ran the candidate but sent under 10 samples of their previous version`);
    expect(waiting.reason).toContain('promote');
    // A late window of the previous version (the device was offline) is the baseline it needed.
    h.metrics(cam!, PREV, { count: 40 });
    expect(currentGates(h.state)).toMatchObject({ status: 'pass' });
  });
});
