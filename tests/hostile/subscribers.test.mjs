// Subscribers that misbehave: connections reset (TCP RST) while their catch-up reads are in
// flight, and clients that ask for a lot and read nothing. The server must survive with every
// acknowledged event intact, and its memory must stay within the documented bounds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { startServer, killAll, guarded, show, sleep, until, readAll } from '../integration/lib/server.mjs';
import { sseReset, RawHub } from './lib/clients.mjs';

after(() => killAll());

/** Publishes n events of about `size` bytes to `stream`, up to 500 (and ~800 KB) per request. */
async function fill(srv, stream, n, size = 200) {
  const pad = 'p'.repeat(size);
  const per = Math.max(1, Math.min(500, Math.floor(800000 / (size + 60))));
  for (let i = 0; i < n; i += per) {
    const batch = Array.from({ length: Math.min(per, n - i) }, (_, k) => ({ type: 'fill', data: { i: i + k, pad } }));
    const r = await srv.publish(stream, batch);
    assert.equal(r.status, 201, show(r));
  }
}

/** Runs `n` calls of fn(i), `par` at a time. */
async function inParallel(n, par, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: par }, async () => {
    while (next < n) await fn(next++);
  }));
}

test('SSE subscribers reset during their catch-up reads, 200 times: the server survives', async () => {
  // the audit's use-after-free: a read that completed ahead of the one issued before it was
  // looked up on a subscription whose last reference the earlier read had just dropped
  const srv = await startServer({ name: 'hostile-sse-reset' });
  await guarded(async () => {
    await fill(srv, 'deep', 20000);
    await inParallel(200, 8, (i) => sseReset(srv.port, '/api/streams/deep/events?from=0', i % 4));
    await inParallel(50, 8, (i) => sseReset(srv.port, '/api/streams/$all/events?from=0', i % 3));
    const info = await srv.get('/api/streams/deep');
    assert.equal(info.status, 200);
    assert.equal(info.json.version, 20000, 'every acknowledged event is there');
    // the IO threads see each reset and the stream's fan-out worker drops the subscription in
    // its own time (behind the pages it was handed for it): gone soon, not at once
    let left = info.json.subscribers;
    await until(async () => (left = (await srv.get('/api/streams/deep')).json.subscribers) === 0,
      { timeoutMs: 15000, what: 'every reset subscription to be gone' }).catch((e) => {
      assert.fail(`${e.message}: ${left} left`);
    });
  }, () => srv.stop());
});

test('SignalR subscribers (push and streaming) reset during their catch-up reads: the server survives', async () => {
  const srv = await startServer({ name: 'hostile-hub-reset' });
  await guarded(async () => {
    await fill(srv, 'deep', 20000);
    await inParallel(120, 6, async (i) => {
      const h = new RawHub(srv.port);
      try {
        await h.ready;
        if (i % 2) h.invoke(1, 'Subscribe', 'deep', 0);
        else h.send({ type: 4, invocationId: '1', target: 'Subscribe', arguments: ['deep', 0] });
        await h.waitFor((r) => r.length >= 2, 5000, 'the first subscription data');
        await new Promise((r) => setTimeout(r, i % 3));
        h.reset();
      } finally {
        h.close();
      }
    });
    const info = await srv.get('/api/streams/deep');
    assert.equal(info.status, 200);
    assert.equal(info.json.version, 20000);
  }, () => srv.stop());
});

/** Resident set size of a process in KiB. */
function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

