// The SignalR connection layer at the byte level, with raw HTTP requests and a raw WebSocket
// client: negotiate's shape and versions, the transports' status codes (404, 405, 409, 400, 202,
// 204), long polling and SSE framing, handshake replies and refusals, batched records, oversized
// and malformed messages. After every abuse the server must still serve other clients.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import WebSocket from 'ws';
import { startServer, request, sleep, until, withTimeout, TEST_AUTH_SECRET, testToken } from '../integration/lib/server.mjs';
import { RS, rawWs, frame, jsonRecords, msgpackRecords, waitFor, hub, explain } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer({ flags: ['--cors-origins', 'http://app.example:8080, https://other.example', '--max-message', '4096', '--hub-handshake-timeout-ms', '700', '--hub-disconnect-timeout-ms', '1500', '--hub-longpoll-ms', '800'] });
});
after(async () => {
  await srv?.stop();
});

const negotiate = async (q = '?negotiateVersion=1', headers = {}) => request(srv.url, 'POST', `/hub/negotiate${q}`, { body: '', headers });
/** Negotiate answers carry no JSON null anywhere (the client would take a null as a value). */
function NO_NULLS(text, where = 'negotiate') {
  const walk = (v, path) => {
    assert.notEqual(v, null, `${where}: JSON null at ${path} in ${text}`);
    if (typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, `${path}.${k}`);
  };
  walk(JSON.parse(text), '$');
}

test('negotiate: version 1, version 0, bad and high versions, method, stateful flag', async () => {
  const r = await negotiate();
  assert.equal(r.status, 200);
  assert.match(r.headers['content-type'], /application\/json/);
  NO_NULLS(r.text);
  assert.equal(r.json.negotiateVersion, 1);
  assert.match(r.json.connectionId, /^[A-Za-z0-9_-]{22}$/);
  assert.match(r.json.connectionToken, /^[A-Za-z0-9_-]{22}$/);
  assert.notEqual(r.json.connectionId, r.json.connectionToken);
  assert.deepEqual(r.json.availableTransports, [
    { transport: 'WebSockets', transferFormats: ['Text', 'Binary'] },
    { transport: 'ServerSentEvents', transferFormats: ['Text'] },
    { transport: 'LongPolling', transferFormats: ['Text', 'Binary'] },
  ]);
  assert.equal('useStatefulReconnect' in r.json, false, 'not granted unless asked');
  const r2 = await negotiate();
  assert.notEqual(r2.json.connectionToken, r.json.connectionToken);

  const v0 = await negotiate('');
  NO_NULLS(v0.text, 'version 0');
  assert.equal(v0.json.negotiateVersion, 0);
  assert.match(v0.json.connectionId, /^[A-Za-z0-9_-]{22}$/);
  assert.equal('connectionToken' in v0.json, false);
  assert.equal(v0.json.availableTransports.length, 3);
  const ws = await rawWs(srv.port, `?id=${v0.json.connectionId}`);
  ws.send(`{"protocol":"json","version":1}${RS}`);
  assert.equal((await frame(ws)).data.toString(), `{}${RS}`);
  ws.close();

  const bad = await negotiate('?negotiateVersion=abc');
  assert.equal(bad.status, 200);
  assert.equal(typeof bad.json.error, 'string');
  assert.equal((await negotiate('?negotiateVersion=7')).json.negotiateVersion, 1);
  assert.equal((await request(srv.url, 'GET', '/hub/negotiate')).status, 405);
  const st = await negotiate('?negotiateVersion=1&useStatefulReconnect=true');
  NO_NULLS(st.text, 'stateful');
  assert.equal(st.json.useStatefulReconnect, true);
  assert.equal(st.json.negotiateVersion, 1);
});

test('negotiate: stateful reconnect is not granted when turned off', async () => {
  const off = await startServer({ flags: ['--hub-stateful-reconnect=false'] });
  try {
    const r = await request(off.url, 'POST', '/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true', { body: '' });
    assert.equal(r.status, 200);
    assert.equal('useStatefulReconnect' in r.json, false);
  } finally {
    await off.stop();
  }
});

