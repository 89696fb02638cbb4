// eventclient.js: a small browser helper over EventSource for hubstream's SSE API (the
// "PushStream" pattern: named events, lifecycle events, reconnect with backoff, resume without
// loss). No dependencies, no build step.
//
// Load it as an ES module:
//     import { HubstreamEvents } from './eventclient.js';
// or from a page without imports of its own:
//     <script type="module" src="eventclient.js"></script>
// which also defines window.HubstreamEvents (module scripts run after the page is parsed, so use
// it from a DOMContentLoaded handler or later).
//
//     const ev = new HubstreamEvents('https://events.example.com', 'orders', {
//       types: ['order.created', 'order.paid'],
//       accessToken: () => myToken(),
//     });
//     ev.on('order.created', (rec) => console.log(rec.version, rec.data));
//     ev.on('stream.statechange', ({ from, to }) => console.log(from, '->', to));
//     ev.on('stream.close', ({ manual, reason }) => console.log('ended', manual, reason));
//     ev.connect();
//     ...
//     ev.disconnect();
//
// new HubstreamEvents(baseUrl, stream, options)
//   baseUrl      the server's origin, e.g. 'http://127.0.0.1:5000' ('' for the page's own origin)
//   stream       the stream name ('$all' works too; its ids are global positions)
//   options:
//     types        list of event types (or 'a,b'): sent as ?types=, so the server sends only
//                  those. Without it the server sends every type, but EventSource only hands a
//                  named event to a listener for that name: types nobody listens to are dropped
//                  in the browser (and not counted as seen).
//     accessToken  a token string, or a function returning one (called at every connect, so a
//                  reconnect uses a fresh token): sent as ?access_token= because EventSource
//                  cannot set headers. Needed when the server has auth on.
//     from         a version to resume after (0: everything the stream holds). Without it the
//                  helper starts at "now": it first reads the stream's newest version
//                  (GET .../events?direction=backward&limit=1) and subscribes from there, so even
//                  a reconnect before the first event arrives loses nothing.
//     reconnect    true (default): reconnect after a lost connection; false: end with
//                  stream.close {manual: false, reason: 'error'} instead.
//     minDelayMs   first reconnect delay (1000); each failed attempt in a row doubles it ...
//     maxDelayMs   ... up to this (30000).
//     maxAttempts  failed reconnect attempts in a row before giving up with stream.close
//                  {manual: false, reason: 'failed'} (Infinity). An open connection resets the count.
//     jitter       'equal' (default: a random delay between half and all of the backoff),
//                  'full' (between 0 and all of it) or 'none'.
//     withCredentials  passed to EventSource (send cookies cross-origin; false).
//     EventSource, fetch  replacements for the browser's own (tests, other runtimes).
//
// Methods: connect(), disconnect(), on(name, fn), off(name, fn), once(name, fn); on/off/once
// return the object. Getters: state, lastEventId (the last version seen, or null).
//
// Events passed to handlers:
//   '<type>' (e.g. 'order.created')  fn(record, messageEvent): the parsed EventRecord
//                  {stream, version, position, id, type, time, data, metadata}, once each, in
//                  version order, across reconnects.
//   'stream.open'         {url, from}: a connection was opened (first or again).
//   'stream.statechange'  {from, to}; states: 'closed' (initially and at the end),
//                  'connecting', 'open', 'reconnecting' (waiting to try again; also carries
//                  attempt and delayMs). A failed attempt goes reconnecting -> connecting ->
//                  reconnecting with a longer delay.
//   'stream.error'        {kind, message, ...}: kind 'connection' (a connection failed or was
//                  lost; the helper reconnects), 'lookup' (reading the newest version failed;
//                  status when the server answered), or 'data' (an event whose data is not JSON:
//                  it is skipped; type, id and data say which).
//   'stream.close'        {manual, reason}: the end. manual: true after disconnect() (reason
//                  'manual'); otherwise reason is the server's ('closed' or 'deleted': the
//                  stream was closed or deleted, which is final, so no reconnect), 'error'
//                  (reconnect: false) or 'failed' (maxAttempts used up).
//
// How it maps onto the server: every event arrives as `id: <version>`, `event: <type>`,
// `data: <EventRecord JSON>`. The helper keeps the last id itself and never lets the browser
// retry on its own: on any error it closes the EventSource and, after the backoff, opens a new
// one whose URL says ?from=<last id> (a new EventSource cannot send Last-Event-ID). The server
// replays what came after that version and goes on live, so nothing is lost; an event at or
// below the last id (which the server does not send) would be dropped, so nothing repeats.
// The server's `: ping` comments every 15 s keep idle connections open through proxies; they
// are not visible through EventSource. Handler exceptions do not stop delivery: they are
// re-thrown from a timer, so they show in the console.

const LIFECYCLE = new Set(['stream.open', 'stream.close', 'stream.error', 'stream.statechange']);
const JITTERS = new Set(['equal', 'full', 'none']);

function positiveNumber(v, name) {
  if (typeof v !== 'number' || !(v > 0)) throw new TypeError(`${name}: a positive number, not ${v}`);
  return v;
}

