// The build-history page of `imagebuilder serve`. Plain JavaScript, no framework, no external
// resource. Every string that comes from the API is inserted as text (textContent, append of a
// string), never parsed as HTML. Paths are relative, so the page works behind a path prefix.
'use strict';

(() => {
  const KEY_STORAGE = 'imagebuilder.apiKey';
  const POLL_MS = 5000; // history auto-refresh
  const BUILD_POLL_MS = 3000; // one running build's facts
  const STATE_LABELS = {
    pending: 'pending',
    in_progress: 'in progress',
    success: 'success',
    failed: 'failed',
    canceled: 'canceled',
  };
  const ENDED = new Set(['success', 'failed', 'canceled']);

  const $ = (id) => document.getElementById(id);

  // el builds an element; attrs.text sets its text, attrs.class its class, anything else is an
  // attribute; children are nodes or strings (strings become text nodes).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== undefined && c !== null) e.append(c);
    return e;
  }

  // ---------------------------------------------------------------- API key and requests

  let memoryKey = ''; // the key when sessionStorage is unavailable

  function apiKey() {
    try {
      return sessionStorage.getItem(KEY_STORAGE) || '';
    } catch {
      return '';
    }
  }

  function setAPIKey(k) {
    try {
      if (k) sessionStorage.setItem(KEY_STORAGE, k);
      else sessionStorage.removeItem(KEY_STORAGE);
    } catch {
      // storage disabled: the key lasts until the page is left
    }
    memoryKey = k;
    showKeyState();
  }

  function showKeyState() {
    $('key-state').textContent = (apiKey() || memoryKey)
      ? 'a key is set (kept for this tab only)'
      : 'no key (needed unless the server runs with --no-auth)';
  }

  function requestHeaders(extra) {
    const h = Object.assign({ Accept: 'application/json' }, extra || {});
    const k = apiKey() || memoryKey;
    if (k) h['X-API-Key'] = k;
    return h;
  }

  class APIError extends Error {
    constructor(status, body) {
      let msg = '';
      if (body && typeof body === 'object') msg = body.detail || body.title || '';
      else if (typeof body === 'string') msg = body;
      if (!msg) msg = 'HTTP ' + status;
      if (status === 401) msg = 'not authorized: ' + msg + ' (enter an API key above)';
      super(msg);
      this.status = status;
      this.body = body;
    }
  }

  function parseBody(text) {
    if (!text) return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  async function api(path, opts) {
    const o = Object.assign({ cache: 'no-store', credentials: 'same-origin' }, opts || {});
    o.headers = requestHeaders(o.headers);
    const resp = await fetch(path, o);
    const body = parseBody(await resp.text());
    if (!resp.ok) throw new APIError(resp.status, body);
    return body;
  }

  function invocationPath(id) {
    return 'v1/invocations/' + encodeURIComponent(id);
  }

  // ---------------------------------------------------------------- status line and formats

  function say(msg, kind) {
    const s = $('status');
    s.textContent = msg || '';
    s.className = 'status' + (kind ? ' status-' + kind : '');
  }

  const pad = (n) => String(n).padStart(2, '0');

  function parseTime(s) {
    if (!s) return null;
    const d = new Date(s);
    return isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(s) {
    const d = parseTime(s);
    if (!d) return s || '—';
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function timeEl(s) {
    const d = parseTime(s);
    if (!d) return document.createTextNode('—');
    return el('time', { datetime: d.toISOString(), title: d.toISOString(), text: fmtTime(s) });
  }

  function fmtDuration(ms) {
    if (ms < 0) ms = 0;
    if (ms < 1000) return Math.round(ms) + ' ms';
    let s = Math.round(ms / 1000);
    if (s < 60) return s + ' s';
    let m = Math.floor(s / 60);
    s %= 60;
    if (m < 60) return `${m} min ${s} s`;
    let h = Math.floor(m / 60);
    m %= 60;
    if (h < 48) return `${h} h ${m} min`;
    const d = Math.floor(h / 24);
    h %= 24;
    return `${d} d ${h} h`;
  }

  // duration of a run: start to end, or to now while it runs; '' before it starts.
  function duration(inv) {
    const start = parseTime(inv.timestamp_start);
    if (!start) return '';
    const end = parseTime(inv.timestamp_end);
    const d = fmtDuration((end ? end.getTime() : Date.now()) - start.getTime());
    return end ? d : d + ' so far';
  }

  function stateEl(state) {
    const known = Object.prototype.hasOwnProperty.call(STATE_LABELS, state);
    return el('span', {
      class: 'state ' + (known ? 'state-' + state : 'state-unknown'),
      text: known ? STATE_LABELS[state] : String(state),
    });
  }

  // images of an invocation's result facts: [{ref, digest, platforms, changed, decision}].
  function resultImages(inv) {
    const r = inv && inv.result;
    if (!r || typeof r !== 'object' || !Array.isArray(r.images)) return [];
    return r.images.map((im) => ({
      ref: String(im.ref || im.name || ''),
      digest: im.digest ? String(im.digest) : '',
      platforms: (im.platforms || []).map((p) => (typeof p === 'string' ? p : String(p.platform || ''))),
      changed: im.changed,
      decision: im.decision ? String(im.decision) : '',
    }));
  }

  function shortDigest(d) {
    const i = d.indexOf(':');
    return i >= 0 && d.length > i + 13 ? d.slice(0, i + 13) + '…' : d;
  }

  // ---------------------------------------------------------------- views and routing

  const views = ['history', 'build', 'submit'];
  let pollTimer = null;
  let streamCtl = null;
  let currentBuild = '';

  function stopActivity() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = null;
    if (streamCtl) streamCtl.abort();
    streamCtl = null;
    currentBuild = '';
  }

  function show(name, title, focus) {
    for (const v of views) $('view-' + v).hidden = v !== name;
    for (const [link, view] of [['nav-history', 'history'], ['nav-submit', 'submit']]) {
      if (view === name) $(link).setAttribute('aria-current', 'page');
      else $(link).removeAttribute('aria-current');
    }
    document.title = title + ' — imagebuilder';
    if (focus) $(name + '-title').focus();
  }

  function route(ev) {
    stopActivity();
    const focus = !!ev; // move focus to the new view's heading after a navigation, not on load
    const h = location.hash || '#/';
    const m = h.match(/^#\/invocations\/([^/?#]+)$/);
    if (m) showBuild(decodeURIComponent(m[1]), focus);
    else if (h === '#/submit') showSubmit(focus);
    else showHistory(focus);
  }

  // ---------------------------------------------------------------- history

  let nextCursor = '';

  function selectedStates() {
    return [...document.querySelectorAll('#filter-form input[name=state]:checked')].map((i) => i.value);
  }

  function historyRow(inv) {
    const id = String(inv.invocation_id || '');
    const digests = new Map(resultImages(inv).map((im) => [im.ref, im.digest]));
    let refs = Array.isArray(inv.images) ? inv.images.map(String) : [];
    if (refs.length === 0) refs = [...digests.keys()];
    const images = el('ul', { class: 'refs' });
    for (const ref of refs) {
      const li = el('li', {}, el('span', { class: 'ref', text: ref }));
      const d = digests.get(ref);
      if (d) li.append(' ', el('code', { class: 'digest', title: d, 'data-digest': d, text: shortDigest(d) }));
      images.append(li);
    }
    const link = el('a', { href: '#/invocations/' + encodeURIComponent(id), class: 'id', title: id, text: id.slice(0, 8) });
    link.setAttribute('aria-label', 'build ' + id);
    const who = inv.owner ? el('div', { class: 'muted small', text: 'by ' + inv.owner }) : null;
    return el('tr', { 'data-id': id },
      el('td', {}, link, who),
      el('td', {}, stateEl(inv.state)),
      el('td', { text: String(inv.kind || '') + (inv.dry_run ? ' (dry run)' : '') }),
      el('td', {}, images),
      el('td', {}, timeEl(inv.timestamp_submission)),
      el('td', { text: duration(inv) || '—' }));
  }

  async function loadHistory(append) {
    const q = new URLSearchParams();
    const states = selectedStates();
    if (states.length) q.set('state', states.join(','));
    q.set('limit', '50');
    if (append && nextCursor) q.set('cursor', nextCursor);
    const tbody = $('history-rows');
    try {
      const page = await api('v1/invocations?' + q.toString());
      const rows = ((page && page.items) || []).map(historyRow);
      if (append) tbody.append(...rows);
      else tbody.replaceChildren(...rows);
      nextCursor = (page && page.next_cursor) || '';
      $('older').hidden = !nextCursor;
      $('history-empty').hidden = tbody.rows.length > 0;
      $('history-caption').textContent = `Builds, newest first (${tbody.rows.length} shown` +
        (states.length ? ', state ' + states.map((s) => STATE_LABELS[s]).join(' or ') : '') +
        `; updated ${fmtTime(new Date().toISOString())})`;
      if ($('status').classList.contains('status-error')) say('');
    } catch (err) {
      say('Loading the build history failed: ' + err.message, 'error');
    }
  }

  function startHistoryPoll() {
    if (pollTimer) clearInterval(pollTimer);
    pollTimer = setInterval(() => {
      if (!$('auto-refresh').checked || document.visibilityState !== 'visible') return;
      // do not pull rows from under the keyboard
      if ($('history').contains(document.activeElement)) return;
      loadHistory(false);
    }, POLL_MS);
  }

  function showHistory(focus) {
    show('history', 'Build history', focus);
    nextCursor = '';
    loadHistory(false);
    startHistoryPoll();
  }

  // ---------------------------------------------------------------- one build

  function fact(dl, term, value) {
    dl.append(el('dt', { text: term }), el('dd', {}, value));
  }

  function renderBuild(inv) {
    const id = String(inv.invocation_id || '');
    $('build-title').textContent = 'Build ' + id;
    document.title = 'Build ' + id.slice(0, 8) + ' — imagebuilder';
    const dl = $('build-facts');
    dl.replaceChildren();
    fact(dl, 'Invocation', el('code', { text: id }));
    fact(dl, 'State', stateEl(inv.state));
    fact(dl, 'Kind', String(inv.kind || '') + (inv.dry_run ? ' (dry run)' : ''));
    if (inv.owner) fact(dl, 'Owner', String(inv.owner));
    fact(dl, 'Submitted', timeEl(inv.timestamp_submission));
    fact(dl, 'Started', timeEl(inv.timestamp_start));
    fact(dl, 'Ended', timeEl(inv.timestamp_end));
    fact(dl, 'Duration', duration(inv) || '—');
    if (inv.attempt > 1) fact(dl, 'Attempts', String(inv.attempt));

    $('build-error-box').hidden = !inv.error;
    $('build-error').textContent = inv.error ? String(inv.error) : '';
    $('cancel').hidden = ENDED.has(inv.state);

    const rows = $('build-image-rows');
    const images = resultImages(inv);
    if (images.length) {
      rows.replaceChildren(...images.map((im) => el('tr', {},
        el('td', {}, el('span', { class: 'ref', text: im.ref })),
        el('td', {}, im.digest ? el('code', { class: 'digest', 'data-digest': im.digest, text: im.digest }) : '—'),
        el('td', { text: im.platforms.filter(Boolean).join(', ') || '—' }),
        el('td', { text: (im.decision ? im.decision + ', ' : '') + (im.changed ? 'changed' : 'unchanged') }))));
    } else {
      const refs = Array.isArray(inv.images) ? inv.images.map(String) : [];
      rows.replaceChildren(...refs.map((ref) => el('tr', {},
        el('td', {}, el('span', { class: 'ref', text: ref })), el('td', { text: '—' }),
        el('td', { text: '—' }), el('td', { text: '—' }))));
    }
    $('images-empty').hidden = images.length > 0;
    $('build-params').textContent = JSON.stringify(inv.build_params, null, 2) || '';
    $('build-result').textContent = inv.result ? JSON.stringify(inv.result, null, 2) : 'none yet';
  }

  async function loadBuild(id) {
    try {
      const inv = await api(invocationPath(id));
      if (currentBuild !== id) return null;
      renderBuild(inv);
      return inv;
    } catch (err) {
      if (currentBuild === id) say('Loading build ' + id + ' failed: ' + err.message, 'error');
      return null;
    }
  }

  function showBuild(id, focus) {
    show('build', 'Build ' + id.slice(0, 8), focus);
    currentBuild = id;
    $('build-title').textContent = 'Build ' + id;
    for (const c of ['build-facts', 'build-image-rows', 'log']) $(c).replaceChildren();
    $('build-error-box').hidden = true;
    $('cancel').hidden = true;
    say('');
    loadBuild(id).then((inv) => {
      if (!inv || currentBuild !== id) return;
      if (!ENDED.has(inv.state)) {
        pollTimer = setInterval(async () => {
          const now = await loadBuild(id);
          if (now && ENDED.has(now.state) && pollTimer) {
            clearInterval(pollTimer);
            pollTimer = null;
          }
        }, BUILD_POLL_MS);
      }
    });
    streamLog(id);
  }

  async function cancelBuild() {
    const id = currentBuild;
    if (!id) return;
    try {
      const inv = await api(invocationPath(id) + '/cancel', { method: 'POST' });
      say('Cancel requested for build ' + id + '.', 'ok');
      if (inv && currentBuild === id) renderBuild(inv);
    } catch (err) {
      say('Canceling build ' + id + ' failed: ' + err.message, 'error');
    }
  }

  // ---------------------------------------------------------------- the log (SSE over fetch)

  function logState(text) {
    $('log-state').textContent = text;
  }

  function appendLog(text) {
    const pre = $('log');
    pre.append(text + '\n');
    if ($('follow').checked) pre.scrollTop = pre.scrollHeight;
  }

  // readSSE reads a text/event-stream body and calls onEvent({event, data, id}) per event, as
  // the HTML standard's event-stream interpretation says (fields event, data, id; comments).
  async function readSSE(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    let data = [];
    let event = '';
    let id = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        let line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length || id !== null) onEvent({ event: event || 'message', data: data.join('\n'), id, hasData: data.length > 0 });
          data = [];
          event = '';
          id = null;
          continue;
        }
        if (line.startsWith(':')) continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        let v = i < 0 ? '' : line.slice(i + 1);
        if (v.startsWith(' ')) v = v.slice(1);
        if (field === 'data') data.push(v);
        else if (field === 'event') event = v;
        else if (field === 'id' && !v.includes('\0')) id = v;
      }
    }
  }

  const sleep = (ms, signal) => new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => { clearTimeout(t); resolve(); }, { once: true });
  });

  async function streamLog(id) {
    const ctl = new AbortController();
    streamCtl = ctl;
    let lastID = '';
    let ended = false;
    let failures = 0;
    logState('connecting…');
    while (!ctl.signal.aborted && !ended) {
      try {
        const extra = { Accept: 'text/event-stream' };
        if (lastID) extra['Last-Event-ID'] = lastID;
        const resp = await fetch(invocationPath(id) + '/logs', {
          headers: requestHeaders(extra), signal: ctl.signal, cache: 'no-store', credentials: 'same-origin',
        });
        if (!resp.ok) throw new APIError(resp.status, parseBody(await resp.text()));
        logState('streaming (live)');
        failures = 0;
        await readSSE(resp.body, (ev) => {
          if (ev.id !== null) lastID = ev.id;
          if (!ev.hasData) return;
          if (ev.event === 'end') {
            ended = true;
            const state = STATE_LABELS[ev.data] || ev.data;
            logState('the build ended: ' + state + '; the log below is complete');
            loadBuild(id);
          } else if (ev.event === 'log' || ev.event === 'message') {
            appendLog(ev.data);
          }
        });
      } catch (err) {
        if (ctl.signal.aborted) return;
        if (err instanceof APIError && err.status !== 429 && err.status < 500) {
          logState('the log is not available: ' + err.message);
          return;
        }
        failures++;
      }
      if (!ended && !ctl.signal.aborted) {
        logState('connection lost; reconnecting…');
        await sleep(Math.min(500 * 2 ** failures, 10000), ctl.signal);
      }
    }
  }

  // ---------------------------------------------------------------- submit

  function showSubmit(focus) {
    show('submit', 'Submit a build', focus);
  }

  function showSubmitErrors(err) {
    const box = $('submit-errors');
    const list = $('submit-errors-list');
    const body = err.body && typeof err.body === 'object' ? err.body : null;
    $('submit-errors-detail').textContent = err.message;
    list.replaceChildren();
    for (const e of (body && Array.isArray(body.errors) ? body.errors : [])) {
      const li = el('li', { class: 'field-error' });
      if (e.location) li.append(el('code', { class: 'pointer', text: String(e.location) }), ': ');
      li.append(String(e.message || ''));
      list.append(li);
    }
    box.hidden = false;
    box.focus();
  }

  async function submitFile(ev) {
    ev.preventDefault();
    const file = $('submit-file').files[0];
    $('submit-errors').hidden = true;
    if (!file) {
      say('Choose a file to submit.', 'error');
      return;
    }
    const button = $('submit-button');
    button.disabled = true;
    try {
      const text = await file.text();
      const body = { kind: $('submit-kind').value, document: text };
      if ($('submit-dry-run').checked) body.dry_run = true;
      const inv = await api('v1/invocations', {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(body),
      });
      const id = String(inv.invocation_id || '');
      say('Submitted ' + file.name + ' as build ' + id + '.', 'ok');
      $('submit-form').reset();
      location.hash = '#/invocations/' + encodeURIComponent(id);
    } catch (err) {
      say('Submitting ' + file.name + ' failed: ' + err.message, 'error');
      showSubmitErrors(err);
    } finally {
      button.disabled = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function init() {
    showKeyState();
    $('key-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      const k = $('api-key').value.trim();
      $('api-key').value = '';
      setAPIKey(k);
      say(k ? 'The API key is set for this tab.' : 'No API key set.', 'ok');
      route();
    });
    $('key-forget').addEventListener('click', () => {
      $('api-key').value = '';
      setAPIKey('');
      say('The API key is forgotten.', 'ok');
    });
    $('filter-form').addEventListener('submit', (ev) => {
      ev.preventDefault();
      nextCursor = '';
      loadHistory(false);
    });
    $('filter-form').addEventListener('change', (ev) => {
      if (ev.target.name === 'state') {
        nextCursor = '';
        loadHistory(false);
      }
    });
    $('older').addEventListener('click', () => {
      // older pages stay on screen: stop replacing the list until the next refresh
      $('auto-refresh').checked = false;
      loadHistory(true);
    });
    $('cancel').addEventListener('click', cancelBuild);
    $('submit-form').addEventListener('submit', submitFile);
    window.addEventListener('hashchange', route);
    route();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
