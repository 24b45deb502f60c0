/**
 * The fleet CA and the agent's TLS files: a CA made on first use and loaded again unchanged; a
 * CA the operator brings is checked (FLEET_CA_INVALID for a non-CA, a key of another
 * certificate, garbage, one file without the other); device keys the CA will not certify are
 * refused (FLEET_DEVICE_KEY_INVALID); the agent refuses the old flat TLS keys naming the new
 * ones and unreadable or mismatched files with AGENT_UPLINK_TLS_INVALID.
 */
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../agent/agent.js';
import { parseAgentConfig } from '../../../agent/config.js';
import { readUplinkTls } from '../../../agent/uplink/tls-files.js';
import { loadOrCreateFleetCa } from '../../../fleet/adapters/fs/fleet-ca.js';
import { DeviceCertificates } from '../../../fleet/app/devices/certificates.js';
import { captureLogger } from '../../helpers/agent.js';
import { tempDir } from '../../helpers/packages.js';

const tmp = tempDir('edgeloop-fleet-ca-');
afterAll(() => tmp.cleanup());

const ecPublic = (curve = 'prime256v1'): { pub: string; priv: string } => {
  const k = generateKeyPairSync('ec', { namedCurve: curve });
  return { pub: k.publicKey.export({ type: 'spki', format: 'pem' }) as string, priv: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string };
};

describe('fleet CA', () => {
  it('is made on first use (key mode 0600) and loaded unchanged after', async () => {
    const keys = join(tmp.dir, 'a', 'keys');
    const first = await loadOrCreateFleetCa(keys);
    expect(first.created).toBe(true);
    expect(statSync(join(keys, 'ca.key.pem')).mode & 0o777).toBe(0o600);
    const again = await loadOrCreateFleetCa(keys);
    expect(again.created).toBe(false);
    expect(again.caPem).toBe(first.caPem);
    const x = new X509Certificate(first.caPem);
    expect(x.ca).toBe(true);
    expect(x.subject).toContain('CN=edgeloop fleet CA');
  });

  it('certifies device keys it accepts, and refuses private keys, weak and unknown keys', async () => {
    const ca = await loadOrCreateFleetCa(join(tmp.dir, 'b'));
    const now = Date.now();
    const issue = (publicKeyPem: string) => ca.issueDevice({ deviceId: 'd-1', publicKeyPem, notBefore: now, notAfter: now + 86_400_000 });
    for (const k of [ecPublic().pub, ecPublic('secp384r1').pub, generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'pem' }) as string]) {
      expect(new X509Certificate(issue(k).pem).checkIssued(new X509Certificate(ca.caPem))).toBe(true);
    }
    expect(() => issue(ecPublic().priv)).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_KEY_INVALID', message: expect.stringContaining('public key only') }));
    expect(() => issue(generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ type: 'spki', format: 'pem' }) as string)).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_KEY_INVALID' }));
    expect(() => issue(ecPublic('secp256k1').pub)).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_KEY_INVALID' }));
    expect(() => issue('not a key')).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_KEY_INVALID' }));
  });

  it('takes a CA the operator brings, and refuses one it cannot use with FLEET_CA_INVALID', async () => {
    const own = await loadOrCreateFleetCa(join(tmp.dir, 'own'));
    const other = await loadOrCreateFleetCa(join(tmp.dir, 'other'));
    const certFile = join(tmp.dir, 'own', 'ca.cert.pem');
    const keyFile = join(tmp.dir, 'own', 'ca.key.pem');
    const brought = await loadOrCreateFleetCa(join(tmp.dir, 'unused'), { certFile, keyFile });
    expect(brought.created).toBe(false);
    expect(brought.caPem).toBe(own.caPem);
    const garbage = join(tmp.dir, 'garbage.pem');
    writeFileSync(garbage, 'hello');
    // A device certificate is not a CA.
    const dev = ecPublic();
    const leaf = join(tmp.dir, 'leaf.pem');
    const leafKey = join(tmp.dir, 'leaf.key');
    writeFileSync(leaf, own.issueDevice({ deviceId: 'x', publicKeyPem: dev.pub, notBefore: Date.now(), notAfter: Date.now() + 86_400_000 }).pem);
    writeFileSync(leafKey, dev.priv);
    const cases: Array<[{ certFile?: string; keyFile?: string }, RegExp]> = [
      [{ certFile, keyFile: join(tmp.dir, 'other', 'ca.key.pem') }, /does not belong/],
      [{ certFile: garbage, keyFile }, /not a PEM certificate/],
      [{ certFile, keyFile: garbage }, /not a PEM private key/],
      [{ certFile: leaf, keyFile: leafKey }, /not a CA/],
      [{ certFile: join(tmp.dir, 'missing.pem'), keyFile }, /cannot read/],
      [{ certFile }, /both --ca-cert and --ca-key/],
    ];
    for (const [files, why] of cases) await expect(loadOrCreateFleetCa(join(tmp.dir, 'unused'), files)).rejects.toMatchObject({ code: 'FLEET_CA_INVALID', message: expect.stringMatching(why) });
    expect(other.caPem).not.toBe(own.caPem);
  });

  it('a certificate past its stored expiry is refused at connect, even if TLS let it through', () => {
    let now = 1_000_000_000_000;
    const rows = new Map<string, { sha256: string; notAfter: number; revokedAt: number | null }>();
    const repo = {
      exists: (id: string) => id === 'd-1',
      certificate: (id: string) => rows.get(id) ?? null,
      setCertificate: (id: string, c: { sha256: string; notAfter: number }) => (rows.set(id, { sha256: c.sha256, notAfter: c.notAfter, revokedAt: null }), true),
      revokeCertificate: () => false,
    };
    const certs = new DeviceCertificates({
      repo: repo as never,
      ca: { caPem: '', issueDevice: () => ({ pem: '', sha256: 'aa', serial: '01' }) },
      clock: { now: () => now },
      audit: { record: () => undefined },
    });
    certs.issue('d-1', 'ignored by this CA', { days: 1, actor: 't' });
    expect(certs.check('d-1', 'aa', 'src')).toEqual({ ok: true });
    expect(certs.check('d-1', 'bb', 'src')).toEqual({ ok: false, reason: 'replaced' });
    expect(certs.check('d-2', 'aa', 'src')).toEqual({ ok: false, reason: 'unknown_device' });
    now += 86_400_000;
    expect(certs.check('d-1', 'aa', 'other')).toEqual({ ok: false, reason: 'expired' });
    expect(() => certs.issue('d-1', 'k', { days: 0, actor: 't' })).toThrow(expect.objectContaining({ code: 'INPUT_INVALID' }));
  });
});

