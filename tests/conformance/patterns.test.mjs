// The two usage patterns of examples/ against the real server, with no server-side help:
//
// - PushStream: examples/browser/eventclient.js in headless Chromium (Debian's chromium driven by
//   playwright-core, as in browser.test.mjs), loaded from a page server of another origin. Named
//   handlers get exactly the events of their types, in order; when the connection is cut (a TCP
//   proxy between the browser and the server kills its sockets and refuses new ones for a while)
//   the helper backs off, reconnects with ?from=<last id> and every event arrives exactly once;
//   the server's `event: close` ends it for good, disconnect() ends it as manual; bad JSON is
//   reported and skipped. The demo page (index.html) subscribes and publishes.
// - Rocket: examples/jobs/jobs.mjs as child processes: a worker reports on job-<id> (paced by
//   the test through its --stdin mode, so that "during the job" does not depend on how fast a
//   process starts) and closes it; watchers attached before, during and after the job all get
//   every event and then the close marker; once --retention 'job-*:max-age=3s' has dropped the
//   events, the stream reads empty, a new subscriber gets `event: close` at once and publishing
//   answers 410. (3 s rather than less: the late watcher must have read everything before the
//   first event expires, with two node processes started in between on a busy CI machine.)
//
// Both run in the auth run too (HS_TEST_AUTH_SECRET): the page gets the token for ?access_token=
// and the scripts get it with --token. The browser test is skipped when chromium is missing,
// unless HUBSTREAM_REQUIRE_BROWSER is set.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import {
  REPO_ROOT,
  TEST_AUTH_SECRET,
  testToken,
  startServer,
  publish,
  closeStream,
  readAll,
  show,
  streamPath,
  subscribe,
  uniqueStream,
  withTimeout,
  appendToError,
  guarded,
  crashReport,
  until,
  sleep,
} from '../integration/lib/server.mjs';
import { chromiumFor } from './lib/browser.mjs';
import { tcpProxy } from './lib/hub.mjs';

const BROWSER_DIR = path.join(REPO_ROOT, 'examples/browser');
const JOBS = path.join(REPO_ROOT, 'examples/jobs/jobs.mjs');
const TOKEN = TEST_AUTH_SECRET ? testToken() : null;

// ---------------------------------------------------------------------------------------------
// a page server of its own origin: examples/browser, plus a fake SSE endpoint that sends an
// event whose data is not JSON (hubstream never does)

const BAD_SSE = 'retry: 3000\n\nid: 1\nevent: t.x\ndata: {not json\n\nid: 2\nevent: t.x\ndata: {"version":2,"type":"t.x"}\n\n';

async function examplesServer() {
  const served = [];
  const web = http.createServer(async (req, res) => {
    served.push(`${req.method} ${req.url}`);
    const p = new URL(req.url, 'http://x').pathname;
    if (p === '/api/streams/bad/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
      res.end(BAD_SSE);
      return;
    }
    const files = { '/index.html': 'text/html', '/eventclient.js': 'text/javascript' };
    if (!files[p]) {
      res.writeHead(404);
      res.end();
      return;
    }
    const body = await readFile(path.join(BROWSER_DIR, p.slice(1)));
    res.writeHead(200, { 'content-type': `${files[p]}; charset=utf-8`, 'cache-control': 'no-store' });
    res.end(body);
  });
  await new Promise((resolve, reject) => {
    web.once('error', reject);
    web.listen(0, '127.0.0.1', resolve);
  });
  web.served = served;
  web.origin = `http://127.0.0.1:${web.address().port}`;
  web.shutdown = () =>
    new Promise((resolve) => {
      web.close(() => resolve());
      web.closeAllConnections();
    });
  return web;
}

// ---------------------------------------------------------------------------------------------
// what the tests open, closed when a test ends (guarded) and by after() if one was cut off

