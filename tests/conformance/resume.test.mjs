// Keep-alive, timeouts and reconnection with the official client: server Pings keep a client
// with a short server timeout connected; a silent client is closed with allowReconnect and an
// automatically reconnecting client resumes its subscription with `from` with no gap or
// duplicate; a protocol violation closes without reconnect; stateful reconnect survives killed
// sockets (through a TCP proxy) with no lost or doubled message and no new connection, and
// falls back to a full reconnect when its one resume attempt fails.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, publish, uniqueStream, sleep, killAll } from '../integration/lib/server.mjs';
import { hub, explain, streamItems, waitFor, assertSequence, tcpProxy } from './lib/hub.mjs';

after(() => killAll());

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
    const err = await c.closedWith;
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

test('a Close without allowReconnect ends the client for good', async () => {
  const srv = await startServer({ flags: ['--max-message', '2048'] });
  try {
    const c = hub(srv.url, { reconnect: [0, 100] });
    let reconnecting = 0;
    c.onreconnecting(() => reconnecting++);
    await c.start();
    c.invoke('Publish', uniqueStream('big'), { type: 't', data: 'x'.repeat(4000) }).catch(() => {});
    const err = await c.closedWith;
    assert.ok(err instanceof Error);
    assert.match(err.message, /MessageTooLarge/);
    await sleep(300);
    assert.equal(reconnecting, 0);
    assert.equal(c.state, 'Disconnected');
  } finally {
    await srv.stop();
  }
});

test('stateful reconnect: killed sockets lose and double nothing, same connection', async () => {
  const srv = await startServer({ flags: ['--log-level', 'debug'] });
  const proxy = await tcpProxy(srv.port);
  try {
    for (const msgpack of [false, true]) {
      const c = hub(`http://127.0.0.1:${proxy.port}`, { stateful: true, msgpack, reconnect: [0, 200] });
      await explain(c, async () => {
        let reconnecting = 0;
        c.onreconnecting(() => reconnecting++);
        await c.start();
        const id = c.connectionId;
        const s = uniqueStream('stateful');
        const pushed = [];
        c.on('event', (r) => {
          pushed.push(r);
        });
        await c.invoke('Subscribe', s, 0);
        const st = streamItems(c, 'Subscribe', s, 0);
        const N = 600;
        const publishing = (async () => {
          for (let i = 0; i < N; i += 20) {
            await publish(srv, s, Array.from({ length: 20 }, (_, k) => ({ type: 't', data: i + k })));
            await sleep(10);
          }
        })();
        const outage = [];
        for (let k = 0; k < 3; k++) {
          await sleep(120);
          proxy.killAll();
          // invocations sent while the socket is down are delivered after the resume
          outage.push(c.invoke('Publish', `${s}-side`, { type: 'during', data: k }));
        }
        await publishing;
        const side = await Promise.all(outage);
        assert.deepEqual(side.map((r) => r.lastVersion), [1, 2, 3], 'each outage invocation ran once, in order');
        await waitFor(() => pushed.length >= N && st.items.length >= N, 15000, `${N} events in both styles`);
        await sleep(300);
        assertSequence(assert, pushed, 0, N);
        assertSequence(assert, st.items, 0, N);
        assert.equal(c.connectionId, id, 'the same connection');
        assert.equal(reconnecting, 0, 'a stateful resume is not a reconnect');
        await c.stop();
      });
    }
    const log = srv.logs();
    assert.ok((log.match(/hub connection resumed/g) || []).length >= 4, 'the server resumed the connections');
  } finally {
    await proxy.close();
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
      await c.start();
      const id = c.connectionId;
      proxy.killAll();
      proxy.refuseFor(700);
      const newId = await reconnected;
      assert.notEqual(newId, id, 'a new connection after the failed resume');
      assert.equal((await c.invoke('Read', uniqueStream('x'), 0)).length, 0);
      await c.stop();
    });
  } finally {
    await proxy.close();
    await srv.stop();
  }
});
