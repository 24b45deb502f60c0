import type BetterSqlite3 from 'better-sqlite3';
import { z } from 'zod';
import { idString } from '../../../shared/schemas/index.js';
import type { DeviceStatus, Telemetry } from '../../../shared/schemas/index.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';
import type { FleetDb } from '../../adapters/sqlite/db.js';
import { storageError } from '../../adapters/sqlite/db.js';
import { agentConfigSnippet } from './agent-config.js';
import type { AgentConfigOptions, AgentConfigSnippet } from './agent-config.js';
import { DEFAULT_SCRYPT, VerifiedSecrets, hashSecret, newSecret, parseDeviceToken, verifySecret } from './credentials.js';
import type { ScryptParams } from './credentials.js';
import { statusColumns, telemetryColumns, toDeviceRecord } from '../../core/devices/state.js';
import type { DeviceRecord, DeviceRow, DeviceState } from '../../core/devices/state.js';

export interface DeviceRegistryOptions {
  db: FleetDb;
  /**
   * A device not heard from for this long is offline. Default 60 000: six telemetry
   * intervals at the agent's default of 10 s, so one late or lost message does not flap.
   */
  offlineAfterMs?: number;
  /** Cost of the secret hash; tests lower it. Default {@link DEFAULT_SCRYPT}. */
  scrypt?: ScryptParams;
  /** Successful verifications remembered (see {@link VerifiedSecrets}); 0 = none. Default 10 000. */
  authCacheSize?: number;
}

/** Filter of {@link DeviceRegistry.list}: every tag must match; state as computed now. */
export interface DeviceFilter {
  tags?: Record<string, string>;
  state?: DeviceState;
}

/** Whether a message changed the stored state (false: older than what is stored). */
export interface ApplyResult {
  applied: boolean;
}

const tagsSchema = z.record(z.string().regex(/^[A-Za-z0-9._:-]{1,64}$/, 'tag keys are 1-64 of letters, digits and . _ : -'), z.string().max(256));

/**
 * Devices: identity, credentials, tags and the live state folded from their telemetry and
 * status messages. The device id is the MQTT username and the topic namespace; the secret
 * is returned once (register, rotate) and only its scrypt hash is stored.
 */
export class DeviceRegistry {
  private readonly db: FleetDb;
  private readonly offlineAfterMs: number;
  private readonly scrypt: ScryptParams;
  private readonly stmts: ReturnType<typeof prepare>;
  /** Compared against when the device is unknown, so a miss costs as long as a wrong secret. */
  private dummyHash: Promise<string> | null = null;
  /** Verified secrets, so a reconnect does not cost a scrypt hash. */
  readonly authCache: VerifiedSecrets;

  constructor(opts: DeviceRegistryOptions) {
    this.db = opts.db;
    this.offlineAfterMs = opts.offlineAfterMs ?? 60_000;
    this.scrypt = opts.scrypt ?? DEFAULT_SCRYPT;
    this.stmts = prepare(opts.db.sqlite);
    this.authCache = new VerifiedSecrets(opts.authCacheSize ?? 10_000);
  }

  /**
   * Register a device under `name`, which becomes its id (an id string: letters, digits,
   * `. _ : -`), and issue its credentials. Writes the device row and tags, nothing else:
   * live state appears with the first message. Throws `FLEET_DEVICE_EXISTS`.
   */
  async register(name: string, opts: { tags?: Record<string, string> } = {}): Promise<{ device: DeviceRecord; secret: string }> {
    const id = parseWith(idString, name, 'INPUT_INVALID', 'device id');
    const tags = parseWith(tagsSchema, opts.tags ?? {}, 'INPUT_INVALID', 'device tags');
    if (this.stmts.exists.get(id) !== undefined) throw exists(id);
    const secret = newSecret();
    const hash = await hashSecret(secret, this.scrypt);
    const now = this.db.clock.now();
    try {
      this.db.sqlite.transaction(() => {
        this.stmts.insert.run({ id, tags: JSON.stringify(tags), secret_hash: hash, now });
        for (const [key, value] of Object.entries(tags)) this.stmts.insertTag.run(id, key, value);
      }).immediate();
    } catch (err) {
      // Lost a race with another register of the same id while hashing.
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') throw exists(id);
      throw storageError(`cannot register device ${id}`, err);
    }
    return { device: this.get(id), secret };
  }

