/**
 * The behaviour every {@link Uplink} must have (docs/conventions.md rule 3), written once and run against
 * each implementation: mqtt.js on aedes and on mosquitto today, Greengrass IPC later.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Uplink } from '../../agent/uplink/types.js';
import { nextEvent, waitUntil } from './fixtures/wait.js';

/** What the suite needs from an implementation and its transport. */
export interface UplinkHarness {
  /** A new, unconnected uplink with its own client identity. */
  make(): Uplink;
  /** Take the transport down (broker gone); connections drop. */
  outage(): Promise<void>;
  /** Bring the transport back at the same address. */
  recover(): Promise<void>;
  close(): Promise<void>;
}

export function uplinkContract(name: string, setup: () => Promise<UplinkHarness>): void {
  describe(`Uplink contract: ${name}`, () => {
    let harness: UplinkHarness;
    const opened: Uplink[] = [];
    const make = (): Uplink => {
      const u = harness.make();
      opened.push(u);
      return u;
    };

    beforeEach(async () => {
      harness = await setup();
    });
    afterEach(async () => {
      await Promise.all(opened.splice(0).map((u) => u.close()));
      await harness.close();
    });

    it('delivers a publish to a subscriber, bytes intact, through a wildcard filter', async () => {
      const device = make();
      const peer = make();
      await Promise.all([device.connect(), peer.connect()]);
      const got: Array<[string, Buffer]> = [];
      await peer.subscribe('contract/+/data', (topic, payload) => got.push([topic, Buffer.from(payload)]));
      const payload = new Uint8Array([0, 1, 2, 250, 255]);
      await device.publish('contract/dev-1/data', payload);
      await waitUntil(() => got.length === 1, 5000, 'message');
      expect(got[0]?.[0]).toBe('contract/dev-1/data');
      expect(got[0]?.[1].equals(Buffer.from(payload))).toBe(true);
      expect(device.isConnected()).toBe(true);
    });

    it('keeps a retained publish for later subscribers', async () => {
      const device = make();
      await device.connect();
      await device.publish('contract/dev-2/status', Buffer.from('{"online":true}'), { retain: true });
      const late = make();
      await late.connect();
      const got: string[] = [];
      await late.subscribe('contract/dev-2/status', (_t, p) => got.push(Buffer.from(p).toString()));
      await waitUntil(() => got.length === 1, 5000, 'retained message');
      expect(got).toEqual(['{"online":true}']);
    });

    it('rejects a publish at once before connecting (nothing is buffered in memory)', async () => {
      const device = make();
      const started = Date.now();
      await expect(device.publish('contract/x', new Uint8Array([1]))).rejects.toMatchObject({ details: { uplink: 'disconnected' } });
      expect(Date.now() - started).toBeLessThan(100);
      expect(device.isConnected()).toBe(false);
    });

    it('rejects a publish at once while the transport is down, and reconnects and resubscribes when it is back', async () => {
      const device = make();
      const peer = make();
      await Promise.all([device.connect(), peer.connect()]);
      const got: string[] = [];
      await device.subscribe('contract/dev-3/acks', (_t, p) => got.push(Buffer.from(p).toString()));

      const down = Promise.all([nextEvent(device, 'disconnected'), nextEvent(peer, 'disconnected')]);
      await harness.outage();
      await down;
      expect(device.isConnected()).toBe(false);
      const started = Date.now();
      await expect(device.publish('contract/x', new Uint8Array([1]))).rejects.toMatchObject({ details: { uplink: 'disconnected' } });
      expect(Date.now() - started).toBeLessThan(100);

      const up = Promise.all([nextEvent(device, 'connected'), nextEvent(peer, 'connected')]);
      await harness.recover();
      await up;
      // The subscription made before the outage works again, without calling subscribe().
      await peer.publish('contract/dev-3/acks', Buffer.from('after-restart'));
      await waitUntil(() => got.length === 1, 5000, 'message after reconnect');
      expect(got).toEqual(['after-restart']);
    });

    it('applies a subscription made while disconnected once it connects', async () => {
      const device = make();
      const got: string[] = [];
      await device.subscribe('contract/dev-4/acks', (_t, p) => got.push(Buffer.from(p).toString()));
      const peer = make();
      await Promise.all([device.connect(), peer.connect()]);
      await peer.publish('contract/dev-4/acks', Buffer.from('hello'));
      await waitUntil(() => got.length === 1, 5000, 'message');
    });

    it('publishCallback, where implemented, calls back once and never synchronously: no argument on delivery, the publish error otherwise', async () => {
      const device = make();
      if (!device.publishCallback) return;
      const calls: Array<Error | undefined> = [];
      let returned = false;
      device.publishCallback('contract/x', new Uint8Array([1]), (err) => {
        expect(returned).toBe(true);
        calls.push(err);
      });
      returned = true;
      await waitUntil(() => calls.length === 1, 5000, 'callback while disconnected');
      expect(calls[0]).toMatchObject({ details: { uplink: 'disconnected' } });

      const peer = make();
      await Promise.all([device.connect(), peer.connect()]);
      const got: string[] = [];
      await peer.subscribe('contract/dev-5/data', (_t, p) => got.push(Buffer.from(p).toString()));
      const acked: Array<Error | undefined> = [];
      for (let i = 0; i < 20; i++) device.publishCallback('contract/dev-5/data', Buffer.from(`m${i}`), (err) => acked.push(err));
      await waitUntil(() => acked.length === 20 && got.length === 20, 5000, 'callbacks and deliveries');
      expect(acked.every((e) => e === undefined)).toBe(true);
      expect(got).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));

      // Cut off in flight: each callback still fires exactly once, with an error.
      const cut: Array<Error | undefined> = [];
      for (let i = 0; i < 20; i++) device.publishCallback('contract/dev-5/data', Buffer.alloc(64 * 1024, i), (err) => cut.push(err));
      await harness.outage();
      await waitUntil(() => cut.length === 20, 5000, 'callbacks after an outage');
      await new Promise((r) => setTimeout(r, 50));
      expect(cut).toHaveLength(20);
      expect(cut.filter((e) => e !== undefined).every((e) => e instanceof Error)).toBe(true);
    });

    it('close() disconnects, rejects later publishes and refuses to connect again', async () => {
      const device = make();
      await device.connect();
      const down = nextEvent(device, 'disconnected');
      await device.close();
      await down;
      expect(device.isConnected()).toBe(false);
      await expect(device.publish('contract/x', new Uint8Array([1]))).rejects.toBeInstanceOf(Error);
      await expect(device.connect()).rejects.toBeInstanceOf(Error);
      await device.close();
    });
  });
}