const open = { browser: null, srv: null, web: null, proxy: null, procs: new Set() };

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
  for (const p of open.procs) p.kill('SIGKILL');
  open.procs.clear();
  if (browser) await step('closing chromium', () => withTimeout(browser.close(), 5000, 'chromium to close'));
  if (proxy) await step('closing the proxy', () => withTimeout(proxy.close(), 2000, 'the proxy to close'));
  if (web) await step('closing the page server', () => withTimeout(web.shutdown(), 2000, 'the page server to close'));
  if (srv) await step('stopping hubstream', () => srv.stop()); // checks exit status 0
  if (errors.length) throw new Error(errors.join('\n'));
}

after(() => closeAll());

// ---------------------------------------------------------------------------------------------
// PushStream: the browser helper

test('eventclient.js in Chromium: named events, backoff reconnect through an outage with no loss or repeat, server close, disconnect, the demo page', { timeout: 45000 }, async (t) => {
  const exe = chromiumFor(t);
  if (!exe) return;
  const { chromium } = await import('playwright-core');
  const diag = { console: [], pageErrors: [] };
  const describe = () =>
    `\n  browser console:\n    ${diag.console.join('\n    ') || '(nothing)'}` +
    `\n  page errors: ${diag.pageErrors.join(' | ') || '(none)'}` +
    `\n  requests through the proxy: ${open.proxy ? open.proxy.requests.join(' | ') : '?'}` +
    (open.srv ? `\n  server log:\n${crashReport(open.srv.logs(), 25)}` : '');

  await guarded(async () => {
    try {
      open.web = await examplesServer();
      // the page's origin is allowed explicitly: with auth on, no origin is by default
      open.srv = await startServer({ flags: ['--cors-origins', open.web.origin] });
      open.proxy = await tcpProxy(open.srv.port);
      const { srv, web, proxy } = open;
      const base = `http://127.0.0.1:${proxy.port}`;

      open.browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox', '--headless=new'], timeout: 10000 });
      const page = await open.browser.newPage();
      page.setDefaultTimeout(8000);
      page.on('console', (m) => diag.console.push(`[${m.type()}] ${m.text()}`));
      page.on('pageerror', (e) => diag.pageErrors.push(String(e)));
      const nav = await page.goto(`${web.origin}/index.html`);
      assert.equal(nav.status(), 200);
      await page.waitForFunction(() => typeof window.HubstreamEvents === 'function');

      // --- subscribe with a types filter to a fresh stream ---------------------------------
      const S = uniqueStream('pattern-orders');
      const WANTED = ['order.created', 'order.paid'];
      await page.evaluate(
        async ({ base, S, WANTED, TOKEN }) => {
          const { HubstreamEvents } = await import('./eventclient.js');
          const t = (window.t = { got: [], states: [], errors: [], opens: [], closes: [], shipped: 0, oncePaid: 0 });
          const c = new HubstreamEvents(base, S, { types: WANTED, accessToken: TOKEN ?? undefined, minDelayMs: 200, maxDelayMs: 800 });
          t.c = c;
          for (const type of WANTED) c.on(type, (rec) => t.got.push(rec));
          c.on('order.shipped', () => t.shipped++); // not in `types`: the server never sends it
          c.once('order.paid', () => t.oncePaid++);
          c.on('stream.statechange', (s) => t.states.push({ ...s, at: Date.now() }));
          c.on('stream.error', (e) => t.errors.push({ ...e, at: Date.now() }));
          c.on('stream.open', (o) => t.opens.push(o));
          c.on('stream.close', (x) => t.closes.push(x));
          c.connect();
        },
        { base, S, WANTED, TOKEN },
      );
      await page.waitForFunction(() => window.t.c.state === 'open');

      const sent = [];
      const pub = async (type, n) => {
        const r = await publish(srv, S, { type, data: { n } });
        assert.equal(r.status, 201, show(r));
        sent.push({ type, version: r.json.firstVersion });
      };
      const wantedSent = () => sent.filter((x) => WANTED.includes(x.type));
      for (const [i, type] of ['order.created', 'note.added', 'order.paid', 'order.shipped', 'order.created', 'order.paid'].entries()) await pub(type, i);
      await page.waitForFunction((n) => window.t.got.length >= n, wantedSent().length);
      await sleep(200); // an extra (wrong-type or repeated) event would show now
      let st = await page.evaluate(() => ({ got: window.t.got, shipped: window.t.shipped, oncePaid: window.t.oncePaid, lastId: window.t.c.lastEventId }));
      assert.deepEqual(
        st.got.map((r) => [r.version, r.type]),
        wantedSent().map((x) => [x.version, x.type]),
        'named handlers get exactly the events of the listed types, in version order',
      );
      const stored = await readAll(srv, S);
      assert.deepEqual(st.got, stored.filter((r) => WANTED.includes(r.type)), 'handlers get the stored EventRecords, field by field');
      assert.equal(st.shipped, 0, 'a type outside `types` never reaches its handler');
      assert.equal(st.oncePaid, 1, 'once() ran once for two order.paid events');
      assert.equal(st.lastId, sent.at(-1).version, 'lastEventId is the last version seen');

      // --- cut the connection while events keep coming -------------------------------------
      const requestsBefore = proxy.requests.length;
      const cutAt = Date.now();
      proxy.refuseFor(2500); // new connections are dropped at once for 2.5 s ...
      proxy.killAll(); // ... and the open one is reset now
      const types = ['order.created', 'note.added', 'order.paid'];
      for (let i = 0; Date.now() - cutAt < 3200; i++) {
        await pub(types[i % 3], 100 + i);
        await sleep(100);
      }
      await pub('order.paid', 999); // certainly after the outage
      await page
        .waitForFunction((n) => window.t.got.length >= n, wantedSent().length, { timeout: 10000 })
        .catch((e) => {
          throw appendToError(e, `\n  (waiting for ${wantedSent().length} events after the outage)`);
        });
      await sleep(300);
      st = await page.evaluate(() => ({ got: window.t.got, states: window.t.states, errors: window.t.errors, opens: window.t.opens, state: window.t.c.state }));
      const versions = st.got.map((r) => r.version);
      assert.deepEqual(versions, wantedSent().map((x) => x.version), 'every wanted event exactly once, in version order, across the outage');
      assert.equal(st.state, 'open');

      // the states: connecting -> open, then after the cut reconnecting and connecting
      // alternate (each failed attempt) until open again
      const seq = st.states.map((s) => `${s.from}>${s.to}`);
      assert.deepEqual(seq.slice(0, 2), ['closed>connecting', 'connecting>open'], seq.join(' '));
      const outage = st.states.slice(2);
      assert.match(outage.map((s) => s.to).join(' '), /^reconnecting (connecting reconnecting )*connecting open$/, seq.join(' '));
      // backoff: attempt n waits min(800, 200 * 2^(n-1)) ms, with equal jitter (half to all),
      // and the next connection starts no earlier than that
      const waits = outage.filter((s) => s.to === 'reconnecting');
      assert.ok(waits.length >= 3, `at least 3 attempts during a 2.5 s outage: ${seq.join(' ')}`);
      waits.forEach((w, i) => {
        assert.equal(w.attempt, i + 1, 'attempts are counted in a row');
        const full = Math.min(800, 200 * 2 ** i);
        assert.ok(w.delayMs >= full / 2 && w.delayMs <= full, `attempt ${w.attempt}: delay ${w.delayMs} ms within [${full / 2}, ${full}]`);
        const next = outage[outage.indexOf(w) + 1];
        assert.ok(next.at - w.at >= w.delayMs - 20, `attempt ${w.attempt} started ${next.at - w.at} ms after the failure (delay ${w.delayMs})`);
      });
      assert.ok(waits.at(-1).at - cutAt < 4000, 'the last retry came soon after the outage ended');
      assert.ok(st.errors.every((e) => e.kind === 'connection'), JSON.stringify(st.errors));
      assert.equal(st.errors.length, waits.length, 'one stream.error per failed connection');

      // what reached the server: the first subscription (from the version read first: 0 for a
      // fresh stream), then one reconnect from the last version seen before the cut
      const strip = (r) => r.replace(/[?&]access_token=[^&\s]*/, '');
      const evPath = streamPath(S, '/events');
      const firstReqs = proxy.requests.slice(0, requestsBefore).map(strip);
      assert.deepEqual(firstReqs, [
        `GET ${evPath}?direction=backward&limit=1`,
        `GET ${evPath}?types=order.created,order.paid&from=0`,
      ]);
      const lastBeforeCut = st.got.filter((r) => r.version <= sent[5].version).at(-1).version;
      assert.deepEqual(proxy.requests.slice(requestsBefore).map(strip), [`GET ${evPath}?types=order.created,order.paid&from=${lastBeforeCut}`]);
      if (TOKEN) {
        for (const r of proxy.requests) assert.ok(r.includes(`access_token=${TOKEN}`), `the token travels in the query string: ${r}`);
      }
      assert.deepEqual(st.opens.map((o) => o.from), [0, lastBeforeCut]);

      // --- the server closes the stream: stream.close {reason: closed}, no reconnect -----------
      const requestsAtClose = proxy.requests.length;
      const connectionsAtClose = proxy.connections;
      let r = await closeStream(srv, S);
      assert.equal(r.status, 200, show(r));
      await page.waitForFunction(() => window.t.closes.length > 0);
      await sleep(1500); // longer than maxDelayMs: a reconnect attempt would have happened
      st = await page.evaluate(() => ({ closes: window.t.closes, states: window.t.states, state: window.t.c.state }));
      assert.deepEqual(st.closes, [{ manual: false, reason: 'closed' }]);
      assert.equal(st.state, 'closed');
      assert.deepEqual(st.states.slice(-1).map((s) => `${s.from}>${s.to}`), ['open>closed'], 'closed, and nothing after');
      assert.equal(proxy.requests.length, requestsAtClose, 'no request after the server closed the stream');
      assert.equal(proxy.connections, connectionsAtClose, 'no connection attempt after the server closed the stream');

      // --- disconnect(): stream.close {manual: true}, the server sees the subscriber go ---------
      const S2 = uniqueStream('pattern-manual');
      r = await publish(srv, S2, { type: 'x', data: 1 });
      assert.equal(r.status, 201, show(r));
      await page.evaluate(
        async ({ base, S2, TOKEN }) => {
          const { HubstreamEvents } = await import('./eventclient.js');
          const m = (window.m = { got: [], states: [], closes: [] });
          const c = new HubstreamEvents(base, S2, { from: 0, accessToken: TOKEN ?? undefined });
          m.c = c;
          c.on('x', (rec) => m.got.push(rec.version));
          c.on('stream.statechange', (s) => m.states.push(`${s.from}>${s.to}`));
          c.on('stream.close', (x) => m.closes.push(x));
          c.connect();
        },
        { base, S2, TOKEN },
      );
      await page.waitForFunction(() => window.m.got.length === 1);
      const info = async () => (await srv.get(streamPath(S2))).json;
      await until(async () => (await info()).subscribers === 1, { what: 'the helper to be a subscriber of S2' });
      await page.evaluate(() => window.m.c.disconnect());
      await until(async () => (await info()).subscribers === 0, { what: 'the server to see the subscriber go after disconnect()' });
      r = await publish(srv, S2, { type: 'x', data: 2 });
      assert.equal(r.status, 201, show(r));
      await sleep(300);
      const m = await page.evaluate(() => ({ got: window.m.got, states: window.m.states, closes: window.m.closes, state: window.m.c.state }));
      assert.deepEqual(m.got, [1], 'nothing arrives after disconnect()');
      assert.deepEqual(m.closes, [{ manual: true, reason: 'manual' }]);
      assert.deepEqual(m.states, ['closed>connecting', 'connecting>open', 'open>closed']);

      // --- data that is not JSON: stream.error, the event skipped ------------------------------
      const bad = await page.evaluate(async () => {
        const { HubstreamEvents } = await import('./eventclient.js');
        const out = { got: [], errors: [], closes: [] };
        const c = new HubstreamEvents('', 'bad', { from: 0, reconnect: false });
        c.on('t.x', (rec) => out.got.push(rec.version));
        c.on('stream.error', (e) => out.errors.push({ kind: e.kind, id: e.id, data: e.data }));
        await new Promise((resolve) => {
          c.on('stream.close', (x) => {
            out.closes.push(x);
            resolve();
          });
          c.connect();
        });
        return out;
      });
      assert.deepEqual(bad.got, [2], 'the good event after the bad one is delivered');
      assert.deepEqual(bad.errors[0], { kind: 'data', id: '1', data: '{not json' });
      assert.deepEqual(bad.errors.slice(1).map((e) => e.kind), ['connection'], 'then the fake server ends the response');
      assert.deepEqual(bad.closes, [{ manual: false, reason: 'error' }], 'reconnect: false ends it');

      // --- the demo page: subscribe, publish with its form, see the event, disconnect ------------
      const S3 = uniqueStream('pattern-page');
      const q = new URLSearchParams({ server: srv.url, stream: S3, ...(TOKEN ? { token: TOKEN } : {}) });
      await page.goto(`${web.origin}/index.html?${q}`);
      await page.click('#connect');
      await page.waitForSelector('#state[data-state=open]');
      await page.fill('#ptype', 'order.created');
      await page.fill('#pdata', '{"id":42}');
      await page.click('#publish');
      await page.waitForSelector('#presult[data-status="201"]');
      const item = await page.waitForSelector('#events li.event[data-type="order.created"]');
      assert.equal(await item.textContent(), '#1 order.created {"id":42}');
      assert.equal(await page.textContent('#lastid'), '1');
      await page.click('#disconnect');
      await page.waitForSelector('#state[data-state=closed]');
      assert.deepEqual(await readAll(srv, S3).then((x) => x.map((e) => [e.type, e.data])), [['order.created', { id: 42 }]]);

      assert.deepEqual(diag.pageErrors, [], 'no page errors');
    } catch (e) {
      throw appendToError(e, describe());
    }
  }, closeAll);
});

