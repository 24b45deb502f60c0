/* edgeloop console: the only script of the console. Plain browser JavaScript, no build step.
 * API calls made here ride on the session cookie (set at login, HttpOnly: this script never
 * sees it or the API token); writes also send the session's CSRF token, which the server put in
 * the page's `edgeloop-csrf` meta tag. The pages themselves are rendered by the server. */
/* global document, fetch, location, confirm, URLSearchParams, Element */
(() => {
  'use strict';

  const csrfMeta = document.querySelector('meta[name="edgeloop-csrf"]');
  const CSRF = csrfMeta ? csrfMeta.getAttribute('content') : null;

  function flash(message, kind) {
    const el = document.getElementById('flash');
    if (!el) return;
    el.textContent = message;
    el.className = `flash ${kind || 'error'}`;
    el.hidden = false;
  }

  /** JSON API call on the session; rejects with `{ status, code, message }` on an error answer. */
  async function api(method, path, body) {
    const headers = { accept: 'application/json' };
    if (method !== 'GET' && CSRF) headers['x-edgeloop-csrf'] = CSRF;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(path, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
    const data = await res.json().catch(() => null);
    if (!res.ok) {
      const err = new Error((data && data.error && data.error.message) || `${method} ${path} answered ${res.status}`);
      err.status = res.status;
      err.code = data && data.error ? data.error.code : undefined;
      throw err;
    }
    return data;
  }

  function explain(err) {
    if (err.status === 401) return 'Your session has ended: log in again.';
    return `${err.code ? `${err.code}: ` : ''}${err.message}`;
  }

  // ------------------------------------------------------------------ live pages

  // A page showing something in progress (a training run) marks itself with #live: reload it
  // on that period until the server renders it without the mark.
  const live = document.getElementById('live');
  if (live) setTimeout(() => location.reload(), Number(live.dataset.refreshMs) || 2000);

  // ------------------------------------------------------------------ rollout commands

  for (const button of document.querySelectorAll('button[data-command]')) {
    button.addEventListener('click', async () => {
      const command = button.dataset.command;
      const id = button.dataset.rollout;
      const path = `/v1/rollouts/${encodeURIComponent(id)}/${command}`;
      if ((command === 'abort' || command === 'rollback') && !confirm(`${command} rollout ${id}? Every device it moved returns to its previous version.`)) return;
      button.disabled = true;
      try {
        await api('POST', path, {});
        location.reload();
      } catch (err) {
        button.disabled = false;
        if (command === 'promote' && err.status === 409 && /force/.test(err.message) && confirm(`${err.message}\n\nPromote anyway?`)) {
          try {
            await api('POST', path, { force: true });
            location.reload();
          } catch (err2) {
            flash(explain(err2));
          }
          return;
        }
        flash(explain(err));
      }
    });
  }

  // ------------------------------------------------------------------ labeling

  const labeling = document.getElementById('labeling');
  if (labeling) initLabeling(labeling);

  function initLabeling(root) {
    const cards = Array.from(root.querySelectorAll('.card'));
    const sets = JSON.parse(document.getElementById('label-sets').textContent);
    const filter = JSON.parse(document.getElementById('label-filter').textContent);
    const canLabel = root.dataset.canLabel === 'true';
    let focus = 0;
    // Actions run one after another, in key order: an undo always follows the label it undoes.
    let chain = Promise.resolve();
    const enqueue = (fn) => {
      chain = chain.then(fn).catch((err) => flash(explain(err)));
      return chain;
    };

    function setFocus(i) {
      if (cards.length === 0) return;
      focus = Math.max(0, Math.min(cards.length - 1, i));
      cards.forEach((c, j) => c.classList.toggle('focused', j === focus));
      cards[focus].scrollIntoView({ block: 'nearest' });
    }

    function columns() {
      const top = cards[0].offsetTop;
      let n = 0;
      while (n < cards.length && cards[n].offsetTop === top) n++;
      return Math.max(1, n);
    }

    /** Digit: the label that is that digit, else the label at that index of the model's labels. Letter: the first label starting with it. */
    function labelFor(card, key) {
      const set = sets[card.dataset.model] || { labels: [], indexed: false };
      if (/^[0-9]$/.test(key)) {
        if (set.labels.includes(key)) return key;
        if (set.indexed) return set.labels[Number(key)] === undefined ? null : set.labels[Number(key)];
        return key;
      }
      return set.labels.find((l) => l.toLowerCase().startsWith(key)) || null;
    }

    function show(card, sample) {
      const l = sample.label;
      card.dataset.state = l ? l.state : 'unlabeled';
      const el = card.querySelector('.current');
      el.textContent = !l ? '' : l.state === 'skipped' ? 'skipped' : `\u2713 ${l.value}`;
      el.dataset.label = l && l.state === 'labeled' ? l.value : '';
    }

    function filterQuery() {
      const q = new URLSearchParams();
      for (const [k, v] of Object.entries(filter)) q.set(k, String(v));
      return q.toString();
    }

    async function refreshProgress() {
      const p = await api('GET', `/v1/labels/progress?${filterQuery()}`);
      const el = document.getElementById('progress');
      for (const k of ['labeled', 'skipped', 'unlabeled', 'total']) el.dataset[k] = String(p[k]);
      el.textContent = `${p.labeled} labeled \u00b7 ${p.skipped} skipped \u00b7 ${p.unlabeled} to go (of ${p.total})`;
    }

    function act(card, action, body) {
      enqueue(async () => {
        show(card, await api('POST', `/v1/samples/${encodeURIComponent(card.dataset.sample)}/${action}`, body));
        await refreshProgress();
      });
    }

    function undo() {
      enqueue(async () => {
        const r = await api('POST', '/v1/labels/undo');
        if (!r.undone) {
          flash('Nothing left to undo.', 'info');
          return;
        }
        const card = cards.find((c) => c.dataset.sample === r.sample.sample_id);
        if (card) {
          show(card, r.sample);
          setFocus(cards.indexOf(card));
        } else {
          flash(`Undid ${r.undone.action} of ${r.undone.sample_id} (not on this page).`, 'info');
        }
        await refreshProgress();
      });
    }

    document.addEventListener('keydown', (e) => {
      if (e.target instanceof Element && e.target.closest('input, select, textarea, button, a')) return;
      if (e.altKey || cards.length === 0) return;
      const key = e.key.length === 1 ? e.key.toLowerCase() : e.key;
      const moves = { ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns() };
      if (key in moves) {
        e.preventDefault();
        setFocus(focus + moves[key]);
        return;
      }
      const ctrlZ = (e.ctrlKey || e.metaKey) && key === 'z';
      if ((e.ctrlKey || e.metaKey) && !ctrlZ) return;
      if (!canLabel) {
        if (key === 'Enter' || key.length === 1) flash('Your role may not label.', 'info');
        return;
      }
      const card = cards[focus];
      if (ctrlZ || key === 'u') {
        e.preventDefault();
        undo();
      } else if (key === 'Enter') {
        e.preventDefault();
        act(card, 'confirm');
        setFocus(focus + 1);
      } else if (key === 's') {
        act(card, 'skip');
        setFocus(focus + 1);
      } else if (/^[0-9a-z]$/.test(key)) {
        const label = labelFor(card, key);
        if (label === null) {
          flash(`No label for key ${key} on ${card.dataset.model}.`, 'info');
          return;
        }
        act(card, 'label', { label });
        setFocus(focus + 1);
      }
    });
    cards.forEach((c, i) => c.addEventListener('click', () => setFocus(i)));

    const exportButton = document.getElementById('export');
    if (exportButton) {
      exportButton.addEventListener('click', () => {
        const name = document.getElementById('dataset-name').value.trim();
        // Queued: labels still in flight are committed before the export cuts the set.
        enqueue(async () => {
          const r = await api('POST', '/v1/datasets', { filters: filter, ...(name ? { name } : {}) });
          const out = document.getElementById('export-result');
          out.dataset.datasetId = r.dataset.id;
          out.textContent = `${r.created ? 'Exported' : 'Unchanged, already'} dataset ${r.dataset.id.slice(0, 12)} \u00b7 ${r.dataset.entries.length} entries `;
          const link = document.createElement('a');
          link.href = `/v1/datasets/${r.dataset.id}`;
          link.textContent = 'manifest';
          out.append(link);
        });
      });
    }
    setFocus(0);
  }
})();
