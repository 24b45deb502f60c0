import type { FleetDb } from './db.js';
import { guarded } from './guard.js';
import type { StoredSession, StoredUser, UsersRepo } from '../../app/users.js';

const USER_COLUMNS = 'name, role, token_hash, created_at, created_by, expires_at, revoked_at';

/** API users in the `users` table (token hashes only) and console sessions in `sessions` (id hashes only). */
export function sqliteUsersRepo(db: FleetDb): UsersRepo {
  const s = db.sqlite;
  const put = s.prepare<StoredUser>(
    `INSERT INTO users (${USER_COLUMNS}) VALUES (@name, @role, @token_hash, @created_at, @created_by, @expires_at, @revoked_at)
     ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash, created_at = excluded.created_at,
       created_by = excluded.created_by, expires_at = excluded.expires_at, revoked_at = excluded.revoked_at`,
  );
  const byName = s.prepare<[string], StoredUser>(`SELECT ${USER_COLUMNS} FROM users WHERE name = ?`);
  const byHash = s.prepare<[string], StoredUser>(`SELECT ${USER_COLUMNS} FROM users WHERE token_hash = ?`);
  const list = s.prepare<[], StoredUser>(`SELECT ${USER_COLUMNS} FROM users ORDER BY name`);
  const count = s.prepare<[], number>('SELECT count(*) FROM users').pluck();
  const markRevoked = s.prepare<[number, string]>('UPDATE users SET revoked_at = ? WHERE name = ?');
  const endSessionsOf = s.prepare<[string]>('DELETE FROM sessions WHERE user_name = ?');
  const addSession = s.prepare<StoredSession>('INSERT INTO sessions (id_hash, user_name, csrf, created_at, expires_at) VALUES (@id_hash, @user_name, @csrf, @created_at, @expires_at)');
  const session = s.prepare<[string], StoredSession>('SELECT id_hash, user_name, csrf, created_at, expires_at FROM sessions WHERE id_hash = ?');
  const deleteSession = s.prepare<[string]>('DELETE FROM sessions WHERE id_hash = ?');
  const deleteExpired = s.prepare<[number]>('DELETE FROM sessions WHERE expires_at <= ?');
  const revoke = s.transaction((name: string, at: number): number => {
    markRevoked.run(at, name);
    return endSessionsOf.run(name).changes;
  });
  return guarded('users', {
    put: (u) => void put.run(u),
    find: (name) => byName.get(name) ?? null,
    findByTokenHash: (hash) => byHash.get(hash) ?? null,
    list: () => list.all(),
    count: () => count.get() as number,
    revoke: (name, at) => revoke.immediate(name, at),
    addSession: (row) => void addSession.run(row),
    findSession: (idHash) => {
      const row = session.get(idHash);
      const user = row ? byName.get(row.user_name) : undefined;
      return row && user ? { session: row, user } : null;
    },
    deleteSession: (idHash) => deleteSession.run(idHash).changes > 0,
    deleteExpiredSessions: (now) => deleteExpired.run(now).changes,
  } satisfies UsersRepo);
}
