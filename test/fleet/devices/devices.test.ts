import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { agentConfigSchema } from '../../../agent/config.js';
import pino from 'pino';
import { DeviceRegistry } from '../../../fleet/app/devices/registry.js';
import { TelemetryBatcher } from '../../../fleet/app/devices/telemetry-batcher.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteDevicesRepo } from '../../../fleet/adapters/sqlite/devices-repo.js';
import type { FleetDb } from '../../../fleet/adapters/sqlite/db.js';
import type { DeviceStatus, Telemetry } from '../../../shared/schemas/index.js';
import { deviceStatus, telemetry } from '../../../shared/schemas/index.js';
import { fleetKeys, tempDir } from '../../helpers/packages.js';

const T0 = Date.parse('2025-03-01T10:00:00Z');
const at = (ms: number): string => new Date(ms).toISOString();

function tel(device: string, ts: number, o: { rate?: number; p95?: number; psi?: number; depth?: number } = {}): Telemetry {
  return telemetry.parse({
    type: 'telemetry',
    v: 1,
    device_id: device,
    ts: at(ts),
    window_s: 10,
    model: { name: 'pets', version: '1.0.0' },
    inference: { count: 100, errors: 0, rate_per_s: o.rate ?? 10, latency_ms: { p50: 4, p95: o.p95 ?? 9, p99: 12 } },
    confidence_mean: 0.8,
    outliers: { count: 3, rate: 0.03, by_reason: { low_confidence: 3 } },
    drift: { class_psi: o.psi ?? 0.02, brightness_psi: 0.1, contrast_psi: null },
    queue: { depth: o.depth ?? 5, bytes: 10_240, quota_bytes: 1 << 28, evicted_total: 1, oldest_age_s: 30 },
  });
}

function status(device: string, ts: number, o: { online?: boolean; active?: string | null; phase?: 'downloading' | 'staged' | 'active' | 'failed'; target?: string } = {}): DeviceStatus {
  const ref = (v: string) => ({ name: 'pets', version: v });
  return deviceStatus.parse({
    type: 'device_status',
    v: 1,
    device_id: device,
    ts: at(ts),
    online: o.online ?? true,
    agent_version: '0.1.0',
    models: { active: o.active === null ? null : ref(o.active ?? '1.0.0'), previous: null, installed: [ref(o.active ?? '1.0.0')] },
    ...(o.phase ? { deployment: { revision: 3, rollout_id: 'ro-1', target: ref(o.target ?? '1.1.0'), phase: o.phase } } : {}),
  });
}

