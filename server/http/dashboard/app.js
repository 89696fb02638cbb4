// The hubstream dashboard: everything it shows comes from the node's own routes, read with the
// token typed into the page when auth is on (kept in sessionStorage: this tab only).
//   /dashboard/session   who the token makes us (always 200)
//   /metrics             every second: the chart, the node's figures, connections by transport
//   /readyz              every second: the node's health
//   /api/streams         every two seconds: streams, versions, rates (from the versions' growth)
//   /api/streams/{s}/events  the tail: the last events read backward, then the stream's SSE
// Text from the server (stream names, event types and data) only ever goes into the page as
// text nodes, never as markup.
'use strict';

(() => {
  const TOKEN_KEY = 'hubstream.dashboard.token';
  const CHART_POINTS = 120;
  const TAIL_BACKLOG = 20;
  const TAIL_ROWS = 200;
  const STREAMS_PAGE = 100;

  const $ = (id) => document.getElementById(id);
  let token = sessionStorage.getItem(TOKEN_KEY) || '';
  let timers = [];
  let running = false;

  // ---- requests ----

  class Refused extends Error {}

  async function get(path, accept = 'application/json', signal = undefined) {
    const headers = { accept };
    if (token) headers.authorization = `Bearer ${token}`;
    const res = await fetch(path, { headers, cache: 'no-store', signal });
    if (res.status === 401 || res.status === 403) {
      let why = `${res.status}`;
      try {
        why = (await res.json()).message || why;
      } catch {
        /* a body that is not JSON: the status says enough */
      }
      throw new Refused(why);
    }
    return res;
  }

  function refused(err) {
    if (!(err instanceof Refused)) return false;
    stop();
    showLogin(`The server refused the token: ${err.message}`);
    return true;
  }

  // ---- page helpers ----

  function text(el, s) {
    el.textContent = s;
    return el;
  }

  function cell(row, s, cls) {
    const td = row.insertCell();
    text(td, s);
    if (cls) td.className = cls;
    return td;
  }

  function fmt(n) {
    if (!Number.isFinite(n)) return '–';
    if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
    return (Math.round(n * 10) / 10).toLocaleString('en-US');
  }

  function bytes(n) {
    if (!Number.isFinite(n)) return '–';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let u = 0;
    while (n >= 1024 && u < units.length - 1) {
      n /= 1024;
      u++;
    }
    return `${u ? n.toFixed(1) : n} ${units[u]}`;
  }

  function badge(el, label, state) {
    text(el, label);
    el.className = `badge ${state}`;
  }

  // ---- /metrics (the Prometheus text format) ----

  const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
  const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

  function parseMetrics(body) {
    const out = [];
    for (const line of body.split('\n')) {
      if (!line || line[0] === '#') continue;
      const m = LINE.exec(line);
      if (!m) continue;
      const labels = {};
      for (const l of (m[2] || '').matchAll(LABEL)) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
      out.push({ name: m[1], labels, value: Number(m[3]) });
    }
    return out;
  }

  function sum(samples, name, match = () => true) {
    let total = 0;
    let seen = false;
    for (const s of samples)
      if (s.name === name && match(s.labels)) {
        total += s.value;
        seen = true;
      }
    return seen ? total : NaN;
  }

  // ---- the chart ----

  const series = { in: [], out: [] };
  let last = null; // the previous scrape: {t, appended, delivered, commitSum, commitCount}

  function drawChart() {
    const canvas = $('chart');
    const ratio = window.devicePixelRatio || 1;
    const w = canvas.clientWidth;
    const h = canvas.clientHeight;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    const g = canvas.getContext('2d');
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const style = getComputedStyle(document.body);
    const pad = { l: 56, r: 8, t: 8, b: 18 };
    const max = Math.max(1, ...series.in, ...series.out);
    const top = niceCeil(max);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = style.getPropertyValue('--muted');
    g.strokeStyle = style.getPropertyValue('--grid');
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = pad.t + ((h - pad.t - pad.b) * i) / 4;
      g.beginPath();
      g.moveTo(pad.l, y + 0.5);
      g.lineTo(w - pad.r, y + 0.5);
      g.stroke();
      g.textAlign = 'right';
      g.fillText(fmt((top * (4 - i)) / 4), pad.l - 6, y + 4);
    }
    g.textAlign = 'left';
    g.fillText(`-${CHART_POINTS} s`, pad.l, h - 4);
    g.textAlign = 'right';
    g.fillText('now', w - pad.r, h - 4);
    const plot = (values, color) => {
      if (values.length < 2) return;
      g.strokeStyle = color;
      g.lineWidth = 2;
      g.beginPath();
      const step = (w - pad.l - pad.r) / (CHART_POINTS - 1);
      const x0 = w - pad.r - step * (values.length - 1);
      values.forEach((v, i) => {
        const x = x0 + step * i;
        const y = pad.t + (h - pad.t - pad.b) * (1 - v / top);
        if (i) g.lineTo(x, y);
        else g.moveTo(x, y);
      });
      g.stroke();
    };
    plot(series.in, style.getPropertyValue('--in'));
    plot(series.out, style.getPropertyValue('--out'));
  }

  function niceCeil(v) {
    const p = 10 ** Math.floor(Math.log10(v));
    for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }

  // ---- the node: metrics and health ----

  async function pollMetrics() {
    const res = await get('/metrics', 'text/plain');
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    const samples = parseMetrics(await res.text());
    const now = performance.now() / 1000;
    const cur = {
      t: now,
      appended: sum(samples, 'hubstream_events_appended_total'),
      delivered: sum(samples, 'hubstream_events_delivered_total'),
      commitSum: sum(samples, 'hubstream_writer_commit_seconds_sum'),
      commitCount: sum(samples, 'hubstream_writer_commit_seconds_count'),
    };
    let commitMs = NaN;
    if (last && cur.t > last.t) {
      const dt = cur.t - last.t;
      const rin = Math.max(0, (cur.appended - last.appended) / dt);
      const rout = Math.max(0, (cur.delivered - last.delivered) / dt);
      series.in.push(rin);
      series.out.push(rout);
      for (const s of [series.in, series.out]) while (s.length > CHART_POINTS) s.shift();
      text($('rate-in'), fmt(rin));
      text($('rate-out'), fmt(rout));
      const dc = cur.commitCount - last.commitCount;
      if (dc > 0) commitMs = ((cur.commitSum - last.commitSum) / dc) * 1000;
    }
    last = cur;
    drawChart();

    const up = sum(samples, 'hubstream_database_up');
    badge($('database'), up === 1 ? 'database up' : 'database down', up === 1 ? 'ok' : 'bad');
    const ring = sum(samples, 'hubstream_ingest_ring_entries');
    const ringCap = sum(samples, 'hubstream_ingest_ring_capacity');
    const facts = [
      ['Events appended', fmt(cur.appended)],
      ['Events delivered', fmt(cur.delivered)],
      ['Subscriptions', fmt(sum(samples, 'hubstream_subscriptions'))],
      ['Commit time (last second)', Number.isFinite(commitMs) ? `${commitMs.toFixed(2)} ms` : '–'],
      ['Writer queue', `${fmt(ring)} of ${fmt(ringCap)}`],
      ['Fan-out queue (batches)', fmt(sum(samples, 'hubstream_fanout_queued_batches'))],
      ['Database errors', fmt(sum(samples, 'hubstream_database_errors_total'))],
      ['Database reconnects', fmt(sum(samples, 'hubstream_database_reconnects_total'))],
      ['Slow subscribers closed', fmt(sum(samples, 'hubstream_subscribers_stalled_total'))],
      ['Resident memory', bytes(sum(samples, 'process_resident_memory_bytes'))],
      ['Open files', `${fmt(sum(samples, 'process_open_fds'))} of ${fmt(sum(samples, 'process_max_fds'))}`],
    ];
    const start = sum(samples, 'process_start_time_seconds');
    if (Number.isFinite(start)) facts.push(['Up since', new Date(start * 1000).toLocaleString()]);
    const dl = $('node');
    dl.replaceChildren();
    for (const [k, v] of facts) {
      dl.append(text(document.createElement('dt'), k), text(document.createElement('dd'), v));
    }

    const body = $('connections').tBodies[0];
    body.replaceChildren();
    const conns = samples.filter((s) => s.name === 'hubstream_connections');
    conns.sort((a, b) => b.value - a.value || (a.labels.transport || '').localeCompare(b.labels.transport || ''));
    for (const s of conns) {
      const row = body.insertRow();
      row.dataset.transport = s.labels.transport || '';
      cell(row, s.labels.api || '');
      cell(row, s.labels.transport || '');
      cell(row, s.labels.protocol || '');
      cell(row, fmt(s.value), 'num');
    }
    text($('connections-total'), `${fmt(sum(samples, 'hubstream_tcp_connections'))} TCP connections in all`);
  }

  async function pollHealth() {
    const res = await get('/readyz', 'text/plain');
    const why = (await res.text()).trim();
    if (res.ok) badge($('health'), 'ready', 'ok');
    else badge($('health'), `not ready: ${why || res.status}`, 'bad');
  }

  // ---- streams ----

  let versions = new Map(); // name -> {t, version}: the previous poll, for the rates

  async function pollStreams() {
    const prefix = $('prefix').value;
    const q = new URLSearchParams({ limit: String(STREAMS_PAGE) });
    if (prefix) q.set('prefix', prefix);
    const res = await get(`/api/streams?${q}`);
    if (!res.ok) throw new Error(`/api/streams answered ${res.status}`);
    const page = await res.json();
    const now = performance.now() / 1000;
    const seen = new Map();
    const body = $('streams').tBodies[0];
    body.replaceChildren();
    for (const s of page.streams) {
      const before = versions.get(s.name);
      const rate = before && now > before.t ? Math.max(0, (s.version - before.version) / (now - before.t)) : NaN;
      seen.set(s.name, { t: now, version: s.version });
      const row = body.insertRow();
      row.dataset.stream = s.name;
      row.title = `Tail ${s.name}`;
      row.tabIndex = 0;
      cell(row, s.name, 'name');
      cell(row, fmt(s.version), 'num');
      cell(row, fmt(rate), 'num');
      cell(row, fmt(s.subscribers ?? NaN), 'num');
      cell(row, s.updated ? new Date(s.updated).toLocaleString() : '');
      cell(row, s.closed ? 'closed' : 'open');
    }
    versions = seen;
    text(
      $('streams-note'),
      page.streams.length === 0
        ? prefix
          ? 'No stream starts with that prefix.'
          : 'No streams yet.'
        : page.streams.length >= STREAMS_PAGE
          ? `The first ${STREAMS_PAGE} streams by name: type a prefix to see others.`
          : `${page.streams.length} stream${page.streams.length === 1 ? '' : 's'}.`,
    );
  }

  // ---- the tail: recent events read backward, then the stream's SSE from the newest ----

  let tail = null; // {stream, abort, last, retry}

  function tailState(s) {
    text($('tail-state'), s);
  }

  function tailRow(id, type, rec) {
    const body = $('tail').tBodies[0];
    const row = body.insertRow(0);
    row.dataset.id = String(id);
    cell(row, String(id), 'num');
    cell(row, type, 'name');
    cell(row, rec && rec.time ? new Date(rec.time).toLocaleTimeString() : '');
    let data = rec ? JSON.stringify(rec.data) : '';
    if (data && data.length > 300) data = `${data.slice(0, 300)}…`;
    cell(row, data ?? '', 'data');
    while (body.rows.length > TAIL_ROWS) body.deleteRow(body.rows.length - 1);
  }

  function startTail(stream) {
    stopTail();
    $('tail-stream').value = stream;
    $('tail').tBodies[0].replaceChildren();
    $('tail-stop').disabled = false;
    tail = { stream, abort: new AbortController(), last: null, retry: 0 };
    runTail(tail);
  }

  function stopTail(why) {
    if (!tail) return;
    tail.abort.abort();
    tail = null;
    $('tail-stop').disabled = true;
    if (why) tailState(why);
  }

  const path = (stream) => `/api/streams/${encodeURIComponent(stream)}/events`;

  async function runTail(t) {
    const key = t.stream === '$all' ? 'position' : 'version';
    try {
      tailState(`Reading the last events of ${t.stream}…`);
      const res = await get(`${path(t.stream)}?direction=backward&limit=${TAIL_BACKLOG}`, 'application/json', t.abort.signal);
      if (res.ok) {
        const newestFirst = (await res.json()).events;
        for (let i = newestFirst.length - 1; i >= 0; i--) tailRow(newestFirst[i][key], newestFirst[i].type, newestFirst[i]);
        t.last = newestFirst.length ? newestFirst[0][key] : 0;
      } else if (res.status !== 404) {
        throw new Error(`the read answered ${res.status}`);
      }
      while (tail === t) {
        await follow(t);
        if (tail !== t) return;
        t.retry = Math.min(t.retry + 1, 5);
        tailState(`${t.stream}: the connection ended; again in ${t.retry} s…`);
        await new Promise((r) => setTimeout(r, t.retry * 1000));
      }
    } catch (err) {
      if (tail !== t || err.name === 'AbortError') return;
      if (refused(err)) return;
      stopTail(`${t.stream}: ${err.message}`);
    }
  }

  // One SSE response: resolves when it ends (the caller reconnects), or after `event: close`
  // with the tail stopped.
  async function follow(t) {
    const headers = { accept: 'text/event-stream' };
    if (token) headers.authorization = `Bearer ${token}`;
    if (t.last !== null) headers['last-event-id'] = String(t.last);
    let res;
    try {
      res = await fetch(path(t.stream), { headers, cache: 'no-store', signal: t.abort.signal });
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      return; // the network: try again
    }
    if (res.status === 401 || res.status === 403) throw new Refused(`${res.status} on the stream`);
    if (!res.ok) throw new Error(`the subscription answered ${res.status}`);
    tailState(`Following ${t.stream} live (newest first).`);
    t.retry = 0;
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buf = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buf += value.replace(/\r\n?/g, '\n');
        let end;
        while ((end = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, end);
          buf = buf.slice(end + 2);
          if (onBlock(t, block)) return;
        }
      }
    } catch (err) {
      if (err.name === 'AbortError') throw err;
    }
  }

  // An SSE block; true when it ends the tail (`event: close`).
  function onBlock(t, block) {
    let id = null;
    let type = 'message';
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line[0] === ':') continue;
      const i = line.indexOf(':');
      const field = i < 0 ? line : line.slice(0, i);
      let value = i < 0 ? '' : line.slice(i + 1);
      if (value[0] === ' ') value = value.slice(1);
      if (field === 'id') id = value;
      else if (field === 'event') type = value;
      else if (field === 'data') data.push(value);
    }
    if (!data.length) return false;
    let rec = null;
    try {
      rec = JSON.parse(data.join('\n'));
    } catch {
      rec = { data: data.join('\n') };
    }
    if (type === 'close') {
      stopTail(`${t.stream} was ${rec.reason || 'closed'}: nothing more will come.`);
      return true;
    }
    if (id !== null) t.last = id;
    tailRow(id ?? '', type, rec);
    return false;
  }

  // ---- start, sign in, stop ----

  function every(ms, fn) {
    let busy = false;
    const tick = async () => {
      if (busy || !running) return;
      busy = true;
      try {
        await fn();
        $('fatal').hidden = true;
      } catch (err) {
        if (!refused(err)) {
          $('fatal').hidden = false;
          text($('fatal'), `${err.message}: showing the last figures`);
        }
      } finally {
        busy = false;
      }
    };
    tick();
    timers.push(setInterval(tick, ms));
  }

  function stop() {
    running = false;
    for (const t of timers) clearInterval(t);
    timers = [];
    stopTail();
  }

  function showLogin(reason) {
    $('main').hidden = true;
    $('login').hidden = false;
    $('signout').hidden = !token;
    text($('login-reason'), reason || '');
    $('token').focus();
  }

  function showMain() {
    $('login').hidden = true;
    $('main').hidden = false;
    $('signout').hidden = !token;
    running = true;
    last = null;
    series.in.length = 0;
    series.out.length = 0;
    every(1000, async () => {
      await Promise.all([pollMetrics(), pollHealth()]);
    });
    every(2000, pollStreams);
  }

  async function start() {
    stop();
    let who;
    try {
      const res = await get('/dashboard/session');
      who = await res.json();
    } catch (err) {
      $('fatal').hidden = false;
      text($('fatal'), `The server did not answer: ${err.message}`);
      setTimeout(start, 3000);
      return;
    }
    text($('version'), `v${who.version}`);
    text($('user'), who.user ? `as ${who.user}` : '');
    if (who.admin) showMain();
    else if (token) showLogin(`The server refused the token: ${who.reason}`);
    else showLogin('');
  }

  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    token = $('token').value.trim();
    $('token').value = '';
    sessionStorage.setItem(TOKEN_KEY, token);
    start();
  });
  $('signout').addEventListener('click', () => {
    token = '';
    sessionStorage.removeItem(TOKEN_KEY);
    start();
  });
  $('stream-filter').addEventListener('submit', (e) => e.preventDefault());
  $('prefix').addEventListener('input', () => {
    versions = new Map();
    pollStreams().catch(refused);
  });
  $('streams').addEventListener('click', (e) => {
    const row = e.target.closest('tr[data-stream]');
    if (row) startTail(row.dataset.stream);
  });
  $('streams').addEventListener('keydown', (e) => {
    const row = e.target.closest('tr[data-stream]');
    if (row && e.key === 'Enter') startTail(row.dataset.stream);
  });
  $('tail-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const s = $('tail-stream').value.trim();
    if (s) startTail(s);
  });
  $('tail-stop').addEventListener('click', () => stopTail('Stopped.'));
  window.addEventListener('resize', drawChart);
  start();
})();
