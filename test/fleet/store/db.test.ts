import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { openFleetDb } from '../../../fleet/adapters/sqlite/db.js';
import { MIGRATIONS } from '../../../fleet/adapters/sqlite/migrations.js';
import { tempDir } from '../../helpers/packages.js';

describe('fleet database', () => {
  it('opens with WAL, synchronous=FULL, foreign keys and a busy timeout, at the latest schema', () => {
    const t = tempDir('edgeloop-fleetdb-');
    try {
      const db = openFleetDb({ path: join(t.dir, 'fleet.db') });
      expect(db.sqlite.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.sqlite.pragma('synchronous', { simple: true })).toBe(2); // FULL
      expect(db.sqlite.pragma('foreign_keys', { simple: true })).toBe(1);
      expect(db.sqlite.pragma('busy_timeout', { simple: true })).toBe(5000);
      expect(db.sqlite.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      db.close();
      // Reopening runs no migration again.
      const again = openFleetDb({ path: join(t.dir, 'fleet.db') });
      expect(again.sqlite.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length);
      again.close();
    } finally {
      t.cleanup();
    }
  });

  it('refuses a database written by a newer fleet and leaves it untouched', () => {
    const t = tempDir('edgeloop-fleetdb-');
    try {
      const path = join(t.dir, 'fleet.db');
      const raw = new Database(path);
      raw.pragma(`user_version = ${MIGRATIONS.length + 1}`);
      raw.close();
      expect(() => openFleetDb({ path })).toThrow(expect.objectContaining({ code: 'FLEET_STORAGE_FAILED' }));
      const check = new Database(path);
      expect(check.pragma('user_version', { simple: true })).toBe(MIGRATIONS.length + 1);
      check.close();
    } finally {
      t.cleanup();
    }
  });

  it('fails with FLEET_STORAGE_FAILED when the file cannot be opened', () => {
    expect(() => openFleetDb({ path: '/nonexistent-dir/edgeloop/fleet.db' })).toThrow(expect.objectContaining({ code: 'FLEET_STORAGE_FAILED' }));
  });
});