test('transport statuses: 404, 409, 405, 400, and expiry of unused tokens', async () => {
  await assert.rejects(rawWs(srv.port, '?id=doesnotexist'), (e) => e.status === 404);
  for (const m of ['GET', 'POST', 'DELETE']) {
    const r = await request(srv.url, m, '/hub', m === 'POST' ? { body: 'x' } : {});
    assert.equal(r.status, 400, `${m} without id`);
    assert.match(r.text, /Connection ID required/);
    assert.equal((await request(srv.url, m, '/hub?id=nope', m === 'POST' ? { body: 'x' } : {})).status, 404, `${m} unknown id`);
  }
  assert.equal((await request(srv.url, 'PUT', '/hub?id=x', { body: 'x' })).status, 405);

  const tok = (await negotiate()).json.connectionToken;
  const ws = await rawWs(srv.port, `?id=${tok}`);
  await assert.rejects(rawWs(srv.port, `?id=${tok}`), (e) => e.status === 409, 'a second WebSocket');
  assert.equal((await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"type":6}${RS}` })).status, 405);
  assert.equal((await request(srv.url, 'DELETE', `/hub?id=${tok}`)).status, 400);
  ws.send(`{"protocol":"json","version":1}${RS}`);
  assert.equal((await frame(ws)).data.toString(), `{}${RS}`, 'the first WebSocket still works');
  ws.close();

  const lp = (await negotiate()).json.connectionToken;
  assert.equal((await request(srv.url, 'GET', `/hub?id=${lp}`)).status, 200);
  await assert.rejects(rawWs(srv.port, `?id=${lp}`), (e) => e.status === 400, 'WebSocket after long polling');
  const sse = await request(srv.url, 'GET', `/hub?id=${lp}`, { headers: { accept: 'text/event-stream' }, timeoutMs: 3000 });
  assert.equal(sse.status, 400, 'SSE after long polling');
  await request(srv.url, 'DELETE', `/hub?id=${lp}`);

  const unused = (await negotiate()).json.connectionToken;
  await sleep(2700); // disconnect timeout 1.5 s, swept once a second
  await assert.rejects(rawWs(srv.port, `?id=${unused}`), (e) => e.status === 404, 'an expired token');
});

test('long polling: empty first poll, handshake in a later poll, overlap 204, DELETE 202 then 404', async () => {
  const tok = (await negotiate()).json.connectionToken;
  const t00 = Date.now();
  const first = await request(srv.url, 'GET', `/hub?id=${tok}&_=1`);
  assert.equal(first.status, 200);
  assert.equal(first.text, '');
  assert.ok(Date.now() - t00 < 400, `the first poll is answered at once, not parked (${Date.now() - t00} ms; long-poll timeout 800 ms)`);
  const post = await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"protocol":"json","version":1}${RS}{"type":1,"invocationId":"1","target":"Read","arguments":["none-such",0]}${RS}` });
  assert.equal(post.status, 200);
  assert.equal(post.text, '');
  // the Completion comes from a reader thread: it may be in this poll or the next one
  const got = [];
  for (let i = 0; i < 5 && got.length < 2; i++) {
    const poll = await request(srv.url, 'GET', `/hub?id=${tok}&_=2${i}`);
    assert.equal(poll.status, 200);
    if (poll.text) got.push(...jsonRecords(poll.text));
  }
  assert.deepEqual(got, [{}, { type: 3, invocationId: '1', result: [] }], 'handshake reply first, then the Completion');
  // an idle poll is answered empty after --hub-longpoll-ms
  const t0 = Date.now();
  const idle = await request(srv.url, 'GET', `/hub?id=${tok}&_=3`);
  assert.equal(idle.status, 200);
  assert.equal(idle.text, '');
  assert.ok(Date.now() - t0 >= 600, `held ${Date.now() - t0} ms`);
  // a parked poll is answered as soon as there is something to send, not at the long-poll timeout
  const parked = request(srv.url, 'GET', `/hub?id=${tok}&_=35`);
  await sleep(150);
  const t1 = Date.now();
  await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"type":1,"invocationId":"2","target":"Read","arguments":["none-such",0]}${RS}` });
  const woke = await parked;
  assert.equal(woke.status, 200);
  assert.ok(Date.now() - t1 < 500, `the parked poll answered ${Date.now() - t1} ms after the data (long-poll timeout 800 ms)`);
  let late = woke.text ? jsonRecords(woke.text) : [];
  if (!late.length) late = jsonRecords((await request(srv.url, 'GET', `/hub?id=${tok}&_=36`)).text);
  assert.deepEqual(late, [{ type: 3, invocationId: '2', result: [] }]);
  // a poll that overlaps a parked one ends the old one with 204
  const older = request(srv.url, 'GET', `/hub?id=${tok}&_=4`);
  await sleep(150);
  const newer = request(srv.url, 'GET', `/hub?id=${tok}&_=5`);
  assert.equal((await older).status, 204);
  await sleep(100);
  assert.equal((await request(srv.url, 'DELETE', `/hub?id=${tok}`)).status, 202);
  assert.equal((await newer).status, 204, 'the parked poll ends when the connection does');
  assert.equal((await request(srv.url, 'GET', `/hub?id=${tok}`)).status, 404);
  assert.equal((await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"type":6}${RS}` })).status, 404);
});

