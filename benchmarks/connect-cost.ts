/**
 * `connect_cost`: what a real device's first MQTT connect costs on the fleet's embedded broker,
 * logging in with its secret (scrypt) against logging in with its certificate from the fleet CA
 * (TLS, no password hash), quiet and under a flood of bogus logins: 60 attempts/s with wrong
 * passwords for random device names, spread over 256 loopback addresses (an attacker with many
 * addresses, so the per-address backoff alone does not stop it). Each measured connect is a device's
 * first (its verified secret is not cached yet), from its own address; a refused attempt (the
 * fleet answers "busy" rather than queue without bound) is retried after 250 ms, and the time runs
 * from the first attempt to the one that got in.
 * value = cert median under flood / secret median under flood (lower is better).
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions } from 'mqtt';
import pino from 'pino';
import { startFleetService, type FleetService } from '../fleet/boot/service.js';
import { round, summary } from './stats.js';

interface ConnectResult {
  /** From the first attempt to the CONNACK that let the device in. */
  ms: number;
  ok: boolean;
  attempts: number;
}

/** Time until the device is in, retrying a refusal after 250 ms as an agent would (its backoff starts at 1 s), for up to 30 s. */
async function timedConnect(url: string, opts: IClientOptions & { localAddress: string }): Promise<ConnectResult> {
  const t0 = performance.now();
  for (let attempts = 1; ; attempts++) {
    try {
      const c = await mqtt.connectAsync(url, { ...opts, reconnectPeriod: 0, connectTimeout: 30_000 } as IClientOptions);
      const ms = performance.now() - t0;
      await c.endAsync();
      return { ms, ok: true, attempts };
    } catch {
      if (performance.now() - t0 > 30_000) return { ms: performance.now() - t0, ok: false, attempts };
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/** Bogus password logins at `perSecond` until stopped, each from the next of 256 loopback addresses. */
function flood(url: string, perSecond: number): { stop(): Promise<number> } {
  let n = 0;
  const pending = new Set<Promise<unknown>>();
  const timer = setInterval(() => {
    const i = n++;
    const c = mqtt.connect(url, { clientId: `bogus-${i}`, username: `bogus-${i}`, password: 'wrong', reconnectPeriod: 0, connectTimeout: 30_000, localAddress: `127.1.0.${i % 256}` } as IClientOptions);
    const p = new Promise<void>((r) => {
      c.once('error', () => r());
      c.once('close', () => r());
      c.once('connect', () => r());
    }).then(() => c.end(true));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  }, 1000 / perSecond);
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all(pending);
      return n;
    },
  };
}

export async function benchConnectCost(o: { devices?: number; floodPerSecond?: number } = {}): Promise<{ name: 'connect_cost'; value: number } & Record<string, unknown>> {
  const perMode = o.devices ?? 12;
  const rate = o.floodPerSecond ?? 60;
  const dir = mkdtempSync(join(tmpdir(), 'edgeloop-bench-connect-'));
  let svc: FleetService | null = null;
  try {
    svc = await startFleetService({ dataDir: dir, mqttsPort: 0, log: pino({ level: 'silent' }) });
    const s = svc;
    const ca = s.ctx.certificates.caPem;
    let address = 1;
    const run = async (mode: 'secret' | 'cert', phase: string): Promise<ConnectResult[]> => {
      const out: ConnectResult[] = [];
      for (let i = 0; i < perMode; i++) {
        const id = `${mode}-${phase}-${i}`;
        const { secret } = await s.ctx.devices.register(id);
        const from = `127.0.0.${++address}`;
        if (mode === 'secret') out.push(await timedConnect(s.urls.mqtt, { clientId: id, username: id, password: secret, localAddress: from }));
        else {
          const k = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
          const cert = s.ctx.certificates.issue(id, k.publicKey.export({ type: 'spki', format: 'pem' }) as string, { actor: 'bench' }).pem;
          out.push(await timedConnect(s.urls.mqtts as string, { clientId: id, cert, key: k.privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, ca, localAddress: from }));
        }
      }
      return out;
    };
    const median = (r: ConnectResult[]): number => summary(r.filter((x) => x.ok).map((x) => x.ms)).p50;
    const failed = (r: ConnectResult[]): number => r.filter((x) => !x.ok).length;
    const refused = (r: ConnectResult[]): number => r.reduce((n, x) => n + x.attempts - 1, 0);
    const quietSecret = await run('secret', 'quiet');
    const quietCert = await run('cert', 'quiet');
    const f = flood(s.urls.mqtt, rate);
    // Let the flood reach its steady state (hash slots busy, backoffs running) before measuring.
    await new Promise((r) => setTimeout(r, 3000));
    const floodSecret = await run('secret', 'flood');
    const floodCert = await run('cert', 'flood');
    const bogus = await f.stop();
    const r = {
      secret_quiet_ms: median(quietSecret),
      cert_quiet_ms: median(quietCert),
      secret_flood_ms: median(floodSecret),
      cert_flood_ms: median(floodCert),
    };
    return {
      name: 'connect_cost',
      value: round(r.cert_flood_ms / r.secret_flood_ms),
      target: '< 1 (a certificate connect is not slowed by a password flood)',
      ...r,
      cert_over_secret_quiet: round(r.cert_quiet_ms / r.secret_quiet_ms),
      secret_flood_over_quiet: round(r.secret_flood_ms / r.secret_quiet_ms),
      cert_flood_over_quiet: round(r.cert_flood_ms / r.cert_quiet_ms),
      refused_attempts: { secret_quiet: refused(quietSecret), cert_quiet: refused(quietCert), secret_flood: refused(floodSecret), cert_flood: refused(floodCert) },
      failed: { secret_quiet: failed(quietSecret), cert_quiet: failed(quietCert), secret_flood: failed(floodSecret), cert_flood: failed(floodCert) },
      devices_per_mode: perMode,
      flood_per_s: rate,
      bogus_attempts: bogus,
    };
  } finally {
    await svc?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
