import type { Clock } from '../../../shared/ids.js';
import { FleetError } from '../../errors.js';
import type { Audit } from '../audit.js';
import { LoginThrottle, type LoginThrottleOptions } from './login-throttle.js';
import type { DevicesRepo } from './registry.js';

/**
 * The fleet CA as the services see it (adapters/fs/fleet-ca.ts implements it): it signs device
 * client certificates for a public key the caller made; the private key never reaches the fleet.
 */
export interface CertificateAuthority {
  /** The CA certificate, PEM: what devices and the broker trust. */
  readonly caPem: string;
  /**
   * A client certificate with CN = `deviceId` and SAN URI `urn:edgeloop:device:<id>` for the
   * public key (SPKI PEM). Throws `FLEET_DEVICE_KEY_INVALID` for a key it cannot certify.
   */
  issueDevice(o: { deviceId: string; publicKeyPem: string; notBefore: number; notAfter: number }): { pem: string; sha256: string; serial: string };
}

/** A certificate just issued, as the API answers it (shown once, like a secret; only its sha256 is stored). */
export interface IssuedDeviceCertificate {
  device_id: string;
  pem: string;
  ca_pem: string;
  sha256: string;
  serial: string;
  not_after: string;
}

/** Why a certificate login was refused; `throttled` checked nothing. */
export type CertRefusal = 'client_id_mismatch' | 'unknown_device' | 'no_certificate' | 'replaced' | 'revoked' | 'expired' | 'throttled';

export type CertVerdict = { ok: true } | { ok: false; reason: CertRefusal; retryAfterMs?: number };

/** Longest validity `--days` may ask for: ten years. */
const MAX_DAYS = 3650;
/** Certificates start a little in the past, so a device whose clock is behind accepts them. */
const BACKDATE_MS = 5 * 60_000;

/**
 * Device identity by X.509 certificate: issue (register --cert, rotation), revoke, and the
 * broker's check at connect. A check is a database read and a string compare, no password
 * hash, so a flood of bogus logins cannot make a real device's connect slow. TLS has already
 * proved the peer holds the key of a certificate the fleet CA signed and that is in its validity;
 * this adds what TLS cannot know: the certificate is the device's current one, not revoked.
 */
export class DeviceCertificates {
  private readonly repo: DevicesRepo;
  private readonly ca: CertificateAuthority;
  private readonly clock: Clock;
  private readonly audit: Audit;
  private readonly throttle: LoginThrottle;
  private readonly revokedListeners: Array<(deviceId: string) => void> = [];

  constructor(o: { repo: DevicesRepo; ca: CertificateAuthority; clock: Clock; audit: Audit; loginThrottle?: Omit<LoginThrottleOptions, 'clock'> }) {
    this.repo = o.repo;
    this.ca = o.ca;
    this.clock = o.clock;
    this.audit = o.audit;
    this.throttle = new LoginThrottle({ ...o.loginThrottle, clock: o.clock });
  }

  get caPem(): string {
    return this.ca.caPem;
  }

  /**
   * Certify the device's public key for `days` (default 365): the new certificate replaces the
   * previous one, which is refused from then on. Throws `FLEET_DEVICE_UNKNOWN`,
   * `FLEET_DEVICE_KEY_INVALID`, `INPUT_INVALID` (days).
   */
  issue(deviceId: string, publicKeyPem: string, o: { days?: number; actor: string }): IssuedDeviceCertificate {
    const days = o.days ?? 365;
    if (!Number.isInteger(days) || days < 1 || days > MAX_DAYS) throw new FleetError('INPUT_INVALID', `certificate validity is 1..${MAX_DAYS} days, not ${days}`);
    if (!this.repo.exists(deviceId)) throw unknown(deviceId);
    const now = this.clock.now();
    const notAfter = now + days * 86_400_000;
    const c = this.ca.issueDevice({ deviceId, publicKeyPem, notBefore: now - BACKDATE_MS, notAfter });
    if (!this.repo.setCertificate(deviceId, { sha256: c.sha256, serial: c.serial, at: now, notAfter })) throw unknown(deviceId);
    this.audit.record({ actor: o.actor, action: 'device.cert.issue', target: deviceId, details: { sha256: c.sha256, serial: c.serial, not_after: new Date(notAfter).toISOString() } });
    return { device_id: deviceId, pem: c.pem, ca_pem: this.ca.caPem, sha256: c.sha256, serial: c.serial, not_after: new Date(notAfter).toISOString() };
  }

  /** Refuse the device's certificate from now on. Throws `FLEET_DEVICE_UNKNOWN`, `FLEET_CONFLICT` (no certificate, or revoked already). */
  revoke(deviceId: string, o: { actor: string }): void {
    if (!this.repo.exists(deviceId)) throw unknown(deviceId);
    const cert = this.repo.certificate(deviceId);
    if (!this.repo.revokeCertificate(deviceId, this.clock.now()))
      throw new FleetError('CONFLICT', cert ? `the certificate of device ${deviceId} is revoked already` : `device ${deviceId} has no certificate`, { details: { device_id: deviceId } });
    this.audit.record({ actor: o.actor, action: 'device.cert.revoke', target: deviceId, details: cert ? { sha256: cert.sha256 } : {} });
    for (const fn of this.revokedListeners) fn(deviceId);
  }

  /** Called after each revocation (the service disconnects the device from the broker). */
  onRevoked(fn: (deviceId: string) => void): void {
    this.revokedListeners.push(fn);
  }

  /**
   * May the peer that presented a CA-verified certificate with CN `deviceId` and DER sha256
   * `sha256` log in as that device, with MQTT client id `clientId` (it must be the device id, so
   * no one takes over another device's session)? A source that failed repeatedly waits out its
   * backoff, like a failed secret login; unknown devices cost the same one read as known ones.
   * Only the source is throttled, not the device name: the name comes from a certificate the CA
   * signed, so no one else can fail in a device's name to slow its logins down.
   */
  check(deviceId: string, sha256: string, source: string, clientId: string = deviceId): CertVerdict {
    const wait = this.throttle.sourceWaitMs(source);
    if (wait > 0) return { ok: false, reason: 'throttled', retryAfterMs: wait };
    const reason = clientId !== deviceId ? 'client_id_mismatch' : this.refusal(deviceId, sha256);
    if (reason) {
      this.throttle.failedFrom(source);
      return { ok: false, reason };
    }
    return { ok: true };
  }

  /** A TLS handshake from `source` failed (another CA, an expired certificate, none): counts against the source. */
  handshakeFailed(source: string): void {
    this.throttle.failedFrom(source);
  }

  /** How long a new connection from `source` must wait before its handshake is even tried; 0: now. */
  waitMs(source: string): number {
    return this.throttle.sourceWaitMs(source);
  }

  private refusal(deviceId: string, sha256: string): CertRefusal | null {
    const c = this.repo.certificate(deviceId);
    if (!c) return this.repo.exists(deviceId) ? 'no_certificate' : 'unknown_device';
    if (c.sha256 !== sha256) return 'replaced';
    if (c.revokedAt !== null) return 'revoked';
    if (c.notAfter <= this.clock.now()) return 'expired';
    return null;
  }
}

const unknown = (id: string): FleetError => new FleetError('DEVICE_UNKNOWN', `device ${id} is not registered`, { details: { device_id: id } });
