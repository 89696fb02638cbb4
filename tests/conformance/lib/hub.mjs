// Helpers for the SignalR conformance tests: building real @microsoft/signalr connections with
// a log collector, waiting for pushed events, and a raw WebSocket/HTTP toolkit for the wire-level
// cases the official client never produces.

import * as signalR from '@microsoft/signalr';
import { MessagePackHubProtocol } from '@microsoft/signalr-protocol-msgpack';
import net from 'node:net';
import WebSocket from 'ws';
import { withTimeout, TEST_AUTH_SECRET, testToken } from '../../integration/lib/server.mjs';

export { signalR, MessagePackHubProtocol };

/** A logger that keeps the client's lines for failure messages instead of printing them. */
export class Collector {
  constructor() {
    this.lines = [];
  }
  log(level, msg) {
    this.lines.push(`[${signalR.LogLevel[level]}] ${msg}`);
    if (this.lines.length > 500) this.lines.shift();
  }
  tail(n = 30) {
    return this.lines.slice(-n).join('\n');
  }
}

/**
 * A HubConnection to `${base}/hub`. opts: transport ('WebSockets' | 'ServerSentEvents' |
 * 'LongPolling'), msgpack, skipNegotiation, stateful, reconnect (array of delays), serverTimeout,
 * keepAlive, url (overrides the hub URL).
 */
export function hub(base, opts = {}) {
  const log = new Collector();
  const options = { transport: signalR.HttpTransportType[opts.transport ?? 'WebSockets'] };
  if (opts.skipNegotiation) options.skipNegotiation = true;
  if (opts.accessTokenFactory) options.accessTokenFactory = opts.accessTokenFactory;
  else if (TEST_AUTH_SECRET) options.accessTokenFactory = () => testToken();
  let b = new signalR.HubConnectionBuilder().withUrl(opts.url ?? `${base}/hub`, options).configureLogging(log);
  if (opts.msgpack) b = b.withHubProtocol(new MessagePackHubProtocol());
  if (opts.stateful) b = b.withStatefulReconnect();
  if (opts.reconnect) b = b.withAutomaticReconnect(opts.reconnect);
  if (opts.serverTimeout) b = b.withServerTimeout(opts.serverTimeout);
  if (opts.keepAlive) b = b.withKeepAliveInterval(opts.keepAlive);
  const c = b.build();
  c.collector = log;
  // the arguments onclose was called with, exactly (stop() must pass [undefined])
  c.closeArgs = new Promise((resolve) => c.onclose((...args) => resolve(args)));
  c.closedWith = c.closeArgs.then((args) => args[0] ?? null);
  return c;
}

/**
 * Runs fn and adds the client's log tail to any failure; a failed test's client is stopped so it
 * cannot keep the test process alive.
 */
export async function explain(c, fn) {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof Error) e.message += `\n--- client log ---\n${c.collector.tail()}`;
    await withTimeout(c.stop(), 5000, 'the failed test\'s client to stop').catch(() => {});
    throw e;
  }
}

/** Collects a streaming subscription's items; `done` resolves on complete, rejects on error. */
export function streamItems(c, ...args) {
  const items = [];
  let sub;
  const done = new Promise((resolve, reject) => {
    sub = c.stream(...args).subscribe({ next: (x) => items.push(x), complete: () => resolve(items), error: reject });
  });
  done.catch(() => {});
  return { items, done, dispose: () => sub.dispose() };
}

