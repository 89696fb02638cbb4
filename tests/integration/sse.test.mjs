// Server-Sent Events: GET /api/streams/{s}/events with Accept: text/event-stream (API.md "Server-Sent
// Events" and the decisions in the test brief).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { EventSource } from 'eventsource';
import { readFileSync } from 'node:fs';
import {
  startServer,
  killAll,
  streamPath,
  show,
  uniqueStream,
  closeStream,
  sleep,
  until,
  withTimeout,
  guarded,
} from './lib/server.mjs';

const PING_MS = 400;
let srv;
const subs = [];
/** Subscribe on the main server; every subscription is closed in `after`. */
function sub(stream, opts = {}) {
  const s = srv.subscribe(stream, opts);
  subs.push(s);
  return s;
}

before(async () => {
  srv = await startServer({ name: 'sse', flags: ['--sse-ping-ms', PING_MS] });
});
after(async () => {
  for (const s of subs) s.close();
  try {
    await srv?.stop();
  } finally {
    killAll();
  }
});

async function publishN(stream, n, { type = 'e', start = 1, server = srv } = {}) {
  const r = await server.publish(stream, Array.from({ length: n }, (_, i) => ({ type, data: { n: start + i } })));
  assert.equal(r.status, 201, `publish: ${show(r)}`);
  return r.json;
}
const ids = (s) => s.events.map((b) => Number(b.id));
const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);

describe('response and framing', () => {
  test('200 text/event-stream; the body starts with "retry: 3000" and a blank line', async () => {
    const s = uniqueStream('pre');
    await publishN(s, 1);
    const c = sub(s, { from: 0 });
    const r = await c.ready();
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/event-stream/);
    await c.waitForEvents(1);
    assert.ok(c.rawHead.startsWith('retry: 3000\n\n'), `first bytes: ${JSON.stringify(c.rawHead.slice(0, 40))}`);
  });

  test('each event is "id: <version>\\nevent: <type>\\ndata: <EventRecord JSON on one line>\\n\\n"', async () => {
    const s = uniqueStream('fmt');
    assert.equal((await srv.publish(s, [{ type: 'a.b', data: { x: [1, 2], s: 'line1\nline2' }, metadata: { m: true } }, { type: 'c' }])).status, 201);
    const records = (await srv.get(streamPath(s, '/events'))).json.events;
    const c = sub(s, { from: 0 });
    await c.waitForEvents(2);
    const expected =
      'retry: 3000\n\n' +
      `id: 1\nevent: a.b\ndata: ${JSON.stringify(records[0])}\n\n` +
      `id: 2\nevent: c\ndata: ${JSON.stringify(records[1])}\n\n`;
    // byte-exact apart from JSON key order/whitespace: compare the blocks structurally
    assert.deepEqual(
      c.events.map((b) => b.lines.length),
      [3, 3],
      'exactly three lines per event block (id, event, data: the JSON is on one line)',
    );
    assert.deepEqual(
      c.events.map((b) => [b.id, b.event, b.json]),
      [
        ['1', 'a.b', records[0]],
        ['2', 'c', records[1]],
      ],
      'data is the same EventRecord that GET returns',
    );
    assert.equal(c.rawHead.slice(0, expected.length).replace(/data: .*\n/g, 'data: …\n'), expected.replace(/data: .*\n/g, 'data: …\n'));
  });

  test('--sse-retry-ms sets the retry line; with the default 15 s ping no ping comes early', async () => {
    const other = await startServer({ name: 'retry', flags: ['--sse-retry-ms', '1234'] });
    try {
      const s = uniqueStream('retry');
      await publishN(s, 1, { server: other });
      const c = other.subscribe(s, { from: 0 });
      try {
        await c.waitForEvents(1);
        assert.ok(c.rawHead.startsWith('retry: 1234\n\n'), `first bytes: ${JSON.stringify(c.rawHead.slice(0, 40))}`);
        await sleep(1200);
        assert.deepEqual(c.comments, [], 'no ping within 1.2 s when --sse-ping-ms is the default 15000');
      } finally {
        c.close();
      }
    } finally {
      await other.stop();
    }
  });

  test('a malformed Last-Event-ID or from → 400', async () => {
    const s = uniqueStream('badid');
    await publishN(s, 1);
    for (const opts of [{ lastEventId: 'abc' }, { from: 'x1' }, { from: -3 }]) {
      const c = sub(s, opts);
      const r = await withTimeout(c.response, 5000, 'response');
      await c.waitForEnd(5000).catch(() => {});
      assert.equal(r.status, 400, `${JSON.stringify(opts)}: ${r.status} ${c.errorText}`);
      assert.equal(JSON.parse(c.errorText).error, 'BadRequest');
    }
  });
});

