// Keep-alive, timeouts and reconnection with the official client: server Pings keep a client
// with a short server timeout connected; the client timeout is armed by the first Ping; a silent
// client is closed with allowReconnect and an automatically reconnecting client resumes its
// subscription (streaming and push) with `from` with no gap or duplicate, including events
// published while it was away; a protocol violation closes without reconnect; stateful
// reconnect survives killed sockets (through a TCP proxy) with no lost or doubled message, the
// same connection and token and no new negotiate, and falls back to a full reconnect when its
// one resume attempt fails.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, publish, readAll, uniqueStream, sleep, killAll, guarded, withTimeout } from '../integration/lib/server.mjs';
import { hub, explain, streamItems, waitFor, assertSequence, tcpProxy, rawWs, frame, jsonRecords, RS } from './lib/hub.mjs';

after(() => killAll());

/** Every connectionId the server's log records name (at debug level it logs hub connections). */
function loggedIds(srv) {
  return new Set(srv.logRecords().map((r) => r.connectionId).filter((x) => typeof x === 'string'));
}

test('server Pings keep a client with a short server timeout connected; without them it times out', async () => {
  const srv = await startServer({ flags: ['--hub-keepalive-ms', '300'] });
  const quiet = await startServer({ flags: ['--hub-keepalive-ms', '60000'] });
  try {
    for (const transport of ['WebSockets', 'ServerSentEvents']) {
      const c = hub(srv.url, { transport, serverTimeout: 1500 });
      await explain(c, async () => {
        await c.start();
        await sleep(4000);
        assert.equal(c.state, 'Connected', `${transport}: still connected after 4 s of silence`);
        await c.stop();
      });
    }
    const c = hub(quiet.url, { serverTimeout: 1500 });
    await c.start();
    const t0 = Date.now();
    const err = await withTimeout(c.closedWith, 6000, 'the client to give up on the silent server');
    assert.ok(err instanceof Error, 'closed with an error');
    assert.match(err.message, /Server timeout elapsed/);
    assert.ok(Date.now() - t0 >= 1200 && Date.now() - t0 < 5000, `closed after ${Date.now() - t0} ms`);
  } finally {
    await srv.stop();
    await quiet.stop();
  }
});

test('a silent client is closed with allowReconnect; automatic reconnect resumes with `from`', async () => {
  const srv = await startServer({ flags: ['--hub-client-timeout-ms', '800'] });
  try {
    const c = hub(srv.url, { keepAlive: 20000, serverTimeout: 60000, reconnect: [0, 200, 500, 1000] });
    await explain(c, async () => {
      const s = uniqueStream('auto');
      const got = [];
      let sub;
      const subscribe = () => {
        const from = got.length ? got.at(-1).version : 0;
        sub = c.stream('Subscribe', s, from).subscribe({ next: (r) => got.push(r), complete() {}, error() {} });
      };
      const ids = [];
      let reconnecting = 0;
      c.onreconnecting(() => reconnecting++);
      c.onreconnected((id) => {
        ids.push(id);
        subscribe();
      });
      await c.start();
      ids.push(c.connectionId);
      subscribe();
      const N = 300;
      for (let i = 0; i < N; i += 10) {
        await publish(srv, s, Array.from({ length: 10 }, (_, k) => ({ type: 't', data: i + k })));
        await sleep(30);
      }
      await waitFor(() => got.length >= N, 15000, `${N} events across reconnects (have ${got.length})`);
      await sleep(200);
      assertSequence(assert, got, 0, N);
      assert.ok(reconnecting >= 1, `the server's Close allowed a reconnect (${reconnecting} reconnects)`);
      assert.equal(new Set(ids).size, ids.length, 'each reconnect is a new connection id');
      sub.dispose();
      await c.stop();
    });
  } finally {
    await srv.stop();
  }
});

