/**
 * `edgeloop devices register --cert` end to end: the CLI makes the device key and sends only its
 * public half, the fleet CA certifies it, the CLI writes the key, the certificates and an agent
 * config that uses them; a real agent process started on that config connects to the broker's
 * TLS listener with the certificate (no secret on MQTT) and a captured sample arrives at the
 * fleet. The issued certificate passes `openssl verify` against the CA, and mosquitto
 * (`require_certificate`, `use_identity_as_username`) accepts it as the device.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadOrCreateFleetCa } from '../../../fleet/adapters/fs/fleet-ca.js';
import { startAgentProcess, type AgentProcess } from '../../../fleet/demo/agent-process.js';
import { main } from '../../../fleet/edges/cli/main.js';
import type { FleetService } from '../../../fleet/boot/service.js';
import { startFleetService } from '../../../fleet/boot/service.js';
import { createFleetHttp } from '../../../fleet/edges/server.js';
import { mosquittoSkipReason, startMosquitto } from '../../helpers/broker.js';
import { captureLogger } from '../../helpers/agent.js';
import { patternImage, tempDir } from '../../helpers/packages.js';
import { OPENSSL, opensslSkipReason } from '../../helpers/pki.js';
import { adminTokenOf, downloadPackage, pushImageModel, until } from './harness.js';

describe('devices register --cert, end to end with a real agent process', () => {
  let root: string;
  let svc: FleetService;
  let lines: Array<Record<string, unknown>>;
  let agent: AgentProcess | null = null;
  let token: string;
  const dir = (): string => join(root, 'cam-tls');

  beforeAll(async () => {
    root = tempDir('edgeloop-cert-agent-').dir;
    const c = captureLogger('info');
    lines = c.lines;
    svc = await startFleetService({ dataDir: join(root, 'fleet'), mqttsPort: 0, tickMs: 100, log: c.log, http: (ctx) => createFleetHttp(ctx) });
    token = await adminTokenOf(join(root, 'fleet'));
  });
  afterAll(async () => {
    await agent?.stop();
    await svc?.stop();
    await rm(root, { recursive: true, force: true });
  });

  const cli = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main([...argv, '--url', svc.urls.http, '--token', token], { out: (l) => out.push(l), err: (l) => err.push(l) });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };

  it('writes a key made locally, the certificates and a config that logs in with them', async () => {
    const r = await cli('devices', 'register', 'cam-tls', '--cert', '--dir', dir(), '--days', '30', '--tags', 'site=pit-1', '--json');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.out) as { certificate: { sha256: string; not_after: string }; agent_config: { uplink: Record<string, unknown> } };
    expect(statSync(join(dir(), 'device.key.pem')).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir(), 'agent.json')).mode & 0o777).toBe(0o600);
    // The uplink logs in with the files, not the secret; paths relative to the config.
    expect(doc.agent_config.uplink).toEqual({ kind: 'mqtt', url: svc.urls.mqtts, tls: { ca: 'ca.cert.pem', cert: 'device.cert.pem', key: 'device.key.pem' } });
    // About 30 days, as asked.
    expect(Date.parse(doc.certificate.not_after) - Date.now()).toBeGreaterThan(29 * 86_400_000);
    // What the fleet stored is the certificate the CLI wrote, and the private key never went to the fleet.
    expect(svc.ctx.devices.get('cam-tls').certificate?.sha256).toBe(doc.certificate.sha256);
    const key = readFileSync(join(dir(), 'device.key.pem'), 'utf8');
    expect(JSON.stringify(svc.ctx.audit.list().items)).not.toContain(key.split('\n')[1]);
    // show names the login.
    const show = await cli('devices', 'show', 'cam-tls');
    expect(show.out).toMatch(/login\s+certificate until \d{4}-/);
  });

  it.skipIf(opensslSkipReason() !== null)('the certificate passes openssl verify against the fleet CA, as a TLS client', () => {
    const out = execFileSync(OPENSSL, ['verify', '-x509_strict', '-purpose', 'sslclient', '-CAfile', join(dir(), 'ca.cert.pem'), join(dir(), 'device.cert.pem')], { encoding: 'utf8' });
    expect(out.trim()).toBe(`${join(dir(), 'device.cert.pem')}: OK`);
  });

  it('a real agent on that config connects over TLS and its sample reaches the fleet', { timeout: 120_000 }, async () => {
    const m = await pushImageModel(svc, root, '1.0.0', 1);
    const pkg = await downloadPackage(svc, token, m, join(root, 'pkg'));
    const configPath = join(dir(), 'agent.json');
    const cfg = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
    writeFileSync(
      configPath,
      JSON.stringify({
        ...cfg,
        data_dir: join(dir(), 'data'),
        models: { initial: pkg },
        inference: { intra_op_threads: 1, warmup_runs: 0 },
        http: { port: 0 },
        // Keep every inference, so one request makes one sample.
        outlier: { random_sample_rate: 1 },
        queue: { synchronous: 'NORMAL' },
        uplink: { ...(cfg.uplink as object), telemetry_interval_s: 0.5, backoff_initial_ms: 200, backoff_max_ms: 1000 },
      }),
    );
    agent = startAgentProcess(configPath);
    const ready = await agent.ready;
    const res = await fetch(`${ready.http}/v1/infer`, { method: 'POST', headers: { 'content-type': 'image/png' }, body: await patternImage(3) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { outlier: { captured: boolean; sample_id?: string } };
    expect(body.outlier).toMatchObject({ captured: true, sample_id: expect.any(String) });
    await until('the sample to reach the fleet', () => svc.ctx.ingest.deviceStats().some((d) => d.device_id === 'cam-tls' && d.stored >= 1), 60_000);
    expect(svc.ctx.devices.get('cam-tls').state).toBe('online');
    expect(lines.filter((l) => l.code === 'FLEET_DEVICE_CERT_REFUSED' || l.code === 'FLEET_AUTH_THROTTLED')).toEqual([]);
  });

  it('devices cert rotates the files in place; devices revoke refuses the certificate', async () => {
    const before = svc.ctx.devices.get('cam-tls').certificate?.sha256;
    const rot = await cli('devices', 'cert', 'cam-tls', '--dir', join(root, 'rotated'));
    expect(rot.code).toBe(0);
    const after = svc.ctx.devices.get('cam-tls').certificate?.sha256;
    expect(after).not.toBe(before);
    expect(rot.out).toContain(`new certificate for cam-tls`);
    const rev = await cli('devices', 'revoke', 'cam-tls');
    expect(rev.code).toBe(0);
    expect(svc.ctx.devices.get('cam-tls').certificate?.revoked_at).not.toBeNull();
    const again = await cli('devices', 'revoke', 'cam-tls');
    expect(again.code).not.toBe(0);
    expect(again.err).toContain('FLEET_CONFLICT');
    expect(svc.ctx.audit.list().items.map((e) => e.action)).toEqual(expect.arrayContaining(['device.cert.issue', 'device.cert.revoke']));
  });

  it('refuses --cert when the broker has no TLS listener, registering nothing', async () => {
    const plain = await startFleetService({ dataDir: join(root, 'plain'), log: captureLogger('warn').log, http: (ctx) => createFleetHttp(ctx) });
    try {
      const out: string[] = [];
      const err: string[] = [];
      const code = await main(['devices', 'register', 'cam-x', '--cert', '--dir', join(root, 'cam-x'), '--url', plain.urls.http, '--token', await adminTokenOf(join(root, 'plain'))], { out: (l) => out.push(l), err: (l) => err.push(l) });
      expect(code).not.toBe(0);
      expect(err.join('\n')).toMatch(/FLEET_CONFLICT.*--mqtts-port/s);
      expect(plain.ctx.devices.find('cam-x')).toBeNull();
    } finally {
      await plain.stop();
    }
  });
});

const mosquittoSkip = opensslSkipReason() ?? mosquittoSkipReason();

describe.skipIf(mosquittoSkip !== null)('mosquitto accepts a device certificate of the fleet CA (require_certificate, use_identity_as_username)', () => {
  it('connects as the device named by the certificate', async () => {
    const root = tempDir('edgeloop-cert-mosquitto-').dir;
    try {
      const ca = await loadOrCreateFleetCa(join(root, 'keys'));
      const server = ca.issueServer(['127.0.0.1']);
      await mkdir(join(root, 'tls'));
      writeFileSync(join(root, 'tls', 'server.pem'), server.certPem);
      writeFileSync(join(root, 'tls', 'server.key'), server.keyPem);
      const { generateKeyPairSync } = await import('node:crypto');
      const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
      const cert = ca.issueDevice({ deviceId: 'cam-m', publicKeyPem: k.publicKey.export({ type: 'spki', format: 'pem' }) as string, notBefore: Date.now() - 60_000, notAfter: Date.now() + 86_400_000 });
      const broker = await startMosquitto({ tls: { cafile: ca.certFile, certfile: join(root, 'tls', 'server.pem'), keyfile: join(root, 'tls', 'server.key') } });
      if (!broker) throw new Error('mosquitto unavailable');
      try {
        const c = await mqtt.connectAsync(broker.url, { clientId: 'cam-m', ca: ca.caPem, cert: cert.pem, key: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, reconnectPeriod: 0 });
        await c.endAsync();
        // mosquitto took the certificate's CN as the user name.
        await until('the connect line', () => /New client connected .* as cam-m .*u'cam-m'/.test(broker.logs()), 5000);
      } finally {
        await broker.close();
      }
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
