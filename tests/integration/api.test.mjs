// HTTP API: every route, status code and body of the contract (API.md "Streams and events",
// "HTTP API", "Limits") plus the decisions recorded where API.md is silent.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer,
  killAll,
  streamPath,
  show,
  readAll,
  uuid,
  uniqueStream,
  closeStream,
  RawConn,
  withTimeout,
  ISO_UTC_MICROS,
  UUID_RE,
} from './lib/server.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'api' });
});
after(async () => {
  try {
    await srv?.stop();
  } finally {
    killAll();
  }
});

/** Assert an error response: status, JSON content type, {"error": code, "message": "..."} */
function assertError(res, status, code, what = '') {
  assert.equal(res.status, status, `${what} expected ${status} ${code}, got ${show(res)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/, `${what} error content-type`);
  assert.ok(res.json && typeof res.json === 'object', `${what} error body is not JSON: ${res.text}`);
  assert.equal(res.json.error, code, `${what} error code in ${res.text}`);
  assert.equal(typeof res.json.message, 'string', `${what} error message in ${res.text}`);
  assert.ok(res.json.message.length > 0, `${what} empty error message`);
}

function assertCreated(res, what = 'publish') {
  assert.equal(res.status, 201, `${what}: ${show(res)}`);
  assert.match(String(res.headers['content-type']), /^application\/json/);
  return res.json;
}

async function lastPosition() {
  const r = await srv.get('/api/streams/$all/events?direction=backward&limit=1');
  assert.equal(r.status, 200, show(r));
  return r.json.events.length ? r.json.events[0].position : 0;
}

async function assertStreamAbsent(stream, what) {
  const r = await srv.get(streamPath(stream));
  assert.equal(r.status, 404, `${what}: the stream should not exist, GET info answered ${show(r)}`);
}

/** POST a raw body (string/Buffer) to a stream's events. */
function postRaw(stream, body, headers = {}) {
  return srv.request('POST', streamPath(stream, '/events'), {
    body,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

/** POST over a raw socket; resolves {conn, res} (res null if the server closed first). */
async function rawPost(server, path, body, extraHeaders = '') {
  const conn = new RawConn(server.port);
  await withTimeout(conn.connected, 5000, 'connect');
  conn.send(
    `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n${extraHeaders}\r\n`,
  );
  if (body.length) conn.send(body);
  const res = await conn.readResponse(10000);
  return { conn, res };
}

describe('health', () => {
  test('GET /healthz → 200 ok', async () => {
    const r = await srv.get('/healthz');
    assert.equal(r.status, 200, show(r));
    assert.equal(r.text.trim(), 'ok');
  });
  test('GET /readyz → 200 while the database is reachable', async () => {
    const r = await srv.get('/readyz');
    assert.equal(r.status, 200, show(r));
  });
});

describe('publish', () => {
  test('one EventInput → 201 PublishResult with the next version and position', async () => {
    const s = uniqueStream('pub1');
    const p0 = await lastPosition();
    const r = await srv.publish(s, { type: 'order.created', data: { a: 1 } });
    assert.deepEqual(assertCreated(r), {
      stream: s,
      firstVersion: 1,
      lastVersion: 1,
      firstPosition: p0 + 1,
      lastPosition: p0 + 1,
    });
  });

  test('an array → one contiguous range of versions and positions', async () => {
    const s = uniqueStream('pubarr');
    await srv.publish(s, { type: 'a' });
    const p0 = await lastPosition();
    const r = await srv.publish(s, [{ type: 'b' }, { type: 'c', data: 2 }, { type: 'd', data: [3] }]);
    assert.deepEqual(assertCreated(r), {
      stream: s,
      firstVersion: 2,
      lastVersion: 4,
      firstPosition: p0 + 1,
      lastPosition: p0 + 3,
    });
    const rd = await srv.get(streamPath(s, '/events'));
    assert.deepEqual(
      rd.json.events.map((e) => [e.version, e.position, e.type]),
      [
        [1, p0, 'a'],
        [2, p0 + 1, 'b'],
        [3, p0 + 2, 'c'],
        [4, p0 + 3, 'd'],
      ],
    );
  });

  test('EventRecord fields: stream, version, position, id (UUID), type, time (UTC µs Z), data, metadata', async () => {
    const s = uniqueStream('rec');
    const before = Date.now();
    const r = await srv.publish(s, [
      { type: 't1', data: { x: 'y' }, metadata: { who: 'me', n: 1 } },
      { type: 't2', data: null },
    ]);
    const after = Date.now();
    const res = assertCreated(r);
    const rd = await srv.get(streamPath(s, '/events'));
    assert.equal(rd.status, 200, show(rd));
    assert.match(String(rd.headers['content-type']), /^application\/json/);
    const [e1, e2] = rd.json.events;
    for (const e of [e1, e2]) {
      assert.deepEqual(Object.keys(e).sort(), ['data', 'id', 'metadata', 'position', 'stream', 'time', 'type', 'version']);
      assert.equal(e.stream, s);
      assert.match(e.id, UUID_RE, 'a server-assigned id is a UUID');
      assert.match(e.time, ISO_UTC_MICROS, 'time is ISO-8601 UTC with microseconds and Z');
      const t = Date.parse(e.time);
      assert.ok(t >= before - 2000 && t <= after + 2000, `commit time ${e.time} is not now (${new Date(before).toISOString()})`);
    }
    assert.notEqual(e1.id, e2.id, 'ids are unique');
    assert.deepEqual([e1.version, e1.position, e1.type, e1.data, e1.metadata], [1, res.firstPosition, 't1', { x: 'y' }, { who: 'me', n: 1 }]);
    assert.deepEqual([e2.version, e2.position, e2.type, e2.data, e2.metadata], [2, res.lastPosition, 't2', null, {}]);
    assert.equal(rd.json.next, 2);
  });

  test('data and metadata are stored byte-exact apart from insignificant whitespace', async () => {
    const s = uniqueStream('exact');
    const body =
      '{ "type" : "num",\n "data" : {"n": 1.0e2, "big": 12345678901234567890, "neg": -0.50E-3,\n' +
      '   "s": "caf\\u00e9 \\"q\\" \\/ ☕  two  spaces", "a": [ 1 , true , false , null , {} , [] ] },\n' +
      ' "metadata": { "k" : 1.10 } }';
    assertCreated(await postRaw(s, body));
    await postRaw(s, '{"type":"scalar","data":   -12.500e+10  }');
    await postRaw(s, '{"type":"str","data":"\\ud83d\\ude00 \\t"}');
    const rd = await srv.get(streamPath(s, '/events'));
    assert.equal(rd.status, 200, show(rd));
    const t = rd.text;
    const expect = [
      '"data":{"n":1.0e2,"big":12345678901234567890,"neg":-0.50E-3,"s":"caf\\u00e9 \\"q\\" \\/ ☕  two  spaces","a":[1,true,false,null,{},[]]}',
      '"metadata":{"k":1.10}',
      '"data":-12.500e+10',
      '"data":"\\ud83d\\ude00 \\t"',
    ];
    for (const x of expect) assert.ok(t.includes(x), `response should contain ${x}\n  got: ${t}`);
  });

  test('data may be any JSON value; metadata absent comes back as {}', async () => {
    const s = uniqueStream('anyval');
    const values = [0, 'text', true, false, null, [1, 'a'], { deep: { er: [1] } }];
    assertCreated(await srv.publish(s, values.map((v) => ({ type: 'v', data: v }))));
    const rd = await srv.get(streamPath(s, '/events'));
    assert.deepEqual(rd.json.events.map((e) => e.data), values);
    assert.deepEqual(rd.json.events.map((e) => e.metadata), values.map(() => ({})));
  });

  test('a client id comes back verbatim', async () => {
    const s = uniqueStream('cid');
    const id = uuid();
    assertCreated(await srv.publish(s, { type: 'x', id }));
    const rd = await srv.get(streamPath(s, '/events'));
    assert.equal(rd.json.events[0].id, id);
  });

  test('UTF-8 stream names and 200-byte names and types are accepted', async () => {
    const s = `café-☕-${uniqueStream('u')}`;
    const r = assertCreated(await srv.publish(s, { type: 'ünïcødé' }));
    assert.equal(r.stream, s);
    const rd = await srv.get(streamPath(s, '/events'));
    assert.equal(rd.status, 200, show(rd));
    assert.equal(rd.json.events[0].stream, s);
    assert.equal(rd.json.events[0].type, 'ünïcødé');

    const long = uniqueStream('L');
    const name200 = long + 'n'.repeat(200 - Buffer.byteLength(long));
    const type200 = 't'.repeat(200);
    assert.equal(assertCreated(await srv.publish(name200, { type: type200 })).stream, name200);
    const rd2 = await srv.get(streamPath(name200, '/events'));
    assert.equal(rd2.json.events[0].type, type200);
  });

  describe('400 BadRequest, nothing appended', () => {
    const cases = [
      ['malformed JSON', '{"type": "x", '],
      ['trailing garbage', '{"type":"x"} x'],
      ['empty array', '[]'],
      ['missing type', '{"data": 1}'],
      ['empty type', '{"type": ""}'],
      ['type not a string', '{"type": 5}'],
      ['type of 201 bytes', JSON.stringify({ type: 't'.repeat(201) })],
      ['a number as the body', '42'],
      ['a string as the body', '"x"'],
      ['array holding a non-object', '[{"type":"a"}, 3]'],
      ['array holding an event without type', '[{"type":"a"}, {"data":1}]'],
      ['metadata not an object', '{"type":"x","metadata":[1]}'],
      ['invalid UTF-8', Buffer.concat([Buffer.from('{"type":"x","data":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')])],
      ['duplicate ids inside one publish', JSON.stringify([{ type: 'a', id: 'f1d2c3b4-0000-4000-8000-000000000001' }, { type: 'b', id: 'f1d2c3b4-0000-4000-8000-000000000001' }])],
    ];
    for (const [what, body] of cases) {
      test(what, async () => {
        const s = uniqueStream('bad');
        assertError(await postRaw(s, body), 400, 'BadRequest', what);
        await assertStreamAbsent(s, what);
      });
    }
    test('a bad event in a batch on an existing stream appends nothing', async () => {
      const s = uniqueStream('badbatch');
      assertCreated(await srv.publish(s, { type: 'ok' }));
      assertError(await postRaw(s, '[{"type":"a"},{"nope":1}]'), 400, 'BadRequest');
      const info = await srv.get(streamPath(s));
      assert.equal(info.json.version, 1, 'version unchanged');
    });

    const badNames = [
      ['a control character', `ctl\u0001name`],
      ['a newline', `nl\nname`],
      ['DEL (0x7f)', `del\u007fname`],
      ['a $ prefix', '$mine'],
      ['$all (read-only)', '$all'],
      ['201 bytes', 'x'.repeat(201)],
    ];
    for (const [what, name] of badNames) {
      test(`stream name with ${what}`, async () => {
        const r = await srv.publish(name, { type: 'x' });
        assertError(r, 400, 'BadRequest', `publish to ${JSON.stringify(name)}`);
      });
    }
    test('a percent-encoded CR/LF in the name never addresses another stream (GET, DELETE, close)', async () => {
      const victim = uniqueStream('victim');
      assertCreated(await srv.publish(victim, { type: 'keep-me' }));
      const enc = encodeURIComponent(victim);
      // hubstream answers 400; a NUL (%00) is already refused by the HTTP parser of
      // libwebsockets, which drops the connection: either way nothing reaches another stream
      const refused = async (what, call) => {
        let r;
        try {
          r = await call();
        } catch (e) {
          assert.match(String(e.code || e.message), /ECONNRESET|socket hang up|EPIPE/, `${what}: ${e.message}`);
          return;
        }
        assertError(r, 400, 'BadRequest', what);
      };
      for (const sep of ['%0A', '%0D', '%0D%0A', '%00']) {
        const name = `${enc}${sep}other`;
        await refused(`GET /api/streams/${name}/events`, () => srv.get(`/api/streams/${name}/events`));
        await refused(`GET /api/streams/${name}`, () => srv.get(`/api/streams/${name}`));
        await refused(`POST /api/streams/${name}/close`, () =>
          srv.request('POST', `/api/streams/${name}/close`, { body: '{}', headers: { 'content-type': 'application/json' } }));
        await refused(`DELETE /api/streams/${name}`, () => srv.del(`/api/streams/${name}`));
      }
      const info = await srv.get(streamPath(victim));
      assert.equal(info.status, 200, `${victim} must still exist: ${show(info)}`);
      assert.equal(info.json.closed, false, `${victim} must not be closed`);
    });
    test('Expected-Version that is not a number', async () => {
      const s = uniqueStream('evbad');
      assertError(await srv.publish(s, { type: 'x' }, { expectedVersion: 'abc' }), 400, 'BadRequest');
      await assertStreamAbsent(s, 'after a bad Expected-Version');
    });
  });

  describe('Expected-Version', () => {
    test('0 = the stream must not exist yet', async () => {
      const s = uniqueStream('ev0');
      assert.equal(assertCreated(await srv.publish(s, { type: 'x' }, { expectedVersion: 0 })).firstVersion, 1);
      const r = await srv.publish(s, { type: 'x' }, { expectedVersion: 0 });
      assertError(r, 409, 'WrongExpectedVersion');
      assert.deepEqual(r.json, {
        error: 'WrongExpectedVersion',
        message: 'WrongExpectedVersion: expected 0, actual 1',
        actual: 1,
      });
    });
    test('matching N appends; a mismatch answers 409 with the actual version and appends nothing', async () => {
      const s = uniqueStream('evn');
      assertCreated(await srv.publish(s, [{ type: 'a' }, { type: 'b' }, { type: 'c' }]));
      const ok = assertCreated(await srv.publish(s, [{ type: 'd' }, { type: 'e' }], { expectedVersion: 3 }));
      assert.deepEqual([ok.firstVersion, ok.lastVersion], [4, 5]);
      for (const bad of [3, 4, 6, 100]) {
        const r = await srv.publish(s, [{ type: 'z' }], { expectedVersion: bad });
        assertError(r, 409, 'WrongExpectedVersion', `expected ${bad}`);
        assert.deepEqual(r.json, {
          error: 'WrongExpectedVersion',
          message: `WrongExpectedVersion: expected ${bad}, actual 5`,
          actual: 5,
        });
      }
      const rd = await srv.get(streamPath(s, '/events'));
      assert.deepEqual(rd.json.events.map((e) => e.type), ['a', 'b', 'c', 'd', 'e']);
    });
    test('N > 0 on a stream that does not exist → 409 actual 0, stream still absent', async () => {
      const s = uniqueStream('evmissing');
      const r = await srv.publish(s, { type: 'x' }, { expectedVersion: 2 });
      assertError(r, 409, 'WrongExpectedVersion');
      assert.deepEqual(r.json, {
        error: 'WrongExpectedVersion',
        message: 'WrongExpectedVersion: expected 2, actual 0',
        actual: 0,
      });
      await assertStreamAbsent(s, 'after a failed expected-version publish');
    });
  });

  describe('idempotent publishing with client ids', () => {
    test('re-publishing the same ids returns the original PublishResult and appends nothing', async () => {
      const s = uniqueStream('idem');
      const batch = [
        { type: 'a', id: uuid(), data: 1 },
        { type: 'b', id: uuid(), data: 2 },
      ];
      const first = assertCreated(await srv.publish(s, batch));
      assertCreated(await srv.publish(s, { type: 'other' })); // the stream moves on
      const again = await srv.publish(s, batch);
      assert.equal(again.status, 201, `re-publish: ${show(again)}`);
      assert.deepEqual(again.json, first, 'the ORIGINAL PublishResult');
      const rd = await srv.get(streamPath(s, '/events'));
      assert.deepEqual(rd.json.events.map((e) => e.type), ['a', 'b', 'other'], 'nothing appended');
      assert.deepEqual(rd.json.events.slice(0, 2).map((e) => e.id), batch.map((e) => e.id));
    });
    test('a single re-published event returns its original result', async () => {
      const s = uniqueStream('idem1');
      const ev = { type: 'one', id: uuid() };
      const first = assertCreated(await srv.publish(s, ev));
      for (let i = 0; i < 3; i++) {
        const r = await srv.publish(s, ev);
        assert.equal(r.status, 201, show(r));
        assert.deepEqual(r.json, first);
      }
      const info = await srv.get(streamPath(s));
      assert.equal(info.json.version, 1);
    });
    test('a retry carrying the original Expected-Version still gets the original result (lost-ack retry)', async () => {
      const s = uniqueStream('idemev');
      assertCreated(await srv.publish(s, { type: 'a' }));
      const batch = [{ type: 'b', id: uuid() }];
      const first = assertCreated(await srv.publish(s, batch, { expectedVersion: 1 }));
      const retry = await srv.publish(s, batch, { expectedVersion: 1 });
      assert.equal(retry.status, 201, `retry: ${show(retry)}`);
      assert.deepEqual(retry.json, first);
      assert.equal((await srv.get(streamPath(s))).json.version, 2);
    });
  });
});

// A POST with "Content-Length: 0" is what node:http, fetch and browsers send for a body-less POST.
// Each case runs on its own server, so a crash here does not take the other tests down.
describe('empty-bodied POSTs (Content-Length: 0)', () => {
  async function onFreshServer(fn) {
    const own = await startServer({ name: 'empty-post' });
    try {
      assert.equal((await own.get('/healthz')).status, 200); // a first request on another connection
      await fn(own);
      assert.equal((await own.get('/healthz')).status, 200, 'the server still serves');
    } finally {
      await own.stop(); // asserts a clean exit 0 (a crash shows as signal SIGSEGV / code 139)
    }
  }
  test('POST /close with Content-Length: 0 → 200', () =>
    onFreshServer(async (own) => {
      const s = uniqueStream('cl0');
      assertCreated(await own.publish(s, { type: 'a' }));
      const { conn, res } = await rawPost(own, streamPath(s, '/close'), '');
      conn.close();
      assert.ok(res, 'a response');
      assert.equal(res.status, 200, `close with an empty body: ${res.status} ${res.text}`);
      assert.deepEqual(res.json, { stream: s, closed: true, version: 1 });
    }));
  test('POST /close (node:http, no body) on an unknown stream → 404 NotFound for that stream', () =>
    onFreshServer(async (own) => {
      const r = await own.request('POST', streamPath('never-there', '/close'));
      assertError(r, 404, 'NotFound');
      assert.match(r.json.message, /never-there/, 'the 404 is about the stream, not the route');
    }));
  test('POST /events with an empty body → 400 BadRequest', () =>
    onFreshServer(async (own) => {
      const s = uniqueStream('empty');
      const { conn, res } = await rawPost(own, streamPath(s, '/events'), '');
      conn.close();
      assert.ok(res, 'a response');
      assertError(res, 400, 'BadRequest', 'empty body');
      assert.equal((await own.get(streamPath(s))).status, 404);
    }));
});

describe('limits', () => {
  let small;
  before(async () => {
    small = await startServer({ name: 'limits', flags: ['--max-event', '1024', '--max-body', '4096'] });
  });
  after(async () => {
    await small?.stop();
  });
  const evOf = (bytes) => ({ type: 'big', data: 'x'.repeat(bytes) });

  test('an event over --max-event → 413 TooLarge, nothing appended', async () => {
    const s = uniqueStream('bigev');
    const r = await small.publish(s, evOf(2000));
    assertError(r, 413, 'TooLarge');
    assert.equal((await small.get(streamPath(s))).status, 404);
  });
  test('one event over --max-event in a batch rejects the whole batch', async () => {
    const s = uniqueStream('bigev2');
    const r = await small.publish(s, [evOf(10), evOf(1500)]);
    assertError(r, 413, 'TooLarge');
    assert.equal((await small.get(streamPath(s))).status, 404);
  });
  test('a body over --max-body → 413 TooLarge even when every event fits', async () => {
    const s = uniqueStream('bigbody');
    const body = JSON.stringify([evOf(900), evOf(900), evOf(900), evOf(900), evOf(900)]);
    const { conn, res } = await rawPost(small, streamPath(s, '/events'), body);
    conn.close();
    assert.ok(res, `no response before the connection closed (write error: ${conn.writeError?.message})`);
    assertError(res, 413, 'TooLarge');
    assert.equal((await small.get(streamPath(s))).status, 404);
  });
  test('after a 413 the keep-alive connection either says "connection: close" or still works', async () => {
    const body = JSON.stringify([evOf(900), evOf(900), evOf(900), evOf(900), evOf(900)]);
    const { conn, res } = await rawPost(small, streamPath(uniqueStream('ka'), '/events'), body);
    try {
      assert.ok(res, 'a 413 response');
      assert.equal(res.status, 413);
      if (/close/i.test(res.headers.connection ?? '')) return; // announced: fine
      conn.send('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
      const next = await conn.readResponse(5000);
      assert.ok(
        next && next.status === 200,
        `the server closed the connection after a 413 without "Connection: close" ` +
          `(response headers ${JSON.stringify(res.headers)}): keep-alive clients fail their next request`,
      );
    } finally {
      conn.close();
    }
  });
  test('just under both limits → 201', async () => {
    const s = uniqueStream('fits');
    assertCreated(await small.publish(s, [evOf(800), evOf(800), evOf(800)]));
  });
  test('the default --max-body is 1 MiB', async () => {
    const s = uniqueStream('mib');
    // ~1.2 MB body of 60 KiB events: 413, read from a raw socket (the server answers before
    // reading the body, which node:http reports as EPIPE)
    const { conn, res } = await rawPost(srv, streamPath(s, '/events'), JSON.stringify(Array.from({ length: 20 }, () => evOf(60 * 1024))));
    conn.close();
    assert.ok(res, `no response before the connection closed (write error: ${conn.writeError?.message})`);
    assertError(res, 413, 'TooLarge');
    const ok = await srv.publish(s, Array.from({ length: 12 }, () => evOf(60 * 1024))); // ~720 KiB
    assertCreated(ok);
  });
  test('the server keeps serving after 413s', async () => {
    assert.equal((await small.get('/healthz')).status, 200);
  });
});

describe('large batches', () => {
  test('a publish of 345 mixed events (ids, metadata or none, unicode, empty and 20 KB data) reads back exactly', async () => {
    // on PostgreSQL the writer inserts whole hundreds of rows as multi-row INSERTs and the rest
    // as a parameter array: both paths, and the seam between them, in one batch
    const s = uniqueStream('big-batch');
    const input = Array.from({ length: 345 }, (_, i) => {
      const e = { type: i % 7 ? 'small' : 'Überprüft ✓', data: i % 50 === 3 ? 'x'.repeat(20000) : { i, s: 'Zoë 注文 😀'.repeat(i % 4) } };
      if (i % 3 === 0) e.metadata = { m: i, note: i % 2 ? '' : 'ü' };
      if (i % 5 === 0) e.id = `big-${s}-${i}`;
      if (i === 100) e.data = '';
      return e;
    });
    const r = await srv.publish(s, input);
    assertCreated(r);
    assert.equal(r.json.lastVersion - r.json.firstVersion, 344);
    const got = await readAll(srv, s);
    assert.equal(got.length, 345);
    got.forEach((e, i) => {
      assert.equal(e.version, i + 1);
      assert.equal(e.position, r.json.firstPosition + i);
      assert.equal(e.type, input[i].type);
      assert.deepEqual(e.data, input[i].data, `event ${i + 1} data`);
      assert.deepEqual(e.metadata, input[i].metadata ?? {}, `event ${i + 1} metadata`);
      if (input[i].id) assert.equal(e.id, input[i].id);
    });
    // the client ids are stored: publishing the events that carry one again is a retry
    const again = await srv.publish(s, input.filter((e) => e.id));
    assertCreated(again);
    assert.equal(again.json.firstVersion, 1, 'the original result: the first of them was version 1');
    assert.equal((await readAll(srv, s)).length, 345, 'nothing appended by the retry');
  });
});

describe('reading GET /api/streams/{s}/events', () => {
  let s;
  let events; // the 150 records
  before(async () => {
    s = uniqueStream('read');
    assertCreated(await srv.publish(s, Array.from({ length: 100 }, (_, i) => ({ type: 'r', data: i + 1 }))));
    assertCreated(await srv.publish(s, Array.from({ length: 50 }, (_, i) => ({ type: 'r', data: i + 101 }))));
    events = await readAll(srv, s);
    assert.equal(events.length, 150);
  });
  const versions = (r) => r.json.events.map((e) => e.version);
  const range = (a, b) => (a <= b ? Array.from({ length: b - a + 1 }, (_, i) => a + i) : Array.from({ length: a - b + 1 }, (_, i) => a - i));
  const get = async (q) => {
    const r = await srv.get(`${streamPath(s, '/events')}${q}`);
    assert.equal(r.status, 200, `${q}: ${show(r)}`);
    assert.deepEqual(Object.keys(r.json).sort(), ['events', 'next']);
    return r;
  };

  test('defaults: from 0, forward, limit 100; next = the last version returned', async () => {
    const r = await get('');
    assert.deepEqual(versions(r), range(1, 100));
    assert.equal(r.json.next, 100);
    assert.deepEqual(r.json.events.map((e) => e.data), range(1, 100));
  });
  test('from=N returns versions > N ascending', async () => {
    const r = await get('?from=100');
    assert.deepEqual(versions(r), range(101, 150));
    assert.equal(r.json.next, 150);
    const r2 = await get('?from=5&limit=10');
    assert.deepEqual(versions(r2), range(6, 15));
    assert.equal(r2.json.next, 15);
    const r3 = await get('?direction=forward&from=148');
    assert.deepEqual(versions(r3), [149, 150]);
  });
  test('nothing left: empty page, next = from', async () => {
    for (const from of [150, 1000]) {
      const r = await get(`?from=${from}`);
      assert.deepEqual(r.json, { events: [], next: from });
    }
  });
  test('direction=backward: versions < from descending, from absent/0 = the newest', async () => {
    let r = await get('?direction=backward&limit=3');
    assert.deepEqual(versions(r), [150, 149, 148]);
    assert.equal(r.json.next, 148);
    r = await get('?direction=backward&from=0&limit=3');
    assert.deepEqual(versions(r), [150, 149, 148]);
    r = await get('?direction=backward&from=148&limit=3');
    assert.deepEqual(versions(r), [147, 146, 145]);
    assert.equal(r.json.next, 145);
    r = await get('?direction=backward&from=3');
    assert.deepEqual(versions(r), [2, 1]);
    assert.equal(r.json.next, 1);
    r = await get('?direction=backward&from=1');
    assert.deepEqual(r.json, { events: [], next: 1 });
    r = await get('?direction=backward');
    assert.deepEqual(versions(r), range(150, 51), 'default limit 100 backwards too');
    assert.equal(r.json.next, 51);
  });
  test('records read forward and backward are the same records', async () => {
    const fw = (await get('?from=10&limit=5')).json.events;
    const bw = (await get('?direction=backward&from=16&limit=5')).json.events;
    assert.deepEqual(bw.slice().reverse(), fw);
    assert.deepEqual(fw, events.slice(10, 15));
  });
  test('limit above 1000 is clamped to 1000', async () => {
    const big = uniqueStream('clamp');
    for (let i = 0; i < 3; i++) assertCreated(await srv.publish(big, Array.from({ length: 350 }, () => ({ type: 'c' }))));
    for (const lim of [1000, 1001, 5000, 99999999]) {
      const r = await srv.get(`${streamPath(big, '/events')}?limit=${lim}`);
      assert.equal(r.status, 200, show(r));
      assert.equal(r.json.events.length, 1000, `limit=${lim}`);
      assert.equal(r.json.next, 1000);
    }
  });
  for (const q of ['limit=0', 'limit=-1', 'limit=abc', 'limit=', 'limit=1.5', 'from=abc', 'from=-1']) {
    test(`${q} → 400 BadRequest`, async () => {
      assertError(await srv.get(`${streamPath(s, '/events')}?${q}`), 400, 'BadRequest', q);
    });
  }
  test('unknown stream → 404 NotFound', async () => {
    assertError(await srv.get(streamPath(uniqueStream('nope'), '/events')), 404, 'NotFound');
  });
});

describe('$all', () => {
  test('reads every event by position; next = the last position', async () => {
    const a = uniqueStream('alla');
    const b = uniqueStream('allb');
    const p0 = await lastPosition();
    assertCreated(await srv.publish(a, [{ type: 'a1' }, { type: 'a2' }]));
    assertCreated(await srv.publish(b, { type: 'b1' }));
    assertCreated(await srv.publish(a, { type: 'a3' }));
    for (const path of ['/api/streams/$all/events', '/api/streams/%24all/events']) {
      const r = await srv.get(`${path}?from=${p0}`);
      assert.equal(r.status, 200, `${path}: ${show(r)}`);
      assert.deepEqual(
        r.json.events.map((e) => [e.position, e.stream, e.version, e.type]),
        [
          [p0 + 1, a, 1, 'a1'],
          [p0 + 2, a, 2, 'a2'],
          [p0 + 3, b, 1, 'b1'],
          [p0 + 4, a, 3, 'a3'],
        ],
      );
      assert.equal(r.json.next, p0 + 4);
    }
    const lim = await srv.get(`/api/streams/$all/events?from=${p0 + 1}&limit=2`);
    assert.deepEqual(lim.json.events.map((e) => e.position), [p0 + 2, p0 + 3]);
    assert.equal(lim.json.next, p0 + 3);
    const back = await srv.get(`/api/streams/$all/events?direction=backward&from=${p0 + 4}&limit=2`);
    assert.deepEqual(back.json.events.map((e) => e.position), [p0 + 3, p0 + 2]);
    assert.equal(back.json.next, p0 + 2);
    const none = await srv.get(`/api/streams/$all/events?from=${p0 + 4}`);
    assert.deepEqual(none.json, { events: [], next: p0 + 4 });
  });
  test('positions in $all are gapless from 1', async () => {
    const all = await readAll(srv, '$all');
    assert.ok(all.length > 0);
    all.forEach((e, i) => assert.equal(e.position, i + 1, `position #${i + 1}`));
  });
  test('$all on a server with no events → 200 empty', async () => {
    const fresh = await startServer({ name: 'fresh' });
    try {
      const r = await fresh.get('/api/streams/$all/events');
      assert.equal(r.status, 200, show(r));
      assert.deepEqual(r.json, { events: [], next: 0 });
    } finally {
      await fresh.stop();
    }
  });
});

