import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import type { User } from '../../app/users.js';
import type { FleetContext } from '../../app/context.js';
import type { EdgeloopError } from '../../../shared/errors.js';
import { FleetError } from '../../errors.js';
import { bearerToken, isTls, sessionCookie, sessionCookieHeader, sessionUser } from '../web/auth.js';
import type { PageApp } from '../web/pages.js';
import type { Principal } from '../web/auth.js';
import { html, page } from './html.js';
import { devicePage, overviewPage, sitePage } from './pages/fleet.js';
import { auditPage } from './pages/audit.js';
import { labelingPage } from './pages/labeling.js';
import { modelsPage, modelVersionPage } from './pages/models.js';
import { rolloutPage, rolloutsPage } from './pages/rollouts.js';
import { trainingPage, trainingRunPage } from './pages/training.js';
import type { PageResult } from './pages/types.js';

/**
 * The web console: server-rendered HTML (fleet, device, rollouts, models, labeling), one
 * small script and one stylesheet, all under `/console/`.
 *
 * Auth: the login form takes a user's API token once and starts a server-side session
 * (Users.startSession: a random id, an expiry, a CSRF token); the cookie holds only the session
 * id (`HttpOnly; SameSite=Strict; Path=/`, `Secure` over TLS), never the token. The cookie
 * authorises reads: these pages, the `<img>` sample blobs and the script's JSON reads. The
 * script's writes (labels, rollout commands, export) also send the session's CSRF token, which
 * the page carries in a meta tag (see `sessionUser`). Logout deletes the session on the server;
 * revoking the user deletes all of its sessions.
 */
export type ConsoleApp = PageApp;

interface PageRoute {
  method: 'GET' | 'POST';
  pattern: RegExp;
  /** Pages need a signed-in user; login, logout and the assets do not. */
  auth: boolean;
  run: (c: { ctx: FleetContext; req: IncomingMessage; res: ServerResponse; url: URL; user: User | null; m: RegExpExecArray; who: { principal: Principal } }) => Promise<PageResult | void> | PageResult | void;
}

const SECURITY_HEADERS = {
  // Everything the console needs comes from this server; inline SVG is markup, not a resource.
  'content-security-policy': "default-src 'self'; img-src 'self'; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
  'cache-control': 'no-store',
};

/**
 * Next to this module: in the source tree, and in dist/ where `npm run build` copies them
 * (copy-assets.ts), so a dist-only install has them. A checkout with a dist/ built by plain
 * tsc falls back to the source tree (`<root>/fleet/edges/console/static`).
 */
function staticDir(): string {
  for (const rel of ['./static/', '../../../../fleet/edges/console/static/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(`${dir}console.js`)) return dir;
  }
  throw new Error('the console assets (fleet/edges/console/static) are missing');
}

function loadAssets(): Map<string, { body: Buffer; type: string; etag: string }> {
  const dir = staticDir();
  const assets = new Map<string, { body: Buffer; type: string; etag: string }>();
  for (const [name, type] of [
    ['console.js', 'text/javascript; charset=utf-8'],
    ['console.css', 'text/css; charset=utf-8'],
    ['favicon.svg', 'image/svg+xml'],
  ] as const) {
    const body = readFileSync(`${dir}${name}`);
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('hex').slice(0, 16)}"` });
  }
  return assets;
}

function sendHtml(res: ServerResponse, status: number, text: string, headers: Record<string, string | string[]> = {}): void {
  res.writeHead(status, { 'content-type': 'text/html; charset=utf-8', 'content-length': Buffer.byteLength(text), ...SECURITY_HEADERS, ...headers });
  res.end(text);
}

/** Only local console paths: never an open redirect. */
function safeNext(next: string | null | undefined): string {
  return next && next.startsWith('/console/') && !next.startsWith('//') && !next.includes('\\') ? next : '/console/';
}

