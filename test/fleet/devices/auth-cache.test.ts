import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { VerifiedSecrets, newSecret } from '../../../fleet/app/devices/credentials.js';
import { DeviceRegistry } from '../../../fleet/app/devices/registry.js';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { sqliteDevicesRepo } from '../../../fleet/adapters/sqlite/devices-repo.js';
import { tempDir } from '../../helpers/packages.js';

const FAST = { N: 1024, r: 8, p: 1 };

function registry(path: string, authCacheSize?: number): { reg: DeviceRegistry; close(): void } {
  const db = openFleetDb({ path });
  return { reg: new DeviceRegistry({ repo: sqliteDevicesRepo(db), clock: db.clock, scrypt: FAST, ...(authCacheSize === undefined ? {} : { authCacheSize }) }), close: () => db.close() };
}

describe('cache of verified device secrets', () => {
  it('serves a reconnect with the same secret from the cache; a wrong secret is never cached', async () => {
    const t = tempDir('edgeloop-authcache-');
    const { reg, close } = registry(join(t.dir, 'fleet.db'));
    try {
      const { secret } = await reg.register('cam-1');
      expect(await reg.authenticate('cam-1', 'wrong')).toBe(false);
      expect(reg.authCache.stats()).toMatchObject({ hits: 0, size: 0 });
      expect(await reg.authenticate('cam-1', secret)).toBe(true);
      expect(reg.authCache.stats()).toMatchObject({ hits: 0, size: 1 });
      expect(await reg.authenticate('cam-1', secret)).toBe(true);
      expect(await reg.authenticateToken(`cam-1.${secret}`)).toBe('cam-1');
      expect(reg.authCache.stats()).toMatchObject({ hits: 2, size: 1 });
      // A cached device still refuses any other secret.
      expect(await reg.authenticate('cam-1', secret.slice(0, -1))).toBe(false);
      expect(await reg.authenticate('cam-1', 'wrong')).toBe(false);
      expect(reg.authCache.stats().hits).toBe(2);
      // ...and another device's secret is not this device's.
      const other = await reg.register('cam-2');
      expect(await reg.authenticate('cam-1', other.secret)).toBe(false);
    } finally {
      close();
      t.cleanup();
    }
  });

  it('a rotated secret stops working at once, also when another connection rotated it', async () => {
    const t = tempDir('edgeloop-authcache-');
    const path = join(t.dir, 'fleet.db');
    const a = registry(path);
    const b = registry(path);
    try {
      const { secret } = await a.reg.register('cam-1');
      expect(await a.reg.authenticate('cam-1', secret)).toBe(true);
      expect(await a.reg.authenticate('cam-1', secret)).toBe(true);
      // Rotated in this registry: forgotten at once.
      const { secret: second } = await a.reg.rotateSecret('cam-1');
      expect(a.reg.authCache.size).toBe(0);
      expect(await a.reg.authenticate('cam-1', secret)).toBe(false);
      expect(await a.reg.authenticate('cam-1', second)).toBe(true);
      expect(await a.reg.authenticate('cam-1', second)).toBe(true);
      // Rotated by another process on the same database (the CLI): the stored hash differs, no hit.
      const { secret: third } = await b.reg.rotateSecret('cam-1');
      expect(await a.reg.authenticate('cam-1', second)).toBe(false);
      expect(await a.reg.authenticate('cam-1', third)).toBe(true);
    } finally {
      a.close();
      b.close();
      t.cleanup();
    }
  });

  it('a removed device is refused although its secret was cached', async () => {
    const t = tempDir('edgeloop-authcache-');
    const path = join(t.dir, 'fleet.db');
    const a = registry(path);
    const b = registry(path);
    try {
      const one = await a.reg.register('cam-1');
      const two = await a.reg.register('cam-2');
      expect(await a.reg.authenticate('cam-1', one.secret)).toBe(true);
      expect(await a.reg.authenticate('cam-2', two.secret)).toBe(true);
      a.reg.remove('cam-1');
      expect(await a.reg.authenticate('cam-1', one.secret)).toBe(false);
      b.reg.remove('cam-2');
      expect(await a.reg.authenticate('cam-2', two.secret)).toBe(false);
    } finally {
      a.close();
      b.close();
      t.cleanup();
    }
  });

  it('is bounded: the least recently used device is evicted; size 0 disables it', async () => {
    const c = new VerifiedSecrets(3);
    const s = ['a', 'b', 'c', 'd'].map(() => newSecret());
    c.add('a', s[0]!, 'h-a');
    c.add('b', s[1]!, 'h-b');
    c.add('c', s[2]!, 'h-c');
    expect(c.has('a', s[0]!, 'h-a')).toBe(true); // a is now the most recent
    c.add('d', s[3]!, 'h-d');
    expect(c.size).toBe(3);
    expect(c.has('b', s[1]!, 'h-b')).toBe(false);
    expect(c.has('a', s[0]!, 'h-a')).toBe(true);
    expect(c.has('d', s[3]!, 'h-d')).toBe(true);
    expect(c.has('d', s[3]!, 'h-other')).toBe(false);

    const t = tempDir('edgeloop-authcache-');
    const { reg, close } = registry(join(t.dir, 'fleet.db'), 0);
    try {
      const { secret } = await reg.register('cam-1');
      expect(await reg.authenticate('cam-1', secret)).toBe(true);
      expect(await reg.authenticate('cam-1', secret)).toBe(true);
      expect(reg.authCache.stats()).toMatchObject({ hits: 0, size: 0 });
    } finally {
      close();
      t.cleanup();
    }
  });
});