describe('stream info GET /api/streams/{s}', () => {
  test('name, version, position, closed, created, updated, subscribers', async () => {
    const s = uniqueStream('info');
    assertCreated(await srv.publish(s, { type: 'a' }));
    await new Promise((r) => setTimeout(r, 20));
    const pr = assertCreated(await srv.publish(s, [{ type: 'b' }, { type: 'c' }]));
    const evs = (await srv.get(streamPath(s, '/events'))).json.events;
    const r = await srv.get(streamPath(s));
    assert.equal(r.status, 200, show(r));
    assert.match(String(r.headers['content-type']), /^application\/json/);
    assert.deepEqual(Object.keys(r.json).sort(), ['closed', 'created', 'name', 'position', 'subscribers', 'updated', 'version']);
    assert.equal(r.json.name, s);
    assert.equal(r.json.version, 3);
    assert.equal(r.json.position, pr.lastPosition, 'position = the position of the last event');
    assert.equal(r.json.closed, false);
    assert.equal(r.json.subscribers, 0);
    assert.match(r.json.created, ISO_UTC_MICROS);
    assert.match(r.json.updated, ISO_UTC_MICROS);
    assert.equal(r.json.created, evs[0].time, 'created = the first event commit time');
    assert.equal(r.json.updated, evs[2].time, 'updated = the last event commit time');
    assert.ok(r.json.created < r.json.updated);
  });
  test('unknown stream → 404 NotFound', async () => {
    assertError(await srv.get(streamPath(uniqueStream('nope'))), 404, 'NotFound');
  });
});