describe('resume point', () => {
  test('a long replay mixing small and 30 KB events arrives whole and in order', async () => {
    // catch-up reads 1000 events at a time and reads the next page ahead while a stream's pages
    // come back full; big events end a page early (by bytes), which must drop the page read
    // ahead rather than skip what lies between
    const s = uniqueStream('mixed-replay');
    for (let i = 0; i < 3; i++) await publishN(s, 500, { start: i * 500 + 1 });
    const big = 'y'.repeat(30000);
    for (let i = 0; i < 12; i++) {
      const r = await srv.publish(s, Array.from({ length: 25 }, (_, k) => ({ type: 'big', data: { n: 1501 + i * 25 + k, big } })));
      assert.equal(r.status, 201, show(r));
    }
    for (let i = 0; i < 3; i++) await publishN(s, 500, { start: 1801 + i * 500 });
    const c = sub(s, { from: 0 });
    await c.waitForEvents(3300, 30000);
    assert.deepEqual(ids(c), range(1, 3300));
    assert.deepEqual(c.events.map((b) => b.json.data.n), range(1, 3300));
    c.close();
  });
  test('no Last-Event-ID and no from: live only (events committed after the subscribe)', async () => {
    const s = uniqueStream('live');
    await publishN(s, 3);
    const c = sub(s);
    await c.established();
    await publishN(s, 2, { start: 4 });
    await c.waitForEvents(2);
    await sleep(150);
    assert.deepEqual(ids(c), [4, 5]);
    assert.deepEqual(c.events.map((b) => b.json.data.n), [4, 5]);
  });

  test('live only: the first event committed after the response started is never missed (100 rounds)', async () => {
    const misses = [];
    for (let round = 0; round < 100; round++) {
      const s = uniqueStream(`live1-${round}`);
      if (round % 2) await publishN(s, 1); // an existing stream, and one that does not exist yet
      const c = sub(s);
      await c.established();
      const r = await publishN(s, 1, { start: 100 });
      await c
        .waitFor((x) => x.events.length >= 1, 1500, 'the event')
        .then(
          () => {
            if (Number(c.events[0].id) !== r.firstVersion) misses.push(`round ${round}: got id ${c.events[0].id}, expected ${r.firstVersion}`);
          },
          () => misses.push(`round ${round}: version ${r.firstVersion} never arrived`),
        );
      c.close();
    }
    assert.deepEqual(misses, [], 'a subscriber that has its response must get every event committed after that');
  });

  test('?from=N replays versions > N, then continues live', async () => {
    const s = uniqueStream('from');
    await publishN(s, 10);
    const c = sub(s, { from: 6 });
    await c.waitForEvents(4);
    await publishN(s, 3, { start: 11 });
    await c.waitForEvents(7);
    await sleep(150);
    assert.deepEqual(ids(c), range(7, 13));
  });

  test('?from=0 replays everything', async () => {
    const s = uniqueStream('from0');
    await publishN(s, 5);
    const c = sub(s, { from: 0 });
    await c.waitForEvents(5);
    assert.deepEqual(ids(c), range(1, 5));
  });

  test('Last-Event-ID wins over ?from', async () => {
    const s = uniqueStream('leid');
    await publishN(s, 10);
    const c = sub(s, { from: 2, lastEventId: 7 });
    await c.waitForEvents(3);
    await sleep(150);
    assert.deepEqual(ids(c), [8, 9, 10]);
    const d = sub(s, { lastEventId: 9 });
    await d.waitForEvents(1);
    await publishN(s, 1, { start: 11 });
    await d.waitForEvents(2);
    assert.deepEqual(ids(d), [10, 11]);
  });

  test('$all: ids are positions and the resume point is a position', async () => {
    const a = uniqueStream('alla');
    const b = uniqueStream('allb');
    const ra = await publishN(a, 2);
    const rb = await publishN(b, 1);
    const p0 = ra.firstPosition - 1;
    const c = sub('$all', { from: p0 });
    await c.waitForEvents(3);
    const live = sub('$all');
    await live.established();
    const ra2 = await publishN(a, 1, { start: 3 });
    await c.waitForEvents(4);
    await live.waitForEvents(1);
    const got = c.events.slice(0, 4).map((x) => [Number(x.id), x.json.position, x.json.stream, x.json.version]);
    assert.deepEqual(got, [
      [p0 + 1, p0 + 1, a, 1],
      [p0 + 2, p0 + 2, a, 2],
      [rb.firstPosition, rb.firstPosition, b, 1],
      [ra2.firstPosition, ra2.firstPosition, a, 3],
    ]);
    assert.deepEqual(live.events.map((x) => [Number(x.id), x.json.stream]), [[ra2.firstPosition, a]]);
    const d = sub('$all', { lastEventId: rb.firstPosition });
    await d.waitForEvents(1);
    assert.equal(Number(d.events[0].id), ra2.firstPosition);
  });

  test('replay and live join with no gap and no duplicate (500 published, from=250, 500 more concurrently)', async () => {
    for (let round = 0; round < 3; round++) {
      const s = uniqueStream(`join${round}`);
      await publishN(s, 500);
      // 4 concurrent publishers × 25 POSTs × 5 events, started together with the subscription
      const publishers = Array.from({ length: 4 }, async (_, p) => {
        if (round === 1) await sleep(5 * p);
        for (let i = 0; i < 25; i++) {
          const r = await srv.publish(s, Array.from({ length: 5 }, () => ({ type: 'e', data: { p } })));
          assert.equal(r.status, 201, show(r));
        }
      });
      if (round === 2) await sleep(10); // publishing already under way when subscribing
      const c = sub(s, { from: 250, parseData: true });
      await Promise.all(publishers);
      await c.waitForEvents(750, 15000);
      await sleep(200);
      const got = ids(c);
      const expect = range(251, 1000);
      if (JSON.stringify(got) !== JSON.stringify(expect)) {
        const firstBad = got.findIndex((v, i) => v !== expect[i]);
        assert.fail(
          `round ${round}: got ${got.length} events, first difference at index ${firstBad}: ` +
            `got ${got.slice(Math.max(0, firstBad - 2), firstBad + 3)} expected ${expect.slice(Math.max(0, firstBad - 2), firstBad + 3)}`,
        );
      }
      assert.deepEqual(c.events.map((b) => b.json.version), expect, 'data.version matches id');
      c.close();
    }
  });
});