  /** Does `secret` belong to `deviceId`? False for an unknown device too, in about the same time. */
  async authenticate(deviceId: string, secret: string): Promise<boolean> {
    const hash = this.stmts.secretHash.get(deviceId);
    if (hash === undefined) {
      this.dummyHash ??= hashSecret(newSecret(), this.scrypt);
      await verifySecret(secret, await this.dummyHash);
      return false;
    }
    // The stored hash is read every time, so a rotation by another process also misses.
    if (this.authCache.has(deviceId, secret, hash)) return true;
    const ok = await verifySecret(secret, hash);
    // Remember it only if the credential did not change while scrypt ran.
    if (ok && this.stmts.secretHash.get(deviceId) === hash) this.authCache.add(deviceId, secret, hash);
    return ok;
  }

  /** The device id behind an HTTP bearer token (`<id>.<secret>`). Throws `FLEET_AUTH_FAILED`. */
  async authenticateToken(token: string): Promise<string> {
    const parsed = parseDeviceToken(token);
    if (parsed && (await this.authenticate(parsed.deviceId, parsed.secret))) return parsed.deviceId;
    throw new FleetError('AUTH_FAILED', 'the device token is not valid');
  }

  /** Issue a new secret; the old one stops working at once. Throws `FLEET_DEVICE_UNKNOWN`. */
  async rotateSecret(id: string): Promise<{ secret: string }> {
    this.require(id);
    const secret = newSecret();
    const hash = await hashSecret(secret, this.scrypt);
    const changed = this.write(`cannot rotate the secret of ${id}`, () => this.stmts.setSecret.run(hash, this.db.clock.now(), id).changes);
    if (changed === 0) throw unknown(id);
    this.authCache.forget(id);
    return { secret };
  }

  /** Replace a device's tags. Throws `FLEET_DEVICE_UNKNOWN`. */
  setTags(id: string, tags: Record<string, string>): DeviceRecord {
    const valid = parseWith(tagsSchema, tags, 'INPUT_INVALID', 'device tags');
    this.require(id);
    this.write(`cannot set the tags of ${id}`, () =>
      this.db.sqlite.transaction(() => {
        this.stmts.setTags.run(JSON.stringify(valid), id);
        this.stmts.deleteTags.run(id);
        for (const [key, value] of Object.entries(valid)) this.stmts.insertTag.run(id, key, value);
      }).immediate(),
    );
    return this.get(id);
  }

  /** Forget a device: credentials, tags and state (its samples stay). Throws `FLEET_DEVICE_UNKNOWN`. */
  remove(id: string): void {
    const changed = this.write(`cannot remove ${id}`, () => this.stmts.remove.run(id).changes);
    this.authCache.forget(id);
    if (changed === 0) throw unknown(id);
  }

  /** One device. Throws `FLEET_DEVICE_UNKNOWN`. */
  get(id: string): DeviceRecord {
    const row = this.stmts.get.get(id);
    if (!row) throw unknown(id);
    return toDeviceRecord(row, this.db.clock.now(), this.offlineAfterMs);
  }

  /** Devices matching every given tag and the state, by id. */
  list(filter: DeviceFilter = {}): DeviceRecord[] {
    const now = this.db.clock.now();
    const tags = parseWith(tagsSchema, filter.tags ?? {}, 'INPUT_INVALID', 'tag filter');
    const rows = this.stmts.list.all({ tags: JSON.stringify(tags), state: filter.state ?? null, since: now - this.offlineAfterMs });
    return rows.map((r) => toDeviceRecord(r, now, this.offlineAfterMs));
  }

  /**
   * Fold a telemetry message into the device's state and mark it seen now. A message not
   * newer (by its `ts`) than the last applied one changes nothing. Throws `FLEET_DEVICE_UNKNOWN`.
   */
  applyTelemetry(t: Telemetry): ApplyResult {
    const r = this.applyTelemetryBatch([t]);
    if (r.unknown.length) throw unknown(t.device_id);
    return { applied: r.applied > 0 };
  }

