// SignalR clients that misbehave: negotiating without ever connecting, invoking without ever
// reading, reading without ever acknowledging (stateful reconnect). What one such client can
// make the server hold is bounded by the limits in the README's resource table; these tests
// measure that it is.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { startServer, killAll, guarded, sleep, show } from '../integration/lib/server.mjs';
import { RawHub, RS } from './lib/clients.mjs';

after(() => killAll());

/** n negotiate requests, `par` in flight; resolves the list of statuses and tokens. */
async function negotiateMany(srv, n, par = 32) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: par });
  const out = [];
  let next = 0;
  await Promise.all(Array.from({ length: par }, async () => {
    while (next < n) {
      next++;
      const r = await srv.request('POST', '/hub/negotiate?negotiateVersion=1', { agent });
      out.push({ status: r.status, token: r.json?.connectionToken });
    }
  }));
  agent.destroy();
  return out;
}

test('negotiated tokens are capped and all expire on time, however many there are', async () => {
  const srv = await startServer({
    name: 'hostile-negotiate',
    flags: ['--hub-max-unclaimed', '2000', '--hub-disconnect-timeout-ms', '1500'],
  });
  await guarded(async () => {
    const first = await negotiateMany(srv, 2600);
    const ok = first.filter((r) => r.status === 200).length;
    const refused = first.filter((r) => r.status === 429).length;
    assert.equal(ok, 2000, 'exactly the cap is handed out');
    assert.equal(refused, 600, 'the rest get 429');
    // every one of them expires within the timeout and the sweep's second, not 64 per second
    await sleep(1500 + 1500);
    const again = await negotiateMany(srv, 2000);
    assert.equal(again.filter((r) => r.status === 200).length, 2000, 'the cap is free again: every token expired');
    // the newest of the first batch has expired too (a token that is still known but unused
    // answers 400 "No transport has been started"; a forgotten one 404)
    const stale = first.filter((r) => r.status === 200).at(-1).token;
    const r = await srv.request('POST', `/hub?id=${encodeURIComponent(stale)}`, { body: `{}${RS}` });
    assert.equal(r.status, 404, show(r));
  }, () => srv.stop());
});

/** Resident set size of a process in KiB. */
function rssKb(pid) {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);
}

/** `n` Unsubscribe invocations (cheap: answered at once) with ids from..from+n-1, as one string;
 *  `pad` zero-pads the ids to that many digits (longer answers). */
function cheapInvocations(from, n, pad = 0) {
  let s = '';
  for (let i = from; i < from + n; i++) {
    s += JSON.stringify({ type: 1, invocationId: String(i).padStart(pad, '0'), target: 'Unsubscribe', arguments: ['none'] }) + RS;
  }
  return s;
}

/**
 * Client h sends 100,000 invocations (~12 MB of answers with 64-digit ids: more than the kernel
 * buffers of both ends hold) and reads nothing for 3 s: the server's RSS must grow by less than
 * 20 MB (without sanitizers) and it must have stopped reading (over 1 MB left unsent in the
 * client). Then h reads: every invocation is answered once, in order, on the same connection
 * (unless `answered` is false: a resumed client whose first records the server skips).
 */
async function floodWithoutReading(srv, h, who, { answered = true } = {}) {
  h.socket.pause(); // read nothing from here on
  const base = rssKb(srv.pid);
  const N = 100000;
  for (let i = 0; i < N; i += 1000) h.ws.send(cheapInvocations(i + 1, 1000, 64));
  await sleep(3000);
  const grown = rssKb(srv.pid) - base;
  console.log(`# ${N} invocations from ${who} that reads nothing: server RSS +${(grown / 1024).toFixed(1)} MB, ` +
    `${(h.ws.bufferedAmount / 1e6).toFixed(1)} MB still waiting in the client`);
  if (!srv.isSanitized()) assert.ok(grown < 20 * 1024, `server RSS grew by ${(grown / 1024).toFixed(1)} MB`);
  assert.ok(h.ws.bufferedAmount > 1e6, 'the client could not send everything: the server stopped reading');
  if (!answered) return;
  h.socket.resume();
  await h.waitFor(() => h.completions >= N, 60000, `${N} completions`);
  const ids = h.records.filter((x) => x.type === 3).map((x) => Number(x.invocationId));
  assert.equal(h.closed, false, `the connection is still open: ${ids.length} answers, then ${JSON.stringify(h.records.slice(-3))}`);
  assert.equal(ids.length, N);
  assert.ok(ids.every((id, i) => id === i + 1), 'every invocation answered once, in order');
}

test('a WebSocket client that invokes and never reads: the server stops reading it, holds little, and answers everything once it reads', async () => {
  const srv = await startServer({ name: 'hostile-noread' });
  await guarded(async () => {
    const h = new RawHub(srv.port);
    try {
      await h.ready;
      await floodWithoutReading(srv, h, 'a client');
    } finally {
      h.close();
    }
  }, () => srv.stop());
});

/** The number of resumes the server relayed from another IO thread (its debug log). */
function relayedCount(srv) {
  return srv.logRecords().filter((r) => r.msg === 'hub connection relayed from another IO thread').length;
}

