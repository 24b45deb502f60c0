/* edgeloop console: the only script of the console. Plain browser JavaScript, no build step.
 * API calls made here ride on the session cookie (set at login, HttpOnly: this script never
 * sees it or the API token); writes also send the session's CSRF token, which the server put in
 * the page's `edgeloop-csrf` meta tag. The pages themselves are rendered by the server. */
/* global document, window, fetch, location, confirm, URLSearchParams, Element */
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

  // ------------------------------------------------------------------ alerts

  for (const button of document.querySelectorAll('button[data-alert-command]')) {
    button.addEventListener('click', async () => {
      const command = button.dataset.alertCommand;
      const id = button.dataset.alertId;
      button.disabled = true;
      try {
        await api('POST', `/v1/alerts/${encodeURIComponent(id)}/${command}`);
        location.reload();
      } catch (err) {
        button.disabled = false;
        flash(explain(err));
      }
    });
  }

  // ------------------------------------------------------------------ boxes

  const SVG_NS = 'http://www.w3.org/2000/svg';
  const PALETTE = ['#e11d48', '#2563eb', '#16a34a', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#65a30d', '#ea580c', '#4f46e5'];

  function svgEl(tag, attrs) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
    return el;
  }

  /**
   * Draws boxes `[x1, y1, x2, y2]` (image pixels: the SVG's viewBox is the image) with their
   * class and score. `scale`: image pixels per screen pixel, so text and handles keep their
   * screen size; `selected` gets corner handles; `draft` is a box being drawn.
   */
  function drawBoxes(svg, frame, boxes, labels, o) {
    const k = o.scale || 1;
    // Larger boxes first, so a small box inside a large one stays on top and clickable.
    const area = (b) => (b.box[2] - b.box[0]) * (b.box[3] - b.box[1]);
    const order = boxes.map((b, i) => i).sort((i, j) => area(boxes[j]) - area(boxes[i]) || i - j);
    const parts = order.map((i) => {
      const b = boxes[i];
      const [x1, y1, x2, y2] = b.box;
      const colour = PALETTE[Math.max(0, labels.indexOf(b.label)) % PALETTE.length];
      const g = svgEl('g', { class: `be-box${i === o.selected ? ' selected' : ''}`, 'data-label': b.label });
      g.append(svgEl('rect', { class: 'be-body', 'data-index': i, x: x1, y: y1, width: Math.max(0, x2 - x1), height: Math.max(0, y2 - y1), stroke: colour }));
      const text = svgEl('text', { x: x1 + 2 * k, y: y1 >= 14 * k ? y1 - 3 * k : y1 + 12 * k, 'font-size': 12 * k, fill: colour });
      text.textContent = b.score === undefined ? b.label : `${b.label} ${Math.round(b.score * 100)}%`;
      g.append(text);
      return g;
    });
    const sel = o.selected !== undefined && o.selected >= 0 ? boxes[o.selected] : null;
    if (sel) {
      const [x1, y1, x2, y2] = sel.box;
      const h = 10 * k;
      const handles = svgEl('g', { class: 'be-handles' });
      for (const [x, y, corner] of [[x1, y1, 'nw'], [x2, y1, 'ne'], [x1, y2, 'sw'], [x2, y2, 'se']]) handles.append(svgEl('rect', { class: 'be-handle', 'data-index': o.selected, 'data-corner': corner, x: x - h / 2, y: y - h / 2, width: h, height: h }));
      parts.push(handles);
    }
    if (o.draft) {
      const [x1, y1, x2, y2] = o.draft;
      parts.push(svgEl('rect', { class: 'be-draft', x: x1, y: y1, width: x2 - x1, height: y2 - y1 }));
    }
    svg.replaceChildren(...parts);
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
      const boxes = l && l.boxes ? l.boxes.boxes : null;
      el.textContent = !l ? '' : l.state === 'skipped' ? 'skipped' : boxes ? `\u2713 ${boxes.length === 0 ? 'nothing here' : boxes.length === 1 ? '1 box' : `${boxes.length} boxes`}` : `\u2713 ${l.value}`;
      el.dataset.label = l && l.state === 'labeled' && !boxes ? l.value : '';
      const b = boxData[card.dataset.sample];
      if (b) {
        b.current = boxes ? l.boxes : null;
        drawCard(card);
      }
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

    // -------------------------------------------------------------- boxes of detection samples

    const boxDataEl = document.getElementById('box-samples');
    /** sample id -> { frame: { width, height } | null, predicted: [{ label, score, box }], current: { frame, boxes } | null } */
    const boxData = boxDataEl ? JSON.parse(boxDataEl.textContent) : {};
    const labelsOf = (card) => (sets[card.dataset.model] || { labels: [] }).labels;

    /** The predicted boxes, or the saved ones once a person labeled the sample. */
    function shownBoxes(b) {
      return b.current ? b.current.boxes : b.predicted;
    }

    /** Card thumbnail: the boxes over the image (SVG in image pixels, letterboxed like the img). */
    function drawCard(card) {
      const b = boxData[card.dataset.sample];
      const svg = card.querySelector('svg.boxes');
      if (!b || !b.frame || !svg) return;
      svg.setAttribute('viewBox', `0 0 ${b.frame.width} ${b.frame.height}`);
      svg.setAttribute('preserveAspectRatio', 'xMidYMid meet');
      drawBoxes(svg, b.frame, shownBoxes(b), labelsOf(card), { scale: Math.max(b.frame.width, b.frame.height) / 160 });
    }
    for (const c of cards) if (c.dataset.task === 'detection') drawCard(c);

    const editorRoot = document.getElementById('box-editor');
    const editor = editorRoot && canLabel ? boxEditor(editorRoot) : null;

    function openEditor(card) {
      const b = boxData[card.dataset.sample];
      if (!editor || !b) return;
      if (!b.frame) {
        flash(`Sample ${card.dataset.sample} is not an image whose size the fleet can read: it cannot get boxes.`, 'info');
        return;
      }
      editor.open(card, b, labelsOf(card));
    }

    /**
     * The box editor: boxes are kept in image pixels (the stored image's, as the device reported
     * them), whatever size the image is shown at; the pointer is mapped through the SVG's box.
     * Edits have their own undo (Ctrl+Z while open); saving posts the boxes as a label, which
     * the page's undo (u / Ctrl+Z with the editor closed) reverts like any label.
     */
    function boxEditor(root) {
      const svg = root.querySelector('#be-svg');
      const img = root.querySelector('#be-img');
      const select = root.querySelector('#be-class');
      const status = root.querySelector('#be-status');
      const MIN = 2; // screen pixels: a smaller drag is a click, not a box
      let ed = null; // { card, frame, labels, boxes, sel, history, drag }

      const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
      const copy = (boxes) => boxes.map((b) => ({ label: b.label, box: b.box.slice(), ...(b.score !== undefined ? { score: b.score } : {}) }));
      /** Image pixels per screen pixel at the current display size. */
      const perPx = () => {
        const r = svg.getBoundingClientRect();
        return r.width > 0 ? ed.frame.width / r.width : 1;
      };
      function toImage(e) {
        const r = svg.getBoundingClientRect();
        return { x: clamp(((e.clientX - r.left) * ed.frame.width) / r.width, 0, ed.frame.width), y: clamp(((e.clientY - r.top) * ed.frame.height) / r.height, 0, ed.frame.height) };
      }
      function fit(box) {
        const { width: W, height: H } = ed.frame;
        return [clamp(box[0], 0, W), clamp(box[1], 0, H), clamp(box[2], 0, W), clamp(box[3], 0, H)];
      }
      function snapshot() {
        ed.history.push(copy(ed.boxes));
        if (ed.history.length > 200) ed.history.shift();
      }
      function currentClass() {
        return select.value || ed.labels[0];
      }

      function render() {
        drawBoxes(svg, ed.frame, ed.boxes, ed.labels, { scale: perPx(), selected: ed.sel, draft: ed.drag && ed.drag.kind === 'new' ? ed.drag.box : null });
        const n = ed.boxes.length;
        status.textContent = `${n === 0 ? 'no boxes (nothing here)' : n === 1 ? '1 box' : `${n} boxes`}${ed.sel >= 0 ? ` \u00b7 selected: ${ed.boxes[ed.sel].label}` : ''} \u00b7 ${ed.frame.width}\u00d7${ed.frame.height} px`;
        root.dataset.boxes = String(n);
        root.dataset.selected = String(ed.sel);
      }

      function select_(i) {
        ed.sel = i;
        if (i >= 0) select.value = ed.boxes[i].label;
        render();
      }

      svg.addEventListener('pointerdown', (e) => {
        if (!ed || e.button !== 0) return;
        e.preventDefault();
        const p = toImage(e);
        const t = e.target;
        const i = t.dataset && t.dataset.index !== undefined ? Number(t.dataset.index) : -1;
        snapshot();
        if (t.classList.contains('be-handle')) ed.drag = { kind: 'resize', i, corner: t.dataset.corner, start: p, orig: ed.boxes[i].box.slice(), changed: false };
        else if (t.classList.contains('be-body')) ed.drag = { kind: 'move', i, start: p, orig: ed.boxes[i].box.slice(), changed: false };
        else ed.drag = { kind: 'new', start: p, box: null, changed: false };
        ed.sel = ed.drag.kind === 'new' ? -1 : i;
        if (ed.sel >= 0) select.value = ed.boxes[ed.sel].label;
        svg.setPointerCapture(e.pointerId);
        render();
      });
      svg.addEventListener('pointermove', (e) => {
        const d = ed && ed.drag;
        if (!d) return;
        const p = toImage(e);
        const { width: W, height: H } = ed.frame;
        const one = perPx(); // at least one screen pixel wide
        if (d.kind === 'move') {
          const [x1, y1, x2, y2] = d.orig;
          const dx = clamp(p.x - d.start.x, -x1, W - x2);
          const dy = clamp(p.y - d.start.y, -y1, H - y2);
          ed.boxes[d.i].box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
          delete ed.boxes[d.i].score;
        } else if (d.kind === 'resize') {
          let [x1, y1, x2, y2] = d.orig;
          if (d.corner.includes('w')) x1 = Math.min(p.x, x2 - one);
          if (d.corner.includes('e')) x2 = Math.max(p.x, x1 + one);
          if (d.corner.includes('n')) y1 = Math.min(p.y, y2 - one);
          if (d.corner.includes('s')) y2 = Math.max(p.y, y1 + one);
          ed.boxes[d.i].box = fit([x1, y1, x2, y2]);
          delete ed.boxes[d.i].score;
        } else {
          d.box = [Math.min(d.start.x, p.x), Math.min(d.start.y, p.y), Math.max(d.start.x, p.x), Math.max(d.start.y, p.y)];
        }
        d.changed = true;
        render();
      });
      function endDrag() {
        const d = ed && ed.drag;
        if (!d) return;
        ed.drag = null;
        const min = MIN * perPx();
        if (d.kind === 'new' && d.box && d.box[2] - d.box[0] >= min && d.box[3] - d.box[1] >= min) {
          ed.boxes.push({ label: currentClass(), box: d.box });
          ed.sel = ed.boxes.length - 1;
        } else if (!d.changed || d.kind === 'new') {
          ed.history.pop(); // a click: nothing to undo
        }
        render();
      }
      svg.addEventListener('pointerup', endDrag);
      svg.addEventListener('pointercancel', endDrag);

      select.addEventListener('change', () => {
        if (ed && ed.sel >= 0 && ed.boxes[ed.sel].label !== select.value) {
          snapshot();
          ed.boxes[ed.sel].label = select.value;
        }
        select.blur();
        if (ed) render();
      });

      function save() {
        const { card } = ed;
        const boxes = ed.boxes.map((b) => ({ label: b.label, box: fit(b.box).map((v) => Math.round(v * 100) / 100) }));
        close();
        enqueue(async () => {
          show(card, await api('POST', `/v1/samples/${encodeURIComponent(card.dataset.sample)}/boxes`, { boxes }));
          await refreshProgress();
        });
        setFocus(cards.indexOf(card) + 1);
      }
      function acceptAll() {
        const { card } = ed;
        close();
        act(card, 'confirm');
        setFocus(cards.indexOf(card) + 1);
      }
      function close() {
        ed = null;
        root.hidden = true;
        document.body.classList.remove('editing');
      }
      root.querySelector('#be-save').addEventListener('click', () => ed && save());
      root.querySelector('#be-accept').addEventListener('click', () => ed && acceptAll());
      root.querySelector('#be-close').addEventListener('click', () => ed && close());
      root.querySelector('#be-clear').addEventListener('click', (e) => {
        if (!ed) return;
        snapshot();
        ed.boxes = [];
        ed.sel = -1;
        e.currentTarget.blur();
        render();
      });

      /** Keys while the editor is open; true when the key was the editor's. */
      function key(e) {
        if (!ed) return false;
        const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
        if (e.target === select && k !== 'Escape') return true;
        const ctrl = e.ctrlKey || e.metaKey;
        const sel = ed.sel >= 0 ? ed.boxes[ed.sel] : null;
        const nudge = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[k];
        if (ctrl && nudge && sel) {
          // Ctrl+arrows resize: the bottom-right corner moves (Shift: 10 px), never past the top-left one.
          const step = e.shiftKey ? 10 : 1;
          const [x1, y1, x2, y2] = sel.box;
          snapshot();
          sel.box = [x1, y1, clamp(x2 + nudge[0] * step, x1 + 1, ed.frame.width), clamp(y2 + nudge[1] * step, y1 + 1, ed.frame.height)];
          delete sel.score;
          render();
        } else if (ctrl && k === 'z') {
          const prev = ed.history.pop();
          if (prev) {
            ed.boxes = prev;
            ed.sel = Math.min(ed.sel, ed.boxes.length - 1);
            render();
          } else flash('No edit left to undo in the editor (saved labels: close it, then Ctrl+Z).', 'info');
        } else if (ctrl) return true;
        else if (k === 'Escape') close();
        else if (k === 'Enter') save();
        else if (k === 'a') acceptAll();
        else if ((k === 'Delete' || k === 'Backspace') && sel) {
          snapshot();
          ed.boxes.splice(ed.sel, 1);
          select_(-1);
        } else if (/^[0-9]$/.test(k)) {
          const label = ed.labels[Number(k)];
          if (label === undefined) flash(`No class for key ${k}: this model has ${ed.labels.length}.`, 'info');
          else {
            select.value = label;
            if (sel && sel.label !== label) {
              snapshot();
              sel.label = label;
            }
            render();
          }
        } else if (k === 'Tab') {
          if (ed.boxes.length) select_((ed.sel + (e.shiftKey ? ed.boxes.length - 1 : 1) + (ed.sel < 0 && e.shiftKey ? 1 : 0)) % ed.boxes.length);
        } else if (k === 'n') {
          const { width: W, height: H } = ed.frame;
          snapshot();
          ed.boxes.push({ label: currentClass(), box: [W * 0.375, H * 0.375, W * 0.625, H * 0.625] });
          select_(ed.boxes.length - 1);
        } else if (nudge && sel) {
          const step = e.shiftKey ? 10 : 1;
          const [x1, y1, x2, y2] = sel.box;
          const dx = clamp(nudge[0] * step, -x1, ed.frame.width - x2);
          const dy = clamp(nudge[1] * step, -y1, ed.frame.height - y2);
          snapshot();
          sel.box = [x1 + dx, y1 + dy, x2 + dx, y2 + dy];
          delete sel.score;
          render();
        } else return true;
        e.preventDefault();
        return true;
      }

      /** Show the image as large as the editor allows, small camera crops scaled up too (boxes follow: they are in image pixels). */
      function fitImage() {
        const { width: W, height: H } = ed.frame;
        const s = Math.min((window.innerWidth * 0.96 - 40) / W, (window.innerHeight * 0.72) / H);
        img.style.width = `${Math.max(1, Math.floor(W * s))}px`;
        img.style.height = `${Math.max(1, Math.floor(H * s))}px`;
      }

      window.addEventListener('resize', () => {
        if (!ed) return;
        fitImage();
        render();
      });

      return {
        key,
        isOpen: () => ed !== null,
        open(card, b, labels) {
          const start = b.current ? b.current.boxes : b.predicted;
          // Predicted boxes clipped to the image, as the fleet clips them when they are accepted.
          const clipped = copy(start)
            .map((x) => ({ ...x, box: [0, 0, 0, 0].map((_, k) => clamp(x.box[k], 0, k % 2 ? b.frame.height : b.frame.width)) }))
            .filter((x) => x.box[0] < x.box[2] && x.box[1] < x.box[3]);
          ed = { card, frame: b.frame, labels, boxes: clipped, sel: -1, history: [], drag: null };
          select.replaceChildren(...labels.map((l, i) => Object.assign(document.createElement('option'), { value: l, textContent: i < 10 ? `${i}: ${l}` : l })));
          root.querySelector('#be-title').textContent = `${card.dataset.sample} \u00b7 ${card.dataset.model}`;
          root.dataset.sample = card.dataset.sample;
          svg.setAttribute('viewBox', `0 0 ${b.frame.width} ${b.frame.height}`);
          svg.setAttribute('preserveAspectRatio', 'none');
          root.hidden = false;
          document.body.classList.add('editing');
          fitImage();
          img.onload = () => ed && render();
          img.src = card.querySelector('img').src;
          render();
        },
      };
    }

    document.addEventListener('keydown', (e) => {
      if (editor && editor.isOpen()) {
        editor.key(e);
        return;
      }
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
      } else if (key === 'Enter' && card.dataset.task === 'detection' && editor) {
        e.preventDefault();
        openEditor(card);
      } else if (key === 'Enter') {
        e.preventDefault();
        act(card, 'confirm');
        setFocus(focus + 1);
      } else if (key === 's') {
        act(card, 'skip');
        setFocus(focus + 1);
      } else if (/^[0-9a-z]$/.test(key) && card.dataset.task === 'detection') {
        // A detector's frame takes boxes (Enter opens the editor), never a class from a stray key.
        flash('A detection frame is labeled with boxes: press Enter to open the box editor.', 'info');
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
    cards.forEach((c, i) =>
      c.addEventListener('click', () => {
        setFocus(i);
        if (c.dataset.task === 'detection' && editor) openEditor(c);
      }),
    );

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
