import { z } from 'zod';
import type { Clock } from '../../../shared/ids.js';
import { idString } from '../../../shared/schemas/index.js';
import type { DeviceStatus, Telemetry } from '../../../shared/schemas/index.js';
import { parseWith } from '../../../shared/validate.js';
import { FleetError } from '../../errors.js';
import { agentConfigSnippet } from './agent-config.js';
import type { AgentConfigOptions, AgentConfigSnippet } from './agent-config.js';
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.js';
import { DEFAULT_SCRYPT, VerifiedSecrets, hashSecret, newSecret, parseDeviceToken, verifySecret } from './credentials.js';
import type { ScryptParams } from './credentials.js';
import { toDeviceRecord } from '../../core/devices/state.js';
import type { DeviceRecord, DeviceRow, DeviceState, DriftPoint } from '../../core/devices/state.js';

/**
 * Where devices live: identity, credentials, tags and the state folded from their messages
 * (the `devices`, `device_tags` and `device_state` tables). Every write is atomic; a failure
 * throws `FLEET_STORAGE_FAILED`.
 */
export interface DevicesRepo {
  exists(id: string): boolean;
  /** The stored secret hash, or null for an unknown device. */
  secretHash(id: string): string | null;
  /** Insert a device with its tags; false when the id is taken (another insert won a race). */
  insert(d: { id: string; tags: Record<string, string>; secretHash: string; at: number }): boolean;
  /** Replace the secret hash; false for an unknown device. */
  setSecret(id: string, secretHash: string, at: number): boolean;
  /** Replace the tags. */
  setTags(id: string, tags: Record<string, string>): void;
  /** The device's current certificate (sha256, expiry, revocation), or null: unknown device or none issued. */
  certificate(id: string): { sha256: string; notAfter: number; revokedAt: number | null } | null;
  /** Store a newly issued certificate, replacing (and so disabling) the previous one; false for an unknown device. */
  setCertificate(id: string, c: { sha256: string; serial: string; at: number; notAfter: number }): boolean;
  /** Mark the current certificate revoked; false when the device has none, or it is revoked already. */
  revokeCertificate(id: string, at: number): boolean;
  /** Delete a device with its tags and state; false for an unknown device. */
  remove(id: string): boolean;
  find(id: string): DeviceRow | null;
  /** Devices holding every tag in `tags` and, when `state` is set, in that state (online: connected and seen at or after `onlineSince`), by id. */
  list(q: { tags: Record<string, string>; state: DeviceState | null; onlineSince: number }): DeviceRow[];
  /** One tag's value, or null when the device has no such tag (or is unknown). */
  tag(id: string, key: string): string | null;
  /**
   * Fold telemetry messages (each only when newer than the applied one) and mark their devices
   * seen at `now`, in one transaction; messages of unknown devices are skipped and their ids returned.
   */
  applyTelemetry(ts: readonly Telemetry[], now: number): { applied: number; unknown: string[] };
  /** The device's drift history from `since` (message time, ms), oldest first; bounded by the repository's retention. */
  driftHistory(id: string, since: number): DriftPoint[];
  /** Fold a status message (see {@link DeviceRegistry.applyStatus}); returns the rows it changed. */
  applyStatus(s: DeviceStatus, now: number): number;
  /** Mark a device offline from `at`, unless it already is. */
  markOffline(id: string, at: number): void;
}

export interface DeviceRegistryOptions {
  repo: DevicesRepo;
  clock: Clock;
  /**
   * A device not heard from for this long is offline. Default 60 000: six telemetry
   * intervals at the agent's default of 10 s, so one late or lost message does not flap.
   */
  offlineAfterMs?: number;
  /** Cost of the secret hash; tests lower it. Default {@link DEFAULT_SCRYPT}. */
  scrypt?: ScryptParams;
  /** Successful verifications remembered (see {@link VerifiedSecrets}); 0 = none. Default 10 000. */
  authCacheSize?: number;
  /** Backoff of failed logins per source and per device name (see {@link LoginThrottle}). */
  loginThrottle?: Omit<LoginThrottleOptions, 'clock'>;
  /** Secret hashes verified at once; more wait in line. Default 4. */
  maxConcurrentHashes?: number;
  /** Logins waiting for a hash slot; beyond, refused as busy at once. Default 64. */
  maxQueuedHashes?: number;
}

