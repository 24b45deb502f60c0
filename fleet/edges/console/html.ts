import { allowed, type User } from '../../app/users.js';

/** Markup that is already safe: interpolated as is. Everything else is escaped. */
export class SafeHtml {
  constructor(readonly value: string) {}
  toString(): string {
    return this.value;
  }
}

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c] as string);
}

function render(v: unknown): string {
  if (v === null || v === undefined || v === false) return '';
  if (v instanceof SafeHtml) return v.value;
  if (Array.isArray(v)) return v.map(render).join('');
  return escapeHtml(String(v));
}

/**
 * Tagged template for HTML: every interpolated value is escaped unless it is {@link SafeHtml}
 * (nested `html` results, charts); arrays are concatenated; null, undefined and false
 * render nothing. Device ids, tags, labels and reasons come from devices and people, so
 * nothing reaches a page unescaped by accident.
 */
export function html(strings: TemplateStringsArray, ...values: unknown[]): SafeHtml {
  let out = strings[0] ?? '';
  for (let i = 0; i < values.length; i++) out += render(values[i]) + (strings[i + 1] ?? '');
  return new SafeHtml(out);
}

/** JSON for a `<script type="application/json">` block: `<` escaped so the data cannot close the tag. */
export function jsonBlock(id: string, data: unknown): SafeHtml {
  return new SafeHtml(`<script type="application/json" id="${escapeHtml(id)}">${JSON.stringify(data).replace(/</g, '\\u003c')}</script>`);
}

export type Section = 'overview' | 'rollouts' | 'models' | 'training' | 'labeling' | 'alerts' | 'audit';

const NAV: Array<[Section, string, string]> = [
  ['overview', 'Fleet', '/console/'],
  ['rollouts', 'Rollouts', '/console/rollouts'],
  ['models', 'Models', '/console/models'],
  ['training', 'Training', '/console/training'],
  ['labeling', 'Labeling', '/console/labeling'],
  ['alerts', 'Alerts', '/console/alerts'],
  ['audit', 'Audit', '/console/audit'],
];

/**
 * The page frame: header with navigation and the signed-in user, then the body. `csrf` is the
 * session's CSRF token, put in a meta tag for the script's writes (console.js).
 */
export function page(o: { title: string; section: Section | null; user: User | null; body: SafeHtml; csrf?: string | null }): string {
  const user = o.user;
  const nav = NAV.filter(([id]) => id !== 'audit' || (user !== null && allowed(user.role, 'audit'))).map(([id, label, href]) => html`<a href="${href}" class="${id === o.section ? 'active' : ''}">${label}</a>`);
  const who = o.user
    ? html`<span class="who" data-user="${o.user.name}" data-role="${o.user.role}">${o.user.name} <span class="role">${o.user.role}</span></span>
        <form method="post" action="/console/logout" class="logout"><button type="submit" class="link">Log out</button></form>`
    : '';
  return `<!doctype html>${html`<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
${o.csrf ? html`<meta name="edgeloop-csrf" content="${o.csrf}">` : ''}
<title>${o.title} · edgeloop</title>
<link rel="icon" href="/console/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/console/static/console.css">
<script src="/console/static/console.js" defer></script>
</head>
<body data-role="${o.user?.role ?? ''}">
<header class="top">
  <a class="brand" href="/console/">edgeloop</a>
  <nav>${o.user ? nav : ''}</nav>
  <div class="session">${who}</div>
</header>
<div id="flash" class="flash" hidden></div>
<main>${o.body}</main>
</body>
</html>`.value}`;
}

/** `2025-03-01T10:00:00.000Z` → `2025-03-01 10:00:00 UTC` (the zone said, since the reader's is another); em dash for null. */
export function when(iso: string | null | undefined): string {
  return iso ? `${iso.replace('T', ' ').replace(/\.\d+Z$|Z$/, '')} UTC` : '—';
}

/** `3 min ago` / `in 2 h` for a time `ms` relative to `now`. */
function relative(ms: number, now: number): string {
  const d = now - ms;
  const s = Math.abs(d) / 1000;
  if (s < 5) return 'just now';
  const text = s < 60 ? `${Math.round(s)} s` : s < 3600 ? `${Math.round(s / 60)} min` : s < 86_400 ? `${Math.round(s / 360) / 10} h` : `${Math.round(s / 8640) / 10} d`;
  return d >= 0 ? `${text} ago` : `in ${text}`;
}

/**
 * A time as a person reads it: relative ("3 min ago") with the absolute time and its zone on
 * hover (`title`), and machine-readable in `datetime`. Em dash for null.
 */
export function ago(at: string | number | null | undefined, now: number): SafeHtml {
  if (at === null || at === undefined) return html`—`;
  const ms = typeof at === 'number' ? at : Date.parse(at);
  if (!Number.isFinite(ms)) return html`—`;
  const iso = new Date(ms).toISOString();
  return html`<time datetime="${iso}" title="${when(iso)}">${relative(ms, now)}</time>`;
}

export function num(n: number | null | undefined, digits = 3): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '—';
  return Number.isInteger(n) ? String(n) : n.toFixed(digits);
}

export function pct(n: number | null | undefined): string {
  return n === null || n === undefined || !Number.isFinite(n) ? '—' : `${(n * 100).toFixed(1)}%`;
}

export const ref = (m: { name: string; version: string } | null | undefined): string => (m ? `${m.name}@${m.version}` : '—');

/** A small coloured word for a status. */
export function badge(text: string, kind?: string): SafeHtml {
  return html`<span class="badge ${kind ?? text}">${text}</span>`;
}
