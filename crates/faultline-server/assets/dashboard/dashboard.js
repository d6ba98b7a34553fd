// The shared fault dashboard. Reads the access token from the page (never from a URL) and
// calls the Faults API with it as a Bearer credential. Live: the event stream when the page
// names one (fetch + ReadableStream, since EventSource cannot send a header), else a poll of
// GET /fault with If-None-Match. Any 401 means the link was revoked or expired.
(function () {
  'use strict';

  var SEVERITIES = ['CRITICAL', 'HIGH', 'MEDIUM', 'WARNING', 'LOW'];
  var POLL_MS = 3000;
  
  var FULL_REFRESH_MS = 60000;
  // The chart costs the server far more than a poll (bench/dashboard.sh): once a minute at most.
  var PANEL_MIN_GAP_MS = 60000;
  var MAX_PAGES = 10;

  function meta(name) {
    var el = document.querySelector('meta[name="' + name + '"]');
    return el ? el.getAttribute('content') : null;
  }
  function $(sel) { return document.querySelector(sel); }
  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    if (attrs) Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }
  function svg(tag, attrs) {
    var node = document.createElementNS('http://www.w3.org/2000/svg', tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  var token = meta('faultline-token');
  var expiresAt = Date.parse(meta('faultline-expires-at'));
  var streamPath = meta('faultline-stream');
  var zone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  var faults = new Map();
  var listEtag = null;
  var gone = false;
  var rendered = null; // ids shown by the last render; null before the first
  var lastEventId = null;
  var streaming = false;
  var streamAbort = null;
  var timers = [];
  var panelsLoadedAt = 0;
  var panelTimer = null;
  var form = $('#filters');

  var timeFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
  var dateTimeFmt = new Intl.DateTimeFormat(undefined,
    { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  var clockFmt = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit', second: '2-digit' });

  function Gone() {}
  function Busy() {}

  function showGone() {
    if (gone) return;
    gone = true;
    timers.forEach(clearInterval);
    if (streamAbort) streamAbort.abort();
    $('#main').hidden = true;
    $('#gone').hidden = false;
    $('#expiry').textContent = 'link no longer available';
    setLive('This link is no longer available.', true);
    document.title = 'Link no longer available · faultline';
    $('#gone-h').focus();
  }

  function setLive(text, error) {
    var live = $('#live');
    live.textContent = text;
    live.className = error ? 'live error' : 'live';
  }

  function announce(text) { $('#announce').textContent = text; }

  function api(path, etag) {
    if (gone) return Promise.reject(new Gone());
    var headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
    if (etag) headers['If-None-Match'] = etag;
    return fetch(path, { headers: headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer' })
      .then(function (r) {
        if (r.status === 401) { showGone(); throw new Gone(); }
        if (r.status === 429) throw new Busy();
        if (r.status !== 200 && r.status !== 304) throw new Error('HTTP ' + r.status + ' for ' + path);
        return r;
      });
  }

  // ---- times and durations ----

  function formatStart(ms) {
    var d = new Date(ms);
    return d.toDateString() === new Date().toDateString() ? 'today ' + timeFmt.format(d) : dateTimeFmt.format(d);
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
  function tickDurations() {
    var now = Date.now();
    document.querySelectorAll('td.dur').forEach(function (td) {
      var start = Date.parse(td.getAttribute('data-start'));
      var end = td.hasAttribute('data-resolved') ? Date.parse(td.getAttribute('data-resolved')) : now;
      td.textContent = formatDuration((end - start) / 1000);
      if (td.hasAttribute('data-resolved')) td.appendChild(el('span', { 'class': 'ended' }, 'resolved ' + formatStart(end)));
    });
  }
  function localiseTimes(root) {
    root.querySelectorAll('time[datetime]').forEach(function (t) {
      var ms = Date.parse(t.getAttribute('datetime'));
      t.textContent = formatStart(ms);
      t.title = new Date(ms).toString();
    });
  }
  function showExpiry() {
    if (gone) return;
    var left = expiresAt - Date.now();
    if (!(left > 0)) { showGone(); return; }
    var minutes = Math.round(left / 60000), hours = Math.round(left / 3600000), days = Math.round(left / 86400000);
    var text = days >= 2 ? days + ' days' : hours >= 2 ? hours + ' hours' : Math.max(minutes, 1) + ' minute' +
      (minutes === 1 ? '' : 's');
    var span = $('#expiry');
    span.textContent = 'link expires in ' + text + ' (' + dateTimeFmt.format(new Date(expiresAt)) + ')';
  }

  // ---- the fault lists ----

  function filterValues() {
    return {
      severity: form.elements.severity.value,
      type: form.elements.type.value,
      site: form.elements.site.value,
      q: form.elements.q.value.trim().toLowerCase(),
      resolved: form.elements.resolved.checked
    };
  }
  function matches(f, v) {
    if (v.severity && f.severity !== v.severity) return false;
    if (v.type && f.type !== v.type) return false;
    if (v.site && f.site_id !== v.site && f.resource_ancestry_path.split('|').indexOf(v.site) < 0) return false;
    if (v.q) {
      var hay = [f.message, f.cause, f.resource_id, f.site_id || '', f.site_name || '', f.type].join('\n').toLowerCase();
      if (hay.indexOf(v.q) < 0) return false;
    }
    return true;
  }
  function cell(label, text, cls) {
    var td = el('td', { 'data-label': label }, text);
    if (cls) td.className = cls;
    return td;
  }
  // The same markup as the server's first render (dashboard.rs, fault_row).
  function faultRow(f) {
    var tr = el('tr', { 'data-id': f.id, 'data-severity': f.severity });
    var sev = cell('Severity');
    sev.appendChild(el('span', { 'class': 'sev sev-' + f.severity.toLowerCase() }, f.severity));
    tr.appendChild(sev);
    tr.appendChild(cell('Type', f.type));
    var ids = cell('Site, resource', null, 'ids');
    // The site's name when it has one (its id in the tooltip), else its id.
    var site = el('span', { 'class': 'site' }, f.site_name || f.site_id || '–');
    if (f.site_name && f.site_id) site.title = f.site_id;
    ids.appendChild(site);
    ids.appendChild(document.createTextNode(' '));
    ids.appendChild(el('span', { 'class': 'res' }, f.resource_id));
    tr.appendChild(ids);
    var what = cell('Message, cause', null, 'what');
    what.appendChild(el('strong', { 'class': 'msg' }, f.message));
    what.appendChild(document.createTextNode(' '));
    what.appendChild(el('span', { 'class': 'cause' }, f.cause || '–'));
    if (f.comments && f.comments.length) {
      var last = f.comments[f.comments.length - 1];
      what.appendChild(el('span', { 'class': 'comment' }, 'Comment' + (f.comments.length > 1 ? ' (' +
        f.comments.length + ')' : '') + ': ' + last.comment));
    }
    tr.appendChild(what);
    var started = cell('Started');
    started.appendChild(el('time', { datetime: f.created_at }));
    tr.appendChild(started);
    var dur = cell('Duration', null, 'dur');
    dur.setAttribute('data-start', f.created_at);
    if (f.resolved_at) dur.setAttribute('data-resolved', f.resolved_at);
    tr.appendChild(dur);
    return tr;
  }
  function fillTable(section, list, fresh) {
    var body = document.createElement('tbody');
    list.forEach(function (f) {
      var tr = faultRow(f);
      if (fresh[f.id]) tr.className = 'fresh';
      body.appendChild(tr);
    });
    var table = section.querySelector('table');
    table.replaceChild(body, table.querySelector('tbody'));
    section.querySelector('.count').textContent = '(' + list.length + ')';
    section.querySelector('.empty').hidden = list.length > 0;
    table.hidden = list.length === 0;
  }
  // `names` (optional) maps a value to the text its option shows.
  function syncOptions(select, values, label, names) {
    var current = select.value;
    var wanted = [''].concat(values);
    var shown = function (v) { return v ? (names && names[v]) || v : label; };
    var have = Array.prototype.map.call(select.options, function (o) { return o.value + '\u0001' + o.textContent; });
    if (wanted.map(function (v) { return v + '\u0001' + shown(v); }).join('\u0000') === have.join('\u0000')) return;
    select.textContent = '';
    wanted.forEach(function (v) { select.appendChild(el('option', { value: v }, shown(v))); });
    select.value = wanted.indexOf(current) >= 0 ? current : '';
  }
  function newestFirst(a, b) { return a.created_at < b.created_at ? 1 : a.created_at > b.created_at ? -1 : 0; }

  function render() {
    var all = Array.from(faults.values()).sort(newestFirst);
    var types = {}, sites = {};
    all.forEach(function (f) { types[f.type] = 1; if (f.site_id) sites[f.site_id] = f.site_name || sites[f.site_id] || f.site_id; });
    syncOptions(form.elements.type, Object.keys(types).sort(), 'All types');
    var siteIds = Object.keys(sites).sort(function (a, b) { return sites[a] < sites[b] ? -1 : sites[a] > sites[b] ? 1 : 0; });
    syncOptions(form.elements.site, siteIds, 'All sites', sites);
    var v = filterValues();
    var shown = all.filter(function (f) { return matches(f, v); });
    var fresh = {};
    if (rendered) all.forEach(function (f) { if (!rendered[f.id]) fresh[f.id] = true; });
    rendered = {};
    all.forEach(function (f) { rendered[f.id] = true; });
    var arrivals = all.filter(function (f) { return fresh[f.id] && f.status === 'unresolved'; });
    if (arrivals.length === 1) announce('New ' + arrivals[0].severity + ' fault: ' + arrivals[0].message);
    else if (arrivals.length > 1) announce(arrivals.length + ' new faults');
    fillTable($('#open'), shown.filter(function (f) { return f.status === 'unresolved'; }), fresh);
    var resolved = $('#resolved');
    fillTable(resolved, shown.filter(function (f) { return f.status === 'resolved'; }), fresh);
    resolved.hidden = !v.resolved;
    renderCounts(all);
    localiseTimes($('#main'));
    tickDurations();
  }
  function renderCounts(all) {
    var ul = $('#counts');
    ul.textContent = '';
    var open = all.filter(function (f) { return f.status === 'unresolved'; });
    var total = el('li');
    total.appendChild(el('strong', null, String(open.length)));
    total.appendChild(document.createTextNode(' open'));
    ul.appendChild(total);
    SEVERITIES.forEach(function (s) {
      var n = open.filter(function (f) { return f.severity === s; }).length;
      if (!n) return;
      var li = el('li');
      li.appendChild(el('span', { 'class': 'sev sev-' + s.toLowerCase() }, s));
      li.appendChild(el('strong', null, String(n)));
      ul.appendChild(li);
    });
  }

  // Loads the whole recent view (open, or started in the last 24 h). True when it changed.
  function loadFaults(conditional) {
    var base = '/fault?recent=true&limit=100';
    return api(base, conditional ? listEtag : null).then(function (r) {
      if (r.status === 304) return false;
      var etag = r.headers.get('ETag');
      return r.json().then(function (page) {
        var all = page.data.slice();
        var pages = 1;
        function more(p) {
          if (!p.meta.has_more || pages >= MAX_PAGES) return Promise.resolve();
          pages += 1;
          return api(base + '&cursor=' + encodeURIComponent(p.meta.cursor)).then(function (r2) { return r2.json(); })
            .then(function (next) { all = all.concat(next.data); return more(next); });
        }
        return more(page).then(function () {
          faults = new Map(all.map(function (f) { return [f.id, f]; }));
          listEtag = etag;
          var leftOut = $('#left-out');
          if (leftOut) leftOut.remove();
          render();
          return true;
        });
      });
    });
  }

  // ---- the chart and the top list ----

  function chartQuery() {
    var v = filterValues();
    var q = 'interval=' + $('#range').value + '&group_by=severity&tz=' + encodeURIComponent(zone);
    ['severity', 'type', 'site'].forEach(function (k) { if (v[k]) q += '&' + k + '=' + encodeURIComponent(v[k]); });
    if (v.q) q += '&q=' + encodeURIComponent(form.elements.q.value.trim());
    return q;
  }
  var chartData = null;
  function loadChart() {
    return api('/fault/analytics?' + chartQuery()).then(function (r) { return r.json(); })
      .then(function (a) { chartData = a; drawChart(); });
  }
  function bucketLabel(ms, interval) {
    var d = new Date(ms);
    if (interval === 'hour') return timeFmt.format(d);
    return new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' }).format(d);
  }
  // The smallest of 1, 2, 5 × 10^n that is at least `raw`.
  function niceStep(raw) {
    var power = Math.pow(10, Math.floor(Math.log10(Math.max(raw, 1))));
    var nice = [1, 2, 5, 10].filter(function (m) { return m * power >= raw; })[0];
    return Math.max(1, nice * power);
  }
  function drawChart() {
    var a = chartData;
    var box = $('#chart');
    if (!a) return;
    box.textContent = '';
    var width = Math.max(280, Math.round(box.clientWidth || 600));
    var height = Math.round(Math.min(260, Math.max(160, width * 0.4)));
    var left = 34, bottom = 22, top = 8, right = 6;
    var n = a.buckets.length;
    var max = 1;
    a.buckets.forEach(function (b) { max = Math.max(max, b.count); });
    var step = niceStep(max / 4);
    var yMax = step * 4;
    var plotW = width - left - right, plotH = height - top - bottom;
    var slot = plotW / Math.max(n, 1);
    var barW = Math.max(1, slot * 0.8);
    var peak = a.buckets.reduce(function (p, b) { return b.count > p.count ? b : p; }, { count: -1 });
    var peakAt = peak.count > 0 ? Date.parse(peak.start) : 0;
    var peakText = a.interval === 'hour' ? 'in the hour from ' + dateTimeFmt.format(new Date(peakAt))
      : (a.interval === 'week' ? 'in the week of ' : 'on ') + bucketLabel(peakAt, 'day');
    var summary = a.totals.count + ' fault' + (a.totals.count === 1 ? '' : 's') + ' from ' +
      dateTimeFmt.format(new Date(Date.parse(a.totals.from))) + ' to ' +
      dateTimeFmt.format(new Date(Date.parse(a.totals.to))) +
      (peak.count > 0 ? '; most (' + peak.count + ') ' + peakText : '') + '.';
    var root = svg('svg', { viewBox: '0 0 ' + width + ' ' + height, width: width, height: height, role: 'img',
      'aria-label': 'Faults over time: ' + summary });
    for (var i = 0; i <= 4; i++) {
      var y = top + plotH - plotH * i / 4;
      root.appendChild(svg('line', { x1: left, x2: width - right, y1: y, y2: y, 'class': 'grid' }));
      var label = svg('text', { x: left - 4, y: y + 4, 'text-anchor': 'end', 'class': 'axis' });
      label.textContent = String(step * i);
      root.appendChild(label);
    }
    var labelEvery = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(plotW / 70))));
    a.buckets.forEach(function (b, index) {
      var x = left + index * slot + (slot - barW) / 2;
      var g = svg('g');
      var title = svg('title');
      var parts = [];
      var yCursor = top + plotH;
      SEVERITIES.forEach(function (s) {
        var c = (b.groups && b.groups[s]) || 0;
        if (!c) return;
        parts.push(c + ' ' + s);
        var h = plotH * c / yMax;
        yCursor -= h;
        g.appendChild(svg('rect', { x: x, y: yCursor, width: barW, height: h, 'class': 'fill-' + s.toLowerCase() }));
      });
      var other = b.count - parts.reduce(function (sum, p) { return sum + parseInt(p, 10); }, 0);
      if (other > 0) {
        var h2 = plotH * other / yMax;
        g.appendChild(svg('rect', { x: x, y: yCursor - h2, width: barW, height: h2, 'class': 'fill-all' }));
      }
      title.textContent = bucketLabel(Date.parse(b.start), a.interval) + ': ' + b.count + ' fault' +
        (b.count === 1 ? '' : 's') + (parts.length ? ' (' + parts.join(', ') + ')' : '');
      g.appendChild(title);
      g.appendChild(svg('rect', { x: left + index * slot, y: top, width: slot, height: plotH, fill: 'transparent' }));
      root.appendChild(g);
      if (index % labelEvery === 0) {
        var at = left + index * slot + slot / 2;
        var nearEdge = at > width - right - 24;
        var t = svg('text', { x: nearEdge ? width - right : at, y: height - 6, 'text-anchor': nearEdge ? 'end' : 'middle',
          'class': 'axis' });
        t.textContent = bucketLabel(Date.parse(b.start), a.interval);
        root.appendChild(t);
      }
    });
    box.appendChild(root);
    var legend = el('ul', { 'class': 'legend', 'aria-label': 'Severities' });
    SEVERITIES.forEach(function (s) {
      var li = el('li');
      li.appendChild(el('span', { 'class': 'swatch sev-' + s.toLowerCase(), 'aria-hidden': 'true' }));
      li.appendChild(document.createTextNode(s + ' ' + ((a.totals.groups && a.totals.groups[s]) || 0)));
      legend.appendChild(li);
    });
    box.appendChild(legend);
    box.appendChild(el('p', { 'class': 'note', id: 'chart-summary' }, summary + ' Open now: ' + a.open_now + '.'));
  }
  function loadTop() {
    return api('/fault/top_faults?limit=10').then(function (r) { return r.json(); }).then(function (items) {
      var ol = $('#top');
      ol.textContent = '';
      var max = items.reduce(function (m, it) { return Math.max(m, it.count); }, 1);
      items.forEach(function (it) {
        var li = el('li', { 'data-resource': it.resource_id });
        var name = el('div', { 'class': 'name' });
        name.appendChild(el('span', { 'class': 'res' }, it.resource_id));
        name.appendChild(el('span', null, it.count + ' fault' + (it.count === 1 ? '' : 's')));
        li.appendChild(name);
        li.appendChild(el('div', { 'class': 'note' }, (it.site_id ? it.site_id + ' · ' : '') + it.tunnel_name));
        var bar = el('div', { 'class': 'bar', 'aria-hidden': 'true' });
        bar.style.width = Math.max(2, Math.round(100 * it.count / max)) + '%';
        li.appendChild(bar);
        ol.appendChild(li);
      });
      if (!items.length) ol.appendChild(el('li', null, 'No faults in the last 14 days.'));
    });
  }
  function loadPanels() {
    panelsLoadedAt = Date.now();
    return Promise.all([loadChart(), loadTop()]);
  }
  // Chart and top list follow changes, at most every PANEL_MIN_GAP_MS.
  function panelsSoon() {
    if (panelTimer) return;
    var wait = Math.max(0, panelsLoadedAt + PANEL_MIN_GAP_MS - Date.now());
    panelTimer = setTimeout(function () { panelTimer = null; loadPanels().catch(failed); }, wait);
  }

  // ---- live updates ----

  function updated(how) { setLive('Live (' + how + ') · updated ' + clockFmt.format(new Date())); }
  function failed(err) {
    if (err instanceof Gone) return;
    setLive(err instanceof Busy ? 'This link is busy (too many screens); retrying…' : 'Connection problem; retrying…',
      true);
  }

  var polling = false;
  function poll() {
    if (polling || gone) return;
    polling = true;
    loadFaults(true).then(function (changed) {
      if (changed) panelsSoon();
      updated(streaming ? 'stream' : 'polling every ' + POLL_MS / 1000 + ' s');
    }).catch(failed).then(function () { polling = false; });
  }

  // What GET /fault?recent=true lists: unresolved, or started in the last 24 hours.
  function inRecentView(f) {
    return f.status === 'unresolved' || Date.now() - Date.parse(f.created_at) < 86400000;
  }
  function applyEvent(type, data) {
    if (type === 'resync') { listEtag = null; poll(); return; }
    var payload;
    try { payload = JSON.parse(data); } catch (e) { return; }
    var f = payload.fault;
    if (type === 'fault.deleted' || (f && !inRecentView(f))) faults.delete(payload.fault_id);
    else if (f) faults.set(f.id, f);
    else return;
    listEtag = null;
    render();
    panelsSoon();
    updated('stream');
  }

  // Reads Server-Sent Events from a fetch body. Resolves when the stream ends.
  function readStream(response) {
    var reader = response.body.getReader();
    var decoder = new TextDecoder();
    var buffer = '';
    function dispatch(block) {
      var type = 'message', data = [], id = null;
      block.split('\n').forEach(function (line) {
        if (!line || line.charAt(0) === ':') return;
        var colon = line.indexOf(':');
        var field = colon < 0 ? line : line.slice(0, colon);
        var value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
        if (field === 'event') type = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id') id = value;
      });
      if (id !== null) lastEventId = id;
      if (data.length || type === 'resync') applyEvent(type, data.join('\n'));
    }
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, '\n');
        var end;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          dispatch(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
        return pump();
      });
    }
    return pump();
  }

  var streamDelay = 1000;
  function connectStream() {
    if (gone) return;
    streamAbort = new AbortController();
    var headers = { Authorization: 'Bearer ' + token, Accept: 'text/event-stream' };
    if (lastEventId) headers['Last-Event-ID'] = lastEventId;
    fetch(streamPath, { headers: headers, cache: 'no-store', credentials: 'omit', referrerPolicy: 'no-referrer',
      signal: streamAbort.signal })
      .then(function (r) {
        if (r.status === 401) { showGone(); return null; }
        if (r.status !== 200 || !r.body) { startPolling(); return null; }
        streaming = true;
        streamDelay = 1000;
                stopPolling();
        updated('stream');
        // Anything missed while connecting: one conditional reload.
        poll();
        return readStream(r).then(function () { return 'ended'; });
      })
      .catch(function () { return 'ended'; })
      .then(function (outcome) {
        if (outcome !== 'ended' || gone) return;
        streaming = false;
        pollAt(POLL_MS);
        setTimeout(connectStream, streamDelay);
        streamDelay = Math.min(streamDelay * 2, 30000);
      });
  }

    // The conditional poll runs only while there is no stream. A revoked or expired link ends
  // the stream (the server checks every 2 s); the reconnection then gets the 401.
  var pollTimer = null, pollEvery = 0;
  function stopPolling() {
    clearInterval(pollTimer);
    pollEvery = 0;
  }
  function pollAt(ms) {
    if (pollEvery === ms || gone) return;
    clearInterval(pollTimer);
    pollTimer = setInterval(poll, ms);
    timers.push(pollTimer);
    pollEvery = ms;
  }
  function startPolling() {
    pollAt(POLL_MS);
    updated('polling every ' + POLL_MS / 1000 + ' s');
  }

  // ---- start ----

  if (!token) return;
  $('#zone').textContent = zone;
  form.addEventListener('submit', function (e) { e.preventDefault(); });
  var chartDebounce = null;
  function filtersChanged() {
    render();
    clearTimeout(chartDebounce);
    chartDebounce = setTimeout(function () { loadChart().catch(failed); }, 300);
  }
  form.addEventListener('input', filtersChanged);
  form.addEventListener('change', filtersChanged);
  $('#range').addEventListener('change', function () { loadChart().catch(failed); });
  var resizeTimer = null;
  window.addEventListener('resize', function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(drawChart, 150);
  });
  showExpiry();
  if (gone) return;
  // The server's first view stays until the first load replaces it: local times, live durations.
  localiseTimes($('#main'));
  tickDurations();
  timers.push(setInterval(tickDurations, 1000));
  timers.push(setInterval(showExpiry, 30000));
  timers.push(setInterval(function () {
    listEtag = null;
    poll();
    panelsSoon();
  }, FULL_REFRESH_MS));
  loadFaults(false).then(function () {
    updated('connecting');
    return loadPanels();
  }).catch(failed).then(function () {
    if (streamPath) connectStream(); else startPolling();
  });
})();
