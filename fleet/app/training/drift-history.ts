/**
 * Drift observations per model and device, for the drift trigger: what devices report (sampled
 * from the device registry on every tick) or what a caller observes, in time order, the last
 * DRIFT_KEEP points of each device.
 */
import type { DeviceRecord } from '../../core/devices/state.js';
import type { DriftPoint } from '../../core/training/triggers.js';

export const DRIFT_KEEP = 2000;

export class DriftHistory {
  private readonly byModel = new Map<string, Map<string, DriftPoint[]>>();

  /** One observation; an older or same-time point than the device's last is ignored. */
  observe(o: { device: string; model: string; at: number; psi: number }): void {
    const byDevice = this.byModel.get(o.model) ?? new Map<string, DriftPoint[]>();
    this.byModel.set(o.model, byDevice);
    const pts = byDevice.get(o.device) ?? [];
    const last = pts.at(-1);
    if (last && last.at >= o.at) return;
    pts.push({ at: o.at, psi: o.psi });
    if (pts.length > DRIFT_KEEP) pts.splice(0, pts.length - DRIFT_KEEP);
    byDevice.set(o.device, pts);
  }

  /** The largest drift PSI each device last reported, for the devices running one of `models`. */
  sample(devices: readonly DeviceRecord[], models: ReadonlySet<string>): void {
    for (const d of devices) {
      const model = d.models.active?.name;
      if (!model || !models.has(model) || !d.health || !d.last_seen) continue;
      const p = d.health.drift_psi;
      const values = [p.class, p.brightness, p.contrast].filter((x): x is number => x !== null);
      if (values.length) this.observe({ device: d.id, model, at: Date.parse(d.last_seen), psi: Math.max(...values) });
    }
  }

  /** Every device's points for `model`, as the trigger policy takes them. */
  of(model: string): Array<{ device: string; points: DriftPoint[] }> {
    return [...(this.byModel.get(model)?.entries() ?? [])].map(([device, points]) => ({ device, points }));
  }
}
