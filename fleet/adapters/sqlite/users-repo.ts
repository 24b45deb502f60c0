import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { StoredUser, User, UsersRepo } from '../../app/users.js';

/** API users in the `users` table (token hashes only). */
export function sqliteUsersRepo(db: FleetDb): UsersRepo {
  const s = db.sqlite;
  const upsert = s.prepare<[string, string, string, number]>(
    'INSERT INTO users (name, role, token_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash',
  );
  const byHash = s.prepare<[string], StoredUser>('SELECT name, role, token_hash FROM users WHERE token_hash = ?');
  const list = s.prepare<[], User>('SELECT name, role FROM users ORDER BY name');
  const count = s.prepare<[], number>('SELECT count(*) FROM users').pluck();
  return guarded('users', {
    upsert: (u) => void upsert.run(u.name, u.role, u.token_hash, u.created_at),
    findByTokenHash: (hash) => byHash.get(hash) ?? null,
    list: () => list.all(),
    count: () => count.get() as number,
  } satisfies UsersRepo);
}
