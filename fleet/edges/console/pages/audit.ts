import { auditQuery } from '../../../app/audit.js';
import type { FleetContext } from '../../../app/context.js';
import { allowed, type User } from '../../../app/users.js';
import { FleetError } from '../../../errors.js';
import { parseWith } from '../../../../shared/validate.js';
import { queryCoercer } from '../../web/query.js';
import { ago, html } from '../html.js';
import type { PageResult } from './types.js';

const coerce = queryCoercer(auditQuery);

/** Who did what, newest first, one page at a time (admin and operator, like `GET /v1/audit`). */
export function auditPage(ctx: FleetContext, url: URL, user: User): PageResult {
  if (!allowed(user.role, 'audit')) throw new FleetError('FORBIDDEN', `role ${user.role} does not have the audit permission`, { details: { user: user.name, role: user.role, permission: 'audit' } });
  const q = parseWith(auditQuery, coerce(url.searchParams), 'INPUT_INVALID', 'query');
  const page = ctx.audit.list(q);
  const next = new URLSearchParams();
  if (q.actor) next.set('actor', q.actor);
  if (q.limit) next.set('limit', String(q.limit));
  if (page.next_before !== null) next.set('before', String(page.next_before));
  const now = ctx.clock.now();
  const body = html`
  <h1>Audit log</h1>
  <p class="muted">Who did what: model pushes, rollouts and their commands, labels, user changes. Newest first.${q.actor ? html` Only <code>${q.actor}</code> (<a href="/console/audit">everyone</a>).` : ''}</p>
  ${page.items.length === 0
    ? html`<p class="muted" id="audit-empty">Nothing recorded${q.before ? ' before this point' : ''}.</p>`
    : html`<table class="grid-table" id="audit"><thead><tr><th>when</th><th>who</th><th>what</th><th>on</th><th>details</th></tr></thead><tbody>
      ${page.items.map(
        (e) => html`<tr data-action="${e.action}">
          <td>${ago(e.at, now)}</td>
          <td><a href="/console/audit?actor=${encodeURIComponent(e.actor)}">${e.actor}</a></td>
          <td><code>${e.action}</code></td>
          <td>${e.target}</td>
          <td class="muted">${e.details ? JSON.stringify(e.details) : ''}</td>
        </tr>`,
      )}
    </tbody></table>`}
  ${page.next_before !== null ? html`<p><a href="/console/audit?${next.toString()}" id="audit-older">Older entries</a></p>` : ''}`;
  return { title: 'Audit log', section: 'audit', body };
}
