import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import type { Logger } from 'pino';
import { sha256Hex, type Clock } from '../../shared/ids.js';
import { deviceStatus, sampleMessage, telemetry, type DeviceStatus, type SampleAck, type SampleMeta, type Telemetry } from '../../shared/schemas/index.js';
import { deviceIdFromTopic, topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';
import { SampleAssembler } from '../../shared/wire/assembler.js';

export interface SinkStats {
  received: number;
  duplicates: number;
  rejected: number;
  malformed: number;
  acksSent: number;
}

/**
 * The receiving end of the device uplink for the embedded default: reassembles samples,
 * stores blob (content-addressed) and metadata, then acks so the device may delete them
 * (ack-then-delete). Idempotent by sample id: a resend is counted and acked again, never
 * stored twice. Also keeps the latest telemetry and status per device.
 */
export class SampleSink {
  private client: MqttClient | null = null;
  private readonly assembler: SampleAssembler;
  private readonly seen = new Set<string>();
  readonly samples = new Map<string, SampleMeta>();
  readonly telemetry = new Map<string, Telemetry>();
  readonly status = new Map<string, DeviceStatus>();
  readonly stats: SinkStats = { received: 0, duplicates: 0, rejected: 0, malformed: 0, acksSent: 0 };
  private pendingAcks = new Map<string, string[]>();
  private flushTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly opts: { url: string; dir: string; clock: Clock; log: Logger; clientId?: string },
  ) {
    this.assembler = new SampleAssembler({ clock: opts.clock });
  }

  async start(): Promise<void> {
    await mkdir(join(this.opts.dir, 'blobs'), { recursive: true });
    this.client = await mqtt.connectAsync(this.opts.url, { clientId: this.opts.clientId ?? `edgeloop-fleet-sink-${process.pid}`, clean: true, reconnectPeriod: 1000 });
    this.client.on('message', (topic, payload) => void this.onMessage(topic, payload));
    await this.client.subscribeAsync([topics.allSamples, topics.allTelemetry, topics.allStatus], { qos: 1 });
  }

  private async onMessage(topic: string, payload: Buffer): Promise<void> {
    const device = deviceIdFromTopic(topic);
    if (!device) return;
    try {
      if (topic === topics.telemetry(device)) this.telemetry.set(device, parseJsonWith(telemetry, payload, 'INPUT_INVALID', 'telemetry'));
      else if (topic === topics.status(device)) this.status.set(device, parseJsonWith(deviceStatus, payload, 'INPUT_INVALID', 'device status'));
      else if (topic === topics.samples(device)) await this.onSample(device, payload);
    } catch (err) {
      this.stats.malformed++;
      this.opts.log.warn({ device, topic, reason: (err as Error).message }, 'malformed device message dropped');
    }
  }

  private async onSample(device: string, payload: Buffer): Promise<void> {
    const msg = parseJsonWith(sampleMessage, payload, 'INPUT_INVALID', 'sample message');
    if (msg.meta.device_id !== device) throw new Error(`sample claims device ${msg.meta.device_id} on ${device}'s topic`);
    const r = this.assembler.accept(msg);
    if (r.status === 'rejected') {
      this.stats.rejected++;
      this.opts.log.warn({ device, sample: r.sampleId, reason: r.error.message }, 'sample rejected');
      return;
    }
    if (r.status === 'partial') return;
    if (r.status === 'duplicate' || this.seen.has(r.sampleId)) {
      this.stats.duplicates++;
      if (r.status === 'complete' || r.final) this.ack(device, r.sampleId);
      return;
    }
    const hash = sha256Hex(r.blob);
    await writeFile(join(this.opts.dir, 'blobs', hash), r.blob);
    this.seen.add(r.sampleId);
    this.samples.set(r.sampleId, r.meta);
    this.stats.received++;
    this.ack(device, r.sampleId);
  }

  /** Acks are batched per device for a few ms: one message acknowledges many samples. */
  private ack(device: string, id: string): void {
    const list = this.pendingAcks.get(device) ?? [];
    list.push(id);
    this.pendingAcks.set(device, list);
    this.flushTimer ??= setTimeout(() => this.flush(), 20);
  }

  private flush(): void {
    this.flushTimer = null;
    for (const [device, ids] of this.pendingAcks) {
      for (let i = 0; i < ids.length; i += 500) {
        const ack: SampleAck = { type: 'sample_ack', v: 1, sample_ids: ids.slice(i, i + 500) };
        this.client?.publish(topics.acks(device), JSON.stringify(ack), { qos: 1 });
        this.stats.acksSent++;
      }
    }
    this.pendingAcks.clear();
  }

  async stop(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flush();
    await this.client?.endAsync();
    this.client = null;
  }
}
