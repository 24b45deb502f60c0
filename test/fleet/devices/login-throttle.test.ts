import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DeviceRegistry } from '../../../fleet/app/devices/registry.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteDevicesRepo } from '../../../fleet/adapters/sqlite/devices-repo.js';
import { tempDir } from '../../helpers/packages.js';

const FAST = { N: 1024, r: 8, p: 1 };

async function withRegistry(o: Partial<ConstructorParameters<typeof DeviceRegistry>[0]>, fn: (reg: DeviceRegistry, clock: { advance(ms: number): void }) => Promise<void>): Promise<void> {
  const t = tempDir('edgeloop-throttle-');
  let now = 1_000_000;
  const clock = { now: () => now, advance: (ms: number) => void (now += ms) };
  const db = openFleetDb({ path: join(t.dir, 'fleet.db'), clock });
  try {
    await fn(new DeviceRegistry({ repo: sqliteDevicesRepo(db), clock, scrypt: FAST, ...o }), clock);
  } finally {
    db.close();
    t.cleanup();
  }
}

describe('failed device logins', () => {
  it('make a source wait with growing backoff, without a hash, while other sources log in', async () => {
    await withRegistry({}, async (reg, clock) => {
      const { secret } = await reg.register('cam-1');
      await reg.register('cam-2');
      // Five free failures from one address, as several device names (and unknown ones).
      for (const name of ['cam-2', 'cam-2', 'nobody', 'ghost', 'cam-2']) expect(await reg.check(name, 'guess', '10.0.0.66')).toEqual({ ok: false, reason: 'invalid' });
      expect(await reg.check('cam-9', 'guess', '10.0.0.66')).toEqual({ ok: false, reason: 'throttled', retryAfterMs: 1000 });
      // The right secret from that address waits too: the address is what is held back.
      expect((await reg.check('cam-1', secret, '10.0.0.66')).ok).toBe(false);
      // A real device elsewhere is not held up.
      expect(await reg.check('cam-1', secret, '10.0.0.7')).toEqual({ ok: true });
      clock.advance(1000);
      expect(await reg.check('cam-2', 'guess', '10.0.0.66')).toEqual({ ok: false, reason: 'invalid' });
      // The next failure doubles the wait.
      expect(await reg.check('cam-2', 'guess', '10.0.0.66')).toMatchObject({ reason: 'throttled', retryAfterMs: 2000 });
    });
  });

  it('slow a name under attack from many addresses only briefly, and never its known-good credentials', async () => {
    await withRegistry({}, async (reg, clock) => {
      const { secret } = await reg.register('cam-1');
      expect(await reg.check('cam-1', secret, '10.0.0.7')).toEqual({ ok: true });
      for (let i = 0; i < 40; i++) await reg.check('cam-1', `guess-${i}`, `192.0.2.${i}`);
      // The name waits (at most 10 s), but the device's verified secret passes at once.
      expect(await reg.check('cam-1', 'another-guess', '198.51.100.1')).toMatchObject({ ok: false, reason: 'throttled' });
      expect(await reg.check('cam-1', secret, '10.0.0.7')).toEqual({ ok: true });
      const waited = await reg.check('cam-1', 'x', '198.51.100.2');
      expect(waited.ok === false && waited.reason === 'throttled' && waited.retryAfterMs).toBeLessThanOrEqual(10_000);
      clock.advance(10_000);
      expect(await reg.check('cam-1', 'x', '198.51.100.3')).toEqual({ ok: false, reason: 'invalid' });
    });
  });

  it('hash a bounded number at once and refuse the overflow as busy', async () => {
    await withRegistry({ maxConcurrentHashes: 1, maxQueuedHashes: 1, loginThrottle: { freeFailures: 1000 } }, async (reg) => {
      await reg.register('cam-1');
      const verdicts = await Promise.all(Array.from({ length: 6 }, (_, i) => reg.check('cam-1', `guess-${i}`, `192.0.2.${i}`)));
      const reasons = verdicts.map((v) => (v.ok ? 'ok' : v.reason));
      expect(reasons.filter((r) => r === 'invalid').length).toBeGreaterThanOrEqual(2);
      expect(reasons).toContain('busy');
    });
  });
});