/** Opens an SSE transport GET and collects its raw body. */
function sseOpen(tok) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: srv.port, path: `/hub?id=${tok}`, headers: { accept: 'text/event-stream' } }, (res) => {
      const st = { res, body: '', req };
      res.setEncoding('utf8');
      res.on('data', (d) => (st.body += d));
      res.on('end', () => (st.ended = true));
      resolve(st);
    });
    req.on('error', reject);
  });
}

test('SSE transport: headers, ":\\r\\n" at once, records as data lines; MessagePack refused', async () => {
  const tok = (await negotiate()).json.connectionToken;
  const s = await sseOpen(tok);
  assert.equal(s.res.statusCode, 200);
  assert.match(s.res.headers['content-type'], /^text\/event-stream/);
  await waitFor(() => s.body.length >= 3, 3000, 'the first bytes');
  assert.equal(s.body, ':\r\n');
  await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"protocol":"json","version":1}${RS}{"type":1,"invocationId":"a","target":"GetStream","arguments":["nonexistent-x"]}${RS}` });
  await waitFor(() => s.body.includes('"invocationId":"a"'), 3000, 'the Completion');
  const events = s.body.slice(3).split('\r\n\r\n').filter(Boolean);
  const payload = events.map((e) => e.split('\r\n').map((l) => l.replace(/^data: /, '')).join('\n')).join('');
  assert.deepEqual(jsonRecords(payload), [{}, { type: 3, invocationId: 'a', error: 'NotFound: nonexistent-x' }]);
  s.req.destroy();

  const tok2 = (await negotiate()).json.connectionToken;
  const m = await sseOpen(tok2);
  await request(srv.url, 'POST', `/hub?id=${tok2}`, { body: `{"protocol":"messagepack","version":1}${RS}` });
  await waitFor(() => m.ended, 3000, 'the SSE response to end');
  assert.match(m.body, /"error":"Cannot use the 'messagepack' protocol on the current transport. The transport does not support 'Binary' transfer format."/);
});

test('handshake: versions 1 and 2, unknown protocol and version refused, timeout', async () => {
  for (const v of [1, 2]) {
    const ws = await rawWs(srv.port);
    ws.send(`{"protocol":"json","version":${v}}${RS}`);
    const f = await frame(ws);
    assert.equal(f.isBinary, false);
    assert.equal(f.data.toString(), `{}${RS}`);
    ws.close();
  }
  const foo = await rawWs(srv.port);
  foo.send(`{"protocol":"foo","version":1}${RS}`);
  assert.equal((await frame(foo)).data.toString(), `{"error":"The protocol 'foo' is not supported."}${RS}`);
  assert.equal(await foo.closedP, 1000);
  const v3 = await rawWs(srv.port);
  v3.send(`{"protocol":"json","version":3}${RS}`);
  assert.equal((await frame(v3)).data.toString(), `{"error":"The server does not support version 3 of the 'json' protocol."}${RS}`);
  await v3.closedP;
  const slow = await rawWs(srv.port);
  const t0 = Date.now();
  assert.equal((await frame(slow, 1, 4000)).data.toString(), `{"error":"Handshake was canceled."}${RS}`);
  await slow.closedP;
  assert.ok(Date.now() - t0 >= 500, 'not before the handshake timeout');
});

test('MessagePack: the handshake reply and every later frame are binary with whole records', async () => {
  const ws = await rawWs(srv.port);
  // handshake + a Ping + Invocation id "0" Read("none", 0) in one frame, as bytes
  const inv = Buffer.from([0x95, 0x01, 0x80, 0xa1, 0x30, 0xa4, 0x52, 0x65, 0x61, 0x64, 0x92, 0xa4, 0x6e, 0x6f, 0x6e, 0x65, 0x00]);
  ws.send(Buffer.concat([Buffer.from(`{"protocol":"messagepack","version":1}${RS}`), Buffer.from([0x02, 0x91, 0x06, inv.length]), inv]));
  const f = await frame(ws);
  assert.equal(f.isBinary, true, 'the MessagePack handshake reply travels in a binary frame');
  assert.equal(f.data.subarray(0, 3).toString(), `{}${RS}`);
  let rest = f.data.subarray(3);
  if (!rest.length) rest = (await frame(ws, 2)).data;
  const recs = msgpackRecords(rest);
  // [3, {}, "0", 3, []]
  assert.deepEqual([...recs[0]], [0x95, 0x03, 0x80, 0xa1, 0x30, 0x03, 0x90]);
  ws.close();
});

test('several records in one frame are processed in order: handshake + invocations answered in order', async () => {
  // 20 connections, each sending its handshake and four invocations in ONE frame. Processed in
  // order, the second Publish (expectedVersion 1) sees the first, GetStream sees both, Read sees
  // both, and the Completions come back in the order of the invocations.
  for (let i = 0; i < 20; i++) {
    const ws = await rawWs(srv.port);
    const s = `batch-${i}-${Date.now()}`;
    ws.send(
      `{"protocol":"json","version":1}${RS}` +
        `{"type":1,"invocationId":"1","target":"Publish","arguments":["${s}",{"type":"a","data":1}]}${RS}` +
        `{"arguments":["${s}",{"type":"b","data":2},1],"target":"Publish","invocationId":"2","type":1,"headers":{"k":"v"},"extra":true}${RS}` +
        `{"type":1,"invocationId":"3","target":"GetStream","arguments":["${s}"]}${RS}` +
        `{"type":1,"invocationId":"4","target":"Read","arguments":["${s}",0]}${RS}`,
    );
    const text = () => Buffer.concat(ws.frames.map((f) => f.data)).toString();
    await waitFor(() => text().split(RS).length >= 6, 3000, `the handshake reply and four Completions (connection ${i}, got ${text()})`);
    const recs = jsonRecords(text());
    assert.deepEqual(recs[0], {}, 'the handshake reply comes first');
    assert.deepEqual(
      recs.slice(1).map((r) => r.invocationId),
      ['1', '2', '3', '4'],
      `connection ${i}: Completions in invocation order: ${text()}`,
    );
    assert.equal(recs[1].result.firstVersion, 1);
    assert.equal(recs[2].error, undefined, `connection ${i}: the second Publish saw the first: ${recs[2].error}`);
    assert.equal(recs[2].result.firstVersion, 2);
    assert.equal(recs[3].result.version, 2, `connection ${i}: GetStream ran after both publishes`);
    assert.deepEqual(recs[4].result.map((r) => r.type), ['a', 'b']);
    ws.close();
    await ws.closedP;
  }
});

test('records longer than a receive piece and records split across frames arrive whole', async () => {
  // The server reads a WebSocket in pieces of a few hundred bytes: a 3,000-byte record in one
  // frame, then one record cut over three frames (mid-string and mid-separator), must each be
  // handled once and whole, and the answer to a Read returns the data byte for byte.
  const ws = await rawWs(srv.port);
  const s = `long-${Date.now()}`;
  const big = 'y'.repeat(3000) + 'END';
  ws.send(`{"protocol":"json","version":1}${RS}` +
    `{"type":1,"invocationId":"1","target":"Publish","arguments":["${s}",{"type":"big","data":"${big}"}]}${RS}`);
  const split = `{"type":1,"invocationId":"2","target":"Publish","arguments":["${s}",{"type":"split","data":"${'z'.repeat(700)}"}]}${RS}`;
  ws.send(split.slice(0, 40));
  await sleep(50);
  ws.send(split.slice(40, 600));
  await sleep(50);
  ws.send(split.slice(600));
  ws.send(`{"type":1,"invocationId":"3","target":"Read","arguments":["${s}",0]}${RS}`);
  const text = () => Buffer.concat(ws.frames.map((f) => f.data)).toString();
  await waitFor(() => text().split(RS).length >= 5, 5000, `the handshake reply and three Completions (got ${text().slice(0, 300)})`);
  const recs = jsonRecords(text());
  assert.deepEqual(recs.slice(1).map((r) => [r.invocationId, r.error]), [['1', undefined], ['2', undefined], ['3', undefined]]);
  assert.deepEqual(recs[3].result.map((r) => r.type), ['big', 'split']);
  assert.equal(recs[3].result[0].data, big, 'the long record, byte for byte');
  assert.equal(recs[3].result[1].data, 'z'.repeat(700), 'the split record, byte for byte');
  ws.close();
  await ws.closedP;
});

test('non-blocking invocations (no invocationId) get no answer, not even an error; the connection goes on', async () => {
  const ws = await rawWs(srv.port);
  const s = `ff-${Date.now()}`;
  ws.send(`{"protocol":"json","version":1}${RS}`);
  assert.equal((await frame(ws)).data.toString(), `{}${RS}`);
  ws.send(`{"type":1,"target":"Publish","arguments":["${s}",{"type":"t","data":1}]}${RS}`);
  ws.send(`{"type":1,"target":"Nope","arguments":[]}${RS}`);
  ws.send(`{"type":1,"target":"Publish","arguments":["a/b",{"type":"t"}]}${RS}`);
  ws.send(`{"type":1,"target":"Publish","arguments":[]}${RS}`);
  await until(async () => (await request(srv.url, 'GET', `/api/streams/${s}`)).status === 200, { what: 'the fire-and-forget Publish to be stored' });
  await sleep(250);
  assert.deepEqual(ws.frames.slice(1).map((f) => f.data.toString()), [], 'nothing came back for the four non-blocking invocations');
  ws.send(`{"type":1,"invocationId":"x","target":"GetStream","arguments":["${s}"]}${RS}`);
  const [rec] = jsonRecords((await frame(ws, 2)).data.toString());
  assert.equal(rec.invocationId, 'x');
  assert.equal(rec.error, undefined, `GetStream after the non-blocking calls: ${rec.error}`);
  assert.equal(rec.result.version, 1, 'the fire-and-forget Publish appended exactly one event');
  assert.equal(ws.readyState, ws.OPEN);
  ws.close();
  await withTimeout(ws.closedP, 3000, 'the WebSocket to close');
});

test('a record over --max-message closes with an error and no allowReconnect', async () => {
  const ws = await rawWs(srv.port);
  ws.send(`{"protocol":"json","version":1}${RS}`);
  assert.equal((await frame(ws)).data.toString(), `{}${RS}`);
  // a record over --max-message (4096)
  ws.send(`{"type":1,"invocationId":"3","target":"Publish","arguments":["big",{"type":"t","data":"${'x'.repeat(5000)}"}]}${RS}`);
  await withTimeout(ws.closedP, 5000, 'the server to close the WebSocket');
  const last = jsonRecords(ws.frames.at(-1).data.toString()).at(-1);
  assert.equal(last.type, 7, 'a Close message');
  assert.match(last.error, /^Connection closed with an error\./);
  assert.equal(last.allowReconnect, undefined, 'no reconnect after a protocol violation');
  assert.equal((await request(srv.url, 'GET', '/api/streams/big')).status, 404, 'nothing was published');
});

test('an unparsable record closes with an error and ends the connection', async () => {
  const bad = await rawWs(srv.port);
  bad.send(`{"protocol":"json","version":1}${RS}{"type":1,"target":${RS}`);
  await withTimeout(bad.closedP, 5000, 'the server to close the WebSocket');
  const close = jsonRecords(Buffer.concat(bad.frames.map((f) => f.data)).toString()).at(-1);
  assert.equal(close.type, 7);
  assert.match(close.error, /^Connection closed with an error\./);
  assert.equal(close.allowReconnect, undefined);

  // the same over long polling: the connection ends, its next poll answers 204
  const tok = (await negotiate()).json.connectionToken;
  assert.equal((await request(srv.url, 'GET', `/hub?id=${tok}`)).status, 200);
  assert.equal((await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"protocol":"json","version":1}${RS}not json${RS}` })).status, 200);
  const recs = [];
  let status = 200;
  for (let i = 0; i < 5 && status === 200; i++) {
    const poll = await request(srv.url, 'GET', `/hub?id=${tok}&_=${i}`);
    status = poll.status;
    if (poll.status === 200 && poll.text) recs.push(...jsonRecords(poll.text));
  }
  assert.equal(status, 204, 'a poll after the connection ended answers 204');
  assert.deepEqual(recs[0], {});
  assert.equal(recs.at(-1).type, 7);
  assert.match(recs.at(-1).error, /^Connection closed with an error\./);

  const badmp = await rawWs(srv.port);
  badmp.send(Buffer.concat([Buffer.from(`{"protocol":"messagepack","version":1}${RS}`), Buffer.from([0x0a, 0xdd, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04, 0x05])]));
  assert.equal(await withTimeout(badmp.closedP, 5000, 'the MessagePack connection to close'), 1000, 'a 4-billion-element array claim closes the connection, nothing else');
});