describe('ping', () => {
  test(`": ping" comment after --sse-ping-ms (${PING_MS}) of silence, repeated`, async () => {
    const s = uniqueStream('ping');
    await publishN(s, 1);
    const c = sub(s, { from: 0 });
    await c.waitForEvents(1);
    const t0 = Date.now();
    await c.waitFor((x) => x.comments.length >= 1, PING_MS * 4 + 1000, 'the first ping');
    const t1 = Date.now() - t0;
    await c.waitFor((x) => x.comments.length >= 2, PING_MS * 4 + 1000, 'the second ping');
    assert.ok(t1 >= PING_MS * 0.5, `first ping after ${t1} ms of silence, before --sse-ping-ms ${PING_MS}`);
    const pings = c.blocks.filter((b) => b.comments.length);
    for (const b of pings) assert.deepEqual(b.lines, [': ping'], 'a ping is exactly ": ping" and a blank line');
    assert.ok(c.rawHead.includes('\n: ping\n\n'));
  });

  test('a ping only ever follows --sse-ping-ms of silence (none while events keep flowing)', async () => {
    const s = uniqueStream('noping');
    const c = sub(s);
    await c.established();
    for (let i = 0; i < 12; i++) {
      await publishN(s, 1, { start: i + 1 });
      await sleep(PING_MS / 4);
    }
    await c.waitForEvents(12);
    await sleep(PING_MS * 2); // and now some silence: pings again
    await c.waitFor((x) => x.comments.length >= 1, PING_MS * 4, 'a ping after the events stopped');
    const early = [];
    for (let i = 1; i < c.blocks.length; i++) {
      const b = c.blocks[i];
      const silence = b.at - c.blocks[i - 1].at;
      // 0.75: timer granularity and delivery jitter; a ping on a fixed timer regardless of traffic
      // comes after ~PING_MS / 4 here
      if (b.comments.length && silence < PING_MS * 0.75) early.push(`ping after ${silence} ms of silence`);
    }
    assert.deepEqual(early, [], `pings while events were flowing every ~${PING_MS / 4} ms`);
  });
});

