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

/** The console's session cookie: the same bearer token, set by the login form. */
export const TOKEN_COOKIE = 'edgeloop_token';

/** The token of `Authorization: Bearer <token>`, or null. */
export function bearerToken(req: IncomingMessage): string | null {
  const h = req.headers.authorization;
  if (!h) return null;
  const m = /^Bearer[ ]+(\S+)\s*$/i.exec(h);
  return m ? (m[1] as string) : null;
}

export function cookieToken(req: IncomingMessage): string | null {
  const header = req.headers.cookie;
  if (!header) return null;
  for (const part of header.split(';')) {
    const i = part.indexOf('=');
    if (i > 0 && part.slice(0, i).trim() === TOKEN_COOKIE) {
      const v = part.slice(i + 1).trim();
      try {
        return v ? decodeURIComponent(v) : null;
      } catch {
        return null;
      }
    }
  }
  return null;
}

/**
 * The token a request carries. The cookie counts for reads only (GET): pages, sample images,
 * JSON reads. Every write needs the Authorization header, which a page on another site cannot
 * make a browser send, so the cookie cannot be used for cross-site request forgery.
 */
export function requestToken(req: IncomingMessage): string | null {
  const b = bearerToken(req);
  if (b) return b;
  return req.method === 'GET' || req.method === 'HEAD' ? cookieToken(req) : null;
}

/**
 * Device tokens are `<device id>.<secret>`; user tokens are `elt_` + base64url, which has no
 * `.`. So the token itself says which registry to ask.
 */
const isDeviceToken = (token: string): boolean => token.includes('.');

/** The user behind a token (no permission check). Throws `FLEET_AUTH_FAILED`. */
export function authenticateUser(ctx: FleetContext, token: string | null): User {
  if (!token) throw new FleetError('AUTH_FAILED', 'a bearer token is required (Authorization: Bearer <token>)');
  return ctx.users.authenticate(token);
}

/**
 * Authenticate and authorise a request for a route. Throws `FLEET_AUTH_FAILED` (401: no
 * token, or not a valid one) or `FLEET_FORBIDDEN` (403: valid, but the role may not).
 */
export async function authorize(ctx: FleetContext, req: IncomingMessage, access: Access): Promise<Principal> {
  if (access.kind === 'public') return { kind: 'anonymous' };
  const token = requestToken(req);
  if (access.kind === 'device_or_user' && token && isDeviceToken(token)) {
    return { kind: 'device', deviceId: await ctx.devices.authenticateToken(token, req.socket.remoteAddress ?? 'unknown') };
  }
  const user = authenticateUser(ctx, token);
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