/** Polls until cond() is true or fails after ms with `what`. */
export async function waitFor(cond, ms, what) {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Checks that records carry versions from+1 .. from+n in order (no gap, no duplicate). */
export function assertSequence(assert, recs, from, n, field = 'version') {
  assert.equal(recs.length, n, `expected ${n} records, got ${recs.length}: ${recs.map((r) => r[field]).join(',')}`);
  recs.forEach((r, i) => assert.equal(r[field], from + i + 1, `record ${i} has ${field} ${r[field]}`));
}

// ---- raw wire ----

export const RS = '\x1e';

/** Splits JSON records (each ends in 0x1E). */
export function jsonRecords(text) {
  assert_(text.endsWith(RS), `a frame must end with a whole record: ${JSON.stringify(text)}`);
  return text.split(RS).slice(0, -1).map((t) => JSON.parse(t));
}

function assert_(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Splits MessagePack records (varint length prefix); returns the record bodies. */
export function msgpackRecords(buf) {
  const out = [];
  let i = 0;
  while (i < buf.length) {
    let n = 0;
    let shift = 0;
    let k = 0;
    for (;;) {
      const b = buf[i + k];
      n |= (b & 0x7f) << shift;
      k++;
      if (!(b & 0x80)) break;
      shift += 7;
    }
    assert_(i + k + n <= buf.length, 'a frame must end with a whole MessagePack record');
    out.push(buf.subarray(i + k, i + k + n));
    i += k + n;
  }
  return out;
}

/** Opens a raw WebSocket to /hub (with `query`), resolving once open; frames go to `.frames`. */
export function rawWs(port, query = '') {
  // an auth run's token goes as a browser's would, in ?access_token=
  if (TEST_AUTH_SECRET) query += `${query ? '&' : '?'}access_token=${testToken()}`;
  const ws = new WebSocket(`ws://127.0.0.1:${port}/hub${query}`);
  ws.frames = [];
  ws.closedP = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('message', (data, isBinary) => ws.frames.push({ data: Buffer.from(data), isBinary }));
  ws.on('error', () => {});
  return withTimeout(
    new Promise((resolve, reject) => {
      ws.on('open', () => resolve(ws));
      ws.on('unexpected-response', (req, res) => {
        const e = new Error(`upgrade answered ${res.statusCode}`);
        e.status = res.statusCode;
        res.resume();
        reject(e);
      });
      ws.on('error', reject);
    }),
    5000,
    'a WebSocket to /hub',
  );
}

/** Waits for the n-th frame (1-based count) of a raw WebSocket. */
export async function frame(ws, n = 1, ms = 5000) {
  await waitFor(() => ws.frames.length >= n, ms, `WebSocket frame #${n}`);
  return ws.frames[n - 1];
}

/**
 * A TCP proxy in front of the server whose sockets can be killed abruptly. `requests` keeps the
 * method and path of every request the client sent through it ("POST /hub/negotiate?...",
 * "GET /hub?id=..."), so a test can tell a resume from a new negotiate. splitFirst /
 * splitDelayMs: each connection's first bytes reach the server in two pieces, the second that
 * much later (the server's acceptor cannot read the token in time and hands the connection to
 * any IO thread).
 */
export async function tcpProxy(targetPort, { splitFirst = 0, splitDelayMs = 0 } = {}) {
  const pairs = new Set();
  const requests = [];
  let connections = 0;
  let refuseUntil = 0;
  const server = net.createServer((c) => {
    connections++;
    // every HTTP request line the client sends (WebSocket frames from a client are masked, so
    // they cannot look like one)
    let buf = '';
    const sniff = (d) => {
      buf += d.toString('latin1');
      const re = /(GET|POST|DELETE|OPTIONS|PUT|PATCH) (\/\S*) HTTP\/1\.[01]\r\n/g;
      let m;
      let used = 0;
      while ((m = re.exec(buf))) {
        requests.push(`${m[1]} ${m[2]}`);
        used = re.lastIndex;
      }
      buf = buf.slice(Math.max(used, buf.length - 300));
    };
    c.on('data', sniff);
    if (Date.now() < refuseUntil) {
      c.destroy();
      return;
    }
    const s = net.connect(targetPort, '127.0.0.1');
    if (splitFirst) {
      // the first splitFirst bytes of the client's first chunk go on at once, the rest after
      // splitDelayMs: a request line that arrives in pieces
      c.once('data', (d) => {
        c.pause();
        s.write(d.subarray(0, splitFirst));
        setTimeout(() => {
          if (s.destroyed) return;
          s.write(d.subarray(splitFirst));
          c.pipe(s);
          c.resume();
        }, splitDelayMs);
      });
    } else {
      c.pipe(s);
    }
    s.pipe(c);
    const pair = { c, s };
    pairs.add(pair);
    const end = () => {
      c.destroy();
      s.destroy();
      pairs.delete(pair);
    };
    c.on('error', end);
    s.on('error', end);
    c.on('close', end);
    s.on('close', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: server.address().port,
    get connections() {
      return connections;
    },
    requests,
    /** Drops every proxied connection without a close handshake (RST on the client side). */
    killAll() {
      for (const { c, s } of pairs) {
        if (c.resetAndDestroy) c.resetAndDestroy();
        else c.destroy();
        s.destroy();
      }
      pairs.clear();
    },
    /** Drops new connections at once for `ms`. */
    refuseFor(ms) {
      refuseUntil = Date.now() + ms;
    },
    /** Stops listening and drops what is still open (idle keep-alive connections too). */
    close() {
      const closed = new Promise((r) => server.close(() => r()));
      for (const { c, s } of pairs) {
        c.destroy();
        s.destroy();
      }
      pairs.clear();
      return closed;
    },
  };
}
