// The dashboard (GET / and /dashboard) in headless Chromium (Debian's chromium driven by
// playwright-core), against the real server:
// - the three files are served from the binary with their types, a Content-Security-Policy that
//   allows nothing but this origin, and nosniff; other names under /dashboard are 404s;
//   /dashboard/session says who a token makes the page (always 200);
// - the page loads with no console error, no page error and no failed request; lists a stream the
//   test created, with its version and subscriber count; the chart's "in" rate and the stream's
//   rate move while the test publishes; the connections table counts the page's own SSE tail;
//   health and database badges say ready / up;
// - the tail of the stream shows its last events, then an event published during the test, whose
//   data (markup on purpose) shows as text and adds no element to the page; closing the stream
//   ends the tail with a message;
// - with auth on (the auth run, HS_TEST_AUTH_SECRET): the page asks for a token, refuses one
//   without the admin permission with the server's reason, and opens with the test's admin token.
// A screenshot of the page is kept: $HS_ARTIFACT_DIR (ctest sets it to <build>/test-artifacts),
// else the system's temp directory; its path is printed.
//
// Skipped when chromium is missing, unless HUBSTREAM_REQUIRE_BROWSER is set.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdir, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import {
  TEST_AUTH_SECRET,
  testToken,
  startServer,
  publish,
  closeStream,
  show,
  uniqueStream,
  withTimeout,
  appendToError,
  guarded,
  crashReport,
  until,
} from '../integration/lib/server.mjs';
import { chromiumFor } from './lib/browser.mjs';

const CSP_RE = /default-src 'none'.*script-src 'self'.*connect-src 'self'.*frame-ancestors 'none'/;