/**
 * Resumes the stateful connection `token` (current client h) with request lines that come too
 * late for the acceptor to route, until one resume was relayed; returns that client.
 */
async function relayedResume(srv, h, token, opts = {}) {
  const before = relayedCount(srv);
  for (let k = 0; k < 20 && relayedCount(srv) === before; k++) {
    h.reset();
    await sleep(50);
    h = new RawHub(srv.port, { token, resume: true, autoAck: true, splitMs: 260, ...opts });
    await h.ready;
    assert.equal(h.records[0].type, 9, `the server's Sequence first: ${JSON.stringify(h.records[0])}`);
  }
  assert.equal(relayedCount(srv), before + 1, 'a resume was relayed');
  return h;
}

test('a relayed stateful client (its resume reached another IO thread) that invokes and never reads: bounded, then answered in order', async () => {
  // a replay buffer large enough for every answer: what stops the input here is the client not
  // reading (with the default 100,000 bytes, its Acks queued behind 8 MB of invocations never
  // arrive and it is closed, as a client on its home thread would be: the next test)
  const srv = await startServer({
    name: 'hostile-relay',
    flags: ['--io-threads', '2', '--log-level', 'debug', '--hub-stateful-buffer', '16000000'],
  });
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
    assert.equal(neg.json.useStatefulReconnect, true, show(neg));
    let h = new RawHub(srv.port, { token: neg.json.connectionToken, version: 2 });
    try {
      await h.ready;
      h = await relayedResume(srv, h, neg.json.connectionToken);
      await floodWithoutReading(srv, h, 'a relayed client');
    } finally {
      h.close();
    }
  }, () => srv.stop());
});

test('a relayed connection: a direct resume takes it back, an oversized message closes it with an error, a stop ends it', async () => {
  const srv = await startServer({ name: 'hostile-relay-end', flags: ['--io-threads', '2', '--log-level', 'debug', '--max-message', '2048'] });
  const open = [];
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
    const token = neg.json.connectionToken;
    let h = new RawHub(srv.port, { token, version: 2 });
    try {
      await h.ready;
      h = await relayedResume(srv, h, token);
      h.invoke('a', 'Unsubscribe', 'none');
      await h.waitFor(() => h.completions >= 1, 5000, 'an answer through the relay');
      // a resume the acceptor routes (the whole request line at once) replaces the relayed
      // socket, which the server drops without ending the connection
      const relayedSocket = h;
      h = new RawHub(srv.port, { token, resume: 2, autoAck: true }); // its record 1 ('a') was handled
      await h.ready;
      await relayedSocket.waitFor(() => relayedSocket.closed, 5000, 'the relayed socket to be dropped');
      h.invoke('b', 'Unsubscribe', 'none');
      await h.waitFor(() => h.completions >= 1, 5000, 'an answer on the direct socket');
      // relayed again, then a message over --max-message: Close with an error, no reconnect
      h = await relayedResume(srv, h, token, { resume: 3 });
      h.ws.send(JSON.stringify({ type: 1, invocationId: 'big', target: 'Publish', arguments: ['s', { data: 'x'.repeat(4000) }] }) + RS);
      await h.waitFor(() => h.closed, 5000, 'the server to close the relayed socket');
      const close = h.records.find((x) => x.type === 7);
      assert.ok(close, `a Close record: ${JSON.stringify(h.records.slice(-3))}`);
      assert.match(close.error, /Connection closed with an error/);
      assert.notEqual(close.allowReconnect, true);
      const gone = new RawHub(srv.port, { token, resume: true });
      await assert.rejects(gone.ready, undefined, 'the connection is over: no resume');
      gone.close();
      // a stop while a relayed socket is open (a new connection, relayed): a clean exit, which a
      // sanitizer build checks for leaks
      const neg2 = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
      let h2 = new RawHub(srv.port, { token: neg2.json.connectionToken, version: 2 });
      await h2.ready;
      h2 = await relayedResume(srv, h2, neg2.json.connectionToken);
      open.push(h2);
      assert.equal((await srv.get('/healthz')).status, 200);
    } finally {
      h.close();
    }
  }, () => srv.stop(), () => open.forEach((x) => x.close()));
});

test('a resume that takes over a socket the server had stopped reading is itself read only as far as the connection allows', async () => {
  // the old socket still open (the server did not see it die) and paused for backpressure: the
  // new one must not inherit "paused" as a state while lws reads it freely
  const srv = await startServer({ name: 'hostile-takeover' });
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
    const token = neg.json.connectionToken;
    const old = new RawHub(srv.port, { token, version: 2 });
    let h;
    try {
      await old.ready;
      old.socket.pause();
      for (let i = 0; i < 100000; i += 1000) old.ws.send(cheapInvocations(i + 1, 1000, 64));
      await sleep(1000);
      assert.ok(old.ws.bufferedAmount > 0, 'the server stopped reading the old socket');
      // the resume numbers its records from 1: what the server handled already is skipped
      h = new RawHub(srv.port, { token, resume: true, autoAck: true });
      await h.ready;
      await floodWithoutReading(srv, h, 'a client that took over a paused socket', { answered: false });
    } finally {
      old.close();
      h?.close();
    }
  }, () => srv.stop());
});