test('the client timeout is armed by the first Ping and closes with allowReconnect', async () => {
  const srv = await startServer({ flags: ['--hub-client-timeout-ms', '1000', '--hub-keepalive-ms', '300'] });
  try {
    // raw: a client that never pings is not timed out; after its first Ping, silence closes it
    const ws = await rawWs(srv.port);
    ws.send(`{"protocol":"json","version":1}${RS}`);
    assert.equal((await frame(ws)).data.toString(), `{}${RS}`);
    await sleep(1800);
    assert.equal(ws.readyState, ws.OPEN, 'not closed before its first Ping');
    const pings = ws.frames.slice(1).flatMap((f) => jsonRecords(f.data.toString()));
    assert.ok(pings.length >= 3 && pings.every((r) => r.type === 6), `server Pings every 300 ms while idle: ${JSON.stringify(pings)}`);
    const t0 = Date.now();
    ws.send(`{"type":6}${RS}`);
    await withTimeout(ws.closedP, 4000, 'the server to close the silent client');
    const took = Date.now() - t0;
    assert.ok(took >= 800 && took < 3000, `closed ${took} ms after its only Ping (timeout 1000 ms)`);
    const close = ws.frames.flatMap((f) => jsonRecords(f.data.toString())).at(-1);
    assert.equal(close.type, 7);
    assert.equal(close.allowReconnect, true);

    // the official client: one Ping right after the handshake, then none for 10 s
    const c = hub(srv.url, { keepAlive: 10000, serverTimeout: 20000 });
    await c.start();
    const t1 = Date.now();
    await withTimeout(c.closedWith, 5000, 'the server to close the client');
    const took1 = Date.now() - t1;
    assert.ok(took1 >= 700 && took1 < 3000, `the client was closed after ${took1} ms (timeout 1000 ms)`);
    assert.equal(c.state, 'Disconnected');
  } finally {
    await srv.stop();
  }
});

test('automatic reconnect: new connection id, push re-Subscribe with `from` misses and doubles nothing', async () => {
  const srv = await startServer({ flags: ['--hub-client-timeout-ms', '1000'] });
  try {
    const c = hub(srv.url, { keepAlive: 10000, serverTimeout: 20000, reconnect: [0, 300] });
    await explain(c, async () => {
      const s = uniqueStream('repush');
      const got = [];
      const calls = [];
      const during = [];
      const answers = [];
      c.on('event', (r) => {
        if (r.stream === s) got.push(r);
      });
      c.onreconnecting((e) => {
        calls.push(['reconnecting', e?.message]);
        // events published while the client is disconnected
        during.push(publish(srv, s, [1, 2, 3].map((k) => ({ type: 'during', data: `${calls.length}.${k}` }))));
      });
      c.onreconnected((id) => {
        calls.push(['reconnected', id]);
        const from = got.length ? got.at(-1).version : 0;
        answers.push(c.invoke('Subscribe', s, from).then((a) => ({ a, from })));
      });
      await c.start();
      const firstId = c.connectionId;
      assert.deepEqual(await c.invoke('Subscribe', s, 0), { stream: s, version: 0 });
      for (let k = 1; k <= 3; k++) await publish(srv, s, { type: 'before', data: k });
      await waitFor(() => got.length >= 3, 5000, 'the first three events');
      await waitFor(() => calls.some((x) => x[0] === 'reconnected'), 5000, `a reconnect after the server's Close (calls: ${JSON.stringify(calls)})`);
      assert.equal(calls[0][0], 'reconnecting', 'onreconnecting comes first');
      const newId = calls.find((x) => x[0] === 'reconnected')[1];
      assert.match(newId, /^[A-Za-z0-9_-]{22}$/);
      assert.notEqual(newId, firstId, 'a different connection id');
      for (const r of await Promise.all(during)) assert.equal(r.status, 201);
      const { a, from } = await answers[0];
      assert.deepEqual(a, { stream: s, version: from }, 'Subscribe answers with the `from` it continues after');
      for (let k = 1; k <= 3; k++) await publish(srv, s, { type: 'after', data: k });
      // (a slow build may be timed out again meanwhile: every reconnect adds its three events)
      await waitFor(() => got.length >= 6 + 3 * during.length, 5000, `${6 + 3 * during.length} events (have ${got.length})`);
      await sleep(200);
      await Promise.all(during);
      const total = 6 + 3 * during.length;
      assertSequence(assert, got, 0, total);
      const count = (t) => got.filter((r) => r.type === t).length;
      assert.deepEqual([count('before'), count('during'), count('after')], [3, 3 * during.length, 3]);
      assert.deepEqual(got.slice(0, 3).map((r) => r.data), [1, 2, 3]);
      assert.deepEqual(got.filter((r) => r.type === 'after').map((r) => r.data), [1, 2, 3]);
      assert.deepEqual(got, await readAll(srv, s), 'the pushed records are the stored ones');
      await c.stop();
    });
  } finally {
    await srv.stop();
  }
});

