import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { FleetError } from '../errors.js';
import type { FleetDb } from '../adapters/sqlite/db.js';

export const ROLES = ['admin', 'operator', 'labeler', 'viewer'] as const;
export const role = z.enum(ROLES);
export type Role = z.infer<typeof role>;

/**
 * What each role may do. admin: everything, including users and devices; operator: models,
 * rollouts, devices; labeler: samples and labels, datasets; viewer: read only.
 */
export type Permission = 'read' | 'label' | 'models' | 'rollouts' | 'devices' | 'admin';
const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'label', 'models', 'rollouts', 'devices', 'admin'],
  operator: ['read', 'models', 'rollouts', 'devices'],
  labeler: ['read', 'label'],
  viewer: ['read'],
};

export function allowed(r: Role, p: Permission): boolean {
  return GRANTS[r].includes(p);
}

export interface User {
  name: string;
  role: Role;
}

// Tokens are 256 random bits: a fast hash is enough (no password to brute-force).
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** API users with bearer tokens; only token hashes are stored. */
export class Users {
  constructor(private readonly db: FleetDb) {}

  /** Create a user (or replace its token) and return the new token once. */
  issue(name: string, r: Role): { user: User; token: string } {
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) throw new FleetError('INPUT_INVALID', `user name ${name} is not allowed`);
    const token = `elt_${randomBytes(32).toString('base64url')}`;
    this.db.sqlite
      .prepare('INSERT INTO users (name, role, token_hash, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET role = excluded.role, token_hash = excluded.token_hash')
      .run(name, r, hashToken(token), this.db.clock.now());
    return { user: { name, role: r }, token };
  }

  /** The user a bearer token belongs to, or AUTH_FAILED. */
  authenticate(token: string | undefined): User {
    if (!token) throw new FleetError('AUTH_FAILED', 'a bearer token is required');
    const row = this.db.sqlite.prepare('SELECT name, role, token_hash FROM users WHERE token_hash = ?').get(hashToken(token)) as { name: string; role: Role; token_hash: string } | undefined;
    if (!row || !timingSafeEqual(Buffer.from(row.token_hash), Buffer.from(hashToken(token)))) throw new FleetError('AUTH_FAILED', 'the bearer token is not valid');
    return { name: row.name, role: row.role };
  }

  list(): User[] {
    return this.db.sqlite.prepare('SELECT name, role FROM users ORDER BY name').all() as User[];
  }

  count(): number {
    return (this.db.sqlite.prepare('SELECT count(*) AS n FROM users').get() as { n: number }).n;
  }
}