describe('listing GET /api/streams', () => {
  const prefix = `list-${process.pid}-${Date.now().toString(36)}-`;
  const names = ['a', 'b', 'c', 'd'].map((x) => prefix + x);
  before(async () => {
    // created out of order: the listing is by name
    for (const n of [names[2], names[0], names[3], names[1]]) assertCreated(await srv.publish(n, { type: 'x' }));
    assertCreated(await srv.publish(`zz${prefix}`, { type: 'x' })); // not matching the prefix
  });
  const list = async (q) => {
    const r = await srv.get(`/api/streams?${q}`);
    assert.equal(r.status, 200, `${q}: ${show(r)}`);
    assert.deepEqual(Object.keys(r.json).sort(), ['next', 'streams']);
    return r.json;
  };
  test('prefix + limit pages in name order; next = last name when the page is full, else null', async () => {
    const p = encodeURIComponent(prefix);
    let j = await list(`prefix=${p}&limit=2`);
    assert.deepEqual(j.streams.map((x) => x.name), names.slice(0, 2));
    assert.equal(j.next, names[1]);
    j = await list(`prefix=${p}&limit=2&after=${encodeURIComponent(j.next)}`);
    assert.deepEqual(j.streams.map((x) => x.name), names.slice(2, 4));
    assert.equal(j.next, names[3], 'a full page has a next even when nothing follows');
    j = await list(`prefix=${p}&limit=2&after=${encodeURIComponent(j.next)}`);
    assert.deepEqual(j, { streams: [], next: null });
    j = await list(`prefix=${p}&limit=3`);
    assert.deepEqual(j.streams.map((x) => x.name), names.slice(0, 3));
    j = await list(`prefix=${p}&limit=3&after=${encodeURIComponent(j.next)}`);
    assert.deepEqual(j.streams.map((x) => x.name), names.slice(3));
    assert.equal(j.next, null, 'a partial page ends the listing');
  });
  test('items are stream info objects', async () => {
    const j = await list(`prefix=${encodeURIComponent(names[0])}`);
    assert.equal(j.streams.length, 1);
    const [it] = j.streams;
    assert.deepEqual(Object.keys(it).sort(), ['closed', 'created', 'name', 'position', 'subscribers', 'updated', 'version']);
    const info = (await srv.get(streamPath(names[0]))).json;
    assert.deepEqual(it, info);
    assert.equal(j.next, null);
  });
  test('a prefix ending in any character: ¿ (last byte 0xBF), U+07FF, U+FFFF, U+10FFFF', async () => {
    // the range's upper bound raises the last character, not the last byte: it must stay UTF-8
    // (PostgreSQL refuses a parameter that is not), and still exclude the next character
    const base = `${prefix}u-`;
    const pairs = [['¿', 'À'], ['\u07ff', '\u0800'], ['\uffff', '\u{10000}'], ['\u{10ffff}', '']];
    for (const [c, next] of pairs) {
      assertCreated(await srv.publish(`${base}${c}x`, { type: 'x' }));
      if (next) assertCreated(await srv.publish(`${base}${next}`, { type: 'x' }));
    }
    for (const [c] of pairs) {
      const j = await list(`prefix=${encodeURIComponent(base + c)}`);
      assert.deepEqual(j.streams.map((x) => x.name), [`${base}${c}x`], `prefix ending in U+${c.codePointAt(0).toString(16)}`);
    }
  });
  test('no match → empty list, next null; no parameters lists streams', async () => {
    assert.deepEqual(await list('prefix=no-such-prefix-'), { streams: [], next: null });
    const all = await list('limit=1000');
    for (const n of names) assert.ok(all.streams.some((x) => x.name === n), `${n} listed`);
    const sorted = all.streams.map((x) => x.name);
    assert.deepEqual(sorted, [...sorted].sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b)))));
  });
});