describe('agent uplink.tls', () => {
  it('refuses the old flat keys, naming the new ones', () => {
    expect(() => parseAgentConfig({ uplink: { kind: 'mqtt', ca_file: 'a.pem', cert_file: 'c.pem', key_file: 'k.pem' } })).toThrow(
      expect.objectContaining({ code: 'AGENT_CONFIG_INVALID', message: expect.stringMatching(/uplink\.ca_file is no longer read: use uplink\.tls\.ca.*uplink\.key_file is no longer read: use uplink\.tls\.key/s) }),
    );
    expect(() => parseAgentConfig({ uplink: { kind: 'mqtt', tls: { cert: 'c.pem' } } })).toThrow(expect.objectContaining({ message: expect.stringContaining('cert and key go together') }));
  });

  it('resolves paths against the config file and reads them; unreadable or mismatched files are AGENT_UPLINK_TLS_INVALID', async () => {
    const ca = await loadOrCreateFleetCa(join(tmp.dir, 'agent-ca'));
    const k = ecPublic();
    const dir = join(tmp.dir, 'device');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(dir);
    writeFileSync(join(dir, 'device.cert.pem'), ca.issueDevice({ deviceId: 'd', publicKeyPem: k.pub, notBefore: Date.now(), notAfter: Date.now() + 86_400_000 }).pem);
    writeFileSync(join(dir, 'device.key.pem'), k.priv);
    writeFileSync(join(dir, 'ca.cert.pem'), ca.caPem);
    writeFileSync(join(dir, 'other.key.pem'), ecPublic().priv);
    const cfg = parseAgentConfig({ uplink: { kind: 'mqtt', url: 'mqtts://h:8883', tls: { ca: 'ca.cert.pem', cert: 'device.cert.pem', key: 'device.key.pem', servername: 'broker' } } }, dir);
    expect(cfg.uplink.tls?.cert).toBe(join(dir, 'device.cert.pem'));
    const t = readUplinkTls(cfg.uplink.tls!);
    expect(Buffer.from(t.cert!).toString()).toBe(readFileSync(join(dir, 'device.cert.pem'), 'utf8'));
    expect(t.servername).toBe('broker');
    expect(() => readUplinkTls({ ...cfg.uplink.tls, key: join(dir, 'other.key.pem') })).toThrow(expect.objectContaining({ code: 'AGENT_UPLINK_TLS_INVALID', message: expect.stringContaining('does not belong') }));
    expect(() => readUplinkTls({ ...cfg.uplink.tls, ca: join(dir, 'missing.pem') })).toThrow(expect.objectContaining({ code: 'AGENT_UPLINK_TLS_INVALID', message: expect.stringMatching(/uplink\.tls\.ca: .*missing\.pem cannot be read \(ENOENT\)/) }));
    expect(() => readUplinkTls({ ...cfg.uplink.tls, cert: join(dir, 'device.key.pem') })).toThrow(expect.objectContaining({ code: 'AGENT_UPLINK_TLS_INVALID', message: expect.stringContaining('not a PEM certificate') }));
  });

  it('an agent whose TLS file is missing does not start, and says why in its log', async () => {
    const { log, lines } = captureLogger();
    const cfg = parseAgentConfig({ data_dir: join(tmp.dir, 'agent-data'), allow_unsigned: true, http: { enabled: false }, uplink: { kind: 'mqtt', url: 'mqtts://127.0.0.1:1', tls: { ca: 'nowhere.pem' } } }, tmp.dir);
    await expect(Agent.start(cfg, { log })).rejects.toMatchObject({ code: 'AGENT_UPLINK_TLS_INVALID' });
    expect(lines.find((l) => l.msg === 'uplink TLS files cannot be used')).toMatchObject({ level: 50, code: 'AGENT_UPLINK_TLS_INVALID', reason: expect.stringContaining('nowhere.pem') });
  });
});
