import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../fleet/adapters/mqtt/embedded-broker.js';
import { canPublish, canSubscribe } from '../../fleet/adapters/mqtt/acl.js';
import { topics } from '../../shared/topics.js';

const secrets: Record<string, string> = { 'cam-a': 'secret-a', 'cam-b': 'secret-b' };
let broker: EmbeddedBroker;
let fleet: MqttClient;
const seen: string[] = [];

beforeAll(async () => {
  broker = await startEmbeddedBroker({
    authenticate: (username, password) => {
      if (username === 'fleet' && password?.toString() === 'fleet-secret') return { kind: 'fleet' };
      if (username && secrets[username] !== undefined && secrets[username] === password?.toString()) return { kind: 'device', id: username };
      return null;
    },
  });
  fleet = await mqtt.connectAsync(broker.url, { clientId: 'edgeloop-fleet-test', username: 'fleet', password: 'fleet-secret' });
  fleet.on('message', (t) => seen.push(t));
  await fleet.subscribeAsync('edgeloop/v1/devices/#', { qos: 1 });
});
afterAll(async () => {
  await fleet.endAsync();
  await broker.close();
});

const connect = (clientId: string, username?: string, password?: string) =>
  mqtt.connectAsync(broker.url, { clientId, ...(username ? { username } : {}), ...(password ? { password } : {}), reconnectPeriod: 0, connectTimeout: 3000 });

async function settle(): Promise<void> {
  await new Promise((r) => setTimeout(r, 200));
}

describe('embedded broker access control', () => {
  it('refuses unknown clients, wrong secrets and borrowed client ids', async () => {
    await expect(connect('stranger')).rejects.toThrow(/Not authorized|Bad username/i);
    await expect(connect('cam-a', 'cam-a', 'wrong')).rejects.toThrow(/Not authorized/i);
    await expect(connect('cam-b', 'cam-a', 'secret-a')).rejects.toThrow(/Not authorized/i);
  });

  it('lets a device use its own namespace only', async () => {
    const a = await connect('cam-a', 'cam-a', 'secret-a');
    try {
      await a.publishAsync(topics.telemetry('cam-a'), '{}', { qos: 1 });
      expect((await a.subscribeAsync(topics.desired('cam-a'), { qos: 1 })).map((g) => g.qos)).toEqual([1]);
      // SUBACK 0x80 for another device's deployment, and for wildcards that would include it.
      await expect(a.subscribeAsync(topics.desired('cam-b'), { qos: 1 })).rejects.toThrow(/Subscribe error/);
      await expect(a.subscribeAsync('edgeloop/v1/devices/+/desired', { qos: 1 })).rejects.toThrow(/Subscribe error/);
      // Its own per-model desired states, one `+` inside its namespace; not another device's.
      expect((await a.subscribeAsync(topics.desiredModels('cam-a'), { qos: 1 })).map((g) => g.qos)).toEqual([1]);
      await expect(a.subscribeAsync(topics.desiredModels('cam-b'), { qos: 1 })).rejects.toThrow(/Subscribe error/);
      await expect(a.subscribeAsync('edgeloop/v1/devices/cam-a/desired/#', { qos: 1 })).rejects.toThrow(/Subscribe error/);
      await settle();
      expect(seen).toContain(topics.telemetry('cam-a'));
      // Publishing as another device: the broker drops the message and the connection.
      const closed = new Promise<void>((r) => a.once('close', () => r()));
      a.publish(topics.telemetry('cam-b'), '{"forged":true}', { qos: 0 });
      await closed;
      await settle();
      expect(seen).not.toContain(topics.telemetry('cam-b'));
    } finally {
      await a.endAsync(true);
    }
  });

  it('refuses a last will outside the namespace', async () => {
    await expect(mqtt.connectAsync(broker.url, { clientId: 'cam-a', username: 'cam-a', password: 'secret-a', reconnectPeriod: 0, connectTimeout: 2000, will: { topic: topics.status('cam-b'), payload: Buffer.from('x'), qos: 1, retain: true } })).rejects.toThrow();
  });

  it('rules are pure and total', () => {
    const a = { kind: 'device' as const, id: 'cam-a' };
    expect(canPublish(a, topics.samples('cam-a'))).toBe(true);
    expect(canPublish(a, topics.desired('cam-a'))).toBe(false);
    expect(canSubscribe(a, topics.acks('cam-a'))).toBe(true);
    // Its own rule set, never another device's; and it may not publish one.
    expect(canSubscribe(a, topics.rules('cam-a'))).toBe(true);
    expect(canSubscribe(a, topics.rules('cam-b'))).toBe(false);
    expect(canPublish(a, topics.rules('cam-a'))).toBe(false);
    expect(canSubscribe(a, '#')).toBe(false);
    expect(canSubscribe({ kind: 'fleet' }, '#')).toBe(true);
  });
});