describe('close POST /api/streams/{s}/close', () => {
  test('200 {stream, closed: true, version}; then publishing → 410 StreamClosed; reads still work', async () => {
    const s = uniqueStream('close');
    assertCreated(await srv.publish(s, [{ type: 'a' }, { type: 'b' }]));
    const r = await closeStream(srv, s);
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(r.json, { stream: s, closed: true, version: 2 });
    const p = await srv.publish(s, { type: 'c' });
    assertError(p, 410, 'StreamClosed');
    const withId = await srv.publish(s, { type: 'c', id: uuid() }, { expectedVersion: 2 });
    assertError(withId, 410, 'StreamClosed', 'with Expected-Version');
    const info = await srv.get(streamPath(s));
    assert.equal(info.json.closed, true);
    assert.equal(info.json.version, 2);
    const rd = await srv.get(streamPath(s, '/events'));
    assert.equal(rd.status, 200);
    assert.deepEqual(rd.json.events.map((e) => e.type), ['a', 'b']);
  });
  test('unknown stream → 404 NotFound', async () => {
    assertError(await closeStream(srv, uniqueStream('nope')), 404, 'NotFound');
  });
});

describe('delete DELETE /api/streams/{s}', () => {
  test('204, then the stream is gone (404) and publishing starts again at version 1', async () => {
    const s = uniqueStream('del');
    const first = assertCreated(await srv.publish(s, [{ type: 'a' }, { type: 'b' }, { type: 'c' }]));
    const r = await srv.del(streamPath(s));
    assert.equal(r.status, 204, show(r));
    assert.equal(r.text, '', '204 has no body');
    assertError(await srv.get(streamPath(s)), 404, 'NotFound', 'info after delete');
    assertError(await srv.get(streamPath(s, '/events')), 404, 'NotFound', 'events after delete');
    const all = await readAll(srv, '$all');
    assert.ok(!all.some((e) => e.stream === s), 'deleted events are gone from $all');
    const again = assertCreated(await srv.publish(s, { type: 'new' }, { expectedVersion: 0 }));
    assert.equal(again.firstVersion, 1);
    assert.ok(again.firstPosition > first.lastPosition, 'positions keep growing');
    const rd = await srv.get(streamPath(s, '/events'));
    assert.deepEqual(rd.json.events.map((e) => [e.version, e.type]), [[1, 'new']]);
  });
  test('a closed stream can be deleted and its name reused', async () => {
    const s = uniqueStream('delclosed');
    assertCreated(await srv.publish(s, { type: 'a' }));
    assert.equal((await closeStream(srv, s)).status, 200);
    assert.equal((await srv.del(streamPath(s))).status, 204);
    const r = assertCreated(await srv.publish(s, { type: 'b' }));
    assert.equal(r.firstVersion, 1);
    assert.equal((await srv.get(streamPath(s))).json.closed, false);
  });
  test('unknown stream → 404 NotFound', async () => {
    assertError(await srv.del(streamPath(uniqueStream('nope'))), 404, 'NotFound');
  });
});

