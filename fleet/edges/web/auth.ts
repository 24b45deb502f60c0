import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { allowed } from '../../app/users.js';
import type { Permission, User } from '../../app/users.js';
import type { FleetContext } from '../../app/context.js';
import { FleetError } from '../../errors.js';

/**
 * Who may call a route. `device_or_user`: a device token (`<id>.<secret>`) or a user whose
 * role has `read`: what agents fetch, and what a person may download to look at.
 */
export type Access = { kind: 'public' } | { kind: 'user'; permission: Permission } | { kind: 'device_or_user' };

/** The authenticated caller. */
export type Principal = { kind: 'anonymous' } | { kind: 'user'; user: User } | { kind: 'device'; deviceId: string };

/** The console's session cookie: a random session id (server-side session, see Users.startSession). */
const SESSION_COOKIE = 'edgeloop_session';

/** The header the console's script sends on writes: the session's CSRF token (from the page's meta tag). */
const CSRF_HEADER = 'x-edgeloop-csrf';

/** The token of `Authorization: Bearer <token>`, or null. */
export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  return m ? (m[1] as string) : null;
}

/** The session id of the console's cookie, or null. */
export function sessionCookie(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === SESSION_COOKIE) {
      const v = part.slice(i + 1).trim();
      return /^[A-Za-z0-9_-]{1,128}$/.test(v) ? v : null;
    }
  }
  return null;
}

/**
 * The `Set-Cookie` value for a session (empty value and age 0: delete it). `Secure` when the
 * console is served over TLS, so the browser never sends the session over plain HTTP.
 */
export function sessionCookieHeader(value: string, maxAgeS: number, secure: boolean): string {
  return `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeS))}${secure ? '; Secure' : ''}`;
}

/**
 * Whether the console is served over TLS: the socket itself, or a TLS-terminating proxy in
 * front saying so (`X-Forwarded-Proto: https`). Trusting the header is safe here because it
 * can only add `Secure` to a cookie, never remove it.
 */
export function isTls(req: IncomingMessage): boolean {
  if ((req.socket as { encrypted?: boolean }).encrypted === true) return true;
  const proto = req.headers['x-forwarded-proto'];
  return typeof proto === 'string' && proto.split(',')[0]?.trim().toLowerCase() === 'https';
}

const sameSecret = (a: string, b: string): boolean => {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
};

/**
 * The user of a console session, or null without a cookie. A cookie authorises reads (GET,
 * HEAD: pages, sample images, JSON reads); a write also needs the session's CSRF token in
 * {@link CSRF_HEADER}, which only a page of this console can read (SameSite=Strict already
 * keeps the cookie off other sites' requests; the header is the second lock). Throws
 * `FLEET_AUTH_FAILED` for an unknown, expired or revoked session, or a write without the token.
 */
export function sessionUser(ctx: FleetContext, req: IncomingMessage): { user: User; csrf: string } | null {
  const id = sessionCookie(req);
  if (!id) return null;
  const s = ctx.users.session(id);
  if (!s) throw new FleetError('AUTH_FAILED', 'the console session has ended; log in again');
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    const sent = req.headers[CSRF_HEADER];
    if (typeof sent !== 'string' || !sameSecret(sent, s.csrf)) throw new FleetError('AUTH_FAILED', `a write with the console session needs the ${CSRF_HEADER} header (or an Authorization: Bearer token)`);
  }
  return { user: s.user, csrf: s.csrf };
}

/**
 * Device tokens are `<device id>.<secret>`; user tokens are `elt_` + base64url, which has no
 * `.`. So the token itself says which registry to ask.
 */
const isDeviceToken = (token: string): boolean => token.includes('.');

/**
 * The user a request comes from (no permission check): a bearer token, else the console's
 * session cookie. Throws `FLEET_AUTH_FAILED`.
 */
function authenticateUser(ctx: FleetContext, req: IncomingMessage): User {
  const token = bearerToken(req);
  if (token) return ctx.users.authenticate(token);
  const s = sessionUser(ctx, req);
  if (!s) throw new FleetError('AUTH_FAILED', 'a bearer token is required (Authorization: Bearer <token>)');
  return s.user;
}

/**
 * Authenticate and authorise a request for a route. Throws `FLEET_AUTH_FAILED` (401: no
 * token, or not a valid one) or `FLEET_FORBIDDEN` (403: valid, but the role may not).
 */
export async function authorize(ctx: FleetContext, req: IncomingMessage, access: Access): Promise<Principal> {
  if (access.kind === 'public') return { kind: 'anonymous' };
  const token = bearerToken(req);
  if (access.kind === 'device_or_user' && token && isDeviceToken(token)) {
    return { kind: 'device', deviceId: await ctx.devices.authenticateToken(token, req.socket.remoteAddress ?? 'unknown') };
  }
  const user = authenticateUser(ctx, req);
  const permission = access.kind === 'user' ? access.permission : 'read';
  if (!allowed(user.role, permission)) {
    throw new FleetError('FORBIDDEN', `role ${user.role} does not have the ${permission} permission`, { details: { user: user.name, role: user.role, permission } });
  }
  return { kind: 'user', user };
}

export function actorOf(p: Principal): string {
  if (p.kind === 'user') return p.user.name;
  if (p.kind === 'device') return `device:${p.deviceId}`;
  return 'anonymous';
}
