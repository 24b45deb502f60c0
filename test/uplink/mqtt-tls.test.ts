/**
 * Mutual TLS as AWS IoT Core uses it: the device presents a client certificate and checks
 * the broker against a CA bundle. Against aedes behind a Node TLS server with a throwaway
 * CA made by openssl.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { Aedes } from 'aedes';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MqttUplink } from '../../agent/uplink/mqtt-uplink.js';
import { makePki, opensslSkipReason } from '../helpers/pki.js';
import { captureLogger } from './fixtures/logger.js';
import { waitUntil } from './fixtures/wait.js';

const skipReason = opensslSkipReason();
if (skipReason) console.warn(`[uplink] skipping the mutual TLS test: ${skipReason}`);

describe.skipIf(skipReason !== null)('MqttUplink over mutual TLS', () => {
  let dir: string;
  let pki: ReturnType<typeof makePki>;
  let broker: Aedes;
  let server: tls.Server;
  let url: string;
  const uplinks: MqttUplink[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-tls-'));
    pki = makePki(dir);
    broker = await Aedes.createBroker();
    // requestCert + rejectUnauthorized: no client certificate, no connection (AWS IoT Core's rule).
    server = tls.createServer({ key: pki.serverKey, cert: pki.serverCert, ca: pki.ca, requestCert: true, rejectUnauthorized: true }, broker.handle);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    url = `mqtts://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await Promise.all(uplinks.map((u) => u.close()));
    await new Promise<void>((r) => server.close(() => r()));
    await new Promise<void>((r) => broker.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with the device certificate and round-trips a message', async () => {
    const uplink = new MqttUplink({ url, clientId: 'dev-tls', logger: captureLogger('warn').logger, tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey } });
    uplinks.push(uplink);
    await uplink.connect();
    const got: string[] = [];
    await uplink.subscribe('tls/echo', (_t, p) => got.push(Buffer.from(p).toString()));
    await uplink.publish('tls/echo', Buffer.from('over mTLS'));
    await waitUntil(() => got.length === 1, 5000, 'echo');
    expect(got).toEqual(['over mTLS']);
  });

  it('does not connect without a client certificate, and keeps retrying with backoff', async () => {
    const { logger, lines } = captureLogger('info');
    const uplink = new MqttUplink({ url, clientId: 'dev-nocert', logger, tls: { ca: pki.ca }, backoff: { initialMs: 20, maxMs: 50 } });
    uplinks.push(uplink);
    void uplink.connect();
    await waitUntil(() => lines.filter((l) => l.msg === 'uplink connect failed; retrying after backoff').length >= 2, 5000, 'two failed attempts');
    expect(uplink.isConnected()).toBe(false);
  });
});
