// The operator console: one page over the Faults API, signed in with a session cookie
// (HttpOnly, so this script never holds the API key). Every call is a same-origin fetch with
// the cookie; live updates come from GET /fault/stream through EventSource. Views are hash
// routes (#/faults?..., #/faults/<id>, #/sites, #/analytics, #/tokens, #/webhooks[/<id>]), so a
// filtered list or a wall screen can be bookmarked. Nothing is stored in the browser, nothing is
// loaded from anywhere else, and everything the API answers is written with textContent.
(function () {
  'use strict';

  var SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'WARNING', 'LOW'];
  var FILTER_KEYS = ['status', 'severity', 'type', 'resource_id', 'site', 'microservice_id', 'q', 'from', 'to',
    'recent'];
  var LIST_KEYS = ['type', 'resource_id', 'site', 'microservice_id'];
  var EVENTS = ['fault.created', 'fault.resolved', 'fault.commented', 'fault.deleted'];
  var PAGE = 50;
  // A re-read of the list's first page (when an event cannot be placed) at most this often.
  var REFRESH_GAP_MS = 5000;
  // Analytics answers are reused for this long when the tab is opened again.
  var ANALYTICS_FRESH_MS = 60000;
  var VIEWS = { faults: 'Faults', detail: 'Fault', sites: 'Sites', analytics: 'Analytics', tokens: 'Share links',
    webhooks: 'Webhooks' };
  var GATES = { tokens: 'tokens:write', webhooks: 'webhooks:write' };
  var KINDS = { created: 'Created', commented: 'Comment added', resolved: 'Resolved', deleted: 'Deleted',
    expired: 'Expired (retention)', token_minted: 'Share link created', acknowledged: 'Acknowledged' };
  var SVGNS = 'http://www.w3.org/2000/svg';

  // ---- small helpers ----

  function $(id) { return document.getElementById(id); }
  function add(node, kids) {
    if (kids === null || kids === undefined || kids === false) return node;
    if (Array.isArray(kids)) kids.forEach(function (k) { add(node, k); });
    else node.appendChild(typeof kids === 'object' ? kids : document.createTextNode(String(kids)));
    return node;
  }
  // An element; attribute values are set as text, never parsed as markup.
  function el(tag, attrs, kids) {
    var node = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined || v === false) return;
        if (k === 'class') node.className = v;
        else node.setAttribute(k, v === true ? '' : String(v));
      });
    }
    return add(node, kids);
  }
  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVGNS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function enc(s) { return encodeURIComponent(s); }
  // A query string that keeps commas and colons readable (lists, timestamps).
  function qs(params) {
    var parts = [];
    params.forEach(function (v, k) {
      parts.push(enc(k) + '=' + enc(v).replace(/%2C/gi, ',').replace(/%3A/gi, ':'));
    });
    return parts.join('&');
  }
  function splitList(text) {
    return String(text || '').split(/[\s,]+/).map(function (s) { return s.trim(); }).filter(Boolean);
  }
  function checked(form, name) {
    return Array.prototype.filter.call(form.querySelectorAll('input[name="' + name + '"]'),
      function (i) { return i.checked; }).map(function (i) { return i.value; });
  }
  function setChecked(form, name, values) {
    form.querySelectorAll('input[name="' + name + '"]').forEach(function (i) { i.checked = values.indexOf(i.value) >= 0; });
  }
  function plural(n, word) { return numFmt.format(n) + ' ' + word + (n === 1 ? '' : 's'); }
  function truncate(text, n) { text = String(text); return text.length > n ? text.slice(0, n - 1) + '…' : text; }
  function byId(rows, id) {
    for (var i = 0; i < rows.length; i++) if (rows[i].id === id) return i;
    return -1;
  }

  // ---- times and durations (the browser's zone, named in the footer) ----

  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  var dateTimeFmt = new Intl.DateTimeFormat(undefined,
    { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  var yearFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  var dayFmt = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
  var fullFmt = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short' });
  var clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  var numFmt = new Intl.NumberFormat();

  function formatStart(ms) {
    var d = new Date(ms), now = new Date();
    if (d.toDateString() === now.toDateString()) return 'today ' + timeFmt.format(d);
    if (d.getFullYear() !== now.getFullYear()) return yearFmt.format(d);
    return dateTimeFmt.format(d);
  }
  function formatDuration(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var d = Math.floor(seconds / 86400), h = Math.floor(seconds % 86400 / 3600);
    var m = Math.floor(seconds % 3600 / 60), s = seconds % 60;
    if (d) return d + 'd ' + h + 'h';
    if (h) return h + 'h ' + m + 'm';
    if (m) return m + 'm ' + s + 's';
    return s + 's';
  }
  // <time> in local time, the full date with its zone as a tooltip (and `full` as the text).
  function timeEl(iso, full) {
    if (!iso) return el('span', { 'class': 'muted' }, '–');
    var ms = Date.parse(iso);
    if (isNaN(ms)) return el('span', null, iso);
    return el('time', { datetime: iso, title: fullFmt.format(new Date(ms)) },
      full ? fullFmt.format(new Date(ms)) : formatStart(ms));
  }
  function ago(iso) {
    var ms = Date.parse(iso);
    return isNaN(ms) ? '' : formatDuration((Date.now() - ms) / 1000) + ' ago';
  }
  // A ticking duration (open faults) or a fixed one (resolved).
  function durEl(tag, f) {
    var node = el(tag, { 'class': 'dur', 'data-start': f.created_at, 'data-resolved': f.resolved_at || null });
    var end = f.resolved_at ? Date.parse(f.resolved_at) : Date.now();
    node.textContent = formatDuration((end - Date.parse(f.created_at)) / 1000);
    return node;
  }
  function toLocalInput(iso) {
    var d = new Date(iso);
    if (!iso || isNaN(d)) return '';
    function p(n) { return (n < 10 ? '0' : '') + n; }
    return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' +
      p(d.getMinutes());
  }
  function fromLocalInput(value) {
    var d = new Date(value);
    return value && !isNaN(d) ? d.toISOString() : '';
  }
  function pct(u) {
    if (typeof u !== 'number') return '–';
    return (u >= 100 ? '100' : u > 99.99 ? u.toFixed(3) : u.toFixed(2)) + '\u00a0%';
  }

  // ---- the API ----

  function ApiError(status, message, code) {
    this.status = status;
    this.message = message;
    this.code = code || '';
  }
  var leaving = false;
  // The session ended (key revoked, expired, signed out elsewhere): /console signs in again.
  function signedOut() {
    if (leaving) return;
    leaving = true;
    if (stream) stream.close();
    location.replace('/console');
  }
  function request(method, path, body, etag) {
    var headers = { Accept: 'application/json' };
    var init = { method: method, headers: headers, credentials: 'same-origin', cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    if (etag) headers['If-None-Match'] = etag;
    return fetch(path, init).then(function (r) {
      if (r.status === 401) {
        signedOut();
        throw new ApiError(401, 'Your session has ended. Sign in again.', 'session_ended');
      }
      if (r.status === 204 || r.status === 304) return { status: r.status, etag: r.headers.get('ETag'), data: null };
      return r.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
        if (!r.ok) {
          var message = data && typeof data.message === 'string' ? data.message : 'The server answered ' + r.status + '.';
          throw new ApiError(r.status, message, data && data.code);
        }
        return { status: r.status, etag: r.headers.get('ETag'), data: data };
      });
    }, function () {
      throw new ApiError(0, 'Cannot reach faultline. Check the connection and try again.', 'network');
    });
  }
  function api(method, path, body) { return request(method, path, body).then(function (r) { return r.data; }); }

  // ---- messages: errors (role=alert) and announcements (aria-live) ----

  function showError(err) {
    if (leaving || (err && err.status === 401)) return;
    var box = $('alert');
    box.textContent = '';
    var text = err && err.message ? err.message : String(err);
    box.appendChild(el('p', null, text));
    var close = el('button', { type: 'button', 'class': 'link' }, 'Dismiss');
    close.addEventListener('click', clearError);
    box.appendChild(close);
  }
  function clearError() { $('alert').textContent = ''; }
  var pendingNews = [], newsTimer = null;
  function announce(text) {
    pendingNews.push(text);
    if (!newsTimer) newsTimer = setTimeout(flushNews, 1200);
  }
  function flushNews() {
    newsTimer = null;
    var n = pendingNews.length;
    var text = n > 3 ? n + ' updates. Latest: ' + pendingNews.slice(-2).join('. ') : pendingNews.join('. ');
    pendingNews = [];
    $('announce').textContent = text;
  }
  function setLive(text, trouble) {
    var live = $('live');
    live.textContent = text;
    live.className = trouble ? 'live trouble' : 'live';
  }

  // A form whose submit runs `action` (a promise), with its buttons off while it runs.
  function bindForm(form, action) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      if (form.getAttribute('aria-busy') === 'true') return;
      var buttons = form.querySelectorAll('button');
      form.setAttribute('aria-busy', 'true');
      buttons.forEach(function (b) { b.disabled = true; });
      Promise.resolve().then(function () { return action(form); }).then(clearError, showError).then(function () {
        form.removeAttribute('aria-busy');
        buttons.forEach(function (b) { b.disabled = false; });
      });
    });
  }
  function copyText(text, input, button) {
    function done() {
      announce('Copied.');
      if (button) {
        var before = button.textContent;
        button.textContent = 'Copied';
        setTimeout(function () { button.textContent = before; }, 2000);
      }
    }
    function fallback() {
      input.focus();
      input.select();
      var ok = false;
      try { ok = document.execCommand('copy'); } catch (e) { ok = false; }
      if (ok) done(); else showError({ message: 'Copying is blocked here: the text is selected, copy it with the keyboard.' });
    }
    if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(text).then(done, fallback);
    else fallback();
  }

  // ---- who is signed in ----

  var perms = null;
  function can(p) { return !!perms && (perms.indexOf(p) >= 0 || perms.indexOf('all') >= 0); }
  var who = api('GET', '/whoami').then(function (w) {
    perms = Array.isArray(w.permissions) ? w.permissions : [];
    ['faults:read', 'faults:write', 'tokens:write', 'webhooks:write'].forEach(function (p) {
      document.body.classList.toggle('can-' + p.replace(':', '-'), can(p));
    });
    document.body.classList.add('perms-known');
    $('who').textContent = w.credential_id || '';
    $('who').title = 'Customer ' + w.customer_id + '; permissions: ' + perms.join(', ');
    return w;
  });
  who.catch(showError);

  var siteNames = {};
  function siteLabel(siteId, name) {
    if (name) return name;
    if (siteId && siteNames[siteId]) return siteNames[siteId];
    return siteId || '–';
  }
  function sevBadge(s) { return el('span', { 'class': 'sev sev-' + String(s).toLowerCase() }, s); }
  function statusBadge(status) {
    return el('span', { 'class': 'st st-' + status }, status === 'unresolved' ? 'Open' : status === 'resolved' ? 'Resolved' : status);
  }
  function cell(label, kids, cls) { return el('td', { 'data-label': label, 'class': cls || null }, kids); }

  // ---- the router ----

  var current = null, started = false;
  function parseHash() {
    var h = location.hash.replace(/^#/, '');
    if (h.charAt(0) !== '/') return null;
    var at = h.indexOf('?');
    var parts = (at < 0 ? h : h.slice(0, at)).split('/').filter(Boolean).map(function (p) {
      try { return decodeURIComponent(p); } catch (e) { return p; }
    });
    return { parts: parts, params: new URLSearchParams(at < 0 ? '' : h.slice(at + 1)) };
  }
  function route() {
    var r = parseHash();
    if (!r) return;
    var name = r.parts[0] || 'faults', id = r.parts[1] || null;
    var view = name === 'faults' && id ? 'detail' : name;
    if (!VIEWS[view]) { location.replace('#/faults'); return; }
    var changed = view !== current;
    if (changed && current) leave(current);
    clearError();
    show(view, changed);
    if (view === 'faults') enterFaults(r.params);
    else if (view === 'detail') enterDetail(id);
    else if (view === 'sites') enterSites(r.params);
    else if (view === 'analytics') enterAnalytics(r.params);
    else if (view === 'tokens') gated(view, function () { enterTokens(r.params); });
    else if (view === 'webhooks') gated(view, function () { enterWebhooks(id, r.params); });
  }
  function gated(view, enter) {
    who.then(function () { if (current === view && can(GATES[view])) enter(); });
  }
  function show(view, changed) {
    Object.keys(VIEWS).forEach(function (v) { $('view-' + v).hidden = v !== view; });
    document.querySelectorAll('#nav a[data-view]').forEach(function (a) {
      var v = a.getAttribute('data-view');
      if (v === view || (view === 'detail' && v === 'faults')) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    });
    document.title = VIEWS[view] + ' · faultline console';
    current = view;
    if (view !== 'faults') {
      document.body.classList.remove('wall');
      document.documentElement.classList.remove('wall');
    }
    if (changed && started) {
      var heading = $(view + '-h');
      if (heading) heading.focus();
    }
  }
  // Secrets shown once leave the page with their view.
  function leave(view) {
    if (view === 'tokens') {
      $('minted').hidden = true;
      $('minted-token').value = '';
      $('short-link').value = '';
    }
    if (view === 'webhooks') hideSecret();
  }

  // ---- fault list ----

  var filters = $('filters');
  // On a phone the filters start folded, so the list is on the first screen.
  if (window.matchMedia && window.matchMedia('(max-width: 760px)').matches) $('filters-fold').open = false;
  var faultsBody = $('faults').tBodies[0];
  var list = { key: null, rows: [], cursor: null, hasMore: false, pages: 0, loaded: false, gen: 0, etag: null,
    busy: false, wall: false };

  function formParams() {
    var p = new URLSearchParams(), e = filters.elements;
    if (e.status.value) p.set('status', e.status.value);
    var sev = checked(filters, 'severity');
    if (sev.length && sev.length < SEVERITIES.length) p.set('severity', sev.join(','));
    LIST_KEYS.forEach(function (k) {
      var v = splitList(e[k].value).join(',');
      if (v) p.set(k, v);
    });
    var q = e.q.value.trim();
    if (q) p.set('q', q);
    ['from', 'to'].forEach(function (k) {
      var v = fromLocalInput(e[k].value);
      if (v) p.set(k, v);
    });
    if (e.recent.checked) p.set('recent', 'true');
    return p;
  }
  function fillFilters(p) {
    var e = filters.elements;
    e.status.value = p.get('status') || '';
    setChecked(filters, 'severity', splitList(p.get('severity')));
    LIST_KEYS.forEach(function (k) { e[k].value = p.get(k) || ''; });
    e.q.value = p.get('q') || '';
    e.from.value = toLocalInput(p.get('from'));
    e.to.value = toLocalInput(p.get('to'));
    e.recent.checked = p.get('recent') === 'true';
  }
  // The API filter of route parameters: only GET /fault's own, in a fixed order.
  function apiFilter(p) {
    var out = new URLSearchParams();
    FILTER_KEYS.forEach(function (k) { if (p.get(k)) out.set(k, p.get(k)); });
    return out;
  }
  function pageQuery(key, cursor) {
    return (key ? key + '&' : '') + 'limit=' + PAGE + (cursor ? '&cursor=' + enc(cursor) : '');
  }
  function applyFilters() {
    var p = formParams();
    if (p.get('from') && p.get('to') && p.get('from') >= p.get('to')) {
      showError({ message: "'From' must be before 'To'." });
      return;
    }
    if (list.wall) p.set('wall', '1');
    var hash = '#/faults' + (qs(p) ? '?' + qs(p) : '');
    if (hash !== location.hash) location.hash = hash;
  }

  function enterFaults(params) {
    list.wall = params.get('wall') === '1';
    document.body.classList.toggle('wall', list.wall);
    document.documentElement.classList.toggle('wall', list.wall);
    fillFilters(params);
    var filter = apiFilter(params), key = qs(filter);
    var wall = new URLSearchParams(filter.toString());
    wall.set('wall', '1');
    $('wall-link').href = '#/faults?' + qs(wall);
    $('exit-wall').href = '#/faults' + (key ? '?' + key : '');
    // A list kept current by the stream is shown again as it is.
    if (key === list.key && list.loaded && streamLive) return;
    loadList(key);
  }
  function loadList(key) {
    var gen = ++list.gen;
    list.key = key;
    list.rows = [];
    list.cursor = null;
    list.hasMore = false;
    list.pages = 0;
    list.loaded = false;
    faultsBody.textContent = '';
    $('faults').setAttribute('aria-busy', 'true');
    listStatus('Loading faults…');
    request('GET', '/fault?' + pageQuery(key)).then(function (r) {
      if (gen !== list.gen) return;
      list.etag = r.etag;
      list.loaded = true;
      appendPage(r.data);
      // When the list became usable, in ms since navigation (read by bench/console.sh).
      if (window.performance && performance.mark) performance.mark('faultline:list-rendered');
    }).catch(function (err) {
      if (gen !== list.gen) return;
      listStatus('The faults could not be loaded.');
      showError(err);
    }).then(function () { $('faults').removeAttribute('aria-busy'); });
  }
  function appendPage(page) {
    var frag = document.createDocumentFragment();
    page.data.forEach(function (f) {
      if (byId(list.rows, f.id) >= 0) return;
      list.rows.push(f);
      frag.appendChild(faultRow(f));
    });
    faultsBody.appendChild(frag);
    list.pages += 1;
    list.cursor = page.meta.cursor;
    list.hasMore = !!page.meta.has_more && !!page.meta.cursor;
    listChanged();
  }
  function loadMore() {
    if (!list.cursor || list.busy) return;
    var gen = list.gen, button = $('more');
    list.busy = true;
    button.disabled = true;
    request('GET', '/fault?' + pageQuery(list.key, list.cursor)).then(function (r) {
      if (gen !== list.gen) return;
      var before = list.rows.length;
      appendPage(r.data);
      announce(plural(list.rows.length - before, 'more fault') + ' loaded.');
    }).catch(function (err) {
      // A cursor the server no longer accepts: start again from the top.
      if (err.code === 'cursor_invalid') loadList(list.key); else showError(err);
    }).then(function () {
      list.busy = false;
      button.disabled = false;
    });
  }
  function listStatus(text) { $('faults-status').textContent = text; }
  function listChanged() {
    var n = list.rows.length;
    $('faults-empty').hidden = !list.loaded || n > 0;
    $('more').hidden = !list.hasMore;
    if (list.loaded) {
      listStatus(n ? 'Showing ' + plural(n, 'fault') + ', newest first' + (list.hasMore ? '; more below.' : '.') : '');
    }
  }
  // One row, the same markup as the shared dashboard's (dashboard.rs, fault_row), plus status.
  function faultRow(f) {
    var tr = el('tr', { 'data-id': f.id, 'data-severity': f.severity, 'data-status': f.status,
      'class': f.status === 'resolved' ? 'is-resolved' : null });
    tr.appendChild(cell('Severity', sevBadge(f.severity)));
    tr.appendChild(cell('Status', statusBadge(f.status)));
    tr.appendChild(cell('Type', f.type));
    tr.appendChild(cell('Site, resource', [
      el('span', { 'class': 'site', title: f.site_id || null }, siteLabel(f.site_id, f.site_name)), ' ',
      el('span', { 'class': 'res' }, f.resource_id)], 'ids'));
    var what = [el('a', { 'class': 'msg', href: '#/faults/' + enc(f.id) }, f.message || f.id), ' ',
      el('span', { 'class': 'cause' }, f.cause || '–')];
    if (f.comments && f.comments.length) {
      var last = f.comments[f.comments.length - 1];
      what.push(el('span', { 'class': 'comment' }, 'Comment' + (f.comments.length > 1 ? ' (' + f.comments.length +
        ')' : '') + ': ' + last.comment));
    }
    tr.appendChild(cell('Message, cause', what, 'what'));
    tr.appendChild(cell('Started', timeEl(f.created_at)));
    var dur = durEl('td', f);
    dur.setAttribute('data-label', 'Duration');
    if (f.resolved_at) dur.appendChild(el('span', { 'class': 'ended' }, ['resolved ', timeEl(f.resolved_at)]));
    tr.appendChild(dur);
    return tr;
  }
  function newer(a, b) { return a.created_at > b.created_at || (a.created_at === b.created_at && a.id > b.id); }
  function insertionIndex(f) {
    for (var i = 0; i < list.rows.length; i++) if (newer(f, list.rows[i])) return i;
    return list.rows.length;
  }
  function focusedRowId() {
    var active = document.activeElement;
    var tr = active && active.closest ? active.closest('#faults tr[data-id]') : null;
    return tr ? tr.getAttribute('data-id') : null;
  }
  function focusRow(id) {
    var tr = id && faultsBody.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
    var link = tr && tr.querySelector('a');
    if (link) link.focus();
  }
  function insertRow(i, f) {
    list.rows.splice(i, 0, f);
    var tr = faultRow(f);
    tr.classList.add('fresh');
    faultsBody.insertBefore(tr, faultsBody.rows[i] || null);
  }
  function replaceRow(i, f) {
    var focused = focusedRowId();
    list.rows[i] = f;
    faultsBody.replaceChild(faultRow(f), faultsBody.rows[i]);
    if (focused === f.id) focusRow(f.id);
  }
  function removeRow(i) {
    var focused = focusedRowId() === list.rows[i].id;
    list.rows.splice(i, 1);
    faultsBody.removeChild(faultsBody.rows[i]);
    if (focused) {
      var next = list.rows[i] || list.rows[i - 1];
      if (next) focusRow(next.id); else $('faults-h').focus();
    }
  }
  // Does a fault pass the list's filter? null when the browser cannot tell as the server would
  // (free text beyond ASCII: SQLite and PostgreSQL fold case differently).
  function matchFault(f, p) {
    function values(k) { return splitList(p.get(k)); }
    function among(k, v) { var vs = values(k); return !vs.length || vs.indexOf(v) >= 0; }
    if (!among('status', f.status) || !among('severity', f.severity) || !among('type', f.type)) return false;
    if (!among('resource_id', f.resource_id) || !among('microservice_id', f.microservice_id)) return false;
    var sites = values('site');
    if (sites.length) {
      var elements = String(f.resource_ancestry_path || '').split('|').concat([f.resource_id]);
      if (!sites.some(function (s) { return elements.indexOf(s) >= 0; })) return false;
    }
    var created = Date.parse(f.created_at);
    if (p.get('from') && !(created >= Date.parse(p.get('from')))) return false;
    if (p.get('to') && !(created < Date.parse(p.get('to')))) return false;
    if (p.get('recent') === 'true' && f.status !== 'unresolved' && Date.now() - created >= 86400000) return false;
    var q = (p.get('q') || '').trim();
    if (q) {
      if (/[^\u0000-\u007f]/.test(q + f.message + f.cause)) return null;
      q = q.toLowerCase();
      if (String(f.message).toLowerCase().indexOf(q) < 0 && String(f.cause).toLowerCase().indexOf(q) < 0) return false;
    }
    return true;
  }
  // Re-read the first page (conditionally), at most every REFRESH_GAP_MS. Rows loaded beyond
  // it are kept (their cursor still continues after the last of them).
  var refreshTimer = null, refreshedAt = 0;
  function refreshSoon() {
    if (refreshTimer || list.key === null) return;
    refreshTimer = setTimeout(function () {
      refreshTimer = null;
      refreshedAt = Date.now();
      refreshList();
    }, Math.max(0, refreshedAt + REFRESH_GAP_MS - Date.now()));
  }
  function refreshList() {
    if (!list.loaded) { loadList(list.key); return; }
    var gen = list.gen;
    request('GET', '/fault?' + pageQuery(list.key), undefined, list.etag).then(function (r) {
      if (gen !== list.gen || r.status === 304) return;
      list.etag = r.etag;
      var page = r.data, fresh = page.data, keep = [];
      if (page.meta.has_more && list.pages > 1 && fresh.length) {
        var last = fresh[fresh.length - 1];
        keep = list.rows.filter(function (f) { return newer(last, f) && byId(fresh, f.id) < 0; });
      } else {
        list.cursor = page.meta.cursor;
        list.hasMore = !!page.meta.has_more && !!page.meta.cursor;
        list.pages = 1;
      }
      var seen = {}, focused = focusedRowId();
      list.rows.forEach(function (f) { seen[f.id] = true; });
      list.rows = fresh.concat(keep);
      var frag = document.createDocumentFragment();
      list.rows.forEach(function (f) {
        var tr = faultRow(f);
        if (!seen[f.id]) tr.classList.add('fresh');
        frag.appendChild(tr);
      });
      faultsBody.textContent = '';
      faultsBody.appendChild(frag);
      if (focused) focusRow(focused);
      listChanged();
    }).catch(showError);
  }
  function applyToList(type, id, f) {
    if (!list.loaded) return;
    var i = byId(list.rows, id), shown = current === 'faults';
    if (type === 'fault.deleted' || !f) {
      if (i < 0) return;
      var gone = list.rows[i];
      removeRow(i);
      listChanged();
      if (shown) announce('Fault removed: ' + gone.message);
      return;
    }
    var m = matchFault(f, new URLSearchParams(list.key));
    if (m === null) {
      if (i >= 0) replaceRow(i, f);
      refreshSoon();
      return;
    }
    if (!m) {
      if (i < 0) return;
      removeRow(i);
      listChanged();
      if (shown) announce((type === 'fault.resolved' ? 'Resolved: ' : 'No longer in this view: ') + f.message);
      return;
    }
    if (i >= 0) {
      replaceRow(i, f);
      if (shown && type === 'fault.resolved') announce('Resolved: ' + f.message);
      return;
    }
    var at = insertionIndex(f);
    // Older than every loaded row while more are on the server: its page is not loaded yet.
    if (at === list.rows.length && list.hasMore) return;
    insertRow(at, f);
    listChanged();
    if (shown) announce('New ' + f.severity + ' fault at ' + siteLabel(f.site_id, f.site_name) + ': ' + f.message);
    // A long-running wall screen: back to one page now and then.
    if (list.rows.length > PAGE * list.pages + 100) refreshSoon();
  }

  filters.addEventListener('submit', function (e) { e.preventDefault(); applyFilters(); });
  filters.addEventListener('change', function (e) {
    var t = e.target;
    // Choices apply at once; typed text and dates apply with Enter or the Apply button.
    if (t.tagName === 'SELECT' || t.type === 'checkbox') applyFilters();
  });
  $('more').addEventListener('click', loadMore);
  // A click anywhere on a row opens it (the message link is the keyboard's way in).
  faultsBody.addEventListener('click', function (e) {
    if (e.target.closest('a, button, input, textarea, select') || (window.getSelection && String(getSelection()))) return;
    var tr = e.target.closest('tr[data-id]');
    if (tr) location.hash = '#/faults/' + enc(tr.getAttribute('data-id'));
  });

  // ---- fault detail ----

  var detail = { id: null, fault: null, gen: 0, timelineTimer: null };

  function enterDetail(id) {
    var gen = ++detail.gen;
    detail.id = id;
    detail.fault = null;
    $('detail-h').textContent = 'Fault ' + id;
    $('detail-status').textContent = 'Loading…';
    $('detail-body').hidden = true;
    var back = list.key ? '#/faults?' + list.key : '#/faults';
    if (list.wall) back += (list.key ? '&' : '?') + 'wall=1';
    $('back').href = back;
    var known = byId(list.rows, id);
    if (known >= 0) renderDetail(list.rows[known]);
    api('GET', '/fault/' + enc(id)).then(function (f) {
      if (gen === detail.gen) renderDetail(f);
    }).catch(function (err) {
      if (gen !== detail.gen) return;
      $('detail-status').textContent = err.status === 404 ? 'There is no such fault (it may have been deleted).' : '';
      if (err.status === 404) $('detail-body').hidden = true;
      showError(err);
    });
    loadTimeline();
  }
  function field(dl, name, value) {
    dl.appendChild(el('dt', null, name));
    dl.appendChild(el('dd', null, value));
  }
  function renderDetail(f) {
    detail.fault = f;
    document.title = truncate(f.message || f.id, 60) + ' · faultline console';
    $('detail-h').textContent = f.message || f.id;
    $('detail-status').textContent = '';
    $('detail-body').hidden = false;
    var dl = $('detail-fields');
    dl.textContent = '';
    field(dl, 'Status', statusBadge(f.status));
    field(dl, 'Severity', sevBadge(f.severity));
    field(dl, 'Type', f.type);
    field(dl, 'Site', f.site_id ? [el('a', { href: '#/faults?site=' + enc(f.site_id) },
      siteLabel(f.site_id, f.site_name)), f.site_name ? el('span', { 'class': 'res' }, ' ' + f.site_id) : null] : '–');
    field(dl, 'Resource', el('span', { 'class': 'code' }, f.resource_id));
    field(dl, 'Ancestry', el('span', { 'class': 'code' }, f.resource_ancestry_path || '–'));
    field(dl, 'Reported by', f.microservice_id);
    field(dl, 'Cause', f.cause || '–');
    field(dl, 'Started', timeEl(f.created_at, true));
    field(dl, 'Resolved', f.resolved_at ? timeEl(f.resolved_at, true) : 'not yet');
    field(dl, 'Duration', durEl('span', f));
    field(dl, 'Fault id', el('span', { 'class': 'code' }, f.id));
    if (f.ttl) field(dl, 'Kept until', timeEl(new Date(f.ttl * 1000).toISOString(), true));
    var ol = $('comments');
    ol.textContent = '';
    (f.comments || []).forEach(function (c) {
      ol.appendChild(el('li', null, [el('p', { 'class': 'text' }, c.comment),
        el('p', { 'class': 'meta' }, [c.user_id, ' · ', timeEl(c.created_at, true)])]));
    });
    if (!f.comments || !f.comments.length) ol.appendChild(el('li', { 'class': 'empty' }, 'No comments yet.'));
    $('resolve-panel').hidden = f.status === 'resolved';
    $('share-fault').href = '#/tokens?fault_ids=' + enc(f.id) + '&label=' + enc(truncate(f.message || f.id, 200));
  }
  function loadTimeline() {
    var gen = detail.gen, id = detail.id;
    api('GET', '/fault/' + enc(id) + '/timeline').then(function (t) {
      if (gen !== detail.gen) return;
      var ol = $('timeline');
      ol.textContent = '';
      (t.data || []).forEach(function (e) {
        ol.appendChild(el('li', { 'data-kind': e.kind }, [timeEl(e.at, true), ' ',
          el('strong', null, KINDS[e.kind] || e.kind), ' by ', el('span', { 'class': 'code' }, e.actor),
          detailText(e.detail) ? el('span', { 'class': 'meta' }, ' · ' + detailText(e.detail)) : null]));
      });
    }).catch(function (err) {
      if (gen !== detail.gen) return;
      $('timeline').textContent = '';
      $('timeline').appendChild(el('li', { 'class': 'empty' },
        err.status === 404 ? 'No recorded history.' : 'The history could not be loaded: ' + err.message));
    });
  }
  function timelineSoon() {
    clearTimeout(detail.timelineTimer);
    detail.timelineTimer = setTimeout(loadTimeline, 1500);
  }
  function detailText(d) {
    if (!d || typeof d !== 'object') return '';
    return Object.keys(d).map(function (k) {
      var v = d[k];
      // Times in the log's details are microseconds since the epoch.
      if (/_at$/.test(k) && typeof v === 'number') v = fullFmt.format(new Date(v / 1000));
      else if (v !== null && typeof v === 'object') v = JSON.stringify(v);
      return k.replace(/_/g, ' ') + ': ' + v;
    }).join(', ');
  }
  function applyToDetail(type, id, f) {
    if (current !== 'detail' || detail.id !== id) return;
    if (type === 'fault.deleted' || !f) {
      $('detail-status').textContent = 'This fault has been deleted.';
      $('resolve-panel').hidden = true;
      announce('This fault has been deleted.');
    } else {
      if (type === 'fault.commented') announce('New comment on this fault.');
      if (type === 'fault.resolved' && detail.fault && detail.fault.status !== 'resolved') announce('This fault was resolved.');
      renderDetail(f);
    }
    timelineSoon();
  }

  bindForm($('resolve'), function (form) {
    var text = form.elements.comment.value.trim();
    return api('POST', '/fault/' + enc(detail.id) + '/resolve', text ? { comment: text } : {}).then(function (f) {
      form.reset();
      renderDetail(f);
      applyToList('fault.resolved', f.id, f);
      timelineSoon();
      announce('Fault resolved.');
      $('detail-h').focus();
    });
  });
  bindForm($('comment'), function (form) {
    var text = form.elements.comment.value.trim();
    if (!text) throw new ApiError(400, 'Write a comment first.');
    return api('POST', '/fault/' + enc(detail.id) + '/comment', { comment: text }).then(function (f) {
      form.reset();
      renderDetail(f);
      applyToList('fault.commented', f.id, f);
      timelineSoon();
      announce('Comment added.');
    });
  });

  // ---- live stream ----

  var stream = null, streamDelay = 1000, streamGap = false, streamLive = false;
  function openStream() {
    if (leaving || stream) return;
    var es = new EventSource('/fault/stream');
    stream = es;
    es.onopen = function () {
      streamDelay = 1000;
      streamLive = true;
      setLive('Live', false);
      // A new connection does not resume the old one: read what may have been missed.
      if (streamGap) {
        streamGap = false;
        refreshSoon();
      }
    };
    EVENTS.forEach(function (type) {
      es.addEventListener(type, function (ev) { onStreamEvent(type, ev.data); });
    });
    // Too far behind: the server ends the stream; reload and start over.
    es.addEventListener('resync', function () {
      es.close();
      stream = null;
      streamLive = false;
      streamGap = true;
      openStream();
    });
    es.onerror = function () {
      streamLive = false;
      if (es.readyState !== EventSource.CLOSED) {
        setLive('Reconnecting…', true);
        return;
      }
      // Refused (the session may have ended): ask, then try again later.
      stream = null;
      streamGap = true;
      setLive('Live updates paused; retrying…', true);
      var delay = streamDelay;
      streamDelay = Math.min(streamDelay * 2, 60000);
      api('GET', '/whoami').then(function () { setTimeout(openStream, delay); }, function (err) {
        if (err.status !== 401) setTimeout(openStream, delay);
      });
    };
  }
  function onStreamEvent(type, data) {
    var payload;
    try { payload = JSON.parse(data); } catch (e) { return; }
    if (!payload || typeof payload.fault_id !== 'string') return;
    var f = payload.fault && typeof payload.fault === 'object' ? payload.fault : null;
    if (f && f.site_id && f.site_name) siteNames[f.site_id] = f.site_name;
    applyToList(type, payload.fault_id, f);
    applyToDetail(type, payload.fault_id, f);
    setLive('Live · updated ' + clockFmt.format(new Date()), false);
  }

  // ---- sites ----

  var siteForm = $('site-filters');
  var sitesBody = $('sites').tBodies[0];
  var sites = { key: null, rows: [], cursor: null, hasMore: false, gen: 0, loaded: false, named: false };

  function enterSites(params) {
    siteForm.elements.status.value = params.get('status') || '';
    siteForm.elements.q.value = params.get('q') || '';
    var p = new URLSearchParams();
    ['status', 'q'].forEach(function (k) { if (params.get(k)) p.set(k, params.get(k)); });
    var key = qs(p);
    if (key === sites.key && sites.loaded) return;
    loadSites(key, null);
  }
  function loadSites(key, cursor) {
    var gen = cursor ? sites.gen : ++sites.gen;
    if (!cursor) {
      sites.key = key;
      sites.rows = [];
      sites.loaded = false;
      sitesBody.textContent = '';
      $('sites-empty').hidden = true;
      $('sites-more').hidden = true;
    }
    $('sites').setAttribute('aria-busy', 'true');
    return api('GET', '/sites?' + pageQuery(key, cursor)).then(function (page) {
      if (gen !== sites.gen) return;
      var frag = document.createDocumentFragment();
      page.data.forEach(function (s) {
        if (s.name) siteNames[s.site_id] = s.name;
        sites.rows.push(s);
        frag.appendChild(siteRow(s));
      });
      sitesBody.appendChild(frag);
      sites.loaded = true;
      sites.named = true;
      sites.cursor = page.meta.cursor;
      sites.hasMore = !!page.meta.has_more && !!page.meta.cursor;
      $('sites-more').hidden = !sites.hasMore;
      $('sites-empty').hidden = sites.rows.length > 0;
      loadUptime(page.data, gen);
    }).catch(function (err) {
      if (gen === sites.gen) showError(err);
    }).then(function () { $('sites').removeAttribute('aria-busy'); });
  }
  function siteRow(s) {
    var tr = el('tr', { 'data-id': s.site_id, 'data-status': s.status });
    var name = [el('strong', { 'class': 'site-name' }, s.name || s.site_id)];
    if (s.name) name.push(el('span', { 'class': 'res' }, s.site_id));
    if (s.named_by) name.push(el('span', { 'class': 'muted small' }, 'named by ' + s.named_by));
    tr.appendChild(cell('Site', name, 'name'));
    var status = [el('span', { 'class': 'st st-' + s.status }, s.status)];
    if (s.status === 'offline' && s.offline_since) status.push(el('span', { 'class': 'muted small' }, ['since ', timeEl(s.offline_since)]));
    tr.appendChild(cell('Status', status));
    tr.appendChild(cell('Last heartbeat', s.last_heartbeat_at ? [timeEl(s.last_heartbeat_at),
      el('span', { 'class': 'muted small' }, ago(s.last_heartbeat_at))] : el('span', { 'class': 'muted' }, 'never')));
    var open = s.open_faults || 0;
    tr.appendChild(cell('Open faults', el('a', { href: '#/faults?site=' + enc(s.site_id) + '&status=unresolved',
      'class': open ? 'count hot' : 'count', 'aria-label': plural(open, 'open fault') + ' at ' + (s.name || s.site_id) }, String(open))));
    tr.appendChild(cell('30-day uptime', el('span', { 'class': 'muted' }, '…'), 'uptime'));
    var rename = el('button', { type: 'button', 'class': 'rename small', 'aria-label': 'Rename ' + (s.name || s.site_id) }, 'Rename');
    var actions = cell('Actions', rename, 'actions');
    actions.setAttribute('data-perm', 'faults:write');
    tr.appendChild(actions);
    return tr;
  }
  // Uptime of the page's sites: one GET /fault/sla for all of them (it lists every site asked
  // for, those without outages at 100 %).
  function loadUptime(page, gen) {
    if (!page.length) return;
    var ids = page.map(function (s) { return s.site_id; });
    function fill(id, kids, title) {
      var tr = sitesBody.querySelector('tr[data-id="' + CSS.escape(id) + '"]');
      var td = tr && tr.querySelector('td.uptime');
      if (!td) return;
      td.textContent = '';
      add(td, kids);
      if (title) td.title = title;
    }
    api('GET', '/fault/sla?site=' + ids.map(enc).join(',')).then(function (report) {
      if (gen !== sites.gen) return;
      var by = {};
      (report.data || []).forEach(function (x) { by[x.site_id] = x; });
      ids.forEach(function (id) {
        var x = by[id];
        if (!x) { fill(id, el('span', { 'class': 'muted' }, '–')); return; }
        fill(id, el('span', { 'class': x.breached ? 'breach' : 'ok' }, pct(x.uptime_percent) + (x.breached ? ' (below ' +
          report.target + ' %)' : '')), plural(x.outage_count, 'outage') + ', ' + formatDuration(x.downtime_seconds) + ' down');
      });
    }).catch(function (err) {
      if (gen !== sites.gen) return;
      ids.forEach(function (id) { fill(id, el('span', { 'class': 'muted' }, '–')); });
      showError(err);
    });
  }
  function startRename(tr) {
    var id = tr.getAttribute('data-id');
    var s = sites.rows[byKey(sites.rows, 'site_id', id)];
    if (!s) return;
    var td = tr.querySelector('td.name');
    var input = el('input', { name: 'name', maxlength: '200', value: s.name || '', 'aria-label': 'New name of ' + id,
      autocomplete: 'off' });
    var form = el('form', { 'class': 'rename-form' }, [input, el('button', { type: 'submit' }, 'Save'),
      el('button', { type: 'button', 'class': 'cancel' }, 'Cancel'),
      s.named_by === 'operator' ? el('button', { type: 'button', 'class': 'clear' }, 'Use heartbeat name') : null]);
    function save(name) {
      return api('PUT', '/sites/' + enc(id), { name: name }).then(function (updated) {
        var i = byKey(sites.rows, 'site_id', id);
        if (i >= 0) sites.rows[i] = updated;
        if (updated.name) siteNames[id] = updated.name; else delete siteNames[id];
        var fresh = siteRow(updated);
        tr.replaceWith(fresh);
        var old = tr.querySelector('td.uptime');
        fresh.replaceChild(old, fresh.querySelector('td.uptime'));
        fresh.querySelector('button.rename').focus();
        relabelSite(id, updated.name);
        announce('Site ' + id + (updated.name ? ' is now named ' + updated.name : ' has no operator name now') + '.');
      });
    }
    bindForm(form, function () { return save(input.value.trim() || null); });
    form.querySelector('.cancel').addEventListener('click', function () { cancel(); });
    var clear = form.querySelector('.clear');
    if (clear) clear.addEventListener('click', function () { save(null).catch(showError); });
    form.addEventListener('keydown', function (e) { if (e.key === 'Escape') cancel(); });
    var before = Array.prototype.slice.call(td.childNodes);
    function cancel() {
      td.textContent = '';
      before.forEach(function (n) { td.appendChild(n); });
      tr.querySelector('button.rename').focus();
    }
    td.textContent = '';
    td.appendChild(form);
    input.focus();
    input.select();
  }
  function byKey(rows, key, value) {
    for (var i = 0; i < rows.length; i++) if (rows[i][key] === value) return i;
    return -1;
  }
  // A renamed site: the fault rows already loaded show the new name.
  function relabelSite(id, name) {
    list.rows.forEach(function (f, i) {
      if (f.site_id !== id) return;
      f.site_name = name || null;
      replaceRow(i, f);
    });
  }
  siteForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var p = new URLSearchParams();
    if (siteForm.elements.status.value) p.set('status', siteForm.elements.status.value);
    if (siteForm.elements.q.value.trim()) p.set('q', siteForm.elements.q.value.trim());
    var hash = '#/sites' + (qs(p) ? '?' + qs(p) : '');
    if (hash !== location.hash) location.hash = hash; else loadSites(sites.key, null);
  });
  siteForm.elements.status.addEventListener('change', function () { siteForm.requestSubmit ? siteForm.requestSubmit() : siteForm.dispatchEvent(new Event('submit', { cancelable: true })); });
  $('sites-more').addEventListener('click', function () {
    var b = $('sites-more');
    b.disabled = true;
    loadSites(sites.key, sites.cursor).then(function () { b.disabled = false; });
  });
  sitesBody.addEventListener('click', function (e) {
    var b = e.target.closest('button.rename');
    if (b && can('faults:write')) startRename(b.closest('tr'));
  });

  // ---- analytics ----

  var analyticsForm = $('analytics-form');
  var charts = { key: null, at: 0, trend: null, sla: null, top: null };

  function enterAnalytics(params) {
    var interval = ['hour', 'day', 'week'].indexOf(params.get('interval')) >= 0 ? params.get('interval') : 'day';
    analyticsForm.elements.interval.value = interval;
    analyticsForm.elements.site.value = params.get('site') || '';
    var p = new URLSearchParams();
    p.set('interval', interval);
    if (params.get('site')) p.set('site', splitList(params.get('site')).join(','));
    var key = qs(p);
    if (key === charts.key && Date.now() - charts.at < ANALYTICS_FRESH_MS) { drawCharts(); return; }
    charts.key = key;
    charts.at = Date.now();
    charts.trend = charts.sla = charts.top = null;
    ['trend', 'mttr', 'sla', 'top'].forEach(function (name) { placeholder(name, 'Loading…'); });
    var site = p.get('site');
    api('GET', '/fault/analytics?' + key + '&group_by=severity&tz=' + enc(zone)).then(function (a) {
      if (key !== charts.key) return;
      charts.trend = a;
      drawTrend();
      drawMttr();
    }).catch(chartFailed(key, ['trend', 'mttr']));
    api('GET', '/fault/sla' + (site ? '?site=' + site.split(',').map(enc).join(',') : '')).then(function (r) {
      if (key !== charts.key) return;
      charts.sla = r;
      drawSla();
    }).catch(chartFailed(key, ['sla']));
    api('GET', '/fault/top_faults?limit=10').then(function (items) {
      if (key !== charts.key) return;
      charts.top = items;
      drawTop();
    }).catch(chartFailed(key, ['top']));
    // The uptime and top answers name sites by id only: one page of GET /sites names most.
    if (!sites.named) {
      sites.named = true;
      api('GET', '/sites?limit=100').then(function (page) {
        page.data.forEach(function (x) { if (x.name) siteNames[x.site_id] = x.name; });
        if (current === 'analytics') drawCharts();
      }, function () { sites.named = false; });
    }
  }
  function chartFailed(key, names) {
    return function (err) {
      if (key !== charts.key) return;
      charts.at = 0;
      names.forEach(function (n) { placeholder(n, 'Not available: ' + err.message); });
      showError(err);
    };
  }
  function plot(name) { return $('chart-' + name).querySelector('.plot'); }
  function placeholder(name, text) {
    var box = plot(name);
    box.textContent = '';
    box.appendChild(el('p', { 'class': 'muted' }, text));
  }
  function drawCharts() {
    if (charts.trend) { drawTrend(); drawMttr(); }
    if (charts.sla) drawSla();
    if (charts.top) drawTop();
  }
  function width(box) { return Math.max(260, Math.round(box.clientWidth || 600)); }
  function svgRoot(w, h, label) {
    return svg('svg', { viewBox: '0 0 ' + w + ' ' + h, width: w, height: h, role: 'img', 'aria-label': label,
      focusable: 'false' });
  }
  // The text alternative: a summary (for sighted readers too) and a visually hidden table.
  function alternative(box, summary, caption, head, rows) {
    box.appendChild(el('p', { 'class': 'note', 'aria-hidden': 'true' }, summary));
    var table = el('table', null, el('caption', null, caption));
    table.appendChild(el('thead', null, el('tr', null, head.map(function (h) { return el('th', { scope: 'col' }, h); }))));
    table.appendChild(el('tbody', null, rows.map(function (r) {
      return el('tr', null, r.map(function (c, i) { return el(i ? 'td' : 'th', i ? null : { scope: 'row' }, c); }));
    })));
    // (A table cannot be shrunk to nothing: its wrapper is what is visually hidden.)
    box.appendChild(el('div', { 'class': 'vh' }, table));
  }
  function niceStep(raw) {
    var power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var nice = [1, 2, 5, 10].filter(function (m) { return m * power >= raw; })[0];
    return Math.max(1, nice * power);
  }
  function bucketLabel(ms, interval) {
    var d = new Date(ms);
    return interval === 'hour' ? timeFmt.format(d) : dayFmt.format(d);
  }
  function drawTrend() {
    var a = charts.trend, box = plot('trend');
    box.textContent = '';
    var w = width(box), h = Math.round(Math.min(280, Math.max(170, w * 0.38)));
    var left = 38, bottom = 22, top = 8, right = 6, n = a.buckets.length;
    var max = 1;
    a.buckets.forEach(function (b) { max = Math.max(max, b.count); });
    var step = niceStep(max / 4), yMax = step * 4;
    var plotW = w - left - right, plotH = h - top - bottom, slot = plotW / Math.max(n, 1);
    var barW = Math.max(1, slot * 0.8);
    var peak = a.buckets.reduce(function (p, b) { return b.count > p.count ? b : p; }, { count: -1 });
    var summary = plural(a.totals.count, 'fault') + ' from ' + fullFmt.format(new Date(a.totals.from)) + ' to ' +
      fullFmt.format(new Date(a.totals.to)) + (peak.count > 0 ? '; most (' + peak.count + ') in the ' + a.interval +
      ' from ' + dateTimeFmt.format(new Date(peak.start)) : '') + '. ' + plural(a.open_now, 'fault') + ' open now.';
    var root = svgRoot(w, h, 'Faults by severity over time. ' + summary);
    for (var i = 0; i <= 4; i++) {
      var y = top + plotH - plotH * i / 4;
      root.appendChild(svg('line', { x1: left, x2: w - right, y1: y, y2: y, 'class': 'grid' }));
      root.appendChild(svg('text', { x: left - 4, y: y + 4, 'text-anchor': 'end', 'class': 'axis' }, numFmt.format(step * i)));
    }
    var labelEvery = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 70))));
    var rows = [];
    a.buckets.forEach(function (b, index) {
      var x = left + index * slot + (slot - barW) / 2, yCursor = top + plotH, parts = [], g = svg('g');
      SEVERITIES.forEach(function (s) {
        var c = (b.groups && b.groups[s]) || 0;
        if (!c) return;
        parts.push(c + ' ' + s);
        var bh = plotH * c / yMax;
        yCursor -= bh;
        g.appendChild(svg('rect', { x: x, y: yCursor, width: barW, height: bh, 'class': 'fill-' + s.toLowerCase() }));
      });
      var label = bucketLabel(Date.parse(b.start), a.interval);
      g.appendChild(svg('title', null, label + ': ' + plural(b.count, 'fault') + (parts.length ? ' (' + parts.join(', ') + ')' : '')));
      g.appendChild(svg('rect', { x: left + index * slot, y: top, width: slot, height: plotH, fill: 'transparent' }));
      root.appendChild(g);
      if (index % labelEvery === 0) {
        var at = left + index * slot + slot / 2, edge = at > w - right - 24;
        root.appendChild(svg('text', { x: edge ? w - right : at, y: h - 6, 'text-anchor': edge ? 'end' : 'middle',
          'class': 'axis' }, label));
      }
      rows.push([a.interval === 'hour' ? dateTimeFmt.format(new Date(b.start)) : label, String(b.count)].concat(
        SEVERITIES.map(function (s) { return String((b.groups && b.groups[s]) || 0); })));
    });
    box.appendChild(root);
    box.appendChild(el('ul', { 'class': 'legend', 'aria-hidden': 'true' }, SEVERITIES.map(function (s) {
      return el('li', null, [el('span', { 'class': 'swatch sev-' + s.toLowerCase() }),
        s + ' ' + numFmt.format((a.totals.groups && a.totals.groups[s]) || 0)]);
    })));
    alternative(box, summary, 'Faults per ' + a.interval + ' by severity', ['Period', 'Total'].concat(SEVERITIES), rows);
  }
  // Horizontal bars: items [{label, value, text, cls}], from opts.min to opts.max, with an
  // optional target line.
  function hbars(box, items, opts, label) {
    var w = width(box), rowH = 36, top = 4, h = top + items.length * rowH + (opts.target !== undefined ? 16 : 2);
    var root = svgRoot(w, h, label), valueW = 96, plotW = w - valueW, span = (opts.max - opts.min) || 1;
    var chars = Math.max(20, Math.floor(w / 7.5));
    items.forEach(function (it, i) {
      var y = top + i * rowH, v = Math.max(opts.min, Math.min(opts.max, it.value));
      var bw = Math.max(2, plotW * (v - opts.min) / span);
      root.appendChild(svg('text', { x: 0, y: y + 12, 'class': 'label' }, truncate(it.label, chars)));
      var bar = svg('rect', { x: 0, y: y + 17, width: bw, height: 13, rx: 2, 'class': it.cls || 'fill-all' });
      bar.appendChild(svg('title', null, it.label + ': ' + it.text));
      root.appendChild(bar);
      root.appendChild(svg('text', { x: w, y: y + 28, 'text-anchor': 'end', 'class': 'value' }, it.text));
    });
    if (opts.target !== undefined) {
      var tx = plotW * (opts.target - opts.min) / span;
      root.appendChild(svg('line', { x1: tx, x2: tx, y1: 0, y2: h - 14, 'class': 'target' }));
      root.appendChild(svg('text', { x: tx, y: h - 2, 'text-anchor': 'middle', 'class': 'axis' }, 'target ' + opts.target + ' %'));
    }
    box.appendChild(root);
  }
  function drawMttr() {
    var a = charts.trend, box = plot('mttr');
    box.textContent = '';
    var now = a.totals.time_to_resolve, before = a.previous.time_to_resolve;
    if (!now.count) {
      box.appendChild(el('p', { 'class': 'muted' }, 'No fault created in this period has been resolved yet.'));
      return;
    }
    var metrics = [['Mean', 'mean_seconds'], ['Median', 'median_seconds'], ['90th percentile', 'p90_seconds']];
    var items = [], rows = [], max = 1, parts = [];
    metrics.forEach(function (m) {
      var cur = now[m[1]], prev = before[m[1]], change = a.change[m[1]];
      max = Math.max(max, cur || 0, prev || 0);
      var delta = change && typeof change.percent === 'number' ? (change.percent > 0 ? '+' : '') +
        Math.round(change.percent) + ' %' : '';
      items.push({ label: m[0] + ', this period', value: cur || 0, text: cur === null ? '–' : formatDuration(cur), cls: 'fill-all' });
      items.push({ label: m[0] + ', period before', value: prev || 0, text: prev === null ? '–' : formatDuration(prev), cls: 'fill-prev' });
      rows.push([m[0], cur === null ? '–' : formatDuration(cur), prev === null ? '–' : formatDuration(prev), delta || '–']);
      parts.push(m[0].toLowerCase() + ' ' + (cur === null ? '–' : formatDuration(cur)) + (delta ? ' (' + delta + ')' : ''));
    });
    var summary = 'Time to resolve, ' + plural(now.count, 'repair') + ': ' + parts.join(', ') +
      '; changes against the period before.';
    hbars(box, items, { min: 0, max: max }, summary);
    alternative(box, summary, 'Time to resolve', ['Figure', 'This period', 'Period before', 'Change'], rows);
  }
  function drawSla() {
    var r = charts.sla, box = plot('sla');
    box.textContent = '';
    var data = r.data || [];
    if (!data.length) {
      box.appendChild(el('p', { 'class': 'muted' }, 'No site outages from ' + fullFmt.format(new Date(r.from)) + ': every site was up.'));
      return;
    }
    var shown = data.slice(0, 15), low = shown[0].uptime_percent;
    var min = Math.max(0, Math.floor(Math.min(low, r.target)) - 1);
    var breached = data.filter(function (x) { return x.breached; }).length;
    var summary = plural(data.length, 'site') + ' had outages in the window; ' + breached + ' below the ' + r.target +
      ' % target. Lowest: ' + siteLabel(shown[0].site_id) + ' at ' + pct(low) + '.' + (data.length > shown.length ?
      ' The ' + shown.length + ' lowest are drawn.' : '');
    hbars(box, shown.map(function (x) {
      return { label: siteLabel(x.site_id), value: x.uptime_percent, text: pct(x.uptime_percent),
        cls: x.breached ? 'fill-critical' : 'fill-ok' };
    }), { min: min, max: 100, target: r.target }, summary);
    alternative(box, summary, 'Uptime per site', ['Site', 'Uptime', 'Downtime', 'Outages', 'Below target'],
      data.map(function (x) {
        return [siteLabel(x.site_id), pct(x.uptime_percent), formatDuration(x.downtime_seconds), String(x.outage_count),
          x.breached ? 'yes' : 'no'];
      }));
  }
  function drawTop() {
    var items = charts.top || [], box = plot('top');
    box.textContent = '';
    if (!items.length) {
      box.appendChild(el('p', { 'class': 'muted' }, 'No faults in the last 14 days.'));
      return;
    }
    var max = items.reduce(function (m, it) { return Math.max(m, it.count); }, 1);
    var summary = 'Most faults in the last 14 days: ' + items.slice(0, 3).map(function (it) {
      return it.resource_id + ' (' + it.count + ')';
    }).join(', ') + '.';
    hbars(box, items.map(function (it) {
      return { label: it.resource_id + ' · ' + (it.site_id ? siteLabel(it.site_id) + ' · ' : '') + it.tunnel_name,
        value: it.count, text: plural(it.count, 'fault'), cls: 'fill-all' };
    }), { min: 0, max: max }, summary);
    alternative(box, summary, 'Top faulty resources', ['Resource', 'Site', 'Name', 'Faults'], items.map(function (it) {
      return [it.resource_id, siteLabel(it.site_id), it.tunnel_name, String(it.count)];
    }));
  }
  analyticsForm.addEventListener('submit', function (e) {
    e.preventDefault();
    var p = new URLSearchParams();
    p.set('interval', analyticsForm.elements.interval.value);
    var site = splitList(analyticsForm.elements.site.value).join(',');
    if (site) p.set('site', site);
    var hash = '#/analytics?' + qs(p);
    if (hash !== location.hash) location.hash = hash;
    else { charts.at = 0; enterAnalytics(p); }
  });
  analyticsForm.elements.interval.addEventListener('change', function () {
    analyticsForm.dispatchEvent(new Event('submit', { cancelable: true }));
  });
  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () { if (current === 'analytics') drawCharts(); }, 200);
  });

  // ---- access tokens and share links ----

  var mint = $('mint');
  var tokensBody = $('tokens').tBodies[0];

  function enterTokens(params) {
    ['label', 'site_ids', 'resource_ids', 'fault_ids', 'type'].forEach(function (k) {
      if (params.get(k)) mint.elements[k].value = params.get(k);
    });
    if (params.get('severity')) setChecked(mint, 'severity', splitList(params.get('severity')));
    loadTokens();
  }
  function scopeText(scope) {
    var parts = [];
    if (!scope) return 'All faults';
    if (scope.site_ids && scope.site_ids.length) parts.push('sites: ' + scope.site_ids.map(function (s) { return siteLabel(s); }).join(', '));
    if (scope.resource_ids && scope.resource_ids.length) parts.push('resources: ' + scope.resource_ids.join(', '));
    if (scope.fault_ids && scope.fault_ids.length) parts.push('faults: ' + scope.fault_ids.join(', '));
    if (scope.severity && scope.severity.length) parts.push('severity: ' + scope.severity.join(', '));
    if (scope.type && scope.type.length) parts.push('types: ' + scope.type.join(', '));
    return parts.length ? parts.join('; ') : 'All faults';
  }
  function loadTokens() {
    return api('GET', '/fault/token?limit=100').then(function (t) {
      tokensBody.textContent = '';
      var frag = document.createDocumentFragment();
      (t.data || []).forEach(function (tok) { frag.appendChild(tokenRow(tok)); });
      tokensBody.appendChild(frag);
      $('tokens-empty').hidden = !!(t.data && t.data.length);
    }).catch(showError);
  }
  function tokenRow(t) {
    var tr = el('tr', { 'data-id': t.id, 'data-status': t.status });
    tr.appendChild(cell('Label', [el('strong', null, t.label || '(no label)'), ' ', el('span', { 'class': 'res' }, t.id)]));
    tr.appendChild(cell('Scope', scopeText(t.scope), 'scope'));
    tr.appendChild(cell('Status', el('span', { 'class': 'st st-' + t.status }, t.status)));
    tr.appendChild(cell('Created', timeEl(t.created_at)));
    tr.appendChild(cell('Expires', timeEl(t.expires_at)));
    tr.appendChild(cell('Last used', t.last_used_at ? timeEl(t.last_used_at) : el('span', { 'class': 'muted' }, 'never')));
    tr.appendChild(cell('Uses', numFmt.format(t.use_count || 0)));
    tr.appendChild(cell('Actions', t.status === 'active' ? el('button', { type: 'button', 'class': 'revoke danger small',
      'aria-label': 'Revoke ' + (t.label || t.id) }, 'Revoke') : el('span', { 'class': 'muted' }, '–'), 'actions'));
    return tr;
  }
  bindForm(mint, function (form) {
    var e = form.elements;
    var body = { expire_after_minutes: parseInt(e.expire_after_minutes.value, 10) };
    var label = e.label.value.trim();
    if (label) body.label = label;
    ['site_ids', 'resource_ids', 'fault_ids', 'type'].forEach(function (k) {
      var v = splitList(e[k].value);
      if (v.length) body[k] = v;
    });
    var sev = checked(form, 'severity');
    if (sev.length) body.severity = sev;
    return api('POST', '/fault/token', body).then(function (t) {
      var link = $('short-link');
      link.value = t.short_link || '';
      var open = $('open-link');
      if (/^https?:\/\//i.test(t.short_link || '')) { open.href = t.short_link; open.hidden = false; } else open.hidden = true;
      var expires = $('minted-expires');
      expires.textContent = '';
      expires.appendChild(timeEl(t.expires_at, true));
      $('minted-token').value = t.token || '';
      $('minted').hidden = false;
      $('minted-h').focus();
      announce('Share link created.');
      form.reset();
      loadTokens();
    });
  });
  $('copy-link').addEventListener('click', function (e) { copyText($('short-link').value, $('short-link'), e.currentTarget); });
  tokensBody.addEventListener('click', function (e) {
    var b = e.target.closest('button.revoke');
    if (!b) return;
    var tr = b.closest('tr'), id = tr.getAttribute('data-id');
    b.disabled = true;
    api('DELETE', '/fault/token/' + enc(id)).then(function () {
      return api('GET', '/fault/token?limit=100');
    }).then(function (t) {
      var fresh = (t.data || []).filter(function (x) { return x.id === id; })[0];
      var row = tokenRow(fresh || { id: id, status: 'revoked', label: '', scope: {}, created_at: null, expires_at: null });
      tr.replaceWith(row);
      var status = row.querySelector('td[data-label="Status"]');
      status.setAttribute('tabindex', '-1');
      status.focus();
      announce('Share link revoked: it stops working within a second.');
    }).catch(function (err) {
      b.disabled = false;
      showError(err);
    });
  });

  // ---- webhooks ----

  var hookForm = $('webhook-new');
  var hooksBody = $('webhooks').tBodies[0];
  var msgBody = $('messages').tBodies[0];
  var hooks = { rows: [], cursor: null, hasMore: false, loaded: false };
  var msgs = { id: null, status: '', cursor: null, gen: 0 };

  function enterWebhooks(id, params) {
    if (!hooks.loaded) loadHooks(null);
    if (id) openMessages(id, params.get('status') || '');
    else {
      msgs.id = null;
      $('messages-panel').hidden = true;
    }
  }
  function loadHooks(cursor) {
    return api('GET', '/webhooks?' + pageQuery('', cursor)).then(function (page) {
      if (!cursor) {
        hooks.rows = [];
        hooksBody.textContent = '';
      }
      page.data.forEach(function (w) {
        hooks.rows.push(w);
        hooksBody.appendChild(hookRow(w));
      });
      hooks.loaded = true;
      hooks.cursor = page.meta.cursor;
      hooks.hasMore = !!page.meta.has_more && !!page.meta.cursor;
      $('webhooks-more').hidden = !hooks.hasMore;
      $('webhooks-empty').hidden = hooks.rows.length > 0;
    }).catch(showError);
  }
  function filterText(f) {
    var parts = [];
    if (f && f.severity && f.severity.length) parts.push('severity: ' + f.severity.join(', '));
    if (f && f.site_id && f.site_id.length) parts.push('sites: ' + f.site_id.map(function (s) { return siteLabel(s); }).join(', '));
    return parts.length ? parts.join('; ') : 'everything';
  }
  function hookRow(w) {
    var tr = el('tr', { 'data-id': w.id, 'data-enabled': String(w.enabled) });
    tr.appendChild(cell('Endpoint', [el('span', { 'class': 'code url' }, w.url),
      w.description ? el('span', { 'class': 'muted small' }, w.description) : null, el('span', { 'class': 'res' }, w.id)], 'endpoint'));
    tr.appendChild(cell('Events', (w.events || []).join(', ')));
    tr.appendChild(cell('Filter', filterText(w.filter)));
    tr.appendChild(cell('State', el('span', { 'class': 'st st-' + (w.enabled ? 'online' : 'offline') },
      w.enabled ? 'enabled' : 'disabled' + (w.disabled_reason ? ' (' + w.disabled_reason + ')' : ''))));
    tr.appendChild(cell('Created', timeEl(w.created_at)));
    var name = w.description || w.url;
    tr.appendChild(cell('Actions', [
      el('a', { href: '#/webhooks/' + enc(w.id), 'class': 'button small messages' }, 'Messages'),
      el('button', { type: 'button', 'class': 'toggle small', 'aria-label': (w.enabled ? 'Disable ' : 'Enable ') + name },
        w.enabled ? 'Disable' : 'Enable'),
      el('button', { type: 'button', 'class': 'test small', 'aria-label': 'Send a test message to ' + name }, 'Send test'),
      el('button', { type: 'button', 'class': 'rotate small', 'aria-label': 'Rotate the secret of ' + name }, 'Rotate secret'),
      el('button', { type: 'button', 'class': 'delete danger small', 'aria-label': 'Delete ' + name }, 'Delete')], 'actions'));
    return tr;
  }
  function showSecret(secret, text) {
    $('secret-for').textContent = text;
    $('secret-value').value = secret;
    $('secret').hidden = false;
    $('secret-h').focus();
  }
  function hideSecret() {
    $('secret-value').value = '';
    $('secret').hidden = true;
  }
  bindForm(hookForm, function (form) {
    var e = form.elements;
    var body = { url: e.url.value.trim() };
    var d = e.description.value.trim();
    if (d) body.description = d;
    var events = checked(form, 'events');
    if (!events.length) throw new ApiError(400, 'Choose at least one event.');
    body.events = events;
    var severity = checked(form, 'filter_severity'), site = splitList(e.filter_site_id.value);
    if (severity.length || site.length) body.filter = { severity: severity, site_id: site };
    return api('POST', '/webhooks', body).then(function (w) {
      form.reset();
      showSecret(w.secret, 'The signing secret of ' + w.url + '. It is shown this once: store it now.');
      announce('Webhook endpoint created.');
      loadHooks(null);
    });
  });
  $('copy-secret').addEventListener('click', function (e) { copyText($('secret-value').value, $('secret-value'), e.currentTarget); });
  $('hide-secret').addEventListener('click', function () {
    hideSecret();
    $('webhooks-h').focus();
  });
  $('webhooks-more').addEventListener('click', function () { loadHooks(hooks.cursor); });
  function replaceHook(tr, w, focusClass) {
    var i = byId(hooks.rows, w.id);
    if (i >= 0) hooks.rows[i] = w;
    var row = hookRow(w);
    tr.replaceWith(row);
    var b = focusClass && row.querySelector('.' + focusClass);
    if (b) b.focus();
  }
  hooksBody.addEventListener('click', function (e) {
    var b = e.target.closest('button');
    if (!b) return;
    var tr = b.closest('tr'), id = tr.getAttribute('data-id');
    var w = hooks.rows[byId(hooks.rows, id)];
    var path = '/webhooks/' + enc(id);
    if (b.classList.contains('delete') && !b.classList.contains('armed')) {
      // Deleting asks twice (no dialog): the button turns into a confirmation for 5 s.
      b.classList.add('armed');
      b.textContent = 'Confirm delete';
      setTimeout(function () { b.classList.remove('armed'); b.textContent = 'Delete'; }, 5000);
      return;
    }
    var action;
    b.disabled = true;
    if (b.classList.contains('toggle')) {
      action = api('PATCH', path, { enabled: !(w && w.enabled) }).then(function (updated) {
        replaceHook(tr, updated, 'toggle');
        announce(updated.enabled ? 'Endpoint enabled.' : 'Endpoint disabled.');
      });
    } else if (b.classList.contains('test')) {
      action = api('POST', path + '/test').then(function (m) {
        announce('Test message ' + m.id + ' queued.');
        if (msgs.id === id) setTimeout(function () { loadMessages(null); }, 1500);
      });
    } else if (b.classList.contains('rotate')) {
      action = api('POST', path + '/rotate-secret').then(function (r) {
        showSecret(r.secret, 'The new signing secret of ' + (w ? w.url : id) + '. It is shown this once; the one ' +
          'before it also signs deliveries for 24 hours.');
      });
    } else if (b.classList.contains('delete')) {
      action = api('DELETE', path).then(function () {
        hooks.rows.splice(byId(hooks.rows, id), 1);
        tr.remove();
        $('webhooks-empty').hidden = hooks.rows.length > 0;
        if (msgs.id === id) location.hash = '#/webhooks';
        announce('Endpoint deleted.');
        $('webhooks-h').focus();
      });
    } else {
      b.disabled = false;
      return;
    }
    action.catch(showError).then(function () { b.disabled = false; });
  });

  function openMessages(id, status) {
    msgs.id = id;
    msgs.status = status;
    $('message-status').value = status;
    $('messages-panel').hidden = false;
    var w = hooks.rows[byId(hooks.rows, id)];
    $('messages-for').textContent = w ? w.url : id;
    if (!w) api('GET', '/webhooks/' + enc(id)).then(function (x) { if (msgs.id === id) $('messages-for').textContent = x.url; }, showError);
    loadMessages(null);
  }
  function loadMessages(cursor) {
    var gen = cursor ? msgs.gen : ++msgs.gen, id = msgs.id;
    var p = new URLSearchParams();
    if (msgs.status) p.set('status', msgs.status);
    return api('GET', '/webhooks/' + enc(id) + '/messages?' + pageQuery(qs(p), cursor)).then(function (page) {
      if (gen !== msgs.gen) return;
      if (!cursor) msgBody.textContent = '';
      page.data.forEach(function (m) { msgBody.appendChild(messageRow(m)); });
      msgs.cursor = page.meta.cursor;
      $('messages-more').hidden = !(page.meta.has_more && page.meta.cursor);
      $('messages-empty').hidden = msgBody.rows.length > 0;
    }).catch(function (err) { if (gen === msgs.gen) showError(err); });
  }
  function messageRow(m) {
    var tr = el('tr', { 'data-id': m.id, 'data-status': m.status });
    tr.appendChild(cell('Message', [el('strong', null, m.type), ' ', el('span', { 'class': 'res' }, m.id)]));
    tr.appendChild(cell('Status', el('span', { 'class': 'st st-' + m.status }, m.status)));
    tr.appendChild(cell('Created', timeEl(m.created_at)));
    tr.appendChild(cell('Next attempt', m.next_attempt_at ? timeEl(m.next_attempt_at) : el('span', { 'class': 'muted' }, '–')));
    var attempts = el('ol', { 'class': 'attempts' });
    (m.attempts || []).forEach(function (a) {
      var li = el('li', null, [timeEl(a.at), ' · ', a.status_code === null ? 'no answer' : 'HTTP ' + a.status_code, ' · ',
        numFmt.format(a.duration_ms) + ' ms', a.error ? el('span', { 'class': 'breach' }, ' · ' + a.error) : null]);
      if (a.response) li.appendChild(el('details', null, [el('summary', null, 'Response'), el('pre', null, a.response)]));
      attempts.appendChild(li);
    });
    tr.appendChild(cell('Attempts', m.attempts && m.attempts.length ? attempts : el('span', { 'class': 'muted' }, 'none yet')));
    tr.appendChild(cell('Actions', el('button', { type: 'button', 'class': 'retry small', 'aria-label': 'Retry ' + m.id },
      'Retry now'), 'actions'));
    return tr;
  }
  msgBody.addEventListener('click', function (e) {
    var b = e.target.closest('button.retry');
    if (!b) return;
    var id = b.closest('tr').getAttribute('data-id');
    b.disabled = true;
    api('POST', '/webhooks/' + enc(msgs.id) + '/messages/' + enc(id) + '/retry').then(function () {
      announce('Message ' + id + ' is being delivered again.');
      setTimeout(function () { loadMessages(null); }, 1500);
    }).catch(function (err) {
      b.disabled = false;
      showError(err);
    });
  });
  $('message-status').addEventListener('change', function () {
    var v = $('message-status').value;
    location.hash = '#/webhooks/' + enc(msgs.id) + (v ? '?status=' + enc(v) : '');
  });
  $('messages-refresh').addEventListener('click', function () { loadMessages(null); });
  $('messages-more').addEventListener('click', function () { loadMessages(msgs.cursor); });

  // ---- one timer for every ticking duration (and the wall clock) ----

  function tick() {
    var now = Date.now(), view = current && $('view-' + current);
    if (!view) return;
    var nodes = view.querySelectorAll('.dur[data-start]:not([data-resolved])');
    for (var i = 0; i < nodes.length; i++) {
      nodes[i].textContent = formatDuration((now - Date.parse(nodes[i].getAttribute('data-start'))) / 1000);
    }
    if (list.wall) $('clock').textContent = clockFmt.format(new Date(now));
  }

  // ---- start ----

  $('zone').textContent = zone;
  $('skip').addEventListener('click', function (e) {
    e.preventDefault();
    var target = $(current + '-h') || $('main');
    target.focus();
  });
  window.addEventListener('hashchange', route);
  if (!parseHash()) history.replaceState(null, '', '#/faults');
  route();
  started = true;
  setInterval(tick, 1000);
  // The stream opens once the first view has asked for its data.
  setTimeout(function () { who.then(function () { if (can('faults:read')) openStream(); }, function () {}); }, 0);
})();