describe('?types filter', () => {
  test('delivers only the listed types; ids stay the stream versions (replay and live)', async () => {
    const s = uniqueStream('types');
    const r = await srv.publish(s, ['a', 'b', 'c', 'a', 'b'].map((type) => ({ type })));
    assert.equal(r.status, 201);
    const c = sub(s, { from: 0, types: ['a', 'c'] });
    await c.waitForEvents(3);
    assert.equal(
      (await srv.publish(s, ['b', 'c', 'x', 'a'].map((type) => ({ type })))).status,
      201,
    );
    await c.waitForEvents(5);
    await sleep(150);
    assert.deepEqual(c.events.map((b) => [Number(b.id), b.event]), [
      [1, 'a'],
      [3, 'c'],
      [4, 'a'],
      [7, 'c'],
      [9, 'a'],
    ]);
  });
  test('on $all the ids are positions', async () => {
    const s = uniqueStream('typesall');
    const t = `only-${s}`;
    const r = await srv.publish(s, [{ type: 'z' }, { type: t }, { type: 'z' }, { type: t }]);
    const c = sub('$all', { from: r.json.firstPosition - 1, types: t });
    await c.waitForEvents(2);
    await sleep(100);
    assert.deepEqual(c.events.map((b) => [Number(b.id), b.json.version]), [
      [r.json.firstPosition + 1, 2],
      [r.json.firstPosition + 3, 4],
    ]);
  });
});