test('a Close without allowReconnect ends the client for good', async () => {
  const srv = await startServer({ flags: ['--max-message', '2048'] });
  try {
    const c = hub(srv.url, { reconnect: [0, 100] });
    let reconnecting = 0;
    c.onreconnecting(() => reconnecting++);
    await c.start();
    c.invoke('Publish', uniqueStream('big'), { type: 't', data: 'x'.repeat(4000) }).catch(() => {});
    const err = await withTimeout(c.closedWith, 5000, 'onclose after the oversized message');
    assert.ok(err instanceof Error, `onclose got an Error (${err})`);
    assert.match(err.message, /^Server returned an error on close: Connection closed with an error\./);
    await sleep(300);
    assert.equal(reconnecting, 0);
    assert.equal(c.state, 'Disconnected');
  } finally {
    await srv.stop();
  }
});

/**
 * A stateful client through a proxy whose sockets are killed `kills` times while 600 events go
 * out (pushed and streamed): nothing lost or doubled, the same connection and token throughout,
 * no new negotiate, no visible reconnect. Each kill waits for the resume before it (an
 * invocation sent while the socket is down is answered through the next one): the client tries
 * its resume once, and a kill during that handshake is a full reconnect by design.
 */
async function killedSockets(srv, { msgpack, kills = 3, proxyOpts, until }) {
  const proxy = await tcpProxy(srv.port, proxyOpts);
  const c = hub(`http://127.0.0.1:${proxy.port}`, { stateful: true, msgpack, reconnect: [0, 200] });
  return guarded(() => explain(c, async () => {
    let reconnecting = 0;
    let reconnected = 0;
    c.onreconnecting(() => reconnecting++);
    c.onreconnected(() => reconnected++);
    const idsBefore = loggedIds(srv);
    await c.start();
    const id = c.connectionId;
    assert.equal(proxy.requests.length, 2, `negotiate, then the WebSocket: ${proxy.requests.join(', ')}`);
    assert.match(proxy.requests[0], /^POST \/hub\/negotiate\?.*useStatefulReconnect=true/);
    const token = /^GET \/hub\?id=([A-Za-z0-9_-]{22})$/.exec(proxy.requests[1])?.[1];
    assert.ok(token, `the WebSocket request names the token: ${proxy.requests[1]}`);
    const s = uniqueStream('stateful');
    const pushed = [];
    c.on('event', (r) => {
      pushed.push(r);
    });
    await c.invoke('Subscribe', s, 0);
    const st = streamItems(c, 'Subscribe', s, 0);
    const N = 600;
    let stop = false;
    const publishing = (async () => {
      for (let i = 0; i < N; i += 20) {
        await publish(srv, s, Array.from({ length: 20 }, (_, k) => ({ type: 't', data: i + k })));
        await sleep(10);
      }
    })();
    const side = [];
    let k = 0;
    for (; k < kills && !stop; k++) {
      await sleep(60);
      proxy.killAll();
      // sent while the socket is down: delivered after the resume, answered once
      side.push((await c.invoke('Publish', `${s}-side`, { type: 'during', data: k })).lastVersion);
      if (until?.()) stop = true;
    }
    await publishing;
    assert.deepEqual(side, Array.from({ length: k }, (_, i) => i + 1), 'each outage invocation ran once, in order');
    await waitFor(() => pushed.length >= N && st.items.length >= N, 15000, `${N} events in both styles`);
    await sleep(300);
    assertSequence(assert, pushed, 0, N);
    assertSequence(assert, st.items, 0, N);
    assert.equal(c.connectionId, id, 'the same connection');
    assert.equal(reconnecting, 0, 'a stateful resume is not a reconnect (onreconnecting not called)');
    assert.equal(reconnected, 0, 'nor onreconnected');
    // every reconnection went to the same URL with the same token, with no new negotiate
    const reqs = proxy.requests.slice(1);
    assert.ok(reqs.length >= 1 + k, `the first WebSocket and a resume after each of ${k} kills: ${reqs.join(', ')}`);
    assert.deepEqual(new Set(reqs), new Set([`GET /hub?id=${token}`]), 'no negotiate, the same token every time');
    // and the server's log names no other new hub connection than this one
    const fresh = [...loggedIds(srv)].filter((x) => !idsBefore.has(x));
    assert.deepEqual(fresh, [id], 'the server logged exactly one new hub connection');
    await c.stop();
    assert.deepEqual(await withTimeout(c.closeArgs, 5000, 'onclose after stop()'), [undefined]);
    return id;
  }), () => proxy.close());
}

