import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { nextDelay } from '../../agent/uplink/backoff.js';
import { MqttUplink } from '../../agent/uplink/mqtt-uplink.js';
import type { MqttUplinkOptions } from '../../agent/uplink/mqtt-uplink.js';
import type { Timers } from '../../agent/uplink/timers.js';
import { offlineStatusWill } from '../../agent/uplink/will.js';
import { seededRandom } from '../../shared/ids.js';
import { deviceStatus } from '../../shared/schemas/messages.js';
import type { DeviceStatus } from '../../shared/schemas/messages.js';
import { topics } from '../../shared/topics.js';
import { parseJsonWith } from '../../shared/validate.js';
import { brokerMatrix, startAedes } from '../helpers/broker.js';
import type { AedesHandle } from '../helpers/broker.js';
import { captureLogger } from './fixtures/logger.js';
import { nextEvent, waitUntil } from './fixtures/wait.js';
import { uplinkContract } from './uplink-contract.js';

let clientSeq = 0;
const fastBackoff = { initialMs: 20, maxMs: 200 };

function mqttUplink(url: string, extra: Partial<MqttUplinkOptions> = {}): MqttUplink {
  return new MqttUplink({ url, clientId: `test-${process.pid}-${++clientSeq}`, logger: captureLogger('warn').logger, backoff: fastBackoff, ...extra });
}

for (const broker of brokerMatrix()) {
  if (broker.skipReason) {
    // Visible in the test output: a skipped broker must say why.
    console.warn(`[uplink] skipping the MqttUplink contract on ${broker.name}: ${broker.skipReason}`);
    describe.skip(`Uplink contract: MqttUplink on ${broker.name} (${broker.skipReason})`, () => {
      it('skipped', () => undefined);
    });
    continue;
  }
  uplinkContract(`MqttUplink on ${broker.name}`, async () => {
    const handle = await broker.start();
    return { make: () => mqttUplink(handle.url), outage: handle.stop, recover: handle.restart, close: handle.close };
  });
}

/** Timers that record every delay and fire only when the test says so. */
function manualTimers() {
  const scheduled: Array<{ ms: number; fn: () => void; cleared: boolean }> = [];
  const timers: Timers = {
    setTimeout: (fn, ms) => {
      const t = { ms, fn, cleared: false };
      scheduled.push(t);
      return t;
    },
    clearTimeout: (h) => {
      (h as { cleared: boolean }).cleared = true;
    },
  };
  return { timers, scheduled };
}

