import { auditQuery } from '../../../app/audit.js';
import { route } from '../router.js';
import type { Route } from '../router.js';
import { addUserBody, addUserResponse, auditPage, userInfo, userList, userParams } from '../schemas.js';

/** People and roles (admin only), and the audit log (admin, operator). */
export const userRoutes: Route[] = [
  route({
    method: 'GET',
    path: '/v1/users',
    tag: 'users',
    summary: 'Every user: role, expiry, whether revoked (never a token)',
    access: { kind: 'user', permission: 'admin' },
    response: userList,
    handler: ({ ctx }) => ({ json: { items: ctx.users.list() } }),
  }),
  route({
    method: 'POST',
    path: '/v1/users',
    tag: 'users',
    summary: 'Add a user with a role; its token is in the answer, once',
    description:
      'Only the token\'s sha256 is stored. `expires_in_s` bounds its life (absent: it never expires). A name held by an active user is refused (`FLEET_USER_EXISTS`, 409): revoke it first; a revoked or expired user\'s name may be given again.',
    access: { kind: 'user', permission: 'admin' },
    body: addUserBody,
    success: 201,
    response: addUserResponse,
    handler: ({ ctx, body, actor }) => ({ status: 201, json: ctx.users.issue(body.name, body.role, { actor, ...(body.expires_in_s ? { expiresInMs: body.expires_in_s * 1000 } : {}) }) }),
  }),
  route({
    method: 'POST',
    path: '/v1/users/:name/revoke',
    tag: 'users',
    summary: 'Revoke a user: its token and every console session end at once',
    access: { kind: 'user', permission: 'admin' },
    params: userParams,
    response: userInfo,
    handler: ({ ctx, params, actor }) => ({ json: ctx.users.revoke(params.name, { actor }) }),
  }),
  route({
    method: 'GET',
    path: '/v1/audit',
    tag: 'users',
    summary: 'Who did what, newest first: pushes, rollouts and their commands, labels, user changes',
    description: 'Paged: pass the answer\'s `next_before` as `before` for older entries.',
    access: { kind: 'user', permission: 'audit' },
    query: auditQuery,
    response: auditPage,
    handler: ({ ctx, query }) => ({ json: ctx.audit.list(query) }),
  }),
];