test('after all of the above the server still serves other clients', async () => {
  for (const transport of ['WebSockets', 'LongPolling']) {
    const c = hub(srv.url, { transport });
    await explain(c, async () => {
      await c.start();
      const s = `after-${transport}-${Date.now()}`;
      assert.equal((await c.invoke('Publish', s, { type: 't', data: 1 })).lastVersion, 1);
      assert.deepEqual((await c.invoke('Read', s, 0)).map((r) => r.data), [1]);
      await c.stop();
    });
  }
});

test('CORS: a listed Origin is echoed with credentials, another gets no CORS header; OPTIONS preflight answers 204', async () => {
  const origin = 'http://app.example:8080';
  const r = await negotiate('?negotiateVersion=1', { origin });
  assert.equal(r.headers['access-control-allow-origin'], origin);
  assert.equal(r.headers['access-control-allow-credentials'], 'true');
  for (const other of ['http://evil.example', 'http://app.example:8081', 'http://127.0.0.1:3000']) {
    // a negotiate is a POST a page may send cross-origin unasked: refused (see the next test)
    const x = await negotiate('?negotiateVersion=1', { origin: other });
    assert.equal(x.status, 403, `${other}: ${x.status} ${x.text}`);
    assert.equal(x.headers['access-control-allow-origin'], undefined, `${other} is not listed`);
    assert.equal(x.headers['access-control-allow-credentials'], undefined);
  }
  const pre = await request(srv.url, 'OPTIONS', '/hub/negotiate?negotiateVersion=1', {
    headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-requested-with,x-signalr-user-agent' },
  });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], origin);
  for (const m of ['GET', 'POST', 'DELETE']) assert.match(pre.headers['access-control-allow-methods'], new RegExp(`\\b${m}\\b`));
  for (const h of ['authorization', 'x-requested-with', 'x-signalr-user-agent', 'content-type'])
    assert.match(pre.headers['access-control-allow-headers'], new RegExp(h));
  const plain = await negotiate();
  assert.equal(plain.headers['access-control-allow-origin'], undefined, 'no CORS headers without an Origin');
  // the transport requests carry them too: a long poll, a POST, a DELETE, an SSE response, and
  // the preflight of the transport URL
  const tok = r.json.connectionToken;
  const lp = await request(srv.url, 'GET', `/hub?id=${tok}`, { headers: { origin } });
  const send = await request(srv.url, 'POST', `/hub?id=${tok}`, { body: `{"protocol":"json","version":1}${RS}`, headers: { origin, 'content-type': 'text/plain;charset=UTF-8' } });
  const del = await request(srv.url, 'DELETE', `/hub?id=${tok}`, { headers: { origin } });
  assert.deepEqual([lp.status, send.status, del.status], [200, 200, 202]);
  for (const [what, x] of [['long poll', lp], ['POST', send], ['DELETE', del]]) {
    assert.equal(x.headers['access-control-allow-origin'], origin, `${what}: allow-origin`);
    assert.equal(x.headers['access-control-allow-credentials'], 'true', `${what}: allow-credentials`);
  }
  const stok = (await negotiate()).json.connectionToken;
  const sse = await new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port: srv.port, path: `/hub?id=${stok}`, headers: { accept: 'text/event-stream', origin } }, (res) => {
      resolve(res.headers);
      req.destroy();
    });
    req.on('error', reject);
  });
  assert.equal(sse['access-control-allow-origin'], origin, 'SSE transport: allow-origin');
  assert.equal(sse['access-control-allow-credentials'], 'true', 'SSE transport: allow-credentials');
  const pre2 = await request(srv.url, 'OPTIONS', `/hub?id=${stok}`, { headers: { origin, 'access-control-request-method': 'POST' } });
  assert.equal(pre2.status, 204);
  assert.equal(pre2.headers['access-control-allow-origin'], origin);
  assert.match(pre2.headers['access-control-allow-methods'], /\bPOST\b/);
});

