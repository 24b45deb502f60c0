/**
 * The fleet's mutual-TLS connection to an external broker, as it connects to AWS IoT Core
 * (`--broker-url mqtts://... --broker-cert --broker-key --broker-ca`): mosquitto with
 * `require_certificate true` on a free loopback port and certificates made by openssl. The
 * fleet connects with its certificate and receives a device's telemetry; a fleet whose
 * certificate another CA signed is refused at start with a clear code and log line.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleetService, type FleetService } from '../../fleet/boot/service.js';
import { telemetry } from '../../shared/schemas/index.js';
import { topics } from '../../shared/topics.js';
import { mosquittoSkipReason, startMosquitto } from '../helpers/broker.js';
import { issueClientCert, makePki, opensslSkipReason, type TestPki } from '../helpers/pki.js';
import { waitUntil } from '../helpers/wait.js';
import { captureLogger } from '../helpers/agent.js';

const skipReason = opensslSkipReason() ?? mosquittoSkipReason();
if (skipReason) console.warn(`[fleet] skipping the fleet mutual TLS test: ${skipReason}`);

describe.skipIf(skipReason !== null)('fleet service over mutual TLS to an external broker (mosquitto, require_certificate)', () => {
  let dir: string;
  let pki: TestPki;
  let rogue: TestPki;
  let device: Pick<TestPki, 'clientCert' | 'clientKey'>;
  let broker: NonNullable<Awaited<ReturnType<typeof startMosquitto>>>;
  const services: FleetService[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'edgeloop-fleet-tls-'));
    for (const d of ['pki', 'rogue']) mkdirSync(join(dir, d));
    // The broker's CA signs the fleet's certificate; the device's certificate comes from the same CA.
    pki = makePki(join(dir, 'pki'), { clientCn: 'edgeloop-fleet' });
    device = issueClientCert(pki, 'device', 'dev-tls');
    // Another CA entirely: its client certificate must not get in.
    rogue = makePki(join(dir, 'rogue'), { caCn: 'rogue-ca', clientCn: 'edgeloop-fleet' });
    const handle = await startMosquitto({ tls: { cafile: join(pki.dir, 'ca.pem'), certfile: join(pki.dir, 'server.pem'), keyfile: join(pki.dir, 'server.key') } });
    if (!handle) throw new Error('mosquitto unavailable');
    broker = handle;
  });
  afterAll(async () => {
    for (const s of services) await s.stop();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('connects with its certificate and receives a device telemetry message', async () => {
    const { log, lines } = captureLogger();
    const svc = await startFleetService({
      dataDir: join(dir, 'fleet-ok'),
      brokerUrl: broker.url,
      brokerTls: { cert: pki.clientCert.toString(), key: pki.clientKey.toString(), ca: pki.ca.toString() },
      log,
    });
    services.push(svc);
    await svc.ctx.devices.register('dev-tls');
    const dev = await mqtt.connectAsync(broker.url, { clientId: 'dev-tls', cert: device.clientCert, key: device.clientKey, ca: pki.ca, reconnectPeriod: 0 });
    const t = telemetry.parse({
      type: 'telemetry',
      v: 1,
      device_id: 'dev-tls',
      ts: new Date().toISOString(),
      window_s: 10,
      model: { name: 'pets', version: '1.0.0' },
      inference: { count: 42, errors: 0, rate_per_s: 4.2, latency_ms: { p50: 4, p95: 9, p99: 12 } },
      confidence_mean: 0.8,
      outliers: { count: 1, rate: 0.02, by_reason: { low_confidence: 1 } },
      drift: { class_psi: 0.02, brightness_psi: 0.1, contrast_psi: null },
      queue: { depth: 5, bytes: 10_240, quota_bytes: 1 << 28, evicted_total: 0, oldest_age_s: 30 },
    });
    await dev.publishAsync(topics.telemetry('dev-tls'), JSON.stringify(t), { qos: 1 });
    await waitUntil(() => svc.ctx.devices.get('dev-tls').telemetry?.inference.count === 42, 10_000, 'the telemetry to reach the fleet');
    await dev.endAsync();
    expect(svc.ctx.devices.get('dev-tls').telemetry).toMatchObject({ inference: { count: 42 }, model: { name: 'pets', version: '1.0.0' } });
    expect(lines.filter((l) => l.msg === 'device message rejected')).toEqual([]);
    // mosquitto saw a certificate-authenticated client named after the fleet's CN.
    expect(broker.logs()).toMatch(/New client connected .* as edgeloop-fleet-[0-9a-f]+ .*u'edgeloop-fleet'/);
  });

  it('a certificate from another CA is refused: FLEET_BROKER_CONNECT_FAILED and a log line naming the broker', async () => {
    const { log, lines } = captureLogger();
    const err = await startFleetService({
      dataDir: join(dir, 'fleet-rogue'),
      brokerUrl: broker.url,
      brokerTls: { cert: rogue.clientCert.toString(), key: rogue.clientKey.toString(), ca: pki.ca.toString() },
      log,
    }).then(
      (s) => {
        services.push(s);
        return null;
      },
      (e: unknown) => e,
    );
    // The broker's TLS alert (unknown CA) is the reason, in the error and in the log line.
    expect(err).toMatchObject({ code: 'FLEET_BROKER_CONNECT_FAILED', message: expect.stringMatching(new RegExp(`^cannot connect to the MQTT broker ${broker.url}: .*unknown.ca`, 'i')) });
    const line = lines.find((l) => l.msg === 'cannot connect to the MQTT broker');
    expect(line).toMatchObject({ level: 50, url: broker.url, code: 'FLEET_BROKER_CONNECT_FAILED', reason: expect.stringMatching(/unknown.ca/i) });
    // The rogue fleet never got to MQTT: mosquitto logged one fleet client, the first test's.
    expect(broker.logs().match(/New client connected .* as edgeloop-fleet-/g)).toHaveLength(1);
  });
});