/** What a login check concluded; `throttled` and `busy` spent no hash. */
export type AuthVerdict = { ok: true } | { ok: false; reason: 'invalid' } | { ok: false; reason: 'throttled' | 'busy'; retryAfterMs: number };

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
  private readonly repo: DevicesRepo;
  private readonly clock: Clock;
  private readonly offlineAfterMs: number;
  private readonly scrypt: ScryptParams;
  /** Compared against when the device is unknown, so a miss costs as long as a wrong secret. */
  private dummyHash: Promise<string> | null = null;
  /** Verified secrets, so a reconnect does not cost a scrypt hash. */
  readonly authCache: VerifiedSecrets;
  private readonly throttle: LoginThrottle;
  private readonly maxHashes: number;
  private readonly maxQueued: number;
  private hashing = 0;
  private readonly hashQueue: Array<() => void> = [];

  constructor(opts: DeviceRegistryOptions) {
    this.repo = opts.repo;
    this.clock = opts.clock;
    this.offlineAfterMs = opts.offlineAfterMs ?? 60_000;
    this.scrypt = opts.scrypt ?? DEFAULT_SCRYPT;
    this.authCache = new VerifiedSecrets(opts.authCacheSize ?? 10_000);
    this.throttle = new LoginThrottle({ ...opts.loginThrottle, clock: opts.clock });
    this.maxHashes = opts.maxConcurrentHashes ?? 4;
    this.maxQueued = opts.maxQueuedHashes ?? 64;
  }

  /**
   * Register a device under `name`, which becomes its id (an id string: letters, digits,
   * `. _ : -`), and issue its credentials. Writes the device row and tags, nothing else:
   * live state appears with the first message. Throws `FLEET_DEVICE_EXISTS`.
   */
  async register(name: string, opts: { tags?: Record<string, string> } = {}): Promise<{ device: DeviceRecord; secret: string }> {
    const id = parseWith(idString, name, 'INPUT_INVALID', 'device id');
    const tags = parseWith(tagsSchema, opts.tags ?? {}, 'INPUT_INVALID', 'device tags');
    if (this.repo.exists(id)) throw exists(id);
    const secret = newSecret();
    const hash = await hashSecret(secret, this.scrypt);
    // False: lost a race with another register of the same id while hashing.
    if (!this.repo.insert({ id, tags, secretHash: hash, at: this.clock.now() })) throw exists(id);
    return { device: this.get(id), secret };
  }

  /** Does `secret` belong to `deviceId`? False for an unknown device too, in about the same time. */
  async authenticate(deviceId: string, secret: string, source = 'local'): Promise<boolean> {
    return (await this.check(deviceId, secret, source)).ok;
  }

  /**
   * Check a login from `source` (the peer's address). Known-good credentials (verified before,
   * unchanged since) pass at once. Otherwise, a source or device name that failed repeatedly
   * waits out its backoff (`throttled`), and at most `maxConcurrentHashes` hashes run with a
   * bounded line (`busy` beyond), so a flood of bogus logins cannot make a real device's
   * first login slow. An unknown name costs what a wrong secret costs.
   */
  async check(deviceId: string, secret: string, source: string): Promise<AuthVerdict> {
    const hash = this.repo.secretHash(deviceId);
    // The stored hash is read every time, so a rotation by another process also misses.
    if (hash !== null && this.authCache.has(deviceId, secret, hash)) return { ok: true };
    const wait = this.throttle.waitMs(source, deviceId);
    if (wait > 0) return { ok: false, reason: 'throttled', retryAfterMs: wait };
    if (this.hashing >= this.maxHashes && this.hashQueue.length >= this.maxQueued) return { ok: false, reason: 'busy', retryAfterMs: 1000 };
    const ok = await this.withHashSlot(async () => {
      if (hash === null) {
        this.dummyHash ??= hashSecret(newSecret(), this.scrypt);
        await verifySecret(secret, await this.dummyHash);
        return false;
      }
      return verifySecret(secret, hash);
    });
    if (!ok) {
      this.throttle.failed(source, deviceId);
      return { ok: false, reason: 'invalid' };
    }
    this.throttle.succeeded(source, deviceId);
    // Remember it only if the credential did not change while scrypt ran.
    if (this.repo.secretHash(deviceId) === hash && hash !== null) this.authCache.add(deviceId, secret, hash);
    return { ok: true };
  }

  private async withHashSlot<T>(fn: () => Promise<T>): Promise<T> {
    if (this.hashing >= this.maxHashes) await new Promise<void>((resolve) => this.hashQueue.push(resolve));
    this.hashing++;
    try {
      return await fn();
    } finally {
      this.hashing--;
      this.hashQueue.shift()?.();
    }
  }

  /** The device id behind an HTTP bearer token (`<id>.<secret>`). Throws `FLEET_AUTH_FAILED`, or `FLEET_AUTH_THROTTLED` after repeated failures. */
  async authenticateToken(token: string, source = 'local'): Promise<string> {
    const parsed = parseDeviceToken(token);
    if (!parsed) throw new FleetError('AUTH_FAILED', 'the device token is not valid');
    const v = await this.check(parsed.deviceId, parsed.secret, source);
    if (v.ok) return parsed.deviceId;
    if (v.reason !== 'invalid') throw new FleetError('AUTH_THROTTLED', `too many failed logins from here or as this device; retry in ${Math.ceil(v.retryAfterMs / 1000)} s`, { details: { retry_after_ms: v.retryAfterMs, reason: v.reason } });
    throw new FleetError('AUTH_FAILED', 'the device token is not valid');
  }

  /** Issue a new secret; the old one stops working at once. Throws `FLEET_DEVICE_UNKNOWN`. */
  async rotateSecret(id: string): Promise<{ secret: string }> {
    this.require(id);
    const secret = newSecret();
    const hash = await hashSecret(secret, this.scrypt);
    if (!this.repo.setSecret(id, hash, this.clock.now())) throw unknown(id);
    this.authCache.forget(id);
    return { secret };
  }

  /** Replace a device's tags. Throws `FLEET_DEVICE_UNKNOWN`. */
  setTags(id: string, tags: Record<string, string>): DeviceRecord {
    const valid = parseWith(tagsSchema, tags, 'INPUT_INVALID', 'device tags');
    this.require(id);
    this.repo.setTags(id, valid);
    return this.get(id);
  }

  /** Forget a device: credentials, tags and state (its samples stay). Throws `FLEET_DEVICE_UNKNOWN`. */
  remove(id: string): void {
    const removed = this.repo.remove(id);
    this.authCache.forget(id);
    if (!removed) throw unknown(id);
  }

  /** One device. Throws `FLEET_DEVICE_UNKNOWN`. */
  get(id: string): DeviceRecord {
    const device = this.find(id);
    if (!device) throw unknown(id);
    return device;
  }

  /** One device, or null when none is registered under `id`. */
  find(id: string): DeviceRecord | null {
    const row = this.repo.find(id);
    return row ? toDeviceRecord(row, this.clock.now(), this.offlineAfterMs) : null;
  }

  /** Devices matching every given tag and the state, by id. */
  list(filter: DeviceFilter = {}): DeviceRecord[] {
    const now = this.clock.now();
    const tags = parseWith(tagsSchema, filter.tags ?? {}, 'INPUT_INVALID', 'tag filter');
    const rows = this.repo.list({ tags, state: filter.state ?? null, onlineSince: now - this.offlineAfterMs });
    return rows.map((r) => toDeviceRecord(r, now, this.offlineAfterMs));
  }

  /** Drift PSI and outlier rate of `id` over the last `windowMs` (by the fleet clock), oldest first. Throws `FLEET_DEVICE_UNKNOWN`. */
  driftHistory(id: string, windowMs: number): DriftPoint[] {
    this.get(id);
    return this.repo.driftHistory(id, this.clock.now() - windowMs);
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
    return this.repo.applyTelemetry(ts, this.clock.now());
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
    return { applied: this.repo.applyStatus(s, this.clock.now()) > 0 };
  }

  /** The broker saw the device's connection end (or a will arrived): offline from `at` (default now). */
  markOffline(id: string, at: number = this.clock.now()): void {
    this.require(id);
    this.repo.markOffline(id, at);
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
    if (!this.repo.exists(id)) throw unknown(id);
  }
}

const unknown = (id: string): FleetError => new FleetError('DEVICE_UNKNOWN', `device ${id} is not registered`, { details: { device_id: id } });
const exists = (id: string): FleetError => new FleetError('DEVICE_EXISTS', `device ${id} is already registered`, { details: { device_id: id } });
