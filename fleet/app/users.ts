import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Clock } from '../../shared/ids.js';
import { FleetError } from '../errors.js';
import type { Audit } from './audit.js';

export const ROLES = ['admin', 'operator', 'labeler', 'viewer'] as const;
export const role = z.enum(ROLES);
export type Role = z.infer<typeof role>;

/**
 * What each role may do. admin: everything, including users and devices; operator: models,
 * rollouts, devices, acknowledging and resolving alerts; labeler: samples and labels, datasets; viewer: read only. `audit`: read
 * the audit log (admin and operator).
 */
export type Permission = 'read' | 'label' | 'models' | 'rollouts' | 'devices' | 'audit' | 'alerts' | 'admin';
const GRANTS: Record<Role, readonly Permission[]> = {
  admin: ['read', 'label', 'models', 'rollouts', 'devices', 'audit', 'alerts', 'admin'],
  operator: ['read', 'models', 'rollouts', 'devices', 'audit', 'alerts'],
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

/** A user as stored: only the hash of its token; times in epoch ms, null for never. */
export interface StoredUser extends User {
  token_hash: string;
  created_at: number;
  created_by: string | null;
  expires_at: number | null;
  revoked_at: number | null;
}

/** A user as the API and the CLI list it (never its token). Times are ISO strings. */
export interface UserInfo extends User {
  created_at: string;
  created_by: string | null;
  expires_at: string | null;
  revoked_at: string | null;
  /** Neither revoked nor expired: its token and sessions authenticate. */
  active: boolean;
}

/** A console session as stored: the sha256 of its id, never the id. */
export interface StoredSession {
  id_hash: string;
  user_name: string;
  csrf: string;
  created_at: number;
  expires_at: number;
}

/**
 * Where users and console sessions live (the `users` and `sessions` tables of the fleet
 * database). Failures throw `FLEET_STORAGE_FAILED`; lookups that can miss return null.
 */
export interface UsersRepo {
  /** Create the user, or replace the row of a revoked one with this name (new token, role, expiry). */
  put(u: StoredUser): void;
  find(name: string): StoredUser | null;
  /** The user whose token hashes to `tokenHash`, or null. */
  findByTokenHash(tokenHash: string): StoredUser | null;
  /** Every user, by name. */
  list(): StoredUser[];
  count(): number;
  /** Mark the user revoked at `at` and delete its sessions, atomically; the number of sessions ended. */
  revoke(name: string, at: number): number;
  addSession(s: StoredSession): void;
  /** The session with this id hash and its user, or null. */
  findSession(idHash: string): { session: StoredSession; user: StoredUser } | null;
  /** true when there was one. */
  deleteSession(idHash: string): boolean;
  /** Delete sessions that expired before `now`; how many. */
  deleteExpiredSessions(now: number): number;
}

// Tokens and session ids are 256 random bits: a fast hash is enough (no password to brute-force).
const hashToken = (token: string): string => createHash('sha256').update(token).digest('hex');

const NAME_RE = /^[A-Za-z0-9._@-]{1,64}$/;
const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A console session as {@link Users.startSession} made it: `id` goes into the cookie, `csrf` into the page. */
export interface Session {
  id: string;
  csrf: string;
  user: User;
  expires_at: number;
}

export interface UsersOptions {
  repo: UsersRepo;
  clock: Clock;
  /** Where user changes are recorded (who added or revoked whom). */
  audit?: Audit;
  /** Refused tokens and sessions (revoked, expired) and user changes. */
  log?: Logger;
  /** Console session lifetime, ms. Default 12 h (a working day); never past the user's own expiry. */
  sessionTtlMs?: number;
}

/**
 * People and programs using the API: named users with a role and a bearer token that may
 * expire and can be revoked (only its sha256 is stored), and the console's server-side
 * sessions. Revoking a user ends its token and every session at once.
 */
export class Users {
  private readonly repo: UsersRepo;
  private readonly clock: Clock;
  private readonly audit: Audit | undefined;
  private readonly log: Logger | undefined;
  readonly sessionTtlMs: number;

  constructor(o: UsersOptions) {
    this.repo = o.repo;
    this.clock = o.clock;
    this.audit = o.audit;
    this.log = o.log;
    this.sessionTtlMs = o.sessionTtlMs ?? 12 * 3600_000;
  }

  /**
   * Create a user and return its token, once (only the hash is kept). `expiresInMs` bounds the
   * token's life (default: never). A name held by an active user is refused with
   * `FLEET_USER_EXISTS` (a token is never replaced behind its owner's back: revoke first); a
   * revoked or expired user's name may be given again.
   */
  issue(name: string, r: Role, o: { actor?: string; expiresInMs?: number } = {}): { user: UserInfo; token: string } {
    if (!NAME_RE.test(name)) throw new FleetError('INPUT_INVALID', `user name ${name} is not allowed (letters, digits and . _ @ -, at most 64)`);
    if (o.expiresInMs !== undefined && !(o.expiresInMs > 0)) throw new FleetError('INPUT_INVALID', 'a token expiry must be in the future');
    const now = this.clock.now();
    const existing = this.repo.find(name);
    if (existing && this.isActive(existing, now)) throw new FleetError('USER_EXISTS', `user ${name} exists; revoke it first to issue a new token`, { details: { name } });
    const token = `elt_${randomBytes(32).toString('base64url')}`;
    const actor = o.actor ?? 'system';
    const row: StoredUser = { name, role: r, token_hash: hashToken(token), created_at: now, created_by: actor, expires_at: o.expiresInMs === undefined ? null : now + o.expiresInMs, revoked_at: null };
    this.repo.put(row);
    this.log?.info({ user: name, role: r, expires_at: iso(row.expires_at), actor }, 'user added');
    this.audit?.record({ actor, action: 'user.add', target: name, details: { role: r, expires_at: iso(row.expires_at), replaced: existing !== null } });
    return { user: this.info(row, now), token };
  }

  /**
   * Revoke a user: its token stops authenticating and its console sessions end, at once.
   * Throws `FLEET_USER_NOT_FOUND`. Revoking a revoked user changes nothing.
   */
  revoke(name: string, o: { actor: string }): UserInfo {
    const row = this.repo.find(name);
    if (!row) throw new FleetError('USER_NOT_FOUND', `no user ${name}`, { details: { name } });
    const now = this.clock.now();
    if (row.revoked_at === null) {
      const sessions = this.repo.revoke(name, now);
      this.log?.info({ user: name, actor: o.actor, sessions_ended: sessions }, 'user revoked');
      this.audit?.record({ actor: o.actor, action: 'user.revoke', target: name, details: { sessions_ended: sessions } });
    }
    return this.info(this.repo.find(name) as StoredUser, now);
  }

  /**
   * The user a bearer token belongs to; null when no active user has it (unknown, revoked or
   * expired: the reason is logged, never told to the caller). A storage failure throws
   * `FLEET_STORAGE_FAILED`: it is not the same as "not logged in".
   */
  find(token: string): User | null {
    const hash = hashToken(token);
    const row = this.repo.findByTokenHash(hash);
    if (!row || !timingSafeEqual(Buffer.from(row.token_hash), Buffer.from(hash))) return null;
    return this.usable(row, 'token');
  }

  /** The user a bearer token belongs to, or AUTH_FAILED. */
  authenticate(token: string | undefined): User {
    if (!token) throw new FleetError('AUTH_FAILED', 'a bearer token is required');
    const user = this.find(token);
    if (!user) throw new FleetError('AUTH_FAILED', 'the bearer token is not valid');
    return user;
  }

  /**
   * Log in to the console: a new session for the user a token belongs to (AUTH_FAILED when
   * none), with a random id for the cookie and a CSRF token for the page's script. Expired
   * sessions are swept here, so the table holds only live ones plus a day's worth at most.
   */
  startSession(token: string): Session {
    const user = this.authenticate(token);
    const row = this.repo.find(user.name) as StoredUser;
    const now = this.clock.now();
    this.repo.deleteExpiredSessions(now);
    const id = randomBytes(32).toString('base64url');
    const csrf = randomBytes(24).toString('base64url');
    const expires_at = Math.min(now + this.sessionTtlMs, row.expires_at ?? Infinity);
    this.repo.addSession({ id_hash: hashToken(id), user_name: user.name, csrf, created_at: now, expires_at });
    this.log?.info({ user: user.name, expires_at: iso(expires_at) }, 'console session started');
    return { id, csrf, user, expires_at };
  }

  /** The live session with this cookie id, or null (unknown, expired, or its user revoked or expired). */
  session(id: string): Session | null {
    const idHash = hashToken(id);
    const found = this.repo.findSession(idHash);
    if (!found) return null;
    const now = this.clock.now();
    if (found.session.expires_at <= now) {
      this.repo.deleteSession(idHash);
      this.log?.info({ user: found.user.name }, 'console session refused: expired');
      return null;
    }
    const user = this.usable(found.user, 'session');
    return user ? { id, csrf: found.session.csrf, user, expires_at: found.session.expires_at } : null;
  }

  /** Log out: the session ends on the server (the cookie alone no longer works). */
  endSession(id: string): boolean {
    return this.repo.deleteSession(hashToken(id));
  }

  list(): UserInfo[] {
    const now = this.clock.now();
    return this.repo.list().map((u) => this.info(u, now));
  }

  count(): number {
    return this.repo.count();
  }

  private isActive(u: StoredUser, now: number): boolean {
    return u.revoked_at === null && (u.expires_at === null || u.expires_at > now);
  }

  private usable(row: StoredUser, what: 'token' | 'session'): User | null {
    if (this.isActive(row, this.clock.now())) return { name: row.name, role: row.role };
    this.log?.warn({ user: row.name, reason: row.revoked_at !== null ? 'revoked' : 'expired' }, `${what} refused: user ${row.revoked_at !== null ? 'revoked' : 'expired'}`);
    return null;
  }

  private info(u: StoredUser, now: number): UserInfo {
    return {
      name: u.name,
      role: u.role,
      created_at: iso(u.created_at) as string,
      created_by: u.created_by,
      expires_at: iso(u.expires_at),
      revoked_at: iso(u.revoked_at),
      active: this.isActive(u, now),
    };
  }
}
