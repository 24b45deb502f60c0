/**
 * `telemetry`: device telemetry folded into the fleet's device registry, as the service does it
 * (TelemetryBatcher: one transaction per batch) against the raw library: better-sqlite3 running
 * the registry's own UPSERT in transactions of the same size, on a database opened the same way
 * (WAL, synchronous = FULL). value = batched msgs/s / raw msgs/s. Beside it, one commit per
 * message (`applyTelemetry`, what the service did before batching) and its share of the raw rate.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { DeviceRegistry } from '../fleet/app/devices/registry.js';
import { APPLY_TELEMETRY_SQL, sqliteDevicesRepo } from '../fleet/adapters/sqlite/devices-repo.js';
import { telemetryColumns } from '../fleet/core/devices/state.js';
import { TelemetryBatcher } from '../fleet/app/devices/telemetry-batcher.js';
import { openFleetDb } from '../fleet/adapters/sqlite/db.js';
import { simulatedTelemetry } from '../test/helpers/device-sim.js';
import type { Telemetry } from '../shared/schemas/index.js';

const round = (x: number, d = 3): number => Math.round(x * 10 ** d) / 10 ** d;

// Drift PSI set as an agent reports it, so the rows carry what real telemetry carries.
const message = (device: string, ts: number): Telemetry => ({
  ...simulatedTelemetry(device, { name: 'digits', version: '1.0.0' }, { ts: new Date(ts).toISOString(), windowS: 10 }),
  drift: { class_psi: 0.02, brightness_psi: 0.1, contrast_psi: null },
});

export async function benchTelemetry(o: { devices?: number; perDevice?: number } = {}): Promise<{ name: 'telemetry'; value: number } & Record<string, unknown>> {
  const n = o.devices ?? 500;
  const per = o.perDevice ?? 10;
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-telemetry-'));
  try {
    const db = openFleetDb({ path: join(dir, 'fleet.db') });
    const devices = new DeviceRegistry({ repo: sqliteDevicesRepo(db), clock: db.clock, scrypt: { N: 1024, r: 8, p: 1 } });
    const ids = Array.from({ length: n }, (_, i) => `gw-${i}`);
    for (const id of ids) await devices.register(id);
    let ts = Date.parse('2026-01-01T00:00:00Z');
    const messages = (): Telemetry[] => {
      const out: Telemetry[] = [];
      for (let k = 0; k < per; k++) for (const id of ids) out.push(message(id, (ts += 1)));
      return out;
    };
    const rate = (count: number, fn: () => void): number => {
      const t0 = performance.now();
      fn();
      return count / ((performance.now() - t0) / 1000);
    };
    const single = messages();
    const singleRate = rate(single.length, () => single.forEach((t) => devices.applyTelemetry(t)));
    const batched = messages();
    const batcher = new TelemetryBatcher(devices, { log: pino({ level: 'silent' }), maxBatch: n });
    const batchedRate = rate(batched.length, () => {
      batched.forEach((t) => batcher.add(t));
      batcher.flush();
    });
    // Raw: the registry's own UPSERT and columns, the same transaction size, nothing around it.
    const raw = messages();
    const upsert = db.sqlite.prepare(APPLY_TELEMETRY_SQL);
    const tx = db.sqlite.transaction((batch: Telemetry[]) => {
      for (const t of batch) upsert.run({ device_id: t.device_id, now: Date.now(), ...telemetryColumns(t) });
    });
    const rawRate = rate(raw.length, () => {
      for (let i = 0; i < raw.length; i += n) tx.immediate(raw.slice(i, i + n));
    });
    db.close();
    return {
      name: 'telemetry',
      value: round(batchedRate / rawRate),
      target: '>= 0.5',
      batched_per_s: Math.round(batchedRate),
      raw_per_s: Math.round(rawRate),
      per_message_commit_per_s: Math.round(singleRate),
      per_message_commit_ratio: round(singleRate / rawRate),
      messages: batched.length,
      batch: n,
      synchronous: 'FULL',
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
