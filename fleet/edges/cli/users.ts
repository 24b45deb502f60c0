import { ROLES, role } from '../../app/users.js';
import { parseDuration } from './args.js';
import { apiCommand, group, positionalsOf, usage } from './common.js';
import { table } from './format.js';

export const USERS_HELP = `Usage: edgeloop users COMMAND   (admin only)

  add NAME --role ROLE [--expires 30d]   create a user; prints its API token once
  list                                    users: role, expiry, revoked or active
  revoke NAME                             end the user's token and console sessions at once
  audit [--actor NAME] [--limit N] [--before SEQ]   who did what, newest first

Roles: admin (everything, users included), operator (models, rollouts, devices, audit),
labeler (samples, labels, datasets), viewer (read only).

Run 'edgeloop users COMMAND --help' for a command's options.`;

const ADD_HELP = `Usage: edgeloop users add NAME --role admin|operator|labeler|viewer [--expires DURATION]

Creates the user and prints its API token, once: only its sha256 is stored, so a lost token
is replaced by revoking the user and adding it again. The token logs in to the web console
too (the console keeps a server-side session, never the token).

  --role ROLE         ${ROLES.join(', ')}
  --expires DURATION  the token stops working after this long (30d, 12h, 90m); default never`;

const LIST_HELP = `Usage: edgeloop users list`;
const REVOKE_HELP = `Usage: edgeloop users revoke NAME

Revokes the user: its API token stops working and its console sessions end, at once. The
name stays in the audit log; adding the user again issues a new token.`;
const AUDIT_HELP = `Usage: edgeloop users audit [--actor NAME] [--limit N] [--before SEQ]

The audit log, newest first: model pushes, rollouts and their commands, labels, user changes.
--before takes the NEXT value printed under a page, for older entries. (admin, operator)`;

const add = apiCommand(ADD_HELP, { role: { type: 'string' }, expires: { type: 'string' } }, async (c) => {
  const [name] = positionalsOf(c.positionals, ['NAME'], ADD_HELP) as [string];
  const r = role.safeParse(c.values.role);
  if (!r.success) throw usage(`--role is one of ${ROLES.join(', ')}${c.values.role ? `, not ${c.values.role}` : ''}`, ADD_HELP);
  const expires = c.values.expires === undefined ? undefined : Math.round(parseDuration(c.values.expires, 'expires'));
  if (expires !== undefined && !(expires > 0)) throw usage('--expires must be a positive duration', ADD_HELP);
  const added = await (await c.client()).addUser({ name, role: r.data, ...(expires ? { expires_in_s: expires } : {}) });
  c.emit(added, () => {
    c.io.out(`added ${added.user.name} (${added.user.role})${added.user.expires_at ? `, expires ${added.user.expires_at}` : ', never expires'}`);
    c.io.out(`token ${added.token}`);
    c.io.out('  (shown once; only its hash is stored: give it to the user, e.g. as EDGELOOP_TOKEN)');
  });
});

const list = apiCommand(LIST_HELP, {}, async (c) => {
  positionalsOf(c.positionals, [], LIST_HELP);
  const items = await (await c.client()).listUsers();
  c.emit({ items }, () => {
    for (const l of table(
      ['NAME', 'ROLE', 'STATE', 'EXPIRES', 'CREATED', 'BY'],
      items.map((u) => [u.name, u.role, u.revoked_at ? `revoked ${u.revoked_at}` : u.active ? 'active' : 'expired', u.expires_at ?? 'never', u.created_at, u.created_by ?? '-']),
    ))
      c.io.out(l);
  });
});

const revoke = apiCommand(REVOKE_HELP, {}, async (c) => {
  const [name] = positionalsOf(c.positionals, ['NAME'], REVOKE_HELP) as [string];
  const u = await (await c.client()).revokeUser(name);
  c.emit(u, () => c.io.out(`revoked ${u.name} at ${u.revoked_at}: its token and console sessions no longer work`));
});

const audit = apiCommand(AUDIT_HELP, { actor: { type: 'string' }, limit: { type: 'string' }, before: { type: 'string' } }, async (c) => {
  positionalsOf(c.positionals, [], AUDIT_HELP);
  const int = (v: string | undefined, flag: string): number | undefined => {
    if (v === undefined) return undefined;
    if (!/^\d+$/.test(v) || Number(v) < 1) throw usage(`--${flag} expects a positive whole number, got '${v}'`, AUDIT_HELP);
    return Number(v);
  };
  const limit = int(c.values.limit, 'limit');
  const before = int(c.values.before, 'before');
  const page = await (await c.client()).audit({ ...(c.values.actor ? { actor: c.values.actor } : {}), ...(limit ? { limit } : {}), ...(before ? { before } : {}) });
  c.emit(page, () => {
    for (const l of table(['SEQ', 'AT', 'ACTOR', 'ACTION', 'TARGET'], page.items.map((e) => [String(e.seq), e.at, e.actor, e.action, e.target]))) c.io.out(l);
    if (page.next_before !== null) c.io.out(`NEXT ${page.next_before}   (edgeloop users audit --before ${page.next_before})`);
  });
});

export const usersCmd = group(USERS_HELP, { add, list, revoke, audit });
