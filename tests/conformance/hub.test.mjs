// The official @microsoft/signalr client (Node) against the real server: every transport x
// protocol the client supports (plus skipNegotiation and negotiate version 0), each hub method and
// its errors, both subscription styles with replay and live continuation, Unsubscribe,
// cancellation, $all, and a larger ordering check under concurrent publishing. Records are
// compared with what the HTTP API reads back from the database.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, publish, readAll, uniqueStream, closeStream, guarded, request, withTimeout } from '../integration/lib/server.mjs';
import { hub, explain, streamItems, waitFor, assertSequence, tcpProxy } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer();
});
after(async () => {
  await srv?.stop();
});

// values a MessagePack client must get back exactly as it sent them
const DATA = {
  text: 'héllo ✓ 𝄞 "quoted" \\ back',
  int: 42,
  neg: -7,
  big: 9007199254740991,
  float: 1.5,
  huge: 1e300,
  list: [1, 'two', null, true, false],
  nested: { a: { b: [] }, empty: {} },
};

const cells = [
  { name: 'WebSockets + JSON', transport: 'WebSockets' },
  { name: 'WebSockets + MessagePack', transport: 'WebSockets', msgpack: true },
  { name: 'ServerSentEvents + JSON', transport: 'ServerSentEvents' },
  { name: 'LongPolling + JSON', transport: 'LongPolling' },
  { name: 'LongPolling + MessagePack', transport: 'LongPolling', msgpack: true },
  { name: 'WebSockets + JSON, skipNegotiation', transport: 'WebSockets', skipNegotiation: true },
  { name: 'WebSockets + MessagePack, skipNegotiation', transport: 'WebSockets', msgpack: true, skipNegotiation: true },
  { name: 'negotiateVersion=0 (no connection token)', transport: 'WebSockets', query: '?negotiateVersion=0' },
  { name: 'negotiateVersion=0 over long polling', transport: 'LongPolling', query: '?negotiateVersion=0' },
];