  /**
   * Fold many telemetry messages in one transaction: one commit, so one fsync under
   * `synchronous = FULL`, for a burst of them (a per-message commit cost ~0.2 ms of blocked event
   * loop here, more on slower disks). Each message as `applyTelemetry` folds it; a message from an
   * unknown device is skipped and its id returned in `unknown`.
   */
  applyTelemetryBatch(ts: readonly Telemetry[]): { applied: number; unknown: string[] } {
    const unknownIds: string[] = [];
    const now = this.db.clock.now();
    const applied = this.write(`cannot record telemetry of ${ts.length} messages`, () =>
      this.db.sqlite.transaction(() => {
        let n = 0;
        for (const t of ts) {
          if (this.stmts.exists.get(t.device_id) === undefined) unknownIds.push(t.device_id);
          else n += this.stmts.applyTelemetry.run({ device_id: t.device_id, now, ...telemetryColumns(t) }).changes;
        }
        return n;
      }).immediate(),
    );
    return { applied, unknown: unknownIds };
  }

  /**
   * Fold a status message: models, deployment phase, agent version, online flag.
   *
   * `online: false` always marks the device offline, even when older than the stored
   * status: the agent's last will is built at CONNECT, so it carries the connect time and
   * arrives after the statuses of that connection. Its other fields are applied only when
   * it is the newest. An online status not newer than the stored one (a retained message
   * replayed after a fleet restart) changes nothing, so it does not mark a silent device
   * as seen. Throws `FLEET_DEVICE_UNKNOWN`.
   */
  applyStatus(s: DeviceStatus): ApplyResult {
    this.require(s.device_id);
    const cols = statusColumns(s);
    const now = this.db.clock.now();
    const changes = this.write(`cannot record the status of ${s.device_id}`, () =>
      this.db.sqlite.transaction(() => {
        this.stmts.ensureState.run(s.device_id);
        let n = this.stmts.applyStatus.run({ device_id: s.device_id, now, online: s.online ? 1 : 0, ...cols }).changes;
        if (!s.online) n += this.stmts.markOffline.run(now, s.device_id).changes;
        return n;
      }).immediate(),
    );
    return { applied: changes > 0 };
  }

  /** The broker saw the device's connection end (or a will arrived): offline from `at` (default now). */
  markOffline(id: string, at: number = this.db.clock.now()): void {
    this.require(id);
    this.write(`cannot mark ${id} offline`, () =>
      this.db.sqlite.transaction(() => {
        this.stmts.ensureState.run(id);
        this.stmts.markOffline.run(at, id);
      }).immediate(),
    );
  }

  /**
   * A ready-to-copy agent config for a device (keys of agent/config.ts): id, tags, the fleet
   * public key, the HTTP bearer token and the MQTT uplink with username = device id and the
   * secret as password. Pass the secret returned by register or rotateSecret; it is not
   * checked here. Throws `FLEET_DEVICE_UNKNOWN`.
   */
  agentConfigFor(deviceId: string, secret: string, o: AgentConfigOptions): AgentConfigSnippet {
    return agentConfigSnippet(deviceId, this.get(deviceId).tags, secret, o);
  }

  private require(id: string): void {
    if (this.stmts.exists.get(id) === undefined) throw unknown(id);
  }

  private write<T>(what: string, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      throw storageError(what, err);
    }
  }
}

const unknown = (id: string): FleetError => new FleetError('DEVICE_UNKNOWN', `device ${id} is not registered`, { details: { device_id: id } });
const exists = (id: string): FleetError => new FleetError('DEVICE_EXISTS', `device ${id} is already registered`, { details: { device_id: id } });

const SELECT_DEVICE = `
  SELECT d.id, d.tags, d.created_at, d.secret_set_at, s.last_seen, s.connected, s.offline_at, s.agent_version,
         s.active_model, s.previous_model, s.installed_models, s.deployment, s.telemetry
  FROM devices d LEFT JOIN device_state s ON s.device_id = d.id`;