describe('end of stream', () => {
  const closeBlockOk = (c, s, reason) => {
    const cb = c.closeBlock;
    assert.ok(cb, `a close block: ${c.describe()}`);
    assert.deepEqual(cb.lines[0], 'event: close');
    assert.equal(cb.id, undefined, 'the close block has no id (it must not move Last-Event-ID)');
    assert.deepEqual(cb.json, { stream: s, reason });
    assert.equal(c.blocks[c.blocks.length - 1], cb, 'the close block is the last block');
    assert.equal(c.parser.pending, '', 'nothing after the close block');
  };

  test('close → "event: close" / data {"stream","reason":"closed"}, then the response ends', async () => {
    const s = uniqueStream('endclose');
    await publishN(s, 2);
    const c = sub(s, { from: 0 });
    await c.waitForEvents(2);
    assert.equal((await closeStream(srv, s)).status, 200);
    await c.waitForEnd(5000);
    assert.deepEqual(ids(c), [1, 2]);
    closeBlockOk(c, s, 'closed');
  });

  test('delete → reason "deleted", then the response ends', async () => {
    const s = uniqueStream('enddel');
    await publishN(s, 2);
    const c = sub(s, { from: 0 });
    const live = sub(s);
    await c.waitForEvents(2);
    await live.established();
    assert.equal((await srv.del(streamPath(s))).status, 204);
    await c.waitForEnd(5000);
    await live.waitForEnd(5000);
    closeBlockOk(c, s, 'deleted');
    closeBlockOk(live, s, 'deleted');
  });

  test('reconnecting to a closed stream with nothing left gets the close block at once', async () => {
    const s = uniqueStream('reclosed');
    await publishN(s, 3);
    assert.equal((await closeStream(srv, s)).status, 200);
    for (const opts of [{ lastEventId: 3 }, { from: 3 }, {}]) {
      const t0 = Date.now();
      const c = sub(s, opts);
      await c.waitForEnd(3000);
      assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
      assert.deepEqual(ids(c), [], JSON.stringify(opts));
      closeBlockOk(c, s, 'closed');
    }
    const all = sub(s, { lastEventId: 1 });
    await all.waitForEnd(3000);
    assert.deepEqual(ids(all), [2, 3], 'the rest first, then close');
    closeBlockOk(all, s, 'closed');
  });

  test('a stream closed while a subscriber is catching up: the remaining events, then close', async () => {
    const s = uniqueStream('catchclose');
    const N = 6000;
    const pad = 'p'.repeat(800);
    for (let i = 0; i < N; i += 500) {
      const r = await srv.publish(s, Array.from({ length: 500 }, (_, k) => ({ type: 'e', data: { n: i + k + 1, pad } })));
      assert.equal(r.status, 201);
    }
    const c = sub(s, { from: 0, parseData: false });
    await c.waitForEvents(1, 5000);
    c.pause(); // ~5 MB still to come: the subscription is in catch-up while the stream closes
    const closed = await closeStream(srv, s);
    assert.equal(closed.status, 200);
    assert.equal(closed.json.version, N);
    await sleep(200);
    c.resume();
    await c.waitForEnd(20000);
    assert.equal(c.events.length, N, c.describe());
    assert.deepEqual(ids(c), range(1, N));
    closeBlockOk(c, s, 'closed');
  });
});