/** An HS256 token for the auth run's secret with the given hubstream permissions. */
function tokenWith(perms, sub = 'dashboard-test') {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub, exp: now + 600, hubstream: perms })}`;
  return `${input}.${createHmac('sha256', TEST_AUTH_SECRET).update(input).digest('base64url')}`;
}

/** GET with exactly the headers given (no test token added). */
async function bare(srv, p, headers = {}) {
  const res = await fetch(`${srv.url}${p}`, { headers });
  return { status: res.status, headers: res.headers, text: await res.text() };
}

const open = { browser: null, srv: null };

async function closeAll() {
  const { browser, srv } = open;
  open.browser = open.srv = null;
  const errors = [];
  if (browser) await withTimeout(browser.close(), 5000, 'chromium to close').catch((e) => errors.push(e.message));
  if (srv) await srv.stop().catch((e) => errors.push(e.message)); // checks the exit status
  if (errors.length) throw new Error(errors.join('\n'));
}

after(() => closeAll());

test('the dashboard files, their headers, and /dashboard/session', { timeout: 20000 }, async () => {
  const srv = await startServer();
  await guarded(
    async () => {
      const page = await bare(srv, '/');
      assert.equal(page.status, 200);
      assert.match(page.headers.get('content-type'), /^text\/html; charset=utf-8/);
      assert.match(page.headers.get('content-security-policy'), CSP_RE);
      assert.equal(page.headers.get('x-content-type-options'), 'nosniff');
      assert.equal(page.headers.get('cache-control'), 'no-cache');
      assert.match(page.text, /<script src="\/dashboard\/app\.js" defer><\/script>/);
      assert.doesNotMatch(page.text, /https?:\/\//, 'the page loads nothing from another host');
      for (const p of ['/dashboard', '/dashboard/']) {
        const r = await bare(srv, p);
        assert.equal(r.status, 200, p);
        assert.equal(r.text, page.text, `${p} is the same page`);
      }
      const js = await bare(srv, '/dashboard/app.js');
      assert.equal(js.status, 200);
      assert.match(js.headers.get('content-type'), /^text\/javascript/);
      assert.doesNotMatch(js.text, /innerHTML|insertAdjacentHTML|eval\(/, 'server text never becomes markup');
      const css = await bare(srv, '/dashboard/app.css');
      assert.equal(css.status, 200);
      assert.match(css.headers.get('content-type'), /^text\/css/);
      for (const p of ['/dashboard/nope', '/dashboard/app.js.map', '/DASHBOARD', '/dashboardx']) {
        const r = await bare(srv, p);
        assert.equal(r.status, 404, `${p}: ${r.status} ${r.text}`);
        assert.equal(JSON.parse(r.text).error, 'NotFound');
      }
      const post = await fetch(`${srv.url}/dashboard`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert.equal(post.status, 405);
      assert.equal(post.headers.get('allow'), 'GET');

      // who the page is
      const anon = JSON.parse((await bare(srv, '/dashboard/session')).text);
      assert.match(anon.version, /^\d+\.\d+\.\d+/);
      if (!TEST_AUTH_SECRET) {
        assert.deepEqual({ ...anon, version: 0 }, { version: 0, auth: false, admin: true, user: null, reason: null });
        return;
      }
      assert.equal(anon.auth, true);
      assert.equal(anon.admin, false);
      assert.match(anon.reason, /token/i);
      const admin = JSON.parse((await bare(srv, '/dashboard/session', { authorization: `Bearer ${testToken()}` })).text);
      assert.deepEqual({ ...admin, version: 0 }, { version: 0, auth: true, admin: true, user: 'conformance', reason: null });
      const reader = JSON.parse(
        (await bare(srv, '/dashboard/session', { authorization: `Bearer ${tokenWith({ subscribe: ['*'] }, 'reader')}` })).text,
      );
      assert.equal(reader.admin, false);
      assert.equal(reader.user, 'reader');
      assert.match(reader.reason, /admin/);
      const forged = await bare(srv, '/dashboard/session', { authorization: `Bearer ${testToken()}x` });
      assert.equal(forged.status, 200);
      assert.equal(JSON.parse(forged.text).admin, false);
      // the data routes still want the admin permission
      const m = await bare(srv, '/metrics', { authorization: `Bearer ${tokenWith({ subscribe: ['*'] })}` });
      assert.equal(m.status, 403);
    },
    () => srv.stop(),
  );
});

test('Chromium: streams, the live chart, connections, health and a live tail', { timeout: 60000 }, async (t) => {
  const exe = chromiumFor(t);
  if (!exe) return;
  const { chromium } = await import('playwright-core');
  const diag = { console: [], pageErrors: [], failed: [], bad: [] };
  const describe = () =>
    `\n  browser console:\n    ${diag.console.join('\n    ') || '(nothing)'}` +
    `\n  page errors: ${diag.pageErrors.join(' | ') || '(none)'}` +
    `\n  failed requests: ${diag.failed.join(' | ') || '(none)'}` +
    `\n  answers >= 400: ${diag.bad.join(' | ') || '(none)'}` +
    (open.srv ? `\n  server log:\n${crashReport(open.srv.logs(), 25)}` : '');

  await guarded(async () => {
    try {
      open.srv = await startServer();
      const srv = open.srv;
      const S = uniqueStream('dash');
      for (let i = 1; i <= 25; i++) {
        const r = await publish(srv, S, { type: `seed.${i}`, data: { i } });
        assert.equal(r.status, 201, show(r));
      }

      open.browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--headless=new'], timeout: 10000 });
      const page = await open.browser.newPage({ viewport: { width: 1280, height: 1000 } });
      page.setDefaultTimeout(10000);
      page.on('console', (m) => diag.console.push(`[${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => diag.pageErrors.push(String(e)));
      page.on('requestfailed', (r) => {
        // the tail's SSE request is aborted by the page when the tail stops: not a failure
        if (!/ERR_ABORTED/.test(r.failure()?.errorText || '')) diag.failed.push(`${r.method()} ${r.url()}: ${r.failure()?.errorText}`);
      });
      page.on('response', (r) => r.status() >= 400 && diag.bad.push(`${r.status()} ${r.url()}`));

      const nav = await page.goto(`${srv.url}/`);
      assert.equal(nav.status(), 200);

      if (TEST_AUTH_SECRET) {
        await page.locator('#login').waitFor({ state: 'visible' });
        assert.equal(await page.locator('#main').isVisible(), false, 'no data before a token');
        await page.fill('#token', tokenWith({ subscribe: ['*'] }, 'reader'));
        await page.click('#login-form button[type=submit]');
        await until(async () => /admin permission/.test(await page.textContent('#login-reason')), {
          what: 'the reason a token without admin is refused',
        });
        await page.fill('#token', testToken());
        await page.click('#login-form button[type=submit]');
        await page.locator('#user').filter({ hasText: 'as conformance' }).waitFor();
      }
      await page.locator('#main').waitFor({ state: 'visible' });
      await page.locator('#health').filter({ hasText: /^ready$/ }).waitFor();
      await page.locator('#database').filter({ hasText: /^database up$/ }).waitFor();
      assert.match(await page.textContent('#version'), /^v\d+\.\d+\.\d+/);

      // the stream, its version; rates move while events flow
      const row = page.locator(`#streams tr[data-stream="${S}"]`);
      await row.waitFor();
      assert.equal((await row.locator('td').nth(1).textContent()).trim(), '25');
      const pub = (async () => {
        for (let i = 0; i < 25; i++) {
          await publish(srv, S, { type: 'burst', data: { i } });
          await new Promise((r) => setTimeout(r, 80));
        }
      })();
      await until(async () => Number((await page.textContent('#rate-in')).replace(/,/g, '')) > 0, {
        timeoutMs: 8000,
        what: 'the chart to show events coming in',
      });
      await until(async () => Number((await row.locator('td').nth(2).textContent()).replace(/,/g, '')) > 0, {
        timeoutMs: 8000,
        what: "the stream's rate to move",
      });
      await pub;
      await until(async () => (await row.locator('td').nth(1).textContent()).trim() === '50', {
        timeoutMs: 8000,
        what: "the stream's version to reach 50",
      });

      // the tail: the last 20 events, newest first, then a live one
      await row.click();
      await page.locator('#tail-state').filter({ hasText: 'live' }).waitFor();
      const ids = await page.locator('#tail tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.id));
      assert.deepEqual(ids, Array.from({ length: 20 }, (_, i) => String(50 - i)));
      const html = '<img src=x id=injected>';
      const r = await publish(srv, S, { type: 'live.one', data: { note: html } });
      assert.equal(r.status, 201, show(r));
      const live = page.locator('#tail tbody tr[data-id="51"]');
      await live.waitFor();
      assert.equal((await live.locator('td').nth(1).textContent()).trim(), 'live.one');
      assert.equal((await live.locator('td').nth(3).textContent()).trim(), JSON.stringify({ note: html }));
      assert.equal(await page.locator('#injected').count(), 0, "an event's data never becomes markup");

      // the tail's own SSE subscription shows in the connections table and as the stream's subscriber
      await until(async () => Number(await page.locator('#connections tr[data-transport="sse"] td').nth(3).textContent()) >= 1, {
        timeoutMs: 5000,
        what: 'the connections table to count the SSE tail',
      });
      await until(async () => Number((await row.locator('td').nth(3).textContent()).trim()) >= 1, {
        timeoutMs: 5000,
        what: 'the stream to list one subscriber',
      });

      // the screenshot, kept
      const dir = process.env.HS_ARTIFACT_DIR || path.join(os.tmpdir(), 'hubstream-test-artifacts');
      await mkdir(dir, { recursive: true });
      const shot = path.join(dir, `dashboard${TEST_AUTH_SECRET ? '-auth' : ''}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      assert.ok((await stat(shot)).size > 10000, 'a screenshot with something in it');
      t.diagnostic(`screenshot: ${shot}`);

      // closing the stream ends the tail
      const c = await closeStream(srv, S);
      assert.equal(c.status, 200, show(c));
      await page.locator('#tail-state').filter({ hasText: 'nothing more will come' }).waitFor();
      assert.equal(await page.locator('#tail-stop').isDisabled(), true);

      assert.deepEqual(diag.pageErrors, []);
      assert.deepEqual(diag.failed, []);
      assert.deepEqual(
        diag.console.filter((l) => /^\[(error|warning)\]/.test(l)),
        [],
        'no console error or warning',
      );
      assert.deepEqual(diag.bad, [], 'no request of the page failed');
    } catch (e) {
      throw appendToError(e, describe());
    }
  }, closeAll);
});