/** Folds one telemetry message into `device_state` unless an applied one is as new (shared with the `telemetry` benchmark). */
export const APPLY_TELEMETRY_SQL = `INSERT INTO device_state (device_id, last_seen, connected, offline_at, telemetry_ts, telemetry, inference_rate, latency_p95_ms, outlier_rate,
     class_psi, brightness_psi, contrast_psi, queue_depth, queue_bytes, queue_evicted_total)
   VALUES (@device_id, @now, 1, NULL, @telemetry_ts, @telemetry, @inference_rate, @latency_p95_ms, @outlier_rate,
     @class_psi, @brightness_psi, @contrast_psi, @queue_depth, @queue_bytes, @queue_evicted_total)
   ON CONFLICT (device_id) DO UPDATE SET
     last_seen = excluded.last_seen, connected = 1, offline_at = NULL,
     telemetry_ts = excluded.telemetry_ts, telemetry = excluded.telemetry, inference_rate = excluded.inference_rate,
     latency_p95_ms = excluded.latency_p95_ms, outlier_rate = excluded.outlier_rate, class_psi = excluded.class_psi,
     brightness_psi = excluded.brightness_psi, contrast_psi = excluded.contrast_psi, queue_depth = excluded.queue_depth,
     queue_bytes = excluded.queue_bytes, queue_evicted_total = excluded.queue_evicted_total
   WHERE device_state.telemetry_ts IS NULL OR excluded.telemetry_ts > device_state.telemetry_ts`;

function prepare(db: BetterSqlite3.Database) {
  return {
    exists: db.prepare<[string], number>('SELECT 1 FROM devices WHERE id = ?').pluck(),
    secretHash: db.prepare<[string], string>('SELECT secret_hash FROM devices WHERE id = ?').pluck(),
    insert: db.prepare('INSERT INTO devices (id, tags, secret_hash, created_at, secret_set_at) VALUES (@id, @tags, @secret_hash, @now, @now)'),
    insertTag: db.prepare<[string, string, string]>('INSERT INTO device_tags (device_id, key, value) VALUES (?, ?, ?)'),
    deleteTags: db.prepare<[string]>('DELETE FROM device_tags WHERE device_id = ?'),
    setTags: db.prepare<[string, string]>('UPDATE devices SET tags = ? WHERE id = ?'),
    setSecret: db.prepare<[string, number, string]>('UPDATE devices SET secret_hash = ?, secret_set_at = ? WHERE id = ?'),
    remove: db.prepare<[string]>('DELETE FROM devices WHERE id = ?'),
    get: db.prepare<[string], DeviceRow>(`${SELECT_DEVICE} WHERE d.id = ?`),
    // Every tag of the filter must match: count the matching ones against the filter's size.
    // One statement for any number of tags (json_each), so it is prepared once.
    list: db.prepare<{ tags: string; state: string | null; since: number }, DeviceRow>(
      `${SELECT_DEVICE}
       WHERE (SELECT count(*) FROM device_tags t JOIN json_each(@tags) j ON t.key = j.key AND t.value = j.value WHERE t.device_id = d.id)
             = (SELECT count(*) FROM json_each(@tags))
         AND (@state IS NULL OR (@state = 'online') = (coalesce(s.connected, 0) = 1 AND coalesce(s.last_seen, -1) >= @since))
       ORDER BY d.id`,
    ),
    ensureState: db.prepare<[string]>('INSERT INTO device_state (device_id) VALUES (?) ON CONFLICT (device_id) DO NOTHING'),
    applyTelemetry: db.prepare(APPLY_TELEMETRY_SQL),
    applyStatus: db.prepare(
      `UPDATE device_state SET
         status_ts = @status_ts, agent_version = @agent_version, active_model = @active_model, previous_model = @previous_model,
         installed_models = @installed_models, deployment = @deployment, deployment_phase = @deployment_phase,
         last_seen = CASE WHEN @online = 1 THEN @now ELSE last_seen END,
         connected = CASE WHEN @online = 1 THEN 1 ELSE connected END,
         offline_at = CASE WHEN @online = 1 THEN NULL ELSE offline_at END
       WHERE device_id = @device_id AND (status_ts IS NULL OR status_ts < @status_ts)`,
    ),
    markOffline: db.prepare<[number, string]>('UPDATE device_state SET connected = 0, offline_at = ? WHERE device_id = ? AND connected = 1'),
  };
}