describe('DeviceRegistry', () => {
  let t: ReturnType<typeof tempDir>;
  let db: FleetDb;
  let now: number;
  let devices: DeviceRegistry;

  beforeEach(() => {
    t = tempDir('edgeloop-devices-');
    now = T0;
    db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock: { now: () => now } });
    // Cheap scrypt for speed; the cost parameters travel with each hash.
    devices = new DeviceRegistry({ repo: sqliteDevicesRepo(db), clock: db.clock, offlineAfterMs: 30_000, scrypt: { N: 1024, r: 8, p: 1 } });
  });
  afterEach(() => {
    db.close();
    t.cleanup();
  });

  it('issues credentials once, stores only a salted hash, and authenticates with them', async () => {
    const { device, secret } = await devices.register('cam-1', { tags: { site: 'pit-3', kind: 'camera' } });
    expect(device).toMatchObject({ id: 'cam-1', tags: { site: 'pit-3', kind: 'camera' }, state: 'offline', last_seen: null, telemetry: null, health: null });
    expect(secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const stored = db.sqlite.prepare('SELECT secret_hash FROM devices').pluck().get() as string;
    expect(stored).toMatch(/^scrypt\$1024\$8\$1\$/);
    expect(stored).not.toContain(secret);
    expect(await devices.authenticate('cam-1', secret)).toBe(true);
    expect(await devices.authenticate('cam-1', `${secret}x`)).toBe(false);
    expect(await devices.authenticate('cam-2', secret)).toBe(false);
    // Nothing but the device and its tags was written.
    expect(db.sqlite.prepare('SELECT count(*) FROM device_state').pluck().get()).toBe(0);
  });

  it('refuses a second device with the same id, and bad ids or tags', async () => {
    await devices.register('cam-1');
    await expect(devices.register('cam-1')).rejects.toMatchObject({ code: 'FLEET_DEVICE_EXISTS', status: 409 });
    await expect(devices.register('bad/id')).rejects.toMatchObject({ code: 'INPUT_INVALID' });
    await expect(devices.register('cam-2', { tags: { 'bad key': 'x' } })).rejects.toMatchObject({ code: 'INPUT_INVALID' });
  });

  it('rotates a secret: the old one stops working at once', async () => {
    const { secret: old } = await devices.register('cam-1');
    now += 5000;
    const { secret } = await devices.rotateSecret('cam-1');
    expect(secret).not.toBe(old);
    expect(await devices.authenticate('cam-1', old)).toBe(false);
    expect(await devices.authenticate('cam-1', secret)).toBe(true);
    expect(devices.get('cam-1').secret_set_at).toBe(at(T0 + 5000));
    await expect(devices.rotateSecret('ghost')).rejects.toMatchObject({ code: 'FLEET_DEVICE_UNKNOWN', status: 404 });
  });

  it('authenticates HTTP bearer tokens built by agentConfigFor', async () => {
    const { secret } = await devices.register('cam.v2:1', { tags: { site: 'pit-3' } });
    const cfg = devices.agentConfigFor('cam.v2:1', secret, { mqttUrl: 'mqtts://fleet.example:8883', httpUrl: 'https://fleet.example', publicKeyPem: fleetKeys().publicKeyPem });
    expect(cfg).toEqual({
      device_id: 'cam.v2:1',
      tags: { site: 'pit-3' },
      fleet_public_key: fleetKeys().publicKeyPem,
      fleet_token: `cam.v2:1.${secret}`,
      uplink: { kind: 'mqtt', url: 'mqtts://fleet.example:8883', username: 'cam.v2:1', password: secret },
    });
    // The agent's own (strict) schema accepts it as a config.
    const parsed = agentConfigSchema.parse(cfg);
    expect(parsed.uplink).toMatchObject({ kind: 'mqtt', username: 'cam.v2:1', password: secret });
    expect(await devices.authenticateToken(cfg.fleet_token)).toBe('cam.v2:1');
    await expect(devices.authenticateToken(`cam.v2:1.${secret.slice(1)}`)).rejects.toMatchObject({ code: 'FLEET_AUTH_FAILED', status: 401 });
    await expect(devices.authenticateToken('garbage')).rejects.toMatchObject({ code: 'FLEET_AUTH_FAILED' });
  });

  it('filters by tags (every tag must match) and by online state', async () => {
    await devices.register('a', { tags: { site: 'pit-3', kind: 'camera' } });
    await devices.register('b', { tags: { site: 'pit-3', kind: 'gateway' } });
    await devices.register('c', { tags: { site: 'pit-9', kind: 'camera' } });
    await devices.register('d');
    const ids = (f: Parameters<DeviceRegistry['list']>[0]): string[] => devices.list(f).map((d) => d.id);
    expect(ids({})).toEqual(['a', 'b', 'c', 'd']);
    expect(ids({ tags: { site: 'pit-3' } })).toEqual(['a', 'b']);
    expect(ids({ tags: { site: 'pit-3', kind: 'camera' } })).toEqual(['a']);
    expect(ids({ tags: { kind: 'camera' } })).toEqual(['a', 'c']);
    expect(ids({ tags: { site: 'nowhere' } })).toEqual([]);
    devices.applyTelemetry(tel('a', T0));
    devices.applyTelemetry(tel('c', T0));
    expect(ids({ state: 'online' })).toEqual(['a', 'c']);
    expect(ids({ state: 'offline' })).toEqual(['b', 'd']);
    expect(ids({ state: 'online', tags: { site: 'pit-9' } })).toEqual(['c']);
    devices.setTags('b', { site: 'pit-9' });
    expect(ids({ tags: { site: 'pit-9' } })).toEqual(['b', 'c']);
  });

  it('computes online/offline from last_seen and the clock at read time', async () => {
    await devices.register('cam-1');
    devices.applyTelemetry(tel('cam-1', T0 - 3000)); // device clock a bit behind: last_seen is fleet time
    expect(devices.get('cam-1')).toMatchObject({ state: 'online', last_seen: at(T0) });
    now = T0 + 30_000;
    expect(devices.get('cam-1').state).toBe('online');
    now = T0 + 30_001;
    expect(devices.get('cam-1').state).toBe('offline');
    expect(devices.list({ state: 'offline' }).map((d) => d.id)).toEqual(['cam-1']);
    devices.applyTelemetry(tel('cam-1', T0 + 30_000));
    expect(devices.get('cam-1')).toMatchObject({ state: 'online', last_seen: at(T0 + 30_001) });
  });

  it('folds telemetry into health and ignores telemetry older than the last applied', async () => {
    await devices.register('cam-1');
    expect(devices.applyTelemetry(tel('cam-1', T0, { rate: 12.5, p95: 18, psi: 0.31, depth: 42 }))).toEqual({ applied: true });
    expect(devices.get('cam-1').health).toEqual({
      inference_rate_per_s: 12.5,
      latency_p95_ms: 18,
      outlier_rate: 0.03,
      drift_psi: { class: 0.31, brightness: 0.1, contrast: null },
      queue: { depth: 42, bytes: 10_240, evicted_total: 1 },
    });
    expect(devices.applyTelemetry(tel('cam-1', T0 - 10_000, { rate: 1 }))).toEqual({ applied: false });
    expect(devices.applyTelemetry(tel('cam-1', T0, { rate: 1 }))).toEqual({ applied: false });
    expect(devices.get('cam-1').health?.inference_rate_per_s).toBe(12.5);
    expect(devices.get('cam-1').telemetry?.ts).toBe(at(T0));
    expect(() => devices.applyTelemetry(tel('ghost', T0))).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_UNKNOWN' }));
  });

  it('folds a telemetry batch in one commit as one message at a time would; unknown devices are skipped and named', async () => {
    await devices.register('cam-1');
    await devices.register('cam-2');
    const batch = [tel('cam-1', T0, { rate: 3 }), tel('ghost', T0), tel('cam-2', T0, { rate: 4 }), tel('cam-1', T0 - 1000, { rate: 9 })];
    expect(devices.applyTelemetryBatch(batch)).toEqual({ applied: 2, unknown: ['ghost'] });
    expect(devices.get('cam-1')).toMatchObject({ state: 'online', health: { inference_rate_per_s: 3 } });
    expect(devices.get('cam-2').health?.inference_rate_per_s).toBe(4);
  });

  it('the telemetry batcher commits after its delay, at once when full, and what waits on flush; a failed batch is logged', async () => {
    await devices.register('cam-1');
    const logged: Array<{ msg: string; code?: string; device?: string }> = [];
    const log = pino({ level: 'warn' }, { write: (l: string) => void logged.push(JSON.parse(l)) });
    const rate = (): number | undefined => devices.get('cam-1').health?.inference_rate_per_s;
    const b = new TelemetryBatcher(devices, { log, maxDelayMs: 30, maxBatch: 3 });
    b.add(tel('cam-1', T0, { rate: 1 }));
    expect([rate(), b.waiting]).toEqual([undefined, 1]);
    await new Promise((r) => setTimeout(r, 80));
    expect([rate(), b.waiting]).toEqual([1, 0]);
    b.add(tel('cam-1', T0 + 1, { rate: 2 }));
    b.add(tel('ghost', T0 + 1));
    b.add(tel('cam-1', T0 + 2, { rate: 3 }));
    expect([rate(), b.waiting]).toEqual([3, 0]);
    expect(logged).toEqual([expect.objectContaining({ msg: 'telemetry from an unknown device dropped', device: 'ghost', code: 'FLEET_DEVICE_UNKNOWN' })]);
    b.add(tel('cam-1', T0 + 3, { rate: 4 }));
    b.flush();
    expect(rate()).toBe(4);
    db.close();
    b.add(tel('cam-1', T0 + 4, { rate: 5 }));
    b.flush();
    expect(logged[1]).toMatchObject({ msg: 'telemetry batch not recorded', code: 'FLEET_STORAGE_FAILED' });
    db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock: { now: () => now } });
  });

  it('folds status: models, deployment phase and the staged target; stale statuses change nothing', async () => {
    await devices.register('cam-1');
    devices.applyStatus(status('cam-1', T0, { phase: 'downloading', target: '1.1.0' }));
    expect(devices.get('cam-1')).toMatchObject({
      state: 'online',
      agent_version: '0.1.0',
      models: { active: { name: 'pets', version: '1.0.0' }, staged: { name: 'pets', version: '1.1.0' }, installed: [{ name: 'pets', version: '1.0.0' }] },
      deployment: { revision: 3, rollout_id: 'ro-1', phase: 'downloading' },
    });
    devices.applyStatus(status('cam-1', T0 + 1000, { active: '1.1.0', phase: 'active', target: '1.1.0' }));
    expect(devices.get('cam-1').models).toMatchObject({ active: { version: '1.1.0' }, staged: null });
    expect(devices.get('cam-1').deployment?.phase).toBe('active');
    // A retained status replayed after a fleet restart: older, so nothing changes, not even last_seen.
    now = T0 + 40_000;
    expect(devices.applyStatus(status('cam-1', T0, { phase: 'downloading' }))).toEqual({ applied: false });
    expect(devices.get('cam-1')).toMatchObject({ state: 'offline', deployment: { phase: 'active' }, last_seen: at(T0) });
  });

  it('goes offline on a will built at connect time (older than the last status), on markOffline, and back online', async () => {
    await devices.register('cam-1');
    devices.applyStatus(status('cam-1', T0));
    devices.applyStatus(status('cam-1', T0 + 5000, { phase: 'active', target: '1.0.0' }));
    now = T0 + 10_000;
    // The last will carries the connect time T0, older than the status at T0+5s: still offline.
    expect(devices.applyStatus(status('cam-1', T0, { online: false }))).toEqual({ applied: true });
    expect(devices.get('cam-1')).toMatchObject({ state: 'offline', offline_at: at(T0 + 10_000), deployment: { phase: 'active' } });
    now = T0 + 20_000;
    devices.applyStatus(status('cam-1', T0 + 20_000));
    expect(devices.get('cam-1')).toMatchObject({ state: 'online', offline_at: null });
    devices.markOffline('cam-1', T0 + 21_000);
    expect(devices.get('cam-1')).toMatchObject({ state: 'offline', offline_at: at(T0 + 21_000) });
    devices.applyTelemetry(tel('cam-1', T0 + 22_000));
    expect(devices.get('cam-1').state).toBe('online');
    expect(() => devices.markOffline('ghost')).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_UNKNOWN' }));
  });

  it('removes a device with its tags and state', async () => {
    const { secret } = await devices.register('cam-1', { tags: { site: 'x' } });
    devices.applyTelemetry(tel('cam-1', T0));
    devices.remove('cam-1');
    expect(() => devices.get('cam-1')).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_UNKNOWN' }));
    expect(await devices.authenticate('cam-1', secret)).toBe(false);
    expect(db.sqlite.prepare('SELECT (SELECT count(*) FROM device_tags) + (SELECT count(*) FROM device_state)').pluck().get()).toBe(0);
    expect(() => devices.remove('cam-1')).toThrow(expect.objectContaining({ code: 'FLEET_DEVICE_UNKNOWN' }));
  });
});
