/**
 * Device logins by X.509 certificate on the embedded broker's TLS listener (`serve
 * --mqtts-port`): the fleet CA certifies a device's own key, the device connects with it and
 * publishes in its namespace; a certificate of another CA, an expired, revoked or replaced one,
 * and a client id other than the certificate's CN are refused, each logged with
 * FLEET_DEVICE_CERT_REFUSED and its reason. Every refusal comes from its own loopback address
 * (127.0.0.N), so the per-address backoff of one case does not decide the next.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateFleetCa } from '../../fleet/adapters/fs/fleet-ca.js';
import { startFleetService, type FleetService } from '../../fleet/boot/service.js';
import { telemetry } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { waitUntil } from '../helpers/wait.js';
import { captureLogger } from '../helpers/agent.js';

function deviceKey(): { publicPem: string; privatePem: string } {
  const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { publicPem: k.publicKey.export({ type: 'spki', format: 'pem' }) as string, privatePem: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
}

const tele = (id: string, count: number): string =>
  JSON.stringify(
    telemetry.parse({
      type: 'telemetry',
      v: 1,
      device_id: id,
      ts: new Date().toISOString(),
      window_s: 10,
      model: { name: 'pets', version: '1.0.0' },
      inference: { count, errors: 0, rate_per_s: 4.2, latency_ms: { p50: 4, p95: 9, p99: 12 } },
      confidence_mean: 0.8,
      outliers: { count: 0, rate: 0, by_reason: {} },
      drift: { class_psi: null, brightness_psi: null, contrast_psi: null },
      queue: { depth: 0, bytes: 0, quota_bytes: 1 << 28, evicted_total: 0, oldest_age_s: 0 },
    }),
  );

describe('embedded broker: device certificates over TLS', () => {
  let dir: string;
  let svc: FleetService;
  let lines: Array<Record<string, unknown>>;
  let url: string;
  let ca: string;
  let nextAddress = 10;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-mtls-'));
    const c = captureLogger();
    lines = c.lines;
    svc = await startFleetService({ dataDir: dir, mqttsPort: 0, log: c.log });
    url = svc.urls.mqtts as string;
    ca = svc.ctx.certificates.caPem;
    for (const id of ['cam-1', 'cam-2', 'cam-3', 'cam-4', 'cam-5']) await svc.ctx.devices.register(id);
  });
  afterAll(async () => {
    await svc?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const certify = (id: string): { cert: string; key: string } => {
    const k = deviceKey();
    return { cert: svc.ctx.certificates.issue(id, k.publicPem, { actor: 'test' }).pem, key: k.privatePem };
  };
  /** Connect from a fresh loopback address (its own backoff). */
  const connect = (clientId: string, c: { cert: string; key: string }, extra: IClientOptions & { localAddress?: string } = {}) =>
    mqtt.connectAsync(url, { clientId, cert: c.cert, key: c.key, ca, reconnectPeriod: 0, connectTimeout: 5000, localAddress: `127.0.0.${nextAddress++}`, ...extra } as IClientOptions);
  /** A connection the TLS layer refuses: the outcome, whether the client sees an error or only the close (TLS 1.3 alerts arrive after the client's side of the handshake). */
  const handshake = (c: { cert: string; key: string }) =>
    new Promise<string>((resolve) => {
      const client = mqtt.connect(url, { clientId: 'cam-4', cert: c.cert, key: c.key, ca, reconnectPeriod: 0, connectTimeout: 5000, localAddress: `127.0.0.${nextAddress++}` } as IClientOptions);
      client.once('connect', () => resolve('connected'));
      client.once('error', (e) => resolve(`error: ${e.message}`));
      client.once('close', () => resolve('closed'));
    }).finally(() => undefined);
  const refusals = () => lines.filter((l) => l.code === 'FLEET_DEVICE_CERT_REFUSED');

  it('a device connects with its certificate, with no secret, and its telemetry arrives', async () => {
    expect(url).toMatch(/^mqtts:\/\/127\.0\.0\.1:\d+$/);
    const c = certify('cam-1');
    // The certificate names the device (CN and SAN URI) and chains to the fleet CA.
    const x = new X509Certificate(c.cert);
    expect(x.subject).toBe('CN=cam-1');
    expect(x.subjectAltName).toBe('URI:urn:edgeloop:device:cam-1');
    expect(x.checkIssued(new X509Certificate(ca))).toBe(true);
    const dev = await connect('cam-1', c);
    await dev.publishAsync(topics.telemetry('cam-1'), tele('cam-1', 7), { qos: 1 });
    await waitUntil(() => svc.ctx.devices.get('cam-1').telemetry?.inference.count === 7, 10_000, 'the telemetry to reach the fleet');
    // Its namespace only: a subscription to another device's desired state is refused.
    await expect(dev.subscribeAsync(topics.desired('cam-2'), { qos: 1 })).rejects.toThrow(/Subscribe error/);
    await dev.endAsync();
    expect(svc.ctx.devices.get('cam-1').certificate).toMatchObject({ sha256: expect.stringMatching(/^[0-9a-f]{64}$/), revoked_at: null });
    expect(refusals()).toEqual([]);
  });

  it('a user name, when given, must be the certificate\'s; the password is not looked at', async () => {
    const c = certify('cam-2');
    const ok = await connect('cam-2', c, { username: 'cam-2', password: 'anything' });
    await ok.endAsync();
    await expect(connect('cam-2', c, { username: 'cam-3' })).rejects.toThrow(/Not authorized/i);
    await waitUntil(() => refusals().some((l) => l.reason === 'username_mismatch'), 5000, 'the refusal line');
  });

  it('a client id other than the certificate\'s CN is refused', async () => {
    const c = certify('cam-3');
    await expect(connect('cam-4', c)).rejects.toThrow(/Not authorized/i);
    await waitUntil(() => refusals().some((l) => l.reason === 'client_id_mismatch' && l.cn === 'cam-3' && l.client === 'cam-4'), 5000, 'the refusal line');
  });

  it('a certificate of another CA is refused at the handshake', async () => {
    const other = await loadOrCreateFleetCa(join(dir, 'other-ca'));
    const k = deviceKey();
    const rogue = other.issueDevice({ deviceId: 'cam-4', publicKeyPem: k.publicPem, notBefore: Date.now() - 60_000, notAfter: Date.now() + 86_400_000 });
    expect(await handshake({ cert: rogue.pem, key: k.privatePem })).not.toBe('connected');
    await waitUntil(() => refusals().some((l) => typeof l.reason === 'string' && /^UNABLE_TO_(VERIFY|GET)/.test(l.reason)), 5000, 'the refusal line');
  });

  it('an expired certificate of the fleet CA is refused at the handshake', async () => {
    const fleetCa = await loadOrCreateFleetCa(join(dir, 'keys'));
    const k = deviceKey();
    const old = fleetCa.issueDevice({ deviceId: 'cam-4', publicKeyPem: k.publicPem, notBefore: Date.now() - 2 * 86_400_000, notAfter: Date.now() - 86_400_000 });
    const before = refusals().length;
    expect(await handshake({ cert: old.pem, key: k.privatePem })).not.toBe('connected');
    await waitUntil(() => refusals().slice(before).some((l) => l.reason === 'CERT_HAS_EXPIRED' && typeof l.remote === 'string' && l.remote.startsWith('127.0.0.')), 5000, 'the refusal line naming the expiry');
  });

  it('a revoked certificate is refused; so is one replaced by a rotation, while the new one works', async () => {
    const first = certify('cam-5');
    const second = certify('cam-5');
    await expect(connect('cam-5', first)).rejects.toThrow(/Not authorized/i);
    await waitUntil(() => refusals().some((l) => l.reason === 'replaced' && l.cn === 'cam-5'), 5000, 'the replaced refusal');
    const ok = await connect('cam-5', second);
    const closed = new Promise<void>((r) => ok.once('close', () => r()));
    svc.ctx.certificates.revoke('cam-5', { actor: 'test' });
    // The live session ends with the revocation.
    await closed;
    await ok.endAsync(true);
    await expect(connect('cam-5', second)).rejects.toThrow(/Not authorized/i);
    await waitUntil(() => refusals().some((l) => l.reason === 'revoked' && l.cn === 'cam-5'), 5000, 'the revoked refusal');
    expect(svc.ctx.audit.list({ actor: 'test' }).items.map((e) => e.action)).toContain('device.cert.revoke');
  });

  it('repeated refusals from one address are dropped before the handshake, and other addresses are not held up', async () => {
    const c = certify('cam-4');
    const from = `127.0.0.${nextAddress++}`;
    for (let i = 0; i < 6; i++) await expect(connect('cam-3', c, { localAddress: from })).rejects.toThrow();
    await waitUntil(() => refusals().some((l) => l.reason === 'throttled' && l.remote === from), 5000, 'a throttled drop');
    // The real device, from its own address, still gets in at once.
    const ok = await connect('cam-4', c);
    await ok.endAsync();
  });
});