// Browsers send some requests across origins without a preflight (a POST with a text/plain body,
// every WebSocket upgrade): a page of an origin the CORS policy does not allow must not make the
// server act, or any site a user opens could publish, close streams or subscribe through a server
// that trusts its network. Reads are not refused (the browser keeps their answers from the page).
test('CORS: a page of an unlisted origin may not publish, close, delete, negotiate or open a WebSocket; the server\'s own origin and listed ones may', async () => {
  const evil = 'http://evil.example';
  const s = `cors-act-${process.pid}`;
  const ev = JSON.stringify({ type: 't', data: { n: 1 } });
  const post = (path, origin, extra = {}) =>
    request(srv.url, 'POST', path, { body: ev, headers: { 'content-type': 'text/plain;charset=UTF-8', ...(origin ? { origin } : {}), ...extra } });
  const refused = (r, what) => {
    assert.equal(r.status, 403, `${what}: ${r.status} ${r.text}`);
    assert.equal(r.json?.error, 'Forbidden', `${what}: ${r.text}`);
    assert.equal(r.headers['access-control-allow-origin'], undefined, `${what}: no CORS header`);
  };
  // an unlisted origin, "null" (a sandboxed frame, a file: page) and a loopback origin on
  // another port than the server's: nothing is appended
  for (const o of [evil, 'null', 'http://127.0.0.1:1']) refused(await post(`/api/streams/${s}/events`, o), `publish from ${o}`);
  assert.equal((await request(srv.url, 'GET', `/api/streams/${s}`)).status, 404, 'nothing was appended');
  // no Origin (not a browser), a listed origin, the server's own origin (as Host says, or as a
  // proxy's X-Forwarded-Host says, default port or not): each publish lands
  const host = `127.0.0.1:${srv.port}`;
  const ok = [
    await post(`/api/streams/${s}/events`),
    await post(`/api/streams/${s}/events`, 'http://app.example:8080'),
    await post(`/api/streams/${s}/events`, `http://${host}`),
    await post(`/api/streams/${s}/events`, 'https://events.example', { 'x-forwarded-host': 'events.example' }),
    await post(`/api/streams/${s}/events`, 'https://events.example', { 'x-forwarded-host': 'events.example:443' }),
  ];
  assert.deepEqual(ok.map((r) => r.status), [201, 201, 201, 201, 201], ok.map((r) => r.text).join(' | '));
  refused(await post(`/api/streams/${s}/events`, 'https://events.example', { 'x-forwarded-host': 'other.example' }), 'publish with another forwarded host');
  // closing and deleting: refused, and the stream is still open with its five events
  refused(await request(srv.url, 'POST', `/api/streams/${s}/close`, { headers: { origin: evil } }), 'close');
  refused(await request(srv.url, 'DELETE', `/api/streams/${s}`, { headers: { origin: evil } }), 'delete');
  const info = await request(srv.url, 'GET', `/api/streams/${s}`, { headers: { origin: evil } });
  assert.equal(info.status, 200, 'a read is answered (without CORS headers: the page cannot see it)');
  assert.equal(info.json.version, 5);
  assert.notEqual(info.json.closed, true);
  // SignalR: negotiate and a WebSocket upgrade (straight to /hub, as skipNegotiation does)
  refused(await negotiate('?negotiateVersion=1', { origin: evil }), 'negotiate');
  const upgrade = (origin) =>
    withTimeout(
      new Promise((resolve, reject) => {
        const q = TEST_AUTH_SECRET ? `?access_token=${testToken()}` : '';
        const ws = new WebSocket(`ws://127.0.0.1:${srv.port}/hub${q}`, origin ? { origin } : {});
        ws.on('open', () => {
          ws.close();
          resolve(101);
        });
        ws.on('unexpected-response', (req, res) => {
          res.resume();
          resolve(res.statusCode);
        });
        ws.on('error', reject);
      }),
      5000,
      'a WebSocket upgrade',
    );
  assert.equal(await upgrade(evil), 403, 'WebSocket from an unlisted origin');
  assert.equal(await upgrade('http://app.example:8080'), 101, 'WebSocket from a listed origin');
  assert.equal(await upgrade(`http://${host}`), 101, 'WebSocket from the server\'s own origin');
  assert.equal(await upgrade(), 101, 'WebSocket without an Origin');
  // the server still serves everyone else
  assert.equal((await negotiate()).status, 200);
});
