import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/** scrypt cost. N=2^14, r=8, p=1 is the common interactive-login setting (~16 MiB, tens of ms). */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_SCRYPT: Readonly<ScryptParams> = Object.freeze({ N: 16384, r: 8, p: 1 });

const KEY_BYTES = 32;
const SALT_BYTES = 16;

function derive(secret: string, salt: Buffer, p: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128 * N * r bytes; leave headroom over Node's 32 MiB default.
    scrypt(secret, salt, KEY_BYTES, { N: p.N, r: p.r, p: p.p, maxmem: 256 * p.N * p.r + 1024 * 1024 }, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** A new device secret: 256 random bits, base64url (safe in MQTT passwords, headers, JSON). */
export function newSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The stored form of a secret: `scrypt$N$r$p$<salt>$<hash>` (base64). The parameters
 * travel with the hash, so raising the cost later does not invalidate existing devices.
 */
export async function hashSecret(secret: string, params: ScryptParams = DEFAULT_SCRYPT): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(secret, salt, params);
  return `scrypt$${params.N}$${params.r}$${params.p}$${salt.toString('base64')}$${key.toString('base64')}`;
}

/** Constant-time check of a secret against its stored form; false for a malformed record. */
export async function verifySecret(secret: string, stored: string): Promise<boolean> {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return false;
  const [N, r, p] = [Number(parts[1]), Number(parts[2]), Number(parts[3])];
  if (![N, r, p].every((n) => Number.isSafeInteger(n) && n > 0)) return false;
  const salt = Buffer.from(parts[4] ?? '', 'base64');
  const want = Buffer.from(parts[5] ?? '', 'base64');
  const got = await derive(secret, salt, { N, r, p });
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * The bearer token a device presents to the fleet's HTTP API: `<device id>.<secret>`.
 * Device ids may contain `.`, secrets (base64url) never do: the last `.` separates them.
 */
export function deviceToken(deviceId: string, secret: string): string {
  return `${deviceId}.${secret}`;
}

export function parseDeviceToken(token: string): { deviceId: string; secret: string } | null {
  const i = token.lastIndexOf('.');
  if (i <= 0 || i === token.length - 1) return null;
  return { deviceId: token.slice(0, i), secret: token.slice(i + 1) };
}

/**
 * Successful secret verifications, remembered so a device that reconnects (or fetches a
 * package with its token) does not cost a scrypt hash every time: with 1,000 devices
 * reconnecting after a broker restart, scrypt was nearly all of the fleet's CPU.
 *
 * - One entry per device: the sha256 of the secret it presented, and the stored hash it was
 *   verified against. A hit needs both to match, so a rotated or removed credential (a new
 *   or no stored hash, whoever wrote it: this process, the CLI on the same database) never
 *   hits; {@link forget} drops the entry at once as well.
 * - Only successes are remembered: a wrong secret always pays the full scrypt cost, so
 *   guessing stays as slow as without the cache.
 * - sha256 of a 256-bit random secret is as unguessable as the secret; comparisons are
 *   constant-time.
 * - Bounded: at most `max` entries, the least recently used is evicted first.
 */
export class VerifiedSecrets {
  private readonly entries = new Map<string, { stored: string; digest: Buffer }>();
  private counts = { hits: 0, misses: 0 };

  /** `max` 0 disables the cache (every check verifies). */
  constructor(readonly max = 10_000) {}

  /** Was this very secret verified against this very stored hash? */
  has(deviceId: string, secret: string, stored: string): boolean {
    const e = this.entries.get(deviceId);
    if (e && e.stored === stored && timingSafeEqual(e.digest, digest(secret))) {
      // Refresh its place in the LRU order.
      this.entries.delete(deviceId);
      this.entries.set(deviceId, e);
      this.counts.hits++;
      return true;
    }
    this.counts.misses++;
    return false;
  }

  /** Remember a successful verification. */
  add(deviceId: string, secret: string, stored: string): void {
    if (this.max <= 0) return;
    this.entries.delete(deviceId);
    this.entries.set(deviceId, { stored, digest: digest(secret) });
    while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** The device's credential changed or is gone. */
  forget(deviceId: string): void {
    this.entries.delete(deviceId);
  }

  get size(): number {
    return this.entries.size;
  }

  stats(): { hits: number; misses: number; size: number } {
    return { ...this.counts, size: this.entries.size };
  }
}

function digest(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}