test('clients that ask for big pages and never read hold at most the read budget; the rest get 503', async (t) => {
  const srv = await startServer({ name: 'hostile-bigreads', flags: ['--read-budget', '32m'] });
  const socks = [];
  await guarded(async () => {
    await fill(srv, 'big', 200, 100000); // ~20 MB of events, 100 KB each
    const base = rssKb(srv.pid);
    // 40 unread readers, of which about 8 fill the 32 MB budget with 4 MiB answers and the
    // rest get 503. Under a sanitizer each answer takes about a second to build, and a reader
    // queued behind 40 of them hit the server's 30 s request timeout (a reset, not an answer):
    // 12 there, still more than the budget holds.
    const unread = srv.isSanitized() ? 12 : 40;
    for (let i = 0; i < unread; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', () => {});
      s.on('connect', () => s.write('GET /api/streams/big/events?from=0&limit=1000 HTTP/1.1\r\nHost: x\r\n\r\n'));
      s.pause(); // never read
      socks.push(s);
    }
    await sleep(3000);
    const grown = rssKb(srv.pid) - base;
    // meanwhile a client that does read gets either a page or a 503 that says to retry. Its read
    // waits its turn behind the unread ones on the reader threads: allow for that queue under a
    // sanitizer.
    const slow = srv.isSanitized() ? { timeoutMs: 90000 } : {};
    const r = await srv.get('/api/streams/big/events?from=0&limit=1000', slow);
    console.log(`# ${unread} unread big reads: server RSS +${(grown / 1024).toFixed(1)} MB; a reader got ${r.status}`);
    if (r.status === 503) {
      assert.equal(r.headers['retry-after'], '1');
      assert.equal(r.json.error, 'Unavailable');
    } else {
      assert.equal(r.status, 200, show(r));
      // (a TSan run once saw a 200 here whose body was not JSON: say what it was if it recurs)
      assert.ok(r.json !== undefined, `a 200 that is not JSON (${r.raw.length} bytes): ${show(r)}; headers ${JSON.stringify(r.headers)}`);
      assert.ok(r.json.events.length >= 1 && r.json.events.length <= 41, `${r.json.events.length} events in a page`);
    }
    if (!srv.isSanitized()) assert.ok(grown < 80 * 1024, `server RSS grew by ${(grown / 1024).toFixed(1)} MB (budget 32 MB)`);
    for (const s of socks) s.destroy();
    socks.length = 0;
    // the budget comes back once the connections are gone: pages are served again
    await until(async () => (await srv.get('/api/streams/big/events?from=0&limit=1000', slow)).status === 200,
      { timeoutMs: srv.isSanitized() ? 60000 : 10000, what: 'a 200 once the unread answers are dropped' });
    // and paging through the whole stream gives every event once (short pages, next continues)
    const all = await readAll(srv, 'big');
    assert.equal(all.length, 200);
    assert.ok(all.every((e, i) => e.version === i + 1));
  }, () => {
    for (const s of socks) s.destroy();
    return srv.stop();
  });
});

// Catch-up pages are shared (one read serves every subscription at that point of the stream) and
// a catching-up subscription keeps at most 256 KiB of its outbox queued: 100 of them on one
// unread connection hold references to the same pages, within the server's read budget.
test('one WebSocket with 100 subscriptions from 0 that reads nothing holds shared pages, not 100 copies', async () => {
  const srv = await startServer({ name: 'hostile-manysubs' });
  await guarded(async () => {
    await fill(srv, 'wide', 2000, 10000); // ~20 MB
    const h = new RawHub(srv.port);
    try {
      await h.ready;
      h.socket.pause();
      const base = rssKb(srv.pid);
      for (let i = 0; i < 100; i++) h.send({ type: 4, invocationId: String(i), target: 'Subscribe', arguments: ['wide', 0] });
      await sleep(4000);
      const grown = rssKb(srv.pid) - base;
      console.log(`# 100 catch-up subscriptions on one unread WebSocket: server RSS +${(grown / 1024).toFixed(1)} MB`);
      if (!srv.isSanitized()) assert.ok(grown < 60 * 1024, `server RSS grew by ${(grown / 1024).toFixed(1)} MB (100 x 256 KiB of references to shared pages)`);
      // other clients are still served
      assert.equal((await srv.get('/api/streams/wide')).status, 200);
      // and every subscription makes progress once it reads (all of it would be 2 GB)
      h.socket.resume();
      await h.waitFor(() => [...Array(100).keys()].every((i) => h.items.get(String(i)) >= 50), 30000, 'every subscription to make progress');
    } finally {
      h.close();
    }
  }, () => srv.stop());
});

