/**
 * The fleet's limits on what devices and peers may make it hold or do (`edgeloop serve
 * --limits FILE`, JSON, every key optional): validated once at start, every bad key named in
 * one `FLEET_LIMITS_CONFIG_INVALID` error, then frozen. The defaults suit devices that send
 * AWS IoT-sized (128 KB) messages at up to 100 a second.
 */
import { z } from 'zod';
import type { ConfigKind } from '../../shared/config.js';
import { parseConfig } from '../../shared/config.js';
import { DEFAULT_MAX_PACKET_BYTES } from '../adapters/mqtt/embedded-broker.js';
import { loadConfigFile } from '../adapters/fs/config-file.js';
import type { AssemblerOptions } from '../../shared/wire/assembler.js';
import type { DeviceLimitOptions } from '../app/samples/device-limits.js';
import { FleetError } from '../errors.js';

const MiB = 1024 * 1024;
const bytes = (d: number, what: string) => z.number().int().positive().default(d).describe(what);

export const fleetLimitsConfig = z.strictObject({
  ingest: z
    .strictObject({
      max_sample_bytes: bytes(16 * MiB, 'Largest sample (its declared `meta.input.bytes`) taken at all; bigger ones are nacked with `SAMPLE_TOO_LARGE` and stay on the device.'),
      messages_per_s: z.number().positive().default(200).describe('Sample messages (chunks) per second one device may send, sustained; beyond, it is nacked with `SAMPLE_RATE_LIMITED` and pauses.'),
      burst: z.number().int().positive().default(400).describe('Sample messages one device may send in a burst above `messages_per_s`.'),
      daily_bytes: bytes(4 * 1024 * MiB, 'Sample payload bytes one device may send per UTC day; beyond, it is nacked until the next day.'),
      pending_sets_per_device: z.number().int().positive().default(32).describe('Unfinished chunked samples one device may have at once; beyond, its own stalest is dropped (the device resends it).'),
      pending_bytes_per_device: bytes(32 * MiB, 'Bytes one device may hold in unfinished chunked samples; beyond, its own stalest are dropped.'),
      pending_sets_total: z.number().int().positive().default(1000).describe('Unfinished chunked samples in all; beyond, the device holding the most bytes loses its stalest.'),
      pending_bytes_total: bytes(256 * MiB, 'Bytes held in unfinished chunked samples in all; beyond, the device holding the most loses its stalest.'),
      chunk_timeout_s: z.number().positive().default(60).describe('An unfinished sample that gets no chunk for this long is dropped (checked on a timer).'),
    })
    .prefault({}),
  broker: z
    .strictObject({
      max_packet_bytes: bytes(DEFAULT_MAX_PACKET_BYTES, "Largest MQTT packet the embedded broker takes; a bigger one closes the sender's connection at its header (`FLEET_MQTT_PACKET_TOO_LARGE`). Raise it with the agents' `uplink.max_message_bytes`."),
    })
    .prefault({}),
});
export type FleetLimitsConfig = z.output<typeof fleetLimitsConfig>;

const LIMITS_CONFIG: ConfigKind = { what: 'limits configuration', error: (m, o) => new FleetError('LIMITS_CONFIG_INVALID', m, o) };

/** The defaults, or `data` validated. */
export function parseLimitsConfig(data: unknown = {}): FleetLimitsConfig {
  return parseConfig(fleetLimitsConfig, data, LIMITS_CONFIG);
}

export async function loadLimitsConfig(path: string): Promise<FleetLimitsConfig> {
  return loadConfigFile(fleetLimitsConfig, LIMITS_CONFIG, path);
}

/** The ingest's options for these limits. */
export function ingestLimits(l: FleetLimitsConfig): { assembler: Omit<AssemblerOptions, 'clock'>; deviceLimits: DeviceLimitOptions } {
  const i = l.ingest;
  return {
    assembler: {
      timeoutMs: i.chunk_timeout_s * 1000,
      maxPending: i.pending_sets_total,
      maxPendingPerDevice: i.pending_sets_per_device,
      maxPendingBytes: i.pending_bytes_total,
      maxPendingBytesPerDevice: i.pending_bytes_per_device,
      maxSampleBytes: i.max_sample_bytes,
    },
    deviceLimits: { messagesPerSecond: i.messages_per_s, burst: i.burst, dailyBytes: i.daily_bytes },
  };
}