test('a stateful client that reads but never acknowledges: the replay buffer stays bounded and the client is closed', async () => {
  const srv = await startServer({ name: 'hostile-noack', flags: ['--hub-client-timeout-ms', '2000'] });
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
    assert.equal(neg.status, 200, show(neg));
    assert.equal(neg.json.useStatefulReconnect, true);
    const h = new RawHub(srv.port, { token: neg.json.connectionToken, version: 2 });
    try {
      await h.ready;
      const base = rssKb(srv.pid);
      let sent = 0;
      while (!h.closed && sent < 300000) {
        h.ws.send(cheapInvocations(sent + 1, 1000));
        sent += 1000;
        if (h.ws.bufferedAmount > 4e6) await sleep(20);
        if (sent % 20000 === 0) await sleep(1);
      }
      await h.waitFor(() => h.closed, 20000, 'the server to close the connection');
      const grown = rssKb(srv.pid) - base;
      const completions = h.records.filter((x) => x.type === 3).length;
      const close = h.records.find((x) => x.type === 7);
      console.log(`# ${sent} invocations sent without an Ack: ${completions} answered, server RSS +${(grown / 1024).toFixed(1)} MB, close: ${close?.error}`);
      assert.ok(close, 'a Close record');
      assert.match(close.error, /did not acknowledge/);
      assert.equal(close.allowReconnect, true);
      // answers stop once --hub-stateful-buffer (100,000 bytes) is unacknowledged
      assert.ok(completions < 3000, `${completions} completions kept for replay`);
      if (!srv.isSanitized()) assert.ok(grown < 20 * 1024, `server RSS grew by ${(grown / 1024).toFixed(1)} MB`);
      assert.equal((await srv.get('/healthz')).status, 200);
    } finally {
      h.close();
    }
  }, () => srv.stop());
});

test('a long-polling client that sends and never polls: its sends are not answered until it polls', async () => {
  const srv = await startServer({ name: 'hostile-nopoll' });
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1');
    const id = encodeURIComponent(neg.json.connectionToken);
    const first = await srv.request('GET', `/hub?id=${id}`);
    assert.equal(first.status, 200, show(first));
    const hs = await srv.request('POST', `/hub?id=${id}`, { body: JSON.stringify({ protocol: 'json', version: 1 }) + RS });
    assert.equal(hs.status, 200);
    // each POST carries 2,000 invocations (~70 KB of answers): the answers pile up unpolled
    let answered = 0;
    let stuck = false;
    for (let k = 0; k < 20 && !stuck; k++) {
      const p = srv.request('POST', `/hub?id=${id}`, { body: cheapInvocations(k * 2000 + 1, 2000), timeoutMs: 60000 });
      const r = await Promise.race([p, sleep(1500).then(() => null)]);
      if (!r) {
        stuck = true;
        // polling drains the answers, and the send is answered then
        const polled = [];
        for (let i = 0; i < 50 && polled.join('').split(RS).length < (k + 1) * 2000; i++) {
          const poll = await srv.request('GET', `/hub?id=${id}`, { timeoutMs: 10000 });
          polled.push(poll.text);
        }
        const done = await p;
        assert.equal(done.status, 200);
        const ids = polled.join('').split(RS).filter(Boolean).map((t) => JSON.parse(t)).filter((m) => m.type === 3).map((m) => Number(m.invocationId));
        assert.ok(ids.every((x, i) => x === i + 1), 'answers in order, each once');
        break;
      }
      assert.equal(r.status, 200);
      answered++;
    }
    assert.ok(stuck, `all ${answered} sends were answered with nobody polling: no backpressure`);
    assert.ok(answered <= 2, `${answered} sends answered before the server stopped taking input`);
  }, () => srv.stop());
});

test('stateful numbering counts every sequenced record, the ones the server ignores too', async () => {
  // ASP.NET numbers Invocation, StreamItem, Completion, StreamInvocation and CancelInvocation;
  // the server's Ack must count a client's StreamItem and Completion although it ignores them,
  // or a resume would replay (or skip) the wrong records
  const srv = await startServer({ name: 'hostile-seq' });
  await guarded(async () => {
    const neg = await srv.request('POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true');
    const h = new RawHub(srv.port, { token: neg.json.connectionToken, version: 2 });
    try {
      await h.ready;
      h.send({ type: 3, invocationId: 'c1', result: 1 });
      h.send({ type: 2, invocationId: 's1', item: 2 });
      h.invoke('i1', 'Unsubscribe', 'nothing');
      await h.waitFor((r) => r.some((m) => m.type === 8), 5000, 'an Ack');
      const ack = h.records.find((m) => m.type === 8);
      assert.equal(ack.sequenceId, 3, JSON.stringify(ack));
    } finally {
      h.close();
    }
  }, () => srv.stop());
});