describe('routing', () => {
  for (const path of ['/nope', '/api', '/api/stream', '/api/streamsx', '/api/streams/x/events/extra', '/api/streams/x/nope']) {
    test(`unknown route GET ${path} → 404 NotFound`, async () => {
      assertError(await srv.get(path), 404, 'NotFound', path);
    });
  }
  const wrong = [
    ['PUT', '/api/streams/x/events'],
    ['DELETE', '/api/streams/x/events'],
    ['POST', '/api/streams/x'],
    ['PUT', '/api/streams/x'],
    ['GET', '/api/streams/x/close'],
    ['DELETE', '/api/streams/x/close'],
    ['POST', '/api/streams'],
    ['POST', '/healthz'],
    ['DELETE', '/readyz'],
  ];
  for (const [method, path] of wrong) {
    test(`wrong method ${method} ${path} → 405`, async () => {
      const r = await srv.request(method, path, method === 'GET' || method === 'DELETE' ? {} : { body: '{}' });
      assert.equal(r.status, 405, `${method} ${path}: ${show(r)}`);
      assert.ok(r.json && typeof r.json.error === 'string', `405 body is a JSON error: ${r.text}`);
    });
  }
  test('405 responses carry an Allow header (RFC 9110 §15.5.6)', async () => {
    const missing = [];
    for (const [method, path] of wrong) {
      const r = await srv.request(method, path, method === 'GET' || method === 'DELETE' ? {} : { body: '{}' });
      if (r.status === 405 && !r.headers.allow) missing.push(`${method} ${path}`);
    }
    assert.deepEqual(missing, [], 'these 405 answers have no Allow header');
  });
});

