import type { Logger } from 'pino';
import type { Telemetry } from '../../../shared/schemas/index.js';
import type { DeviceRegistry } from './registry.js';

export interface TelemetryBatcherOptions {
  /** How long a message may wait for the batch's commit (default 100 ms). */
  maxDelayMs?: number;
  /** A batch this large commits at once (default 500). */
  maxBatch?: number;
  log: Logger;
}

/**
 * Folds device telemetry into the registry in batches: every message that arrives within
 * `maxDelayMs` shares one commit. Telemetry is a latest-state report, re-sent every window, so a
 * power cut losing the last fraction of a second of it is repaired by the next window; what the
 * fleet acknowledges (samples) or answers as done (registry writes) still commits on its own.
 * `flush()` commits what waits (call it on stop, before the database closes).
 */
export class TelemetryBatcher {
  private pending: Telemetry[] = [];
  private timer: NodeJS.Timeout | null = null;
  private readonly maxDelayMs: number;
  private readonly maxBatch: number;

  constructor(
    private readonly devices: Pick<DeviceRegistry, 'applyTelemetryBatch'>,
    private readonly o: TelemetryBatcherOptions,
  ) {
    this.maxDelayMs = o.maxDelayMs ?? 100;
    this.maxBatch = o.maxBatch ?? 500;
  }

  add(t: Telemetry): void {
    this.pending.push(t);
    if (this.pending.length >= this.maxBatch) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.maxDelayMs);
  }

  /** Messages waiting for their commit. */
  get waiting(): number {
    return this.pending.length;
  }

  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (!this.pending.length) return;
    const batch = this.pending;
    this.pending = [];
    try {
      const r = this.devices.applyTelemetryBatch(batch);
      for (const device of r.unknown) this.o.log.warn({ device, code: 'FLEET_DEVICE_UNKNOWN' }, 'telemetry from an unknown device dropped');
    } catch (err) {
      this.o.log.error({ messages: batch.length, code: (err as { code?: string }).code, reason: (err as Error).message }, 'telemetry batch not recorded');
    }
  }
}