for (const cell of cells) {
  test(`matrix: ${cell.name}`, async () => {
    // through a proxy of its own, so the requests the client makes can be checked
    const proxy = await tcpProxy(srv.port);
    const base = `http://127.0.0.1:${proxy.port}`;
    const c = hub(base, { ...cell, url: cell.query ? `${base}/hub${cell.query}` : undefined });
    await guarded(() => explain(c, async () => {
      await c.start();
      assert.equal(c.state, 'Connected');
      // the requests the client made: negotiate (or not), then the transport with the right id
      const reqs = proxy.requests.slice();
      const ids = reqs.filter((r) => /^\S+ \/hub\?/.test(r)).map((r) => /[?&]id=([^&]+)/.exec(r)?.[1]);
      if (cell.skipNegotiation) {
        assert.deepEqual(reqs, ['GET /hub'], 'skipNegotiation: a WebSocket straight to /hub, no negotiate');
      } else {
        const version = cell.query ? '0' : '1';
        assert.equal(reqs[0].split('?')[0], 'POST /hub/negotiate');
        assert.equal(new URL(reqs[0].split(' ')[1], base).searchParams.get('negotiateVersion'), version, reqs[0]);
        assert.equal(reqs.filter((r) => r.includes('/hub/negotiate')).length, 1, `one negotiate: ${reqs.join(', ')}`);
        assert.ok(ids.length >= 1, `transport requests: ${reqs.join(', ')}`);
        assert.match(c.connectionId, /^[A-Za-z0-9_-]{22}$/);
        for (const id of ids) {
          if (cell.query) assert.equal(id, c.connectionId, 'version 0: the transport uses the connection id');
          else assert.ok(id !== c.connectionId && id.length === 22, `version 1: a token, not the id (${id})`);
        }
        assert.equal(new Set(ids).size, 1, 'every transport request names the same connection');
      }
      const s = uniqueStream('matrix');

      const res = await c.invoke('Publish', s, [
        { type: 'first', data: DATA, metadata: { who: 'test' } },
        { type: 'second', data: 2 },
      ]);
      assert.equal(res.stream, s);
      assert.equal(res.firstVersion, 1);
      assert.equal(res.lastVersion, 2);
      assert.equal(res.lastPosition, res.firstPosition + 1);

      const recs = await c.invoke('Read', s, 0);
      assertSequence(assert, recs, 0, 2);
      assert.deepEqual(recs[0].data, DATA);
      assert.deepEqual(recs[0].metadata, { who: 'test' });
      assert.equal(recs[1].type, 'second');
      const stored = await readAll(srv, s);
      assert.deepEqual(recs.map((r) => r.id), stored.map((r) => r.id), 'hub Read and HTTP read agree');
      assert.deepEqual(recs.map((r) => r.position), stored.map((r) => r.position));

      const info = await c.invoke('GetStream', s);
      assert.deepEqual(Object.keys(info).sort(), ['closed', 'created', 'name', 'position', 'updated', 'version']);
      assert.equal(info.name, s);
      assert.equal(info.version, 2);
      assert.equal(info.position, res.lastPosition);
      assert.equal(info.closed, false);
      assert.equal(typeof info.created, 'string');
      assert.ok(info.updated >= info.created, `updated ${info.updated} >= created ${info.created}`);

      // streaming: replay from 0, then live
      const st = streamItems(c, 'Subscribe', s, 0);
      await waitFor(() => st.items.length >= 2, 5000, 'the replayed stream items');
      // push: from 1, then live
      const pushed = [];
      const ended = [];
      c.on('event', (r) => {
        if (r.stream === s) pushed.push(r);
      });
      c.on('closed', (stream, reason) => {
        ended.push([stream, reason]);
      });
      assert.deepEqual(await c.invoke('Subscribe', s, 1), { stream: s, version: 1 });
      assert.equal((await publish(srv, s, { type: 'third', data: 3 })).status, 201);
      // fire-and-forget: appended, nothing comes back
      await c.send('Publish', s, { type: 'fourth', data: 4 });
      await waitFor(() => st.items.length >= 4 && pushed.length >= 3, 5000, 'live events in both styles');

      await assert.rejects(c.invoke('Publish', s, { data: 1 }), (e) => e.message.startsWith('InvalidEvent: '), 'an event without a type');
      await assert.rejects(c.invoke('Nope', s), (e) => e.message === "Unknown hub method 'Nope'", 'an unknown method');

      // push Subscribe + Unsubscribe on a second stream: nothing arrives after Unsubscribe
      const u = uniqueStream('unsub');
      const uGot = [];
      c.on('event', (r) => {
        if (r.stream === u) uGot.push(r.version);
      });
      assert.deepEqual(await c.invoke('Subscribe', u), { stream: u, version: 0 });
      await c.invoke('Publish', u, { type: 'u', data: 1 });
      await waitFor(() => uGot.length >= 1, 5000, 'the live event on the second stream');
      assert.equal(await c.invoke('Unsubscribe', u), true);
      assert.equal(await c.invoke('Unsubscribe', u), false, 'nothing left to remove');
      await c.invoke('Publish', u, { type: 'u', data: 2 });
      await new Promise((r) => setTimeout(r, 150));
      assert.deepEqual(uGot, [1], 'no event after Unsubscribe');
      assert.equal(await c.invoke('CloseStream', s), true);
      const items = await withTimeout(st.done, 5000, 'the streaming subscription to complete after CloseStream');
      assertSequence(assert, items, 0, 4);
      assert.deepEqual(items[0].data, DATA);
      await waitFor(() => ended.length >= 1, 5000, "the push subscription's `closed` invocation");
      assert.deepEqual(ended, [[s, 'closed']]);
      assertSequence(assert, pushed, 1, 3);
      const all = await readAll(srv, s);
      assert.deepEqual(items.map((r) => r.id), all.map((r) => r.id), 'streamed records are the stored ones');
      assert.deepEqual(items, all, 'streamed records equal the stored ones field by field');

      await c.stop();
      assert.equal(c.state, 'Disconnected');
      assert.deepEqual(await withTimeout(c.closeArgs, 5000, 'onclose after stop()'), [undefined], 'stop() calls onclose(undefined)');
    }), () => proxy.close());
  });
}