// ---------------------------------------------------------------------------------------------
// Rocket: per-job streams with examples/jobs/jobs.mjs

/** Runs jobs.mjs with --json; `lines` fills with its output objects as they come. */
function jobs(args, srv) {
  const proc = spawn(process.execPath, [JOBS, ...args, '--json', '--server', srv.url, ...(TOKEN ? ['--token', TOKEN] : [])], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  open.procs.add(proc);
  const run = { proc, lines: [], stderr: '', args: args.join(' ') };
  let partial = '';
  const waiters = new Set();
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    partial += d;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      run.lines.push(JSON.parse(partial.slice(0, i)));
      partial = partial.slice(i + 1);
    }
    for (const w of waiters) w();
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (run.stderr += d));
  run.exited = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      open.procs.delete(proc);
      run.exit = { code, signal };
      for (const w of waiters) w();
      resolve(run.exit);
    }),
  );
  run.describe = () => `jobs.mjs ${run.args}: ${JSON.stringify(run.lines)} stderr: ${run.stderr.trim() || '-'} exit: ${JSON.stringify(run.exit)}`;
  /** Resolves once a line satisfies pred; rejects if the process exits first or after ms. */
  run.waitLine = (pred, ms = 5000, what = 'a line') =>
    withTimeout(
      new Promise((resolve, reject) => {
        const check = () => {
          const l = run.lines.find(pred);
          if (l) {
            waiters.delete(check);
            resolve(l);
          } else if (run.exit) {
            waiters.delete(check);
            reject(new Error(`exited before ${what}: ${run.describe()}`));
          }
        };
        waiters.add(check);
        check();
      }),
      ms,
      `${what} from ${run.describe()}`,
    );
  run.done = async (ms = 8000) => {
    const x = await withTimeout(run.exited, ms, `the end of ${run.describe()}`);
    assert.deepEqual(x, { code: 0, signal: null }, run.describe());
    return run;
  };
  return run;
}

