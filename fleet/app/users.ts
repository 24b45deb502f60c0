import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../../shared/ids.js';
import { FleetError } from '../errors.js';

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

/** A user as stored: only the hash of its token. */
export interface StoredUser extends User {
  token_hash: string;
}

/** Where users live (the `users` table of the fleet database). Failures throw `FLEET_STORAGE_FAILED`. */
export interface UsersRepo {
  /** Create the user, or replace the role and token hash of the one with this name. */
  upsert(u: StoredUser & { created_at: number }): void;
  /** The user whose token hashes to `tokenHash`, or null. */
  findByTokenHash(tokenHash: string): StoredUser | null;
  /** Every user, by name. */
  list(): User[];
  count(): number;
}

// Tokens are 256 random bits: a fast hash is enough (no password to brute-force).
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

/** API users with bearer tokens; only token hashes are stored. */
export class Users {
  private readonly repo: UsersRepo;
  private readonly clock: Clock;

  constructor(o: { repo: UsersRepo; clock: Clock }) {
    this.repo = o.repo;
    this.clock = o.clock;
  }

  /** Create a user (or replace its token) and return the new token once. */
  issue(name: string, r: Role): { user: User; token: string } {
    if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) throw new FleetError('INPUT_INVALID', `user name ${name} is not allowed`);
    const token = `elt_${randomBytes(32).toString('base64url')}`;
    this.repo.upsert({ name, role: r, token_hash: hashToken(token), created_at: this.clock.now() });
    return { user: { name, role: r }, token };
  }

  /**
   * The user a bearer token belongs to; null when no user has it. A storage failure throws
   * `FLEET_STORAGE_FAILED`: it is not the same as "not logged in".
   */
  find(token: string): User | null {
    const hash = hashToken(token);
    const row = this.repo.findByTokenHash(hash);
    if (!row || !timingSafeEqual(Buffer.from(row.token_hash), Buffer.from(hash))) return null;
    return { name: row.name, role: row.role };
  }

  /** The user a bearer token belongs to, or AUTH_FAILED. */
  authenticate(token: string | undefined): User {
    if (!token) throw new FleetError('AUTH_FAILED', 'a bearer token is required');
    const user = this.find(token);
    if (!user) throw new FleetError('AUTH_FAILED', 'the bearer token is not valid');
    return user;
  }

  list(): User[] {
    return this.repo.list();
  }

  count(): number {
    return this.repo.count();
  }
}
