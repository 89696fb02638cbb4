// The official SignalR browser bundle (@microsoft/signalr dist/browser/signalr.min.js) in headless
// Chromium (Debian's `chromium`, driven by playwright-core), as a real web app uses it: the page
// comes from another origin (its own node:http server), so every request to /hub is a CORS
// request with credentials (the bundle's default) and negotiate is preflighted. The client goes
// over WebSockets with an accessTokenFactory, so the token travels in the WebSocket URL's query
// string (browsers cannot set headers on a WebSocket). In the page it subscribes in both styles
// (push `event` invocations and a streaming Subscribe), each replaying what was published before
// and then continuing live, publishes from the browser, and stops cleanly.
//
// Between the browser and the hub sits a recording TCP proxy (lib/browser.mjs), so the test sees
// the exact requests the browser made and the heads of the answers, the OPTIONS preflight
// included (Chromium does not report preflights to playwright).
//
// Skipped when chromium is missing, unless HUBSTREAM_REQUIRE_BROWSER is set (ctest and
// scripts/test.sh set it): then a missing chromium is a failure.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  startServer,
  publish,
  readAll,
  show,
  uniqueStream,
  withTimeout,
  appendToError,
  guarded,
  crashReport,
  ISO_UTC_MICROS,
  UUID_RE,
} from '../integration/lib/server.mjs';
import { chromiumFor, pageServer, recordingProxy } from './lib/browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BUNDLE = path.join(HERE, 'node_modules/@microsoft/signalr/dist/browser/signalr.min.js');
const TOKEN = 'test-token-123';

// ---------------------------------------------------------------------------------------------
// everything the test opens: closed when the test ends, failed or not (guarded), and by after()
// if the test was cut off by its timeout

const open = { browser: null, srv: null, web: null, proxy: null };

async function closeAll() {
  const errors = [];
  const step = async (what, fn) => {
    try {
      await fn();
    } catch (e) {
      errors.push(`${what}: ${e.message}`);
    }
  };
  const { browser, srv, web, proxy } = open;
  open.browser = open.srv = open.web = open.proxy = null;
  if (browser) {
    await step('closing chromium', () => withTimeout(browser.close(), 5000, 'chromium to close'));
  }
  if (proxy) await step('closing the proxy', () => withTimeout(proxy.close(), 2000, 'the proxy to close'));
  if (web) {
    await step('closing the page server', () => withTimeout(web.shutdown(), 2000, 'the page server to close'));
  }
  // last: stop() checks the exit status (0), so a sanitizer report fails the test
  if (srv) await step('stopping hubstream', () => srv.stop());
  if (errors.length) throw new Error(errors.join('\n'));
}

after(() => closeAll());

// ---------------------------------------------------------------------------------------------

const NAME = 'Chromium, another origin: WebSockets with an access_token, push and streaming Subscribe, Publish, stop';

