// The official SignalR browser bundle in headless Chromium (Debian's `chromium`, driven by
// playwright-core): a page served from another origin connects to /hub over WebSockets with an
// access_token (so CORS and the browser's token-in-the-query-string path are exercised),
// subscribes in both styles, publishes, and stops cleanly.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, publish, uniqueStream } from '../integration/lib/server.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));

function findChromium() {
  for (const name of ['chromium', 'chromium-browser']) {
    try {
      return execFileSync('which', [name], { encoding: 'utf8' }).trim();
    } catch {
      /* not this one */
    }
  }
  return existsSync('/usr/bin/chromium') ? '/usr/bin/chromium' : null;
}

const exe = findChromium();
const skip = !exe && !process.env.HUBSTREAM_REQUIRE_BROWSER ? 'chromium is not installed (scripts/deps.sh --test installs it)' : false;

test('Chromium: WebSockets with an access_token, push and streaming subscriptions, publish', { skip, timeout: 60000 }, async () => {
  assert.ok(exe, 'chromium is required (HUBSTREAM_REQUIRE_BROWSER is set)');
  const { chromium } = await import('playwright-core');
  const bundle = readFileSync(path.join(HERE, 'node_modules/@microsoft/signalr/dist/browser/signalr.min.js'));
  const page_html = '<!doctype html><html><head><script src="/signalr.min.js"></script></head><body>hubstream test</body></html>';
  const web = http.createServer((req, res) => {
    if (req.url === '/signalr.min.js') {
      res.writeHead(200, { 'content-type': 'text/javascript' });
      res.end(bundle);
    } else {
      res.writeHead(200, { 'content-type': 'text/html' });
      res.end(page_html);
    }
  });
  await new Promise((r) => web.listen(0, '127.0.0.1', r));
  const srv = await startServer();
  let browser;
  try {
    browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox'], headless: true });
    const page = await browser.newPage();
    const wsUrls = [];
    page.on('websocket', (ws) => wsUrls.push(ws.url()));
    const consoleLines = [];
    page.on('console', (m) => consoleLines.push(m.text()));
    await page.goto(`http://127.0.0.1:${web.address().port}/`);

    const push = uniqueStream('browser-push');
    const streamed = uniqueStream('browser-stream');
    await publish(srv, push, [{ type: 'before', data: { n: 1 } }, { type: 'before', data: { n: 2 } }]);
    await publish(srv, streamed, { type: 'before', data: 'é' });

    const started = await page.evaluate(async ({ hubUrl, push, streamed }) => {
      const c = new signalR.HubConnectionBuilder()
        .withUrl(hubUrl, { transport: signalR.HttpTransportType.WebSockets, accessTokenFactory: () => 'test-token-123' })
        .configureLogging(signalR.LogLevel.Warning)
        .build();
      window.hs = { c, pushed: [], items: [], completed: false, closed: undefined };
      c.onclose((e) => (window.hs.closed = e ? String(e) : null));
      c.on('event', (r) => {
        window.hs.pushed.push(r);
      });
      await c.start();
      const sub = await c.invoke('Subscribe', push, 0);
      c.stream('Subscribe', streamed, 0).subscribe({
        next: (r) => window.hs.items.push(r),
        complete: () => (window.hs.completed = true),
        error: (e) => (window.hs.error = String(e)),
      });
      return { sub, id: c.connectionId };
    }, { hubUrl: `${srv.url}/hub`, push, streamed });
    assert.deepEqual(started.sub, { stream: push, version: 0 });
    assert.match(started.id, /^[A-Za-z0-9_-]{22}$/);

    await publish(srv, push, { type: 'after', data: { n: 3 } });
    await publish(srv, streamed, { type: 'after', data: [true, null] });
    const result = await page.evaluate(async ({ push }) => window.hs.c.invoke('Publish', push, { type: 'from-browser', data: { x: 1 } }), { push });
    assert.equal(result.stream, push);
    assert.equal(result.firstVersion, 4);
    assert.equal(result.lastVersion, 4);
    assert.equal(result.lastPosition, result.firstPosition);

    await page.waitForFunction(() => window.hs.pushed.length >= 4 && window.hs.items.length >= 2, null, { timeout: 10000 });
    const state = await page.evaluate(() => ({ pushed: window.hs.pushed, items: window.hs.items }));
    assert.deepEqual(state.pushed.map((r) => [r.version, r.type]), [[1, 'before'], [2, 'before'], [3, 'after'], [4, 'from-browser']]);
    assert.deepEqual(state.pushed.map((r) => r.data), [{ n: 1 }, { n: 2 }, { n: 3 }, { x: 1 }]);
    assert.deepEqual(state.items.map((r) => [r.version, r.data]), [[1, 'é'], [2, [true, null]]]);

    // the browser spoke WebSockets with the token in the query string (browsers cannot set headers there)
    assert.equal(wsUrls.length, 1, `one WebSocket: ${wsUrls.join(', ')}`);
    const u = new URL(wsUrls[0]);
    assert.equal(u.pathname, '/hub');
    assert.equal(u.searchParams.get('access_token'), 'test-token-123');
    assert.match(u.searchParams.get('id'), /^[A-Za-z0-9_-]{22}$/);

    await page.evaluate(() => window.hs.c.stop());
    await page.waitForFunction(() => window.hs.closed !== undefined, null, { timeout: 5000 });
    assert.equal(await page.evaluate(() => window.hs.closed), null, `onclose without an error; console: ${consoleLines.join(' | ')}`);
  } finally {
    await browser?.close();
    await srv.stop();
    await new Promise((r) => web.close(r));
  }
});