export class HubstreamEvents {
  constructor(baseUrl, stream, options = {}) {
    if (typeof stream !== 'string' || stream === '') throw new TypeError('stream: a non-empty stream name');
    const o = options ?? {};
    let types = o.types ?? [];
    if (typeof types === 'string') types = types.split(',');
    types = Array.from(types, (t) => String(t).trim()).filter((t) => t !== '');
    if (o.from != null && !(Number.isSafeInteger(o.from) && o.from >= 0)) throw new TypeError(`from: a version >= 0, not ${o.from}`);
    const jitter = o.jitter ?? 'equal';
    if (!JITTERS.has(jitter)) throw new TypeError(`jitter: 'equal', 'full' or 'none', not ${jitter}`);
    this.baseUrl = String(baseUrl ?? '').replace(/\/+$/, '');
    this.stream = stream;
    this.options = {
      types,
      accessToken: o.accessToken ?? null,
      from: o.from ?? null,
      reconnect: o.reconnect ?? true,
      minDelayMs: positiveNumber(o.minDelayMs ?? 1000, 'minDelayMs'),
      maxDelayMs: positiveNumber(o.maxDelayMs ?? 30000, 'maxDelayMs'),
      maxAttempts: positiveNumber(o.maxAttempts ?? Infinity, 'maxAttempts'),
      jitter,
      withCredentials: Boolean(o.withCredentials),
      EventSource: o.EventSource ?? globalThis.EventSource,
      fetch: o.fetch ?? (globalThis.fetch ? globalThis.fetch.bind(globalThis) : null),
    };
    if (typeof this.options.EventSource !== 'function') throw new TypeError('no EventSource in this runtime: pass options.EventSource');
    this._handlers = new Map(); // name -> [{fn, orig, once}]
    this._state = 'closed';
    this._lastId = this.options.from; // the last version seen (or the one to start after)
    this._es = null;
    this._esNames = null; // names with a listener on the current EventSource
    this._timer = null;
    this._attempt = 0; // failed attempts in a row
    this._gen = 0; // bumped whenever a connection is dropped: late callbacks of older ones are ignored
  }

  get state() {
    return this._state;
  }

  get lastEventId() {
    return this._lastId;
  }

  on(name, fn) {
    return this._add(name, fn, false);
  }

  once(name, fn) {
    return this._add(name, fn, true);
  }

  off(name, fn) {
    const list = this._handlers.get(name);
    if (list) {
      const kept = list.filter((h) => h.orig !== fn);
      if (kept.length) this._handlers.set(name, kept);
      else this._handlers.delete(name);
    }
    return this;
  }

  /** Opens the subscription; does nothing unless the state is 'closed'. */
  connect() {
    if (this._state !== 'closed') return this;
    this._attempt = 0;
    this._setState('connecting');
    this._open();
    return this;
  }

  /** Ends the subscription for good (until connect() again): stream.close {manual: true}. */
  disconnect() {
    if (this._state === 'closed') return this;
    this._drop();
    this._setState('closed');
    this._emit('stream.close', { manual: true, reason: 'manual' });
    return this;
  }

  // -------------------------------------------------------------------------------------------

  _add(name, fn, once) {
    if (typeof name !== 'string' || name === '') throw new TypeError('name: an event type or stream.* name');
    if (typeof fn !== 'function') throw new TypeError('fn: a function');
    const list = this._handlers.get(name) ?? [];
    list.push({ fn, orig: fn, once });
    this._handlers.set(name, list);
    if (this._es && !LIFECYCLE.has(name)) this._listen(name);
    return this;
  }