test('job streams: watchers before, during and after a job get every event then the close marker; retention empties the closed stream, which stays closed', { timeout: 30000 }, async () => {
  await guarded(async () => {
    open.srv = await startServer({ flags: ['--retention', 'job-*:max-age=3s'] });
    const srv = open.srv;
    const id = uniqueStream('x');
    const job = `job-${id}`;
    const LINES = ['fetching', 'compiling', 'linking', 'testing', 'packaging'];
    const FINAL = LINES.length + 2; // job.started, the progress lines, job.completed
    const expected = [
      { kind: 'event', version: 1, type: 'job.started', data: { id } },
      ...LINES.map((message, i) => ({ kind: 'event', version: i + 2, type: 'job.progress', data: { step: i + 1, message } })),
      { kind: 'event', version: FINAL, type: 'job.completed', data: { id, result: 'ok' } },
      { kind: 'close', reason: 'closed' },
    ];

    // attached before the job exists
    const early = jobs(['watch', id], srv);
    await early.waitLine((l) => l.kind === 'open', 5000, 'the early watcher to be subscribed');

    // the worker reports each line of its input as it comes
    const worker = jobs(['worker', id, '--stdin'], srv);
    worker.proc.stdin.write(`${LINES[0]}\n`);
    await early.waitLine((l) => l.version === 2, 5000, 'the first progress event at the early watcher');

    // attached mid-way, from 0
    const mid = jobs(['watch', id, '--from', '0'], srv);
    await mid.waitLine((l) => l.kind === 'open', 5000, 'the mid-way watcher to be subscribed');
    const atMid = (await srv.get(streamPath(job))).json;
    assert.deepEqual([atMid.closed, atMid.version, atMid.subscribers], [false, 2, 2], 'mid-way: the job is running, two watchers');

    worker.proc.stdin.end(LINES.slice(1).map((l) => `${l}\n`).join(''));
    await worker.done();
    assert.deepEqual(
      worker.lines.map((l) => [l.kind, l.version]),
      [...expected.filter((l) => l.kind === 'event').map((l) => ['published', l.version]), ['closed', FINAL]],
      worker.describe(),
    );
    // attached after the close
    const late = jobs(['watch', id], srv);
    for (const [name, w] of [['early', early], ['mid-way', mid], ['late', late]]) {
      await w.done();
      assert.deepEqual(w.lines.slice(0, 2), [{ kind: 'subscribe', from: 0 }, { kind: 'open' }], `${name}: ${w.describe()}`);
      assert.deepEqual(w.lines.slice(2), expected, `${name} watcher: every event once, in order, then the close marker`);
    }

    // the worker's own pace (--steps, --interval-ms), on another job, while the first expires
    const timed = jobs(['worker', `${id}-t`, '--steps', '3', '--interval-ms', '20'], srv);
    await timed.done();
    const after = await jobs(['watch', `${id}-t`], srv).done();
    assert.deepEqual(
      after.lines.filter((l) => l.kind === 'event').map((l) => l.data),
      [{ id: `${id}-t`, steps: 3 }, { step: 1, of: 3, percent: 33 }, { step: 2, of: 3, percent: 67 }, { step: 3, of: 3, percent: 100 }, { id: `${id}-t`, result: 'ok' }],
    );
    assert.deepEqual(after.lines.at(-1), { kind: 'close', reason: 'closed' });

    // retention: the events go (not before the close: the late watcher got them all), the
    // stream's row and its closed flag stay
    await until(async () => (await readAll(srv, job)).length === 0, { timeoutMs: 8000, intervalMs: 200, what: `retention to drop ${job}'s events` });
    const info = (await srv.get(streamPath(job))).json;
    assert.equal(info.closed, true);
    assert.equal(info.version, FINAL, 'the stream keeps its version');

    // a new SSE subscriber gets the close marker at once and the response ends
    const t0 = Date.now();
    const sub = subscribe(srv.url, job, { from: 0, server: srv });
    await sub.ready();
    await sub.waitForEnd(2000);
    assert.ok(Date.now() - t0 < 2000, 'at once');
    assert.equal(sub.events.length, 0, sub.describe());
    assert.deepEqual(sub.closeBlock?.json, { stream: job, reason: 'closed' }, sub.describe());
    // ... and so does the watcher script
    const again = await jobs(['watch', id], srv).done();
    assert.deepEqual(again.lines, [{ kind: 'subscribe', from: 0 }, { kind: 'open' }, { kind: 'close', reason: 'closed' }], again.describe());

    const r = await publish(srv, job, { type: 'job.progress', data: {} });
    assert.equal(r.status, 410, show(r));
    assert.equal(r.json.error, 'StreamClosed');
  }, closeAll);
});