describe('robustness: odd requests never answer 5xx', () => {
  const odd = [
    ['GET', '/api/streams/x/events?from=99999999999999999999999'],
    ['GET', '/api/streams/x/events?limit=99999999999999999999999'],
    ['GET', '/api/streams/x/events?direction=sideways'],
    ['GET', '/api/streams/%ZZ/events'],
    ['GET', '/api/streams//events'],
    ['GET', '/api/streams?limit=0'],
    ['GET', '/api/streams?limit=abc'],
    ['GET', `/api/streams?prefix=${'p'.repeat(300)}`],
    ['GET', `/api/streams/${'n'.repeat(300)}`],
    ['POST', '/api/streams/x/events', '{"type":"x","data":' + '['.repeat(5000) + ']'.repeat(5000) + '}'],
    ['POST', '/api/streams/x/events', '{"type":"x","data":"\\ud800"}'],
    ['POST', '/api/streams/x/events', '{"type":"x","data":1e99999}'],
    ['POST', '/api/streams/x/events', '\u0000'],
  ];
  // each on its own server: a crash must not take the other cases down, and stop() checks that
  // the server survived (exit code 0 on SIGTERM)
  for (const [method, path, body] of odd) {
    test(`${method} ${path.slice(0, 60)} ${body ? body.slice(0, 30) : ''}`, async () => {
      const own = await startServer({ name: 'odd' });
      try {
        const r = await own.request(method, path, { body, headers: body ? { 'content-type': 'application/json' } : {} });
        assert.ok(r.status < 500, `${method} ${path}: ${show(r)}`);
        // requests the HTTP parser of libwebsockets rejects (a bad %-escape) get its own 403
        // page before hubstream sees them; everything hubstream answers is a JSON error
        if (r.status >= 400 && !(path.includes('%ZZ') && r.status === 403))
          assert.ok(r.json?.error, `error body is a JSON error: ${r.text}`);
        const h = await own.get('/healthz').catch((e) => ({ status: e.message, text: '' }));
        assert.equal(h.status, 200, 'the server still serves after that request');
      } finally {
        await own.stop();
      }
    });
  }
  test('Expected-Version far out of range → 4xx', async () => {
    const r = await srv.publish(uniqueStream('evhuge'), { type: 'x' }, { expectedVersion: '99999999999999999999999' });
    assert.ok(r.status >= 400 && r.status < 500, show(r));
  });
  test('the server is still healthy', async () => {
    assert.equal((await srv.get('/healthz')).status, 200);
  });
});

describe('HTTP/1.1 pipelining', () => {
  test('requests written back to back on one connection never hang or crash the server', async () => {
    const own = await startServer({ name: 'pipeline' });
    try {
      const net = await import('node:net');
      const body = '[{"type":"t","data":1}]';
      const req = `POST /api/streams/pipe/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`;
      const got = await new Promise((resolve, reject) => {
        const s = net.connect(own.port, '127.0.0.1', () => s.write(req + req + req));
        let data = '';
        s.on('data', (d) => (data += d));
        s.on('close', () => resolve(data));
        s.on('error', (e) => (e.code === 'ECONNRESET' ? resolve(data) : reject(e)));
        setTimeout(() => reject(new Error(`no close within 5 s; got ${JSON.stringify(data)}`)), 5000).unref();
      });
      // answered in order (each a 201), or the connection was closed: never a wrong answer
      for (const line of got.split('\r\n').filter((l) => l.startsWith('HTTP/1.1 ')))
        assert.match(line, /^HTTP\/1\.1 201/, `pipelined answer: ${got}`);
      const h = await own.get('/healthz');
      assert.equal(h.status, 200, 'the server still serves');
    } finally {
      await own.stop(); // asserts a clean exit: the IO thread is not stuck
    }
  });
});