describe('subscribers', () => {
  test('stream info counts SSE subscribers', async () => {
    const s = uniqueStream('count');
    await publishN(s, 1);
    const a = sub(s);
    const b = sub(s, { from: 0 });
    await a.established();
    await b.waitForEvents(1);
    await until(async () => (await srv.get(streamPath(s))).json.subscribers === 2, { what: 'subscribers = 2' });
    a.close();
    await until(async () => (await srv.get(streamPath(s))).json.subscribers === 1, { what: 'subscribers = 1 after a disconnect' });
    b.close();
    await until(async () => (await srv.get(streamPath(s))).json.subscribers === 0, { what: 'subscribers = 0' });
  });

  test('a client that hangs up is let go at once, and costs no CPU (default 15 s ping)', async () => {
    // lws does not read a connection whose answer is still streaming: before the hang-up watch,
    // the IO thread spun on the pending EOF until the next ping's write failed
    const own = await startServer({ name: 'hangup' });
    await guarded(async () => {
      const s = uniqueStream('hangup');
      const cpu = () => {
        const f = readFileSync(`/proc/${own.pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return (Number(f[11]) + Number(f[12])) / 100; // utime + stime, in clock ticks of 10 ms
      };
      for (let round = 0; round < 3; round++) {
        const c = own.subscribe(s, { from: 0 });
        await c.established();
        const r = await own.publish(s, { type: 'e' });
        assert.equal(r.status, 201);
        await c.waitForEvents(1);
        c.close();
        await until(async () => (await own.get(streamPath(s))).json.subscribers === 0,
          { timeoutMs: 2000, what: 'the subscriber count to drop within 2 s of the hang-up' });
        const before = cpu();
        await sleep(1500);
        const used = cpu() - before;
        assert.ok(used < 0.5, `the idle server used ${used.toFixed(2)} CPU-s in 1.5 s after a client hung up`);
      }
    }, () => own.stop());
  });

  test('many subscribers of one stream each get the same sequence', async () => {
    const s = uniqueStream('many');
    const cs = Array.from({ length: 20 }, () => sub(s, { from: 0 }));
    await Promise.all(cs.map((c) => c.ready()));
    for (let i = 0; i < 10; i++) await publishN(s, 20, { start: i * 20 + 1 });
    await Promise.all(cs.map((c) => c.waitForEvents(200, 10000)));
    for (const c of cs) assert.deepEqual(ids(c), range(1, 200));
    cs.forEach((c) => c.close());
  });
});

describe('EventSource (the eventsource package, browser semantics)', () => {
  test('receives events; after the server ends the response it reconnects with Last-Event-ID and misses nothing', async () => {
    // server 1 advertises retry 1500 ms; it is stopped (ending the response), restarted on the same
    // port and database, and events 6..8 are published before the client comes back. Only a
    // reconnect that sends Last-Event-ID: 5 (the URL has no ?from) can deliver them.
    const first = await startServer({ name: 'es1', flags: ['--sse-retry-ms', '1500'] });
    let second;
    const s = uniqueStream('es');
    const requests = [];
    const received = [];
    const errors = [];
    const es = new EventSource(`${first.url}${streamPath(s, '/events')}`, {
      fetch: (input, init) => {
        const h = new Headers(init?.headers);
        requests.push({ lastEventId: h.get('last-event-id'), accept: h.get('accept'), at: Date.now() });
        return fetch(input, init);
      },
    });
    await guarded(async () => {
      es.addEventListener('e', (m) => received.push({ id: m.lastEventId, data: JSON.parse(m.data) }));
      es.addEventListener('error', (e) => errors.push({ message: e.message, code: e.code, at: Date.now() }));
      await withTimeout(new Promise((r) => es.addEventListener('open', r, { once: true })), 5000, 'EventSource open');
      await sleep(100);
      await publishN(s, 5, { server: first });
      await until(() => received.length >= 5, { what: `5 events (got ${received.length})` });
      assert.deepEqual(received.map((x) => x.id), ['1', '2', '3', '4', '5']);

      await first.stop({ keepDir: true, timeoutMs: 10000 }); // SIGTERM with an SSE client attached: exit 0
      second = await startServer({ name: 'es2', dir: first.dir, port: first.port, flags: ['--sse-retry-ms', '1500'] });
      await publishN(s, 3, { start: 6, server: second });
      const reconnectsBefore = requests.length;
      await until(() => received.length >= 8, { timeoutMs: 10000, what: 'events 6..8 after the reconnect' }).catch((e) => {
        e.message += ` (got ids ${received.map((x) => x.id)}; requests ${JSON.stringify(requests)}; errors ${JSON.stringify(errors)}; readyState ${es.readyState})`;
        throw e;
      });
      await sleep(200);
      assert.deepEqual(received.map((x) => x.id), ['1', '2', '3', '4', '5', '6', '7', '8'], 'no gap, no duplicate');
      assert.deepEqual(received.map((x) => x.data.version), [1, 2, 3, 4, 5, 6, 7, 8]);
      assert.equal(requests[0].lastEventId, null, 'the first request has no Last-Event-ID');
      assert.equal(requests[0].accept, 'text/event-stream');
      assert.ok(requests.length > 1 && requests.length >= reconnectsBefore, 'reconnected');
      assert.equal(requests[requests.length - 1].lastEventId, '5', 'the reconnect carries Last-Event-ID: 5');
      assert.ok(errors.length >= 1, 'the client saw the connection end');
    },
    () => es.close(),
    () => first.dispose(),
    () => second?.stop());
  });

  test('a closed stream: the close event arrives as a named event', async () => {
    const s = uniqueStream('esclose');
    await publishN(s, 2);
    const es = new EventSource(`${srv.url}${streamPath(s, '/events')}?from=0`);
    try {
      const got = [];
      const closeData = new Promise((r) => es.addEventListener('close', (m) => r(JSON.parse(m.data)), { once: true }));
      es.addEventListener('e', (m) => got.push(m.lastEventId));
      await withTimeout(new Promise((r) => es.addEventListener('open', r, { once: true })), 5000, 'open');
      await until(() => got.length === 2, { what: 'two events' });
      assert.equal((await closeStream(srv, s)).status, 200);
      assert.deepEqual(await withTimeout(closeData, 5000, 'the close event'), { stream: s, reason: 'closed' });
      assert.deepEqual(got, ['1', '2']);
    } finally {
      es.close();
    }
  });
});
