// Helpers for browser.test.mjs: finding Debian's chromium, a page server of another origin, and
// a TCP proxy that records the HTTP exchanges (request and response heads) that pass through it,
// preflights included: Chromium does not report CORS preflights to playwright.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';

/** The chromium executable (`which chromium`, else /usr/bin/chromium if present), or null. */
export function findChromium() {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      const p = execFileSync('which', [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
      if (p) return p;
    } catch {
      /* not on PATH under this name */
    }
  }
  return existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : null;
}

/**
 * The chromium executable for test t, or null after skipping t when it is missing; a missing
 * chromium fails instead when HUBSTREAM_REQUIRE_BROWSER is set (ctest and scripts/test.sh).
 */
export function chromiumFor(t) {
  const exe = findChromium();
  if (exe) return exe;
  if (process.env.HUBSTREAM_REQUIRE_BROWSER) {
    throw new Error('HUBSTREAM_REQUIRE_BROWSER is set but chromium was not found (which chromium, /usr/bin/chromium)');
  }
  t.skip('chromium is not installed (scripts/deps.sh --test installs it; HUBSTREAM_REQUIRE_BROWSER=1 makes this a failure)');
  return null;
}

/**
 * A node:http server on 127.0.0.1 (its own port, hence its own origin) serving `/` (a page that
 * loads /signalr.min.js) and `/signalr.min.js` (the file at `bundlePath`). `served` lists the
 * requests it answered. Resolves once listening.
 */
export async function pageServer(bundlePath) {
  const bundle = readFileSync(bundlePath);
  const html =
    '<!doctype html><html><head><meta charset="utf-8"><link rel="icon" href="data:,">' +
    '<script src="/signalr.min.js"></script></head><body>hubstream browser test</body></html>';
  const served = [];
  const web = http.createServer((req, res) => {
    served.push(`${req.method} ${req.url}`);
    if (req.url === '/signalr.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(bundle);
    } else if (req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  await new Promise((resolve, reject) => {
    web.once('error', reject);
    web.listen(0, '127.0.0.1', resolve);
  });
  web.served = served;
  web.origin = `http://127.0.0.1:${web.address().port}`;
  /** Stops listening and drops open (keep-alive) connections. */
  web.shutdown = () =>
    new Promise((resolve) => {
      web.close(() => resolve());
      web.closeAllConnections();
    });
  return web;
}

/**
 * Reads consecutive HTTP/1.1 message heads from one direction of a connection, skipping bodies
 * (Content-Length or chunked; a response without either and not bodiless runs to the close).
 * `onHead(head)` gets {line, headers (lower-case names; repeated ones joined with ", ")} and
 * returns how the body is framed for responses whose framing depends on the request. Parsing
 * stops for good after a head for which `onHead` returns 'stop' (a WebSocket upgrade).
 */
class HeadReader {
  constructor(onHead) {
    this.onHead = onHead;
    this.buf = Buffer.alloc(0);
    this.state = 'head'; // head | body | chunk-size | chunk-data | chunk-trailer | raw | stop
    this.left = 0;
  }
  feed(d) {
    if (this.state === 'stop' || this.state === 'raw') return;
    this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
    for (;;) {
      if (this.state === 'head') {
        const i = this.buf.indexOf('\r\n\r\n');
        if (i < 0) return;
        const lines = this.buf.subarray(0, i).toString('latin1').split('\r\n');
        this.buf = this.buf.subarray(i + 4);
        const headers = {};
        for (const l of lines.slice(1)) {
          const c = l.indexOf(':');
          if (c < 0) continue;
          const k = l.slice(0, c).trim().toLowerCase();
          const v = l.slice(c + 1).trim();
          headers[k] = k in headers ? `${headers[k]}, ${v}` : v;
        }
        const verdict = this.onHead({ line: lines[0], headers });
        if (verdict === 'stop') {
          this.state = 'stop';
          return;
        }
        if (verdict === 'nobody') continue;
        if (/chunked/i.test(headers['transfer-encoding'] ?? '')) this.state = 'chunk-size';
        else if (headers['content-length'] !== undefined) {
          this.left = Number(headers['content-length']);
          this.state = this.left > 0 ? 'body' : 'head';
        } else if (verdict === 'response') this.state = 'raw';
      } else if (this.state === 'body' || this.state === 'chunk-data') {
        const take = Math.min(this.left, this.buf.length);
        this.buf = this.buf.subarray(take);
        this.left -= take;
        if (this.left > 0) return;
        this.state = this.state === 'body' ? 'head' : 'chunk-size';
        if (this.state === 'chunk-size') this.skipCrlf = true;
      } else if (this.state === 'chunk-size') {
        if (this.skipCrlf) {
          if (this.buf.length < 2) return;
          this.buf = this.buf.subarray(2);
          this.skipCrlf = false;
        }
        const i = this.buf.indexOf('\r\n');
        if (i < 0) return;
        this.left = parseInt(this.buf.subarray(0, i).toString('latin1'), 16);
        this.buf = this.buf.subarray(i + 2);
        this.state = this.left > 0 ? 'chunk-data' : 'chunk-trailer';
      } else if (this.state === 'chunk-trailer') {
        const i = this.buf.indexOf('\r\n');
        if (i < 0) return;
        const empty = i === 0;
        this.buf = this.buf.subarray(i + 2);
        if (empty) this.state = 'head';
      } else return;
    }
  }
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort`. `exchanges` lists every HTTP request that
 * went through it, in the order the requests were sent, as {method, path, headers, response}
 * where response is {status, headers} once the answer's head has passed (undefined before).
 * A 101 answer ends the recording on that connection (WebSocket frames follow).
 */
export async function recordingProxy(targetPort) {
  const exchanges = [];
  const sockets = new Set();
  const server = net.createServer((c) => {
    const s = net.connect(targetPort, '127.0.0.1');
    sockets.add(c);
    sockets.add(s);
    const pending = []; // this connection's requests still waiting for their response head
    const reqReader = new HeadReader(({ line, headers }) => {
      const [method, p] = line.split(' ');
      const x = { method, path: p, headers, response: undefined };
      exchanges.push(x);
      pending.push(x);
      return /upgrade/i.test(headers.connection ?? '') ? 'stop' : 'request';
    });
    const resReader = new HeadReader(({ line, headers }) => {
      const status = Number(line.split(' ')[1]);
      const x = pending.shift();
      if (x) x.response = { status, headers };
      if (status === 101) return 'stop';
      if (status === 204 || status === 304 || (status >= 100 && status < 200) || x?.method === 'HEAD') return 'nobody';
      return 'response';
    });
    c.on('data', (d) => reqReader.feed(d));
    s.on('data', (d) => resReader.feed(d));
    c.pipe(s);
    s.pipe(c);
    const end = () => {
      c.destroy();
      s.destroy();
      sockets.delete(c);
      sockets.delete(s);
    };
    c.on('error', end);
    s.on('error', end);
    c.on('close', end);
    s.on('close', end);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: server.address().port,
    exchanges,
    /** "METHOD path -> status" for every exchange, for messages. */
    describe() {
      return exchanges.map((x) => `${x.method} ${x.path} -> ${x.response ? x.response.status : '(no answer yet)'}`);
    },
    close() {
      const closed = new Promise((r) => server.close(() => r()));
      for (const sock of sockets) sock.destroy();
      sockets.clear();
      return closed;
    },
  };
}