describe('MqttUplink', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  it('reconnects only on its own backoff schedule (mqtt.js reconnectPeriod is off)', async () => {
    // A "broker" that accepts TCP and hangs up at once: every attempt fails fast.
    let connections = 0;
    const server = net.createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => server.close(() => r())));
    const port = (server.address() as net.AddressInfo).port;
    const { timers, scheduled } = manualTimers();
    const { logger, lines } = captureLogger();
    const backoff = { initialMs: 1000, maxMs: 8000, minMs: 100 };
    const uplink = new MqttUplink({ url: `mqtt://127.0.0.1:${port}`, clientId: 'backoff-test', logger, backoff, timers, random: seededRandom(42) });
    cleanups.push(() => uplink.close());
    void uplink.connect();

    const expected = seededRandom(42);
    for (let attempt = 0; attempt < 5; attempt++) {
      await waitUntil(() => scheduled.length === attempt + 1, 5000, `retry ${attempt} to be scheduled`);
      const retry = scheduled[attempt];
      expect(retry?.ms).toBe(nextDelay(attempt, backoff, expected));
      expect(connections).toBe(attempt + 1);
      retry?.fn();
    }
    // Nothing reconnects by itself while no timer fires.
    await waitUntil(() => scheduled.length === 6, 5000, 'sixth retry');
    await new Promise((r) => setTimeout(r, 100));
    expect(connections).toBe(6);
    const retries = lines.filter((l) => l.msg === 'uplink connect failed; retrying after backoff');
    expect(retries).toHaveLength(6);
    expect(retries[0]).toMatchObject({ component: 'uplink', delayMs: scheduled[0]?.ms, attempt: 1 });
    expect(JSON.stringify(lines)).not.toContain('password');
  });

  describe('on aedes', () => {
    let broker: AedesHandle;
    const setup = async () => {
      broker = await startAedes();
      cleanups.push(() => broker.close());
    };

    // Regression: with Nagle on, a full QoS 1 window waited for the broker's delayed ACK (40 ms)
    // between publishes: the drain benchmark showed gaps of 42-44 ms and ~2.5k msgs/s.
    it('turns Nagle off on its socket, so publishes never wait for a delayed ACK', async () => {
      await setup();
      const calls: boolean[] = [];
      const original = net.Socket.prototype.setNoDelay;
      net.Socket.prototype.setNoDelay = function (this: net.Socket, noDelay?: boolean) {
        calls.push(noDelay ?? true);
        return original.call(this, noDelay);
      };
      try {
        const device = mqttUplink(broker.url);
        cleanups.push(() => device.close());
        await device.connect();
      } finally {
        net.Socket.prototype.setNoDelay = original;
      }
      expect(calls).toContain(true);
    });

    it('leaves a retained offline device status as its last will when the connection dies', async () => {
      await setup();
      const status: DeviceStatus = {
        type: 'device_status',
        v: 1,
        device_id: 'dev-will',
        ts: '2025-01-01T00:00:00.000Z',
        online: true,
        agent_version: '0.1.0',
        models: { active: { name: 'mnist', version: '1.0.0' }, previous: null, installed: [{ name: 'mnist', version: '1.0.0' }] },
      };
      const device = mqttUplink(broker.url, { clientId: 'dev-will', will: () => offlineStatusWill(status, new Date('2025-01-02T00:00:00Z')) });
      cleanups.push(() => device.close());
      await device.connect();
      // Kill the device's socket from the broker side: no DISCONNECT, so the will fires.
      const client = broker.broker.connectedClients;
      expect(client).toBe(1);
      await new Promise<void>((resolve) => {
        broker.broker.once('clientDisconnect', () => resolve());
        for (const c of Object.values((broker.broker as unknown as { clients: Record<string, { conn: net.Socket }> }).clients)) c.conn.destroy();
      });
      const fleet = mqttUplink(broker.url);
      cleanups.push(() => fleet.close());
      await fleet.connect();
      const got: DeviceStatus[] = [];
      await fleet.subscribe(topics.allStatus, (_t, p) => got.push(parseJsonWith(deviceStatus, p, 'INPUT_INVALID', 'status')));
      await waitUntil(() => got.length === 1, 5000, 'retained will');
      expect(got[0]).toMatchObject({ device_id: 'dev-will', online: false, ts: '2025-01-02T00:00:00.000Z', models: status.models });
    });

    it('with a persistent session, receives messages published while it was offline', async () => {
      await setup();
      const device = mqttUplink(broker.url, { clientId: 'dev-persist', clean: false });
      const fleet = mqttUplink(broker.url);
      cleanups.push(() => device.close(), () => fleet.close());
      const got: string[] = [];
      await device.subscribe(topics.acks('dev-persist'), (_t, p) => got.push(Buffer.from(p).toString()));
      await Promise.all([device.connect(), fleet.connect()]);
      await device.close();
      await fleet.publish(topics.acks('dev-persist'), Buffer.from('ack-while-offline'));
      const again = mqttUplink(broker.url, { clientId: 'dev-persist', clean: false });
      cleanups.push(() => again.close());
      await again.subscribe(topics.acks('dev-persist'), (_t, p) => got.push(Buffer.from(p).toString()));
      await again.connect();
      await waitUntil(() => got.length === 1, 5000, 'queued message');
      expect(got).toEqual(['ack-while-offline']);
    });

    it('rejects publishes in flight when the connection drops', async () => {
      await setup();
      const device = mqttUplink(broker.url);
      cleanups.push(() => device.close());
      await device.connect();
      const down = nextEvent(device, 'disconnected');
      const inflight = Array.from({ length: 200 }, () => device.publish('load/x', Buffer.alloc(1000)));
      const settled = Promise.allSettled(inflight);
      await broker.stop();
      await down;
      const results = await settled;
      // Some may have been acknowledged before the cut; none may hang.
      expect(results.length).toBe(200);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ details: { uplink: 'disconnected' } });
    });
  });
});

describe('MqttUplink subscriptions the broker refuses', () => {
  it('reports itself degraded (with a coded log line) instead of whole, retries, and recovers when the broker allows it', async () => {
    const { Aedes } = await import('aedes');
    let refuseLeft = 2;
    const broker = await Aedes.createBroker({
      authorizeSubscribe: (_client, sub, done) => {
        if (sub.topic.endsWith('/acks') && refuseLeft > 0) {
          refuseLeft--;
          return done(null, null);
        }
        done(null, sub);
      },
    });
    const server = net.createServer((s) => broker.handle(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = `mqtt://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    const { logger, lines } = captureLogger('info');
    const uplink = new MqttUplink({ url, clientId: 'deaf-1', logger, backoff: fastBackoff, resubscribeBackoff: { initialMs: 50, maxMs: 200 } });
    const acks: string[] = [];
    try {
      await uplink.subscribe(topics.acks('deaf-1'), (_t, p) => acks.push(p.toString()));
      await uplink.connect();
      expect(uplink.isConnected()).toBe(true);
      expect(uplink.degraded()).toMatch(/subscription to edgeloop\/v1\/devices\/deaf-1\/acks failed/);
      expect(lines.some((l) => l.code === 'AGENT_UPLINK_DEGRADED')).toBe(true);
      await waitUntil(() => uplink.degraded() === null, 10_000, 'the retried subscription to go through');
      expect(lines.some((l) => l.msg === 'uplink subscriptions restored; no longer degraded')).toBe(true);
      // And it hears its acks now.
      await new Promise<void>((resolve, reject) => broker.publish({ cmd: 'publish', topic: topics.acks('deaf-1'), payload: Buffer.from('hello'), qos: 1, retain: false, dup: false }, (err) => (err ? reject(err) : resolve())));
      await waitUntil(() => acks.length === 1, 10_000, 'the ack');
    } finally {
      await uplink.close();
      await new Promise<void>((r) => server.close(() => r()));
      await new Promise<void>((r) => broker.close(() => r()));
    }
  });
});