test('hub method errors have the documented texts', async () => {
  const c = hub(srv.url);
  await explain(c, async () => {
    await c.start();
    const s = uniqueStream('err');
    const msg = async (p) => {
      try {
        await p;
      } catch (e) {
        return e.message;
      }
      throw new Error('expected the invocation to fail');
    };
    await c.invoke('Publish', s, { type: 't', data: 1 });
    assert.equal(await msg(c.invoke('Publish', s, { type: 't', data: 2 }, 5)), 'WrongExpectedVersion: expected 5, actual 1');
    assert.equal(await msg(c.invoke('Publish', uniqueStream('new'), { type: 't', data: 1 }, 3)), 'WrongExpectedVersion: expected 3, actual 0');
    assert.equal((await c.invoke('Publish', s, { type: 't', data: 2 }, 1)).lastVersion, 2);
    assert.equal(await msg(c.invoke('Publish', 'a/b', { type: 't' })), 'InvalidStreamName');
    assert.equal(await msg(c.invoke('Publish', '$all', { type: 't' })), 'InvalidStreamName');
    assert.equal(await msg(c.invoke('Publish', '', { type: 't' })), 'InvalidStreamName');
    assert.equal(await msg(c.invoke('Publish', '$x', { type: 't' })), 'InvalidStreamName');
    assert.match(await msg(c.invoke('Publish', s, { data: 1 })), /^InvalidEvent: .*type/);
    assert.match(await msg(c.invoke('Publish', s, [])), /^InvalidEvent: /);
    assert.equal(await msg(c.invoke('Nope', 1)), "Unknown hub method 'Nope'");
    assert.equal(await msg(c.invoke('Publish', s)), "Failed to invoke 'Publish' due to an error on the server.");
    assert.equal(await msg(c.invoke('Publish', 7, { type: 't' })), "Failed to invoke 'Publish' due to an error on the server.");
    assert.equal(await msg(c.invoke('Read', s, 'x')), "Failed to invoke 'Read' due to an error on the server.");
    // the argument count is bound before the method looks at its arguments (as ASP.NET does)
    assert.equal(await msg(c.invoke('Publish', '$x')), "Failed to invoke 'Publish' due to an error on the server.");
    assert.equal(await msg(c.invoke('GetStream', 'a/b', 1)), "Failed to invoke 'GetStream' due to an error on the server.");
    const none = uniqueStream('none');
    assert.equal(await msg(c.invoke('GetStream', none)), `NotFound: ${none}`);
    assert.equal(await msg(c.invoke('CloseStream', none)), `NotFound: ${none}`);
    const stream = streamItems(c, 'Publish', s, { type: 't' });
    await assert.rejects(withTimeout(stream.done, 5000, 'the streaming invocation of Publish to fail'), (e) => e.message === "The client attempted to invoke the non-streaming 'Publish' method with a streaming invocation.");
    await c.invoke('CloseStream', s);
    assert.equal(await msg(c.invoke('Publish', s, { type: 't' })), `StreamClosed: ${s}`);
    // names match case-insensitively
    const t = uniqueStream('case');
    assert.equal((await c.invoke('PUBLISH', t, { type: 't', data: 1 })).lastVersion, 1);
    assert.equal((await c.invoke('publish', t, { type: 't', data: 2 })).lastVersion, 2);
    assert.equal((await c.invoke('getstream', t)).version, 2);
    assert.deepEqual(await c.invoke('Read', uniqueStream('none')), []);
    assert.deepEqual((await c.invoke('read', t, 1, 1)).map((r) => r.version), [2]);
    // idempotent publish with a client id
    const id = '7d444840-9dc0-11d1-b245-5ffdce74fad2';
    const r1 = await c.invoke('Publish', t, { type: 't', data: 3, id });
    const r2 = await c.invoke('Publish', t, { type: 't', data: 3, id });
    assert.deepEqual(r2, r1);
    assert.equal((await c.invoke('GetStream', t)).version, 3);
    const withId = await c.invoke('Read', t, 2);
    assert.deepEqual(withId.map((r) => [r.version, r.id]), [[3, id]], 'the client id is the record id, stored once');
    // send() of an unknown method and of a failing call: nothing comes back, the connection lives
    await c.send('Nope');
    await c.send('Publish', 'a/b', { type: 't' });
    assert.equal((await c.invoke('GetStream', t)).version, 3);
    assert.equal(c.state, 'Connected');
    await c.stop();
  });
});