/** GET path from localAddress; resolves {status, bytes, at} once the whole answer is in. */
function getFrom(port, path, localAddress, timeoutMs = 60000) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, localAddress, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c) => { bytes += c.length; });
      res.on('end', () => { clearTimeout(timer); resolve({ status: res.statusCode, bytes, at: Date.now() }); });
      res.on('error', reject);
    });
    const timer = setTimeout(() => req.destroy(new Error(`GET ${path} from ${localAddress} timed out`)), timeoutMs);
    req.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// The reader threads serve the clients (source addresses) with reads waiting in turn: one client
// that queues many slow reads delays another client's read by about one of its own reads per
// reader thread, not by its whole queue (storage/reader.c). Measured against a control: the same
// read from the flooding client's own address waits for its queue. The slow reads are searches
// that scan 100,000 events and find none, so that the answers cost the IO threads nothing.
test('a client that queues many slow reads delays another client\'s read by a turn, not by its queue', async (t) => {
  const srv = await startServer({ name: 'hostile-turns' });
  if (/libtsan/.test(readFileSync(`/proc/${srv.pid}/maps`, 'utf8'))) {
    await srv.stop();
    // the turns are one thread's bookkeeping, with nothing shared for TSan to check that the
    // other suites' runs of the reader do not; test_faults checks their order exactly
    t.skip('under ThreadSanitizer the flood of slow reads takes minutes; the normal and ASan ' +
      'suites run this');
    return;
  }
  const socks = [];
  const small = '/api/streams/small/events?from=0&limit=1';
  const n = srv.isSanitized() ? 24 : 48;
  // n searches from 127.0.0.1, then one small read from `from`: how long the small one waited
  async function floodThenRead(from, streamId) {
    const body = JSON.stringify({ streamId, type: 'no-such-type' });
    const search = 'POST /api/EventStream/events/search HTTP/1.1\r\nHost: x\r\n' +
      `Content-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
    for (let i = 0; i < n; i++) {
      const s = net.connect({ port: srv.port, host: '127.0.0.1', localAddress: '127.0.0.1' });
      s.on('error', () => {});
      s.on('data', () => {});
      s.on('connect', () => s.write(search));
      socks.push(s);
    }
    await sleep(100); // the searches reach the reader threads
    const sent = Date.now();
    const r = await getFrom(srv.port, small, from, 60000);
    assert.equal(r.status, 200);
    const waited = r.at - sent;
    // what is left of the flood is done before the next phase: a read from its address comes
    // after it
    assert.equal((await getFrom(srv.port, small, '127.0.0.1', 60000)).status, 200);
    for (const s of socks) s.destroy();
    socks.length = 0;
    return waited;
  }
  await guarded(async () => {
    await fill(srv, 'many', 100000, 10);
    assert.equal((await srv.publish('small', [{ type: 't', data: {} }])).status, 201);
    const found = await srv.get('/api/EventStream/streams/stream/many');
    assert.equal(found.status, 200, show(found));
    const streamId = found.json[0].id;
    const same = await floodThenRead('127.0.0.1', streamId);
    const other = await floodThenRead('127.0.0.2', streamId);
    console.log(`# a read behind ${n} queued searches of 100,000 events: from their address ${same} ms, ` +
      `from another address ${other} ms`);
    // the control must show a queue, or this measures nothing
    assert.ok(same >= 150, `the flood's own address waited only ${same} ms: no queue to measure`);
    assert.ok(other < same / 3,
      `another address waited ${other} ms, the flood's own ${same} ms: not served in turn`);
  }, () => {
    for (const s of socks) s.destroy();
    return srv.stop();
  });
});
