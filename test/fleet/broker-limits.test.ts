import mqtt from 'mqtt';
import { describe, expect, it } from 'vitest';
import { startEmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { MqttPacketGuard, PacketTooLargeError } from '../../fleet/adapters/mqtt/packet-guard.js';
import { topics } from '../../shared/topics.js';
import { captureLogger } from '../helpers/agent.js';
import { waitUntil } from '../helpers/wait.js';

/** A PUBLISH fixed header declaring `length` remaining bytes. */
function publishHeader(length: number): Buffer {
  const bytes = [0x30];
  do {
    let b = length % 128;
    length = Math.floor(length / 128);
    if (length > 0) b |= 0x80;
    bytes.push(b);
  } while (length > 0);
  return Buffer.from(bytes);
}

describe('MqttPacketGuard', () => {
  it('fails at the header of a packet over the limit, before its body arrives', async () => {
    const guard = new MqttPacketGuard(1024);
    const failed = new Promise<Error>((resolve) => guard.on('error', resolve));
    guard.resume();
    // A small PINGREQ, a 1000-byte publish split across writes, then one declaring 100 MiB.
    guard.write(Buffer.from([0xc0, 0x00]));
    const body = Buffer.alloc(1000, 1);
    guard.write(Buffer.concat([publishHeader(1000), body.subarray(0, 10)]));
    guard.write(body.subarray(10));
    guard.write(publishHeader(100 * 1024 * 1024));
    const err = await failed;
    expect(err).toBeInstanceOf(PacketTooLargeError);
    expect((err as PacketTooLargeError).bytes).toBe(100 * 1024 * 1024 + 5);
  });
});

describe('embedded broker packet limit', () => {
  it('closes a connection that sends a packet over the limit and logs it with a code; packets within it pass', async () => {
    const { log, lines } = captureLogger();
    const broker = await startEmbeddedBroker({ maxPacketBytes: 64 * 1024, log, authenticate: (u) => (u === 'fleet' ? { kind: 'fleet' } : u ? { kind: 'device', id: u } : null) });
    const fleet = await mqtt.connectAsync(broker.url, { clientId: 'edgeloop-fleet-test', username: 'fleet', password: 'x', reconnectPeriod: 0 });
    const got: number[] = [];
    fleet.on('message', (_t, payload) => got.push(payload.length));
    await fleet.subscribeAsync(topics.allTelemetry, { qos: 1 });
    const cam = await mqtt.connectAsync(broker.url, { clientId: 'cam-1', username: 'cam-1', password: 'x', reconnectPeriod: 0 });
    try {
      await cam.publishAsync(topics.telemetry('cam-1'), Buffer.alloc(60 * 1024, 0x20), { qos: 1 });
      await waitUntil(() => got.length === 1, 10_000, 'the 60 KB message within the limit');
      const closed = new Promise<void>((resolve) => cam.once('close', () => resolve()));
      cam.publish(topics.telemetry('cam-1'), Buffer.alloc(1024 * 1024, 0x20), { qos: 1 });
      await closed;
      await waitUntil(() => lines.some((l) => l.code === 'FLEET_MQTT_PACKET_TOO_LARGE'), 10_000, 'the log line');
      expect(got).toEqual([60 * 1024]);
    } finally {
      cam.end(true);
      await fleet.endAsync();
      await broker.close();
    }
  });
});