test(NAME, { timeout: 20000 }, async (t) => {
  const exe = chromiumFor(t);
  if (!exe) return;
  const { chromium } = await import('playwright-core');

  // what the page did, for the assertions and for failure messages
  const diag = { console: [], pageErrors: [], failed: [], wsUrls: [], wsSent: [], wsClosed: 0, responses: [] };
  const describe = () =>
    `\n  browser console:\n    ${diag.console.join('\n    ') || '(nothing)'}` +
    `\n  page errors: ${diag.pageErrors.join(' | ') || '(none)'}` +
    `\n  failed requests: ${diag.failed.join(' | ') || '(none)'}` +
    `\n  requests through the proxy: ${open.proxy ? open.proxy.describe().join(' | ') : '?'}` +
    `\n  WebSockets: ${diag.wsUrls.join(' | ') || '(none)'}` +
    (open.srv ? `\n  server log:\n${crashReport(open.srv.logs(), 25)}` : '');

  await guarded(async () => {
    try {
      open.web = await pageServer(BUNDLE);
      open.srv = await startServer();
      open.proxy = await recordingProxy(open.srv.port);
      const srv = open.srv;
      const pageOrigin = open.web.origin;
      const hubBase = `http://127.0.0.1:${open.proxy.port}`;
      const hubUrl = `${hubBase}/hub`;
      assert.notEqual(new URL(pageOrigin).origin, new URL(hubUrl).origin);

      open.browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--headless=new'], timeout: 10000 });
      const page = await open.browser.newPage();
      page.setDefaultTimeout(8000);
      page.on('console', (m) => diag.console.push(`[${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => diag.pageErrors.push(String(e)));
      page.on('requestfailed', (r) => diag.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`));
      page.on('response', (r) => r.url().startsWith(hubBase) && diag.responses.push(r));
      page.on('websocket', (ws) => {
        diag.wsUrls.push(ws.url());
        ws.on('framesent', (f) => diag.wsSent.push(typeof f.payload === 'string' ? f.payload : `<binary ${f.payload.length}>`));
        ws.on('close', () => diag.wsClosed++);
      });
      const nav = await page.goto(`${pageOrigin}/`);
      assert.equal(nav.status(), 200);
      assert.equal(await page.evaluate(() => typeof signalR?.HubConnectionBuilder), 'function', 'the bundle defines window.signalR');

      const P = uniqueStream('browser-push');
      const S = uniqueStream('browser-stream');

      // published before anyone subscribes: the subscriptions replay them (from = 0)
      let r = await publish(srv, P, [
        { type: 'order.created', data: { n: 1, text: 'é ✓ 😀' } },
        { type: 'order.paid', data: [1, 2.5, null, true, 'x'], metadata: { source: 'node', attempt: 1 } },
      ]);
      assert.equal(r.status, 201, show(r));
      assert.equal(r.json.firstVersion, 1);
      assert.equal(r.json.lastVersion, 2);
      r = await publish(srv, P, { type: 'note', data: 'a plain string' });
      assert.equal(r.status, 201, show(r));
      r = await publish(srv, S, [
        { type: 's.first', data: 'é' },
        { type: 's.second', data: { deep: { list: [{}, [], 0, -1.5e-3] } } },
      ]);
      assert.equal(r.status, 201, show(r));

      const started = await page.evaluate(
        async ({ hubUrl, P, S, TOKEN }) => {
          const hs = (window.hs = { pushed: [], items: [], completed: false, streamError: null, closeArgs: null });
          const c = new signalR.HubConnectionBuilder()
            .withUrl(hubUrl, { transport: signalR.HttpTransportType.WebSockets, accessTokenFactory: () => TOKEN })
            .configureLogging(signalR.LogLevel.Warning)
            .build();
          hs.c = c;
          c.onclose((...args) => {
            hs.closeArgs = args.map((a) => (a === undefined ? '<undefined>' : String(a)));
          });
          // a handler's return value would be taken as a client result: return nothing
          c.on('event', (rec) => {
            hs.pushed.push(rec);
          });
          await c.start();
          const sub = await c.invoke('Subscribe', P, 0);
          c.stream('Subscribe', S, 0).subscribe({
            next: (rec) => hs.items.push(rec),
            complete: () => (hs.completed = true),
            error: (e) => (hs.streamError = String(e)),
          });
          return { sub, connectionId: c.connectionId, state: c.state };
        },
        { hubUrl, P, S, TOKEN },
      );
      assert.deepEqual(started.sub, { stream: P, version: 0 }, 'push Subscribe(P, 0) answers {stream, version: 0}');
      assert.equal(started.state, 'Connected');
      assert.match(started.connectionId, /^[A-Za-z0-9_-]{22}$/);

      // the replay has reached the page before the live part is published, so the rest is live
      await page.waitForFunction(() => window.hs.pushed.length >= 3 && window.hs.items.length >= 2);

      r = await publish(srv, P, { type: 'order.shipped', data: { n: 4 } });
      assert.equal(r.status, 201, show(r));
      r = await publish(srv, S, { type: 's.third', data: 3 });
      assert.equal(r.status, 201, show(r));
      r = await publish(srv, P, { type: 'order.closed', data: { n: 5, ok: false } });
      assert.equal(r.status, 201, show(r));
      r = await publish(srv, S, [
        { type: 's.fourth', data: [true, null] },
        { type: 's.fifth', data: { x: 'y' }, metadata: { k: 'v' } },
      ]);
      assert.equal(r.status, 201, show(r));

      // a publish from the browser lands on the push subscription of the same connection too
      const result = await page.evaluate(({ P }) => window.hs.c.invoke('Publish', P, { type: 't', data: { x: 1 } }), { P });

      await page.waitForFunction(() => window.hs.pushed.length >= 6 && window.hs.items.length >= 5).catch((e) => {
        throw appendToError(e, `\n  (waiting for 6 pushed records and 5 streamed items)`);
      });
      await new Promise((res) => setTimeout(res, 200)); // anything extra (a duplicate) would show now
      const state = await page.evaluate(() => ({
        pushed: window.hs.pushed,
        items: window.hs.items,
        completed: window.hs.completed,
        streamError: window.hs.streamError,
        closeArgs: window.hs.closeArgs,
        state: window.hs.c.state,
      }));

      // exact order, versions 1..N, types, data
      assert.deepEqual(
        state.pushed.map((x) => [x.stream, x.version, x.type, x.data]),
        [
          [P, 1, 'order.created', { n: 1, text: 'é ✓ 😀' }],
          [P, 2, 'order.paid', [1, 2.5, null, true, 'x']],
          [P, 3, 'note', 'a plain string'],
          [P, 4, 'order.shipped', { n: 4 }],
          [P, 5, 'order.closed', { n: 5, ok: false }],
          [P, 6, 't', { x: 1 }],
        ],
      );
      assert.deepEqual(
        state.items.map((x) => [x.stream, x.version, x.type, x.data]),
        [
          [S, 1, 's.first', 'é'],
          [S, 2, 's.second', { deep: { list: [{}, [], 0, -1.5e-3] } }],
          [S, 3, 's.third', 3],
          [S, 4, 's.fourth', [true, null]],
          [S, 5, 's.fifth', { x: 'y' }],
        ],
      );
      assert.equal(state.completed, false, 'the streaming subscription must not complete while the stream is open');
      assert.equal(state.streamError, null, 'the streaming subscription must not fail');
      assert.equal(state.closeArgs, null, 'onclose must not have fired yet');
      assert.equal(state.state, 'Connected');

      // every field as stored: the records equal what the HTTP API reads back
      const storedP = await readAll(srv, P);
      const storedS = await readAll(srv, S);
      assert.deepEqual(state.pushed, storedP, 'pushed records equal the stored ones field by field');
      assert.deepEqual(state.items, storedS, 'streamed items equal the stored ones field by field');
      for (const rec of [...state.pushed, ...state.items]) {
        assert.match(rec.id, UUID_RE, `record id ${rec.id}`);
        assert.match(rec.time, ISO_UTC_MICROS, `record time ${rec.time}`);
        assert.ok(Number.isSafeInteger(rec.position) && rec.position > 0, `record position ${rec.position}`);
      }
      assert.deepEqual(state.pushed[1].metadata, { source: 'node', attempt: 1 });
      assert.deepEqual(state.items[4].metadata, { k: 'v' });
      for (const recs of [state.pushed, state.items]) {
        for (let i = 1; i < recs.length; i++) assert.ok(recs[i].position > recs[i - 1].position, 'positions increase');
      }

      // the browser's Publish: a PublishResult for version 6, at the position the record has
      const p6 = state.pushed[5].position;
      assert.deepEqual(result, { stream: P, firstVersion: 6, lastVersion: 6, firstPosition: p6, lastPosition: p6 });

      // the WebSocket, as playwright saw it: one, to the hub, with the token in the query string
      assert.equal(diag.wsUrls.length, 1, `exactly one WebSocket: ${diag.wsUrls.join(' | ')}`);
      const wsUrl = new URL(diag.wsUrls[0]);
      assert.equal(wsUrl.protocol, 'ws:');
      assert.equal(wsUrl.host, new URL(hubUrl).host);
      assert.equal(wsUrl.pathname, '/hub');
      assert.ok(diag.wsUrls[0].includes(`access_token=${TOKEN}`), `access_token in ${diag.wsUrls[0]}`);
      assert.ok(diag.wsUrls[0].includes('id='), `id= in ${diag.wsUrls[0]}`);
      assert.equal(wsUrl.searchParams.get('access_token'), TOKEN);
      assert.equal(diag.wsSent[0], '{"protocol":"json","version":1}\x1e', 'the JSON handshake went over that WebSocket');

      // negotiate's answer (playwright reports the body): the connection id the client ended up
      // with, and the token the WebSocket URL carries
      const negotiateUrl = `${hubUrl}/negotiate?negotiateVersion=1`;
      const negRes = diag.responses.find((x) => x.url() === negotiateUrl);
      assert.ok(negRes, `a negotiate response: ${diag.responses.map((x) => x.url()).join(' | ')}`);
      const neg = await negRes.json();
      assert.equal(neg.negotiateVersion, 1);
      assert.equal(neg.connectionId, started.connectionId);
      assert.match(neg.connectionToken, /^[A-Za-z0-9_-]{22,}$/);
      assert.ok(
        neg.availableTransports.some((x) => x.transport === 'WebSockets'),
        `WebSockets offered: ${JSON.stringify(neg.availableTransports)}`,
      );
      assert.equal(wsUrl.searchParams.get('id'), neg.connectionToken, 'the WebSocket carries the negotiated connection token');

      // what reached the hub, in order, as the proxy saw it: CORS as a browser does it
      const ex = open.proxy.exchanges;
      assert.deepEqual(
        ex.map((x) => `${x.method} ${x.path}`),
        [
          'OPTIONS /hub/negotiate?negotiateVersion=1',
          'POST /hub/negotiate?negotiateVersion=1',
          `GET /hub?id=${neg.connectionToken}&access_token=${TOKEN}`,
        ],
        'a preflight, negotiate and the WebSocket upgrade, nothing else',
      );
      const [pre, negEx, up] = ex;
      // the preflight: the browser asks for POST with its extra headers; the answer must allow
      // exactly this origin with credentials (no '*': browsers refuse it with credentials)
      assert.equal(pre.headers.origin, pageOrigin);
      assert.equal(pre.headers['access-control-request-method'], 'POST');
      const asked = pre.headers['access-control-request-headers'].split(',').map((h) => h.trim().toLowerCase());
      for (const h of ['authorization', 'x-requested-with', 'x-signalr-user-agent']) {
        assert.ok(asked.includes(h), `the preflight asks for ${h}: ${asked.join(',')}`);
      }
      assert.ok(pre.response, 'the preflight was answered');
      assert.ok(pre.response.status === 200 || pre.response.status === 204, `preflight status ${pre.response.status}`);
      const ph = pre.response.headers;
      assert.equal(ph['access-control-allow-origin'], pageOrigin, 'the preflight echoes the Origin');
      assert.equal(ph['access-control-allow-credentials'], 'true', 'the preflight allows credentials');
      const methods = (ph['access-control-allow-methods'] ?? '').split(',').map((m) => m.trim().toUpperCase());
      assert.ok(methods.includes('POST'), `the preflight allows POST: ${ph['access-control-allow-methods']}`);
      const allowed = (ph['access-control-allow-headers'] ?? '').split(',').map((h) => h.trim().toLowerCase());
      for (const h of asked) assert.ok(allowed.includes(h), `the preflight allows ${h}: ${ph['access-control-allow-headers']}`);
      // negotiate: the page's Origin, the token as a bearer header (fetch can set headers),
      // answered with the Origin echoed and credentials allowed
      assert.equal(negEx.headers.origin, pageOrigin);
      assert.equal(negEx.headers.authorization, `Bearer ${TOKEN}`);
      assert.equal(negEx.response?.status, 200);
      assert.equal(negEx.response.headers['access-control-allow-origin'], pageOrigin, 'negotiate echoes the Origin');
      assert.equal(negEx.response.headers['access-control-allow-credentials'], 'true', 'negotiate allows credentials');
      for (const x of [pre, negEx]) {
        const vary = (x.response.headers.vary ?? '').split(',').map((v) => v.trim().toLowerCase());
        assert.ok(vary.includes('origin'), `an answer that echoes the Origin says Vary: Origin (${x.method}): ${x.response.headers.vary}`);
      }
      // the upgrade: from the page's origin, accepted
      assert.equal(up.headers.origin, pageOrigin);
      assert.equal(up.headers.upgrade?.toLowerCase(), 'websocket');
      assert.equal(up.response?.status, 101);
      assert.deepEqual(diag.failed, [], 'no failed requests');
      assert.deepEqual(diag.pageErrors, [], 'no page errors');
      assert.deepEqual(
        diag.console.filter((l) => /^\[(error|warning)\]/.test(l)),
        [],
        'no errors or warnings from the client while connected',
      );

      // stop: onclose fires without an error, and the WebSocket closes
      await page.evaluate(() => window.hs.c.stop());
      await page.waitForFunction(() => window.hs.closeArgs !== null, null, { timeout: 5000 });
      const end = await page.evaluate(() => ({ closeArgs: window.hs.closeArgs, state: window.hs.c.state }));
      assert.deepEqual(end.closeArgs, ['<undefined>'], 'onclose(undefined) after stop()');
      assert.equal(end.state, 'Disconnected');
      await withTimeout(
        (async () => {
          while (diag.wsClosed < 1) await new Promise((res) => setTimeout(res, 20));
        })(),
        5000,
        'the WebSocket to close after stop()',
      );
    } catch (e) {
      throw appendToError(e, describe());
    }
  }, closeAll);
});