test('stateful reconnect: killed sockets lose and double nothing, same connection', async () => {
  const srv = await startServer({ flags: ['--log-level', 'debug', '--hub-disconnect-timeout-ms', '3000'] });
  try {
    for (const msgpack of [false, true]) await killedSockets(srv, { msgpack });
  } finally {
    await srv.stop();
  }
});

test('stateful reconnect: a resume that reaches another IO thread is relayed to the connection', async () => {
  // The request line comes in two pieces, the second after the acceptor stopped waiting for it
  // (200 ms): it cannot see the token and hands each resume to either IO thread, as it must for
  // TLS. Kills go on until two resumes were relayed (each lands elsewhere with odds 1/2).
  const srv = await startServer({ flags: ['--log-level', 'debug', '--io-threads', '2', '--hub-disconnect-timeout-ms', '3000'] });
  const relayed = () => srv.logRecords().filter((r) => r.msg === 'hub connection relayed from another IO thread').length;
  try {
    for (const msgpack of [false, true]) {
      const before = relayed();
      const id = await killedSockets(srv, {
        msgpack,
        kills: 24,
        proxyOpts: { splitFirst: 7, splitDelayMs: 260 },
        until: () => relayed() - before >= 2,
      });
      assert.ok(relayed() - before >= 2, `at least two resumes were relayed (${relayed() - before} in 24 kills)`);
      assert.ok(srv.logRecords().some((r) => r.msg === 'hub connection relayed from another IO thread' && r.connectionId === id));
    }
    // /metrics counts them: every relayed resume, among all resumes
    const text = (await srv.request('GET', '/metrics')).text;
    const metric = (name) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1]);
    assert.equal(metric('hubstream_signalr_relayed_resumes_total'), relayed(), text.split('\n').filter((l) => l.includes('resumes')).join('\n'));
    assert.ok(metric('hubstream_signalr_resumes_total') >= relayed());
  } finally {
    await srv.stop();
  }
});

test('stateful reconnect: a resume whose request line comes in pieces within the wait goes home', async () => {
  // The same two pieces, 60 ms apart: the acceptor waits for the whole request line (up to
  // 200 ms), reads the token and hands each resume to its connection's own IO thread. With
  // the first piece deciding, each would land on the other thread with odds 1/2 (and be
  // relayed): eight kills relaying none is 1 in 256 then.
  const srv = await startServer({ flags: ['--log-level', 'debug', '--io-threads', '2', '--hub-disconnect-timeout-ms', '3000'] });
  const relayed = () => srv.logRecords().filter((r) => r.msg === 'hub connection relayed from another IO thread').length;
  const resumes = async () => Number(/^hubstream_signalr_resumes_total (\S+)$/m.exec((await srv.request('GET', '/metrics')).text)?.[1]);
  try {
    const before = await resumes();
    await killedSockets(srv, { msgpack: false, kills: 8, proxyOpts: { splitFirst: 7, splitDelayMs: 60 } });
    assert.ok((await resumes()) - before >= 8, `a resume after each of the 8 kills (${(await resumes()) - before})`);
    assert.equal(relayed(), 0, 'no resume was relayed: each reached its home thread');
  } finally {
    await srv.stop();
  }
});

test('stateful reconnect falls back to a full reconnect when the resume fails', async () => {
  const srv = await startServer();
  const proxy = await tcpProxy(srv.port);
  try {
    const c = hub(`http://127.0.0.1:${proxy.port}`, { stateful: true, reconnect: [0, 200, 500, 1000, 2000] });
    await explain(c, async () => {
      const reconnected = new Promise((r) => c.onreconnected(r));
      let reconnecting = 0;
      c.onreconnecting(() => reconnecting++);
      await c.start();
      const id = c.connectionId;
      proxy.killAll();
      proxy.refuseFor(700);
      const newId = await withTimeout(reconnected, 8000, 'onreconnected after the refused resume');
      assert.equal(reconnecting, 1, 'the fallback is a visible reconnect: onreconnecting once');
      assert.notEqual(newId, id, 'a new connection after the failed resume');
      assert.match(newId, /^[A-Za-z0-9_-]{22}$/);
      const negotiates = proxy.requests.filter((r) => r.startsWith('POST /hub/negotiate'));
      assert.equal(negotiates.length, 2, `a new negotiate for the new connection: ${proxy.requests.join(', ')}`);
      assert.equal((await c.invoke('Read', uniqueStream('x'), 0)).length, 0);
      await c.stop();
    });
  } finally {
    await proxy.close();
    await srv.stop();
  }
});