test('push subscriptions: live-only version, Unsubscribe, replacement, deletion', async () => {
  const c = hub(srv.url);
  await explain(c, async () => {
    await c.start();
    const s = uniqueStream('push');
    await publish(srv, s, [{ type: 't', data: 1 }, { type: 't', data: 2 }]);
    const got = [];
    const ended = [];
    c.on('event', (r) => {
      if (r.stream === s) got.push(r.version);
    });
    c.on('closed', (a, b) => {
      ended.push([a, b]);
    });
    // live only: the answer names the version it continues after, nothing older arrives
    assert.deepEqual(await c.invoke('Subscribe', s), { stream: s, version: 2 });
    await publish(srv, s, { type: 't', data: 3 });
    await waitFor(() => got.length >= 1, 5000, 'the live event');
    assert.deepEqual(got, [3]);
    // a second push Subscribe replaces the first: replay from 1, no duplicates of a running sub
    assert.deepEqual(await c.invoke('Subscribe', s, 1), { stream: s, version: 1 });
    await waitFor(() => got.length >= 3, 5000, 'the replay of 2 and 3');
    assert.deepEqual(got, [3, 2, 3]);
    assert.equal(await c.invoke('Unsubscribe', s), true);
    assert.equal(await c.invoke('Unsubscribe', s), false);
    await publish(srv, s, { type: 't', data: 4 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(got, [3, 2, 3], 'nothing after Unsubscribe');
    // deleted streams end push subscriptions with `closed(stream, "deleted")`
    const d = uniqueStream('del');
    await publish(srv, d, { type: 't', data: 1 });
    await c.invoke('Subscribe', d, 0);
    const st = streamItems(c, 'Subscribe', d, 0);
    // (a deletion removes the events: wait until the item arrived, else it may never come)
    await waitFor(() => st.items.length === 1, 5000, 'the streamed event before the deletion');
    assert.equal((await srv.request('DELETE', `/api/streams/${d}`)).status, 204);
    await waitFor(() => ended.length >= 1, 5000, 'the deleted notice');
    assert.deepEqual(ended, [[d, 'deleted']]);
    assert.equal((await withTimeout(st.done, 5000, 'the streaming subscription to complete after the deletion')).length, 1, 'the streaming subscription completes too');
    await c.stop();
  });
});

test('cancelling a streaming subscription stops its items; the connection goes on', async () => {
  const c = hub(srv.url, { transport: 'WebSockets', msgpack: true });
  await explain(c, async () => {
    await c.start();
    const s = uniqueStream('cancel');
    await publish(srv, s, { type: 't', data: 1 });
    const st = streamItems(c, 'Subscribe', s, 0);
    await waitFor(() => st.items.length === 1, 5000, 'the first item');
    st.dispose();
    await new Promise((r) => setTimeout(r, 200));
    await publish(srv, s, [{ type: 't', data: 2 }, { type: 't', data: 3 }]);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(st.items.length, 1, 'no items after the cancel');
    const again = streamItems(c, 'Subscribe', s, 1);
    await waitFor(() => again.items.length === 2, 5000, 'a new subscription');
    assertSequence(assert, again.items, 1, 2);
    await c.stop();
  });
});

test('$all: positions in order, replay then live', async () => {
  const c = hub(srv.url);
  await explain(c, async () => {
    await c.start();
    const a = uniqueStream('alla');
    const b = uniqueStream('allb');
    const first = (await publish(srv, a, { type: 't', data: 1 })).json.firstPosition;
    const st = streamItems(c, 'Subscribe', '$all', first - 1);
    await publish(srv, b, { type: 't', data: 2 });
    await publish(srv, a, { type: 't', data: 3 });
    await waitFor(() => st.items.filter((r) => r.stream === a || r.stream === b).length >= 3, 5000, '$all items');
    const mine = st.items.filter((r) => r.stream === a || r.stream === b);
    assert.deepEqual(mine.map((r) => [r.stream, r.version]), [[a, 1], [b, 1], [a, 2]]);
    assertSequence(assert, st.items, first - 1, st.items.length, 'position');
    const read = await c.invoke('Read', '$all', first - 1, 2);
    assert.deepEqual(read.map((r) => r.position), [first, first + 1]);
    // push style on $all: `from` is a position too; the answer names it
    const pushed = [];
    c.on('event', (r) => {
      pushed.push(r);
    });
    assert.deepEqual(await c.invoke('Subscribe', '$all', first), { stream: '$all', version: first });
    const last = (await publish(srv, b, { type: 't', data: 4 })).json.lastPosition;
    await waitFor(() => pushed.some((r) => r.position === last), 5000, `the pushed $all event at position ${last}`);
    assertSequence(assert, pushed.filter((r) => r.position <= last), first, last - first, 'position');
    const pm = pushed.filter((r) => r.stream === a || r.stream === b);
    assert.deepEqual(pm.map((r) => [r.stream, r.version, r.data]), [[b, 1, 2], [a, 2, 3], [b, 2, 4]]);
    assert.equal(await c.invoke('Unsubscribe', '$all'), true);
    await c.stop();
  });
});

test('2,000 events published concurrently reach late subscribers in order, once', async () => {
  const c = hub(srv.url);
  const m = hub(srv.url, { msgpack: true });
  await explain(c, async () => {
    await c.start();
    await m.start();
    const s = uniqueStream('order');
    const N = 2000;
    const publishing = (async () => {
      for (let i = 0; i < N; i += 50) {
        const batch = Array.from({ length: 50 }, (_, k) => ({ type: 't', data: { i: i + k } }));
        const r = await publish(srv, s, batch);
        assert.equal(r.status, 201);
      }
    })();
    // subscribe while the publisher runs: replay from 0 meets live delivery somewhere
    await new Promise((r) => setTimeout(r, 30));
    const st = streamItems(c, 'Subscribe', s, 0);
    const pushed = [];
    const committed = []; // at every 100th event received, the HTTP API must already have it
    m.on('event', (r) => {
      pushed.push(r);
      if (r.version % 100 === 0)
        committed.push(request(srv.url, 'GET', `/api/streams/${s}/events?from=${r.version - 1}&limit=1`).then((x) => [r, x]));
    });
    await m.invoke('Subscribe', s, 0);
    await publishing;
    await waitFor(() => st.items.length >= N && pushed.length >= N, 20000, `${N} events in both styles`);
    await new Promise((r) => setTimeout(r, 200));
    assertSequence(assert, st.items, 0, N);
    assertSequence(assert, pushed, 0, N);
    st.items.forEach((r, i) => assert.equal(r.data.i, i));
    pushed.forEach((r, i) => assert.equal(r.data.i, i));
    assert.equal(committed.length, N / 100);
    for (const [r, x] of await Promise.all(committed)) {
      assert.equal(x.status, 200);
      assert.deepEqual(x.json.events.map((e) => [e.version, e.id]), [[r.version, r.id]], `event ${r.version} was committed before it was delivered`);
    }
    // what the subscribers got is what was committed
    const stored = await readAll(srv, s);
    assert.equal(stored.length, N);
    assert.deepEqual(st.items, stored, 'streamed records equal the HTTP read, field by field');
    assert.deepEqual(pushed.map((r) => r.id), stored.map((r) => r.id), 'pushed ids equal the HTTP read');
    // Read: 100 by default, at most 1000
    assertSequence(assert, await c.invoke('Read', s), 0, 100);
    assertSequence(assert, await c.invoke('Read', s, 0, 5000), 0, 1000);
    assertSequence(assert, await m.invoke('Read', s, 1500, 1000), 1500, 500);
    await c.stop();
    await m.stop();
  });
});

test('a closed stream with nothing left ends a new subscription at once', async () => {
  const c = hub(srv.url, { transport: 'LongPolling' });
  await explain(c, async () => {
    await c.start();
    const s = uniqueStream('closed');
    await publish(srv, s, { type: 't', data: 1 });
    assert.equal((await closeStream(srv, s)).status, 200);
    const st = streamItems(c, 'Subscribe', s, 1);
    assert.deepEqual(await withTimeout(st.done, 5000, 'a subscription from the last version of a closed stream to complete'), []);
    const all = streamItems(c, 'Subscribe', s, 0);
    assert.deepEqual((await withTimeout(all.done, 5000, 'a subscription from 0 of a closed stream to complete')).map((r) => r.data), [1]);
    await c.stop();
  });
});