function loginPage(next: string, error?: string): string {
  return page({
    title: 'Log in',
    section: null,
    user: null,
    body: html`<section class="login">
      <h1>Log in</h1>
      <p>Paste your edgeloop API token. An admin creates one with <code>edgeloop users add NAME --role viewer</code> (it is printed once); the first admin's is in <code>DATA/admin.token</code>.</p>
      ${error ? html`<p class="fail-text" id="login-error">${error}</p>` : ''}
      <form method="post" action="/console/login" id="login-form">
        <input type="hidden" name="next" value="${next}">
        <label>Token <input type="password" name="token" id="token" autocomplete="current-password" required size="48"></label>
        <button type="submit">Log in</button>
      </form>
    </section>`,
  });
}

async function readForm(req: IncomingMessage, limit = 16 * 1024): Promise<URLSearchParams> {
  let text = '';
  for await (const chunk of req as AsyncIterable<Buffer>) {
    text += chunk.toString('utf8');
    if (text.length > limit) throw new FleetError('INPUT_INVALID', 'form too large');
  }
  return new URLSearchParams(text);
}

/** A decoded path segment of a page pattern. */
function seg(m: RegExpExecArray, i: number): string {
  try {
    return decodeURIComponent(m[i] as string);
  } catch (err) {
    throw new FleetError('INPUT_INVALID', `the path segment ${m[i]} is not valid percent-encoding`, { cause: err });
  }
}

function routes(assets: ReturnType<typeof loadAssets>): PageRoute[] {
  return [
    { method: 'GET', pattern: /^\/console\/$/, auth: true, run: ({ ctx }) => overviewPage(ctx) },
    { method: 'GET', pattern: /^\/console\/sites\/([^/]+)$/, auth: true, run: ({ ctx, m }) => sitePage(ctx, seg(m, 1)) },
    { method: 'GET', pattern: /^\/console\/devices\/([^/]+)$/, auth: true, run: ({ ctx, m, url }) => devicePage(ctx, seg(m, 1), url) },
    { method: 'GET', pattern: /^\/console\/rollouts$/, auth: true, run: ({ ctx }) => rolloutsPage(ctx) },
    { method: 'GET', pattern: /^\/console\/rollouts\/([^/]+)$/, auth: true, run: ({ ctx, m, user }) => rolloutPage(ctx, seg(m, 1), user as User) },
    { method: 'GET', pattern: /^\/console\/models$/, auth: true, run: ({ ctx }) => modelsPage(ctx) },
    { method: 'GET', pattern: /^\/console\/models\/([^/]+)\/([^/]+)$/, auth: true, run: ({ ctx, m }) => modelVersionPage(ctx, seg(m, 1), seg(m, 2)) },
    { method: 'GET', pattern: /^\/console\/training$/, auth: true, run: ({ ctx }) => trainingPage(ctx) },
    { method: 'GET', pattern: /^\/console\/training\/runs\/([^/]+)$/, auth: true, run: ({ ctx, m }) => trainingRunPage(ctx, seg(m, 1)) },
    { method: 'GET', pattern: /^\/console\/labeling$/, auth: true, run: ({ ctx, url, user }) => labelingPage(ctx, url, user as User) },
    { method: 'GET', pattern: /^\/console\/audit$/, auth: true, run: ({ ctx, url, user }) => auditPage(ctx, url, user as User) },
    { method: 'GET', pattern: /^\/console\/login$/, auth: false, run: ({ res, url }) => sendHtml(res, 200, loginPage(safeNext(url.searchParams.get('next')))) },
    {
      method: 'POST',
      pattern: /^\/console\/login$/,
      auth: false,
      run: async ({ ctx, req, res, who }) => {
        const form = await readForm(req);
        const token = (form.get('token') ?? '').trim();
        // Only a token no active user has gets the login page again (sendError keeps where the user
        // was going); a storage failure during the lookup is answered as what it is.
        if (!token || !ctx.users.find(token)) throw new FleetError('AUTH_FAILED', 'the token is not valid', { details: { next: safeNext(form.get('next')) } });
        const s = ctx.users.startSession(token);
        who.principal = { kind: 'user', user: s.user };
        const maxAge = (s.expires_at - ctx.clock.now()) / 1000;
        res.writeHead(303, { location: safeNext(form.get('next')), 'set-cookie': sessionCookieHeader(s.id, maxAge, isTls(req)), 'cache-control': 'no-store' }).end();
      },
    },
    {
      method: 'POST',
      pattern: /^\/console\/logout$/,
      auth: false,
      run: ({ ctx, req, res }) => {
        // The session ends on the server: a copy of the cookie kept elsewhere no longer works.
        const id = sessionCookie(req);
        if (id) ctx.users.endSession(id);
        res.writeHead(303, { location: '/console/login', 'set-cookie': sessionCookieHeader('', 0, isTls(req)), 'cache-control': 'no-store' }).end();
      },
    },
    {
      method: 'GET',
      pattern: /^\/console\/static\/(console\.js|console\.css|favicon\.svg)$/,
      auth: false,
      run: ({ req, res, m }) => {
        const a = assets.get(m[1] as string) as { body: Buffer; type: string; etag: string };
        if (req.headers['if-none-match'] === a.etag) return void res.writeHead(304, { etag: a.etag }).end();
        res.writeHead(200, { 'content-type': a.type, 'content-length': a.body.length, etag: a.etag, 'cache-control': 'no-cache', 'x-content-type-options': 'nosniff' }).end(a.body);
      },
    },
  ];
}

