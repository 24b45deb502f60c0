import { createHash } from 'node:crypto';

/** Time source, passed in so tests use fake time. */
export interface Clock {
  now(): number;
}
export const systemClock: Clock = { now: () => Date.now() };

/** Uniform [0,1) source, passed in so tests are deterministic. */
export type Random = () => number;

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * ULID-style id: 10 chars of millisecond time + 16 random chars (Crockford base32), so ids
 * sort by creation time and never collide in practice. `prefix` makes logs readable.
 */
export function newId(prefix: string, clock: Clock = systemClock, random: Random = Math.random): string {
  let t = Math.max(0, Math.floor(clock.now()));
  let time = '';
  for (let i = 0; i < 10; i++) {
    time = CROCKFORD[t % 32] + time;
    t = Math.floor(t / 32);
  }
  let rand = '';
  for (let i = 0; i < 16; i++) rand += CROCKFORD[Math.floor(random() * 32) % 32];
  return `${prefix}_${time}${rand}`;
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Seeded PRNG (mulberry32) for reproducible sampling and tests. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