  _emit(name, ...args) {
    const list = this._handlers.get(name);
    if (!list) return;
    for (const h of list.slice()) {
      if (h.once) this.off(name, h.orig);
      try {
        h.fn.apply(this, args);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  _setState(to, extra = {}) {
    const from = this._state;
    if (from === to) return;
    this._state = to;
    this._emit('stream.statechange', { from, to, ...extra });
  }

  _token() {
    const t = this.options.accessToken;
    return typeof t === 'function' ? t() : t;
  }

  _streamUrl(suffix, params) {
    const q = [];
    for (const [k, v] of params) q.push(`${k}=${v}`);
    const token = this._token();
    if (token) q.push(`access_token=${encodeURIComponent(token)}`);
    return `${this.baseUrl}/api/streams/${encodeURIComponent(this.stream)}${suffix}${q.length ? `?${q.join('&')}` : ''}`;
  }

  /** Starts one connection attempt (state 'connecting'). */
  _open() {
    const gen = ++this._gen;
    if (this._lastId !== null) {
      this._start(gen, this._lastId);
      return;
    }
    // no resume point yet: start at the stream's newest version, read first
    this._newest().then(
      (v) => {
        if (gen !== this._gen) return;
        if (this._lastId === null) this._lastId = v;
        this._start(gen, this._lastId);
      },
      (e) => {
        if (gen !== this._gen) return;
        this._emit('stream.error', { kind: 'lookup', message: e.message, status: e.status });
        if (gen === this._gen) this._failed(); // (unless a handler called disconnect())
      },
    );
  }

  async _newest() {
    const fetchFn = this.options.fetch;
    if (!fetchFn) throw new Error('no fetch in this runtime: pass options.from or options.fetch');
    const url = this._streamUrl('/events', [['direction', 'backward'], ['limit', '1']]);
    const res = await fetchFn(url, { headers: { accept: 'application/json' }, credentials: this.options.withCredentials ? 'include' : 'same-origin' });
    if (res.status === 404) return 0; // no such stream yet: everything it will get is new
    if (res.status !== 200) {
      const e = new Error(`reading the newest version of ${this.stream} answered ${res.status}`);
      e.status = res.status;
      throw e;
    }
    const body = await res.json();
    const last = body.events && body.events[0];
    if (!last) return 0;
    return this.stream === '$all' ? last.position : last.version;
  }

  _start(gen, from) {
    const params = [];
    if (this.options.types.length) params.push(['types', this.options.types.map(encodeURIComponent).join(',')]);
    params.push(['from', String(from)]);
    const url = this._streamUrl('/events', params);
    const es = new this.options.EventSource(url, { withCredentials: this.options.withCredentials });
    this._es = es;
    this._esNames = new Set();
    es.addEventListener('open', () => {
      if (gen !== this._gen) return;
      this._attempt = 0;
      this._setState('open');
      this._emit('stream.open', { url, from });
    });
    es.addEventListener('error', () => {
      if (gen !== this._gen) return;
      this._emit('stream.error', {
        kind: 'connection',
        message: this._state === 'open' ? 'the connection was lost' : 'the connection failed',
      });
      if (gen === this._gen) this._failed(); // (unless a handler called disconnect())
    });
    es.addEventListener('close', (ev) => this._onClose(ev, gen));
    for (const t of this.options.types) this._listen(t);
    for (const name of this._handlers.keys()) if (!LIFECYCLE.has(name)) this._listen(name);
  }

  _listen(name) {
    if (name === 'close' || this._esNames.has(name)) return;
    this._esNames.add(name);
    const gen = this._gen;
    this._es.addEventListener(name, (ev) => this._onEvent(name, ev, gen));
  }

  _onEvent(name, ev, gen) {
    if (gen !== this._gen) return;
    const id = ev.lastEventId === '' ? NaN : Number(ev.lastEventId);
    if (Number.isSafeInteger(id)) {
      if (this._lastId !== null && id <= this._lastId) return; // seen already
      this._lastId = id;
    }
    let rec;
    try {
      rec = JSON.parse(ev.data);
    } catch (e) {
      this._emit('stream.error', { kind: 'data', message: e.message, type: name, id: ev.lastEventId, data: ev.data });
      return;
    }
    this._emit(name, rec, ev);
  }

  /** The server's `event: close` (the stream was closed or deleted): final, no reconnect. */
  _onClose(ev, gen) {
    if (gen !== this._gen) return;
    let info = null;
    try {
      info = JSON.parse(ev.data);
    } catch {
      /* not JSON: still the end */
    }
    if (info && typeof info === 'object' && 'version' in info) {
      this._onEvent('close', ev, gen); // an application event whose type is "close"
      return;
    }
    const reason = info && typeof info.reason === 'string' ? info.reason : 'closed';
    this._drop();
    this._setState('closed');
    this._emit('stream.close', { manual: false, reason });
  }

  /** The current attempt failed or the connection was lost: back off and try again, or end. */
  _failed() {
    this._drop();
    if (!this.options.reconnect) {
      this._setState('closed');
      this._emit('stream.close', { manual: false, reason: 'error' });
      return;
    }
    this._attempt++;
    if (this._attempt > this.options.maxAttempts) {
      this._setState('closed');
      this._emit('stream.close', { manual: false, reason: 'failed' });
      return;
    }
    const delayMs = this._delay(this._attempt);
    this._setState('reconnecting', { attempt: this._attempt, delayMs });
    this._timer = setTimeout(() => {
      this._timer = null;
      if (this._state !== 'reconnecting') return;
      this._setState('connecting', { attempt: this._attempt });
      this._open();
    }, delayMs);
  }

  _delay(attempt) {
    const { minDelayMs, maxDelayMs, jitter } = this.options;
    const base = Math.min(maxDelayMs, minDelayMs * 2 ** (attempt - 1));
    if (jitter === 'full') return Math.round(Math.random() * base);
    if (jitter === 'equal') return Math.round(base / 2 + (Math.random() * base) / 2);
    return base;
  }

  /** Closes the current EventSource and cancels a pending retry; late callbacks are ignored. */
  _drop() {
    this._gen++;
    if (this._timer !== null) {
      clearTimeout(this._timer);
      this._timer = null;
    }
    if (this._es) {
      this._es.close();
      this._es = null;
      this._esNames = null;
    }
  }
}

if (typeof window !== 'undefined' && !window.HubstreamEvents) window.HubstreamEvents = HubstreamEvents;