export function createConsole(ctx: FleetContext): ConsoleApp {
  const table = routes(loadAssets());
  return {
    owns: (pathname) => pathname.startsWith('/console/'),

    async handle(req, res, url, who) {
      const method = req.method === 'HEAD' ? 'GET' : (req.method ?? 'GET');
      let match: { r: PageRoute; m: RegExpExecArray } | null = null;
      for (const r of table) {
        const m = r.method === method ? r.pattern.exec(url.pathname) : null;
        if (m) {
          match = { r, m };
          break;
        }
      }
      if (!match) throw new FleetError('NOT_FOUND', `no console page ${method} ${url.pathname}`);
      let user: User | null = null;
      let csrf: string | null = null;
      if (match.r.auth) {
        // Pages are read with the session cookie only (a GET: no CSRF token needed to read).
        const s = sessionUser(ctx, req);
        if (!s) throw new FleetError('AUTH_FAILED', 'log in to see the console');
        ({ user, csrf } = s);
        who.principal = { kind: 'user', user };
      }
      const result = await match.r.run({ ctx, req, res, url, user, m: match.m, who });
      if (result) sendHtml(res, 200, page({ ...result, user, csrf }));
    },

    sendError(req, res, url, err) {
      if (err.status === 401 && url.pathname === '/console/login') {
        const next = safeNext(typeof err.details?.next === 'string' ? err.details.next : null);
        sendHtml(res, 401, loginPage(next, 'That token is not valid.'));
        return;
      }
      if (err.status === 401 && req.method === 'GET') {
        res.writeHead(303, { location: `/console/login?next=${encodeURIComponent(url.pathname + url.search)}`, 'cache-control': 'no-store' }).end();
        return;
      }
      const user = pageUser(ctx, req, err);
      sendHtml(
        res,
        err.status,
        page({
          title: `Error ${err.status}`,
          section: null,
          user,
          body: html`<section class="error-page"><h1>${err.status === 404 ? 'Not found' : 'Something went wrong'}</h1><p><code>${err.code}</code> ${err.status >= 500 ? 'the fleet could not answer; the log has the details' : err.message}</p><p><a href="/console/">Back to the fleet</a></p></section>`,
        }),
      );
    },
  };
}

/**
 * The signed-in user for the error page's header: null without a valid token. Not looked up
 * when the error being answered is the store's own (the lookup would fail the same way). A
 * lookup that fails anyway is logged and leaves the header empty; the page keeps the status of
 * the error it reports, so a storage failure is never shown as "log in".
 */
function pageUser(ctx: FleetContext, req: IncomingMessage, err: EdgeloopError): User | null {
  const id = sessionCookie(req);
  if (!id || bearerToken(req) || err.code === 'FLEET_STORAGE_FAILED') return null;
  try {
    return ctx.users.session(id)?.user ?? null;
  } catch (lookup) {
    ctx.log.warn({ component: 'console', err: lookup, answering: err.code }, 'error page rendered without its user: the session lookup failed');
    return null;
  }
}
