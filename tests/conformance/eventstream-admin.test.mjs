// The admin routes of /eventstreamhub under /api/EventStream/ (the seed's EventStreamController):
// every route with its statuses and pages, checked against what the HTTP API says is stored, and
// stream association (copies, backfill, cycles, deletion). The replay PUT and the subscription
// processor are checked through a stock @microsoft/signalr client subscribed to /eventstreamhub.
// With auth on (the _auth run) every route needs the admin permission; a token without it gets
// 403.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomUUID } from 'node:crypto';
import { startServer, publish, readAll, uniqueStream, sleep, TEST_AUTH_SECRET, show } from '../integration/lib/server.mjs';
import { hub, explain, waitFor } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'es-admin' });
});
after(async () => {
  await srv?.stop();
});

const A = '/api/EventStream';
const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const OFFSET_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}\+00:00$/;

const get = (p) => srv.request('GET', p);
const post = (p, json) => srv.request('POST', p, { json });

/** Publishes n events of type `${tag}-i` to stream, returns the stored records. */
async function fill(stream, tag, n, extra = {}) {
  const r = await publish(srv, stream, Array.from({ length: n }, (_, i) => ({ type: `${tag}-${i}`, data: { i }, ...extra })));
  assert.equal(r.status, 201, show(r));
  return readAll(srv, stream);
}

/** The stream's EventStreamModel, found through the search route. */
async function streamModel(name) {
  const r = await post(`${A}/streams/search`, { name });
  assert.equal(r.status, 200, show(r));
  const m = r.json.find((s) => s.name === name);
  assert.ok(m, `stream ${name} is listed: ${show(r)}`);
  return m;
}

function assertStreamModel(m, name) {
  assert.deepEqual(Object.keys(m), ['id', 'streamId', 'name', 'createdAt', 'lastAssociatedEventId']);
  assert.equal(m.name, name);
  assert.equal(typeof m.id, 'number');
  assert.match(m.streamId, GUID_RE);
  assert.match(m.createdAt, OFFSET_TIME_RE);
}

test('streams: by GUID, by name (contains, case ignored), search, pages, statuses', async () => {
  const base = uniqueStream('Catalog');
  const names = [`${base}-a`, `${base}-B`, `${base}-c`];
  for (const n of names) await fill(n, 't', 1);
  const m = await streamModel(names[0]);
  assertStreamModel(m, names[0]);

  let r = await get(`${A}/streams/${m.streamId}`);
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json, m);
  // routes and GUIDs are matched ignoring case, GUIDs in any of .NET's forms
  r = await get(`/api/eventstream/STREAMS/{${m.streamId.toUpperCase()}}`);
  assert.equal(r.status, 200, show(r));
  assert.equal(r.json.name, names[0]);
  r = await get(`${A}/streams/${randomUUID()}`);
  assert.equal(r.status, 404);
  assert.equal(r.json.error, 'NotFound');
  r = await get(`${A}/streams/not-a-guid`);
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'BadRequest');

  // contains, ignoring ASCII case: all three, in creation order
  r = await get(`${A}/streams/stream/${encodeURIComponent(base.toUpperCase())}`);
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json.map((s) => s.name), names);
  r.json.forEach((s, i) => assertStreamModel(s, names[i]));
  // pages of 2: a Link to the next page, none after the last
  r = await get(`${A}/streams/stream/${encodeURIComponent(base)}?limit=2`);
  assert.deepEqual(r.json.map((s) => s.name), names.slice(0, 2));
  const link = /<\?after=(\d+)&limit=2>; rel="next"/.exec(r.headers.link ?? '');
  assert.ok(link, `a next link: ${r.headers.link}`);
  r = await get(`${A}/streams/stream/${encodeURIComponent(base)}?after=${link[1]}&limit=2`);
  assert.deepEqual(r.json.map((s) => s.name), names.slice(2));
  assert.equal(r.headers.link, undefined, 'no next page after the last');
  r = await get(`${A}/streams/stream/nothing-is-called-this-${randomUUID()}`);
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, [], 'no match is an empty list, not an error');
  assert.equal((await get(`${A}/streams/stream/x?limit=0`)).status, 400);
  assert.equal((await get(`${A}/streams/stream/x?limit=1001`)).status, 400);
  assert.equal((await get(`${A}/streams/stream/x?after=-1`)).status, 400);

  // search: by GUID, by name part, by creation time
  r = await post(`${A}/streams/search`, { streamId: m.streamId });
  assert.deepEqual(r.json.map((s) => s.name), [names[0]]);
  r = await post(`${A}/streams/search`, { Name: `${base}-b` });
  assert.deepEqual(r.json.map((s) => s.name), [names[1]], 'member names match ignoring case too');
  r = await post(`${A}/streams/search`, { name: base, createdStart: m.createdAt });
  assert.deepEqual(r.json.map((s) => s.name), names);
  r = await post(`${A}/streams/search`, { name: base, createdEnd: '2001-01-01T00:00:00Z' });
  assert.deepEqual(r.json, []);
  r = await post(`${A}/streams/search`, { name: base, createdStart: 'yesterday' });
  assert.equal(r.status, 400);
  assert.match(r.json.message, /createdStart/);
  assert.equal((await post(`${A}/streams/search`, { streamId: 'nope' })).status, 400);
  assert.equal((await srv.request('POST', `${A}/streams/search`, { body: '{"name":', headers: { 'content-type': 'application/json' } })).status, 400);
  assert.equal((await srv.request('POST', `${A}/streams/search`, { body: '[1]', headers: { 'content-type': 'application/json' } })).status, 400);

  // methods and unknown routes
  r = await srv.request('PUT', `${A}/streams/${m.streamId}`, { json: {} });
  assert.equal(r.status, 405);
  assert.match(r.headers.allow, /GET/);
  assert.equal((await get(`${A}/streams/search`)).status, 405);
  assert.equal((await get(`${A}/nothing/here`)).status, 404);
  assert.equal((await get(`${A}/streams/a/b/c/d`)).status, 404);
});

test('events: one by stream id and event GUID, search by type and time with pages', async () => {
  const name = uniqueStream('evs');
  const stored = await fill(name, 'Order.Created', 3);
  await fill(name, 'order.paid', 2);
  const all = await readAll(srv, name);
  const m = await streamModel(name);

  let r = await get(`${A}/events/${m.id}/${stored[1].id}`);
  assert.equal(r.status, 200, show(r));
  const ev = r.json;
  assert.deepEqual(Object.keys(ev), ['id', 'eventId', 'originalEventId', 'createdAt', 'description', 'type', 'data', 'base64StringData', 'jsonData', 'metaData', 'base64StringMetaData', 'isJson', 'isBase64String', 'streamId', 'streamName']);
  assert.equal(ev.id, stored[1].position);
  assert.equal(ev.eventId, stored[1].id);
  assert.equal(ev.type, 'Order.Created-1');
  assert.equal(ev.jsonData, '{"i":1}');
  assert.equal(ev.isJson, true);
  assert.equal(ev.streamId, m.streamId);
  assert.equal(ev.streamName, name);
  assert.equal(ev.createdAt, stored[1].time.replace(/Z$/, '0+00:00'));
  assert.equal((await get(`${A}/events/${m.id}/${randomUUID()}`)).status, 404);
  assert.equal((await get(`${A}/events/${m.id + 100000}/${stored[1].id}`)).status, 404, 'the event of another stream id');
  assert.equal((await get(`${A}/events/x/${stored[1].id}`)).status, 400);
  assert.equal((await get(`${A}/events/${m.id}/zzz`)).status, 400);

  // type contains, ignoring case; the seed's default of 50; pages
  r = await post(`${A}/events/search`, { streamId: m.id, type: 'ORDER.CREATED' });
  assert.equal(r.status, 200, show(r));
  assert.deepEqual(r.json.map((e) => e.id), stored.slice(0, 3).map((e) => e.position));
  r = await post(`${A}/events/search`, { streamId: m.id });
  assert.deepEqual(r.json.map((e) => e.id), all.map((e) => e.position));
  r = await post(`${A}/events/search`, { streamId: m.id, maxReturnRecords: 2 });
  assert.deepEqual(r.json.map((e) => e.id), all.slice(0, 2).map((e) => e.position));
  const next = /<\?after=(\d+)&limit=2>/.exec(r.headers.link ?? '');
  assert.ok(next, `a next link: ${r.headers.link}`);
  r = await post(`${A}/events/search?after=${next[1]}`, { streamId: m.id, maxReturnRecords: 2 });
  assert.deepEqual(r.json.map((e) => e.id), all.slice(2, 4).map((e) => e.position));
  r = await post(`${A}/events/search`, { streamId: m.id, createdStart: '2999-01-01T00:00:00+02:00' });
  assert.deepEqual(r.json, []);
  r = await post(`${A}/events/search`, { streamId: m.id, type: '%' });
  assert.deepEqual(r.json, [], 'LIKE wildcards in the text are taken literally');
  assert.equal((await post(`${A}/events/search`, { type: 'x' })).status, 400, 'streamId is required');
  assert.equal((await post(`${A}/events/search`, { streamId: m.id, maxReturnRecords: 0 })).status, 400);
  assert.equal((await post(`${A}/events/search`, { streamId: m.id, maxReturnRecords: 5000 })).status, 400);
});

test('DELETE streams/{id} removes the stream, its events and subscribers', async () => {
  const name = uniqueStream('gone');
  await fill(name, 't', 2);
  const m = await streamModel(name);
  let r = await srv.request('DELETE', `${A}/streams/${m.id}`);
  assert.equal(r.status, 200, show(r));
  assert.equal((await srv.get(`/api/streams/${name}`)).status, 404);
  assert.equal((await get(`${A}/streams/${m.streamId}`)).status, 404);
  r = await srv.request('DELETE', `${A}/streams/${m.id}`);
  assert.equal(r.status, 404);
  assert.equal((await srv.request('DELETE', `${A}/streams/abc`)).status, 400);
});

test('association: copies with every field, backfill in order, cycles refused, deletion unlinks', async () => {
  const tag = uniqueStream('as');
  const [a, b, all, all2] = [`${tag}-a`, `${tag}-b`, `${tag}-all`, `${tag}-all2`];
  const a0 = await fill(a, 'a', 2, { metadata: { from: 'a' } });
  const b0 = await fill(b, 'b', 1);

  // a new target, from two sources, with backfill: what they hold now, in order
  let r = await post(`${A}/streams/associate`, { name: all, associatedStreams: [{ name: a.toUpperCase() }, { streamId: (await streamModel(b)).streamId }], backfill: true });
  assert.equal(r.status, 200, show(r));
  assert.match(r.json, GUID_RE, 'the target stream\'s GUID, as the seed answers');
  assert.equal(r.json, (await streamModel(all)).streamId);
  let target = await readAll(srv, all);
  assert.deepEqual(target.map((e) => e.type), ['a-0', 'a-1', 'b-0']);
  assert.deepEqual(target.map((e) => e.metadata.$originalEventId), [...a0, ...b0].map((e) => e.id));
  assert.deepEqual(target.map((e) => e.data), [...a0, ...b0].map((e) => e.data));
  assert.equal(target[0].metadata.from, 'a', 'the source\'s metadata is kept');

  // later events are copied in the same commit: a chain copies the first original's id
  assert.equal((await post(`${A}/streams/associate`, { name: all2, associatedStreams: [{ name: all }] })).status, 200);
  const pub = await publish(srv, b, [{ type: 'b-live', data: [1, 2], metadata: { k: 'v' } }]);
  assert.equal(pub.status, 201);
  target = await readAll(srv, all);
  const chain = await readAll(srv, all2);
  const copy = target[target.length - 1];
  assert.equal(copy.type, 'b-live');
  assert.deepEqual(copy.data, [1, 2]);
  assert.deepEqual(copy.metadata, { $originalEventId: (await readAll(srv, b)).at(-1).id, k: 'v' });
  assert.equal(copy.position, pub.json.lastPosition + 1, 'the copy is committed right with its source');
  assert.equal(chain.length, 1, 'all2 was linked without backfill: only what came after');
  assert.equal(chain[0].metadata.$originalEventId, copy.metadata.$originalEventId);

  // cycles: a source into itself, or back up the chain
  r = await post(`${A}/streams/associate`, { name: a, existing: true, associatedStreams: [{ name: all2 }] });
  assert.equal(r.status, 409, show(r));
  assert.equal(r.json.error, 'Conflict');
  r = await post(`${A}/streams/associate`, { name: a, existing: true, associatedStreams: [{ name: a }] });
  assert.equal(r.status, 409);
  // unknown streams
  r = await post(`${A}/streams/associate`, { name: `${tag}-none`, existing: true, associatedStreams: [{ name: a }] });
  assert.equal(r.status, 404);
  assert.match(r.json.message, /does not exist/);
  r = await post(`${A}/streams/associate`, { name: all, existing: true, associatedStreams: [{ name: `${tag}-none` }] });
  assert.equal(r.status, 404);
  assert.match(r.json.message, /associated stream/);
  // bad requests
  assert.equal((await post(`${A}/streams/associate`, { name: all, associatedStreams: [] })).status, 400);
  assert.equal((await post(`${A}/streams/associate`, { associatedStreams: [{ name: a }] })).status, 400);
  assert.equal((await post(`${A}/streams/associate`, { name: all, associatedStreams: [{}] })).status, 400);
  assert.equal((await post(`${A}/streams/associate`, { name: '$x', associatedStreams: [{ name: a }] })).status, 400);
  // linking again is no error and copies nothing twice
  const before = (await readAll(srv, all)).length;
  assert.equal((await post(`${A}/streams/associate`, { name: all, existing: true, associatedStreams: [{ name: a }] })).status, 200);
  await publish(srv, a, [{ type: 'a-once', data: 1 }]);
  assert.equal((await readAll(srv, all)).length, before + 1);

  // deleting a source removes its links: nothing more is copied from a new stream of its name
  const am = await streamModel(a);
  assert.equal((await srv.request('DELETE', `${A}/streams/${am.id}`)).status, 200);
  await publish(srv, a, [{ type: 'a-reborn', data: 1 }]);
  await publish(srv, b, [{ type: 'b-after', data: 1 }]);
  target = await readAll(srv, all);
  assert.ok(!target.some((e) => e.type === 'a-reborn'), 'the deleted source is unlinked');
  assert.equal(target.at(-1).type, 'b-after', 'the other source is still linked');
  // and a deleted target takes its links with it: the source publishes on, nothing breaks
  const allm = await streamModel(all);
  assert.equal((await srv.request('DELETE', `${A}/streams/${allm.id}`)).status, 200);
  assert.equal((await publish(srv, b, [{ type: 'b-last', data: 1 }])).status, 201);
  assert.equal((await srv.get(`/api/streams/${all}`)).status, 404);
});

test('association with /eventstreamhub: a subscriber of the target gets the copies with OriginalEventId', async () => {
  const tag = uniqueStream('asub');
  const [src, dst] = [`${tag}-src`, `${tag}-dst`];
  await fill(src, 'x', 1);
  assert.equal((await post(`${A}/streams/associate`, { name: dst, associatedStreams: [{ name: src }] })).status, 200);
  const c = hub(srv.url, { url: `${srv.url}/eventstreamhub` });
  const got = [];
  c.on(dst, (json) => got.push(...JSON.parse(json)));
  await c.start();
  await explain(c, async () => {
    await c.invoke('Subscribe', { StreamName: dst, SubscriberId: randomUUID(), SubscriberKey: randomUUID() });
    await c.invoke('Publish', src, [{ Type: 'copied', Description: 'd', Base64StringData: 'QQ==', IsBase64String: true }]);
    await waitFor(() => got.length === 1, 5000, 'the copy');
    const original = (await readAll(srv, src)).at(-1);
    assert.equal(got[0].OriginalEventId, original.id);
    assert.notEqual(got[0].EventId, original.id);
    assert.equal(got[0].Type, 'copied');
    assert.equal(got[0].Description, 'd');
    assert.equal(got[0].Base64StringData, 'QQ==');
    assert.equal(got[0].IsBase64String, true);
    assert.equal(got[0].StreamName, dst);
  });
  await c.stop();
});

test('subscribers: GET shows the cursor; PUT replays a range to the connected subscriber', async () => {
  const name = uniqueStream('replay');
  const c = hub(srv.url, { url: `${srv.url}/eventstreamhub`, msgpack: true });
  const arrays = [];
  c.on(name, (json) => arrays.push(JSON.parse(json)));
  await c.start();
  const s = { SubscriberId: randomUUID(), SubscriberKey: randomUUID() };
  await explain(c, async () => {
    await c.invoke('Subscribe', { StreamName: name, ...s });
    await c.invoke('Publish', name, [1, 2, 3, 4, 5].map((i) => ({ Type: `t${i}`, JsonData: String(i), IsJson: true })));
    await waitFor(() => arrays.flat().length === 5, 5000, 'five events');
    const stored = await readAll(srv, name);
    // the cursor is stored about once a second
    let r;
    const t0 = Date.now();
    for (;;) {
      r = await get(`${A}/subscribers/${s.SubscriberId}`);
      assert.equal(r.status, 200, show(r));
      if (r.json.lastAccessedCurrentEventId === stored[4].position || Date.now() - t0 > 5000) break;
      await sleep(100);
    }
    assert.deepEqual(Object.keys(r.json), ['id', 'streamId', 'stream', 'subscriberId', 'connectionId', 'receiveMethod', 'lastAccessedCurrentEventId', 'lastAccessedFromEventId', 'lastAccessedToEventId', 'createdAt']);
    assert.equal(r.json.subscriberId, s.SubscriberId);
    assert.equal(r.json.lastAccessedCurrentEventId, stored[4].position);
    assert.equal(r.json.stream.name, name);
    assert.equal(r.json.streamId, r.json.stream.id);
    assert.equal(typeof r.json.connectionId, 'string');
    assert.ok(!('subscriberKey' in r.json), 'the key is never shown');

    // replay Ids 2..4 (inclusive): one more array with exactly those
    r = await srv.request('PUT', `${A}/subscribers/${s.SubscriberId}`, { json: { lastAccessedFromEventId: stored[1].position, lastAccessedToEventId: stored[3].position } });
    assert.equal(r.status, 200, show(r));
    assert.equal(r.json.events, 3);
    await waitFor(() => arrays.length === 2, 5000, 'the replayed array');
    assert.deepEqual(arrays[1].map((e) => e.Id), stored.slice(1, 4).map((e) => e.position));
    assert.deepEqual(arrays[1].map((e) => e.Type), ['t2', 't3', 't4']);
    r = await get(`${A}/subscribers/${s.SubscriberId}`);
    assert.equal(r.json.lastAccessedFromEventId, stored[1].position);
    assert.equal(r.json.lastAccessedToEventId, stored[3].position);
    // 0 / absent: from the start to the end
    r = await srv.request('PUT', `${A}/subscribers/${s.SubscriberId}`, { json: {} });
    assert.equal(r.json.events, 5);
    await waitFor(() => arrays.length === 3, 5000, 'the whole stream again');
    assert.equal(arrays[2].length, 5);
    // statuses
    assert.equal((await srv.request('PUT', `${A}/subscribers/${randomUUID()}`, { json: {} })).status, 404);
    assert.equal((await get(`${A}/subscribers/${randomUUID()}`)).status, 404);
    assert.equal((await srv.request('PUT', `${A}/subscribers/${s.SubscriberId}`, { json: { lastAccessedFromEventId: -2 } })).status, 400);
    assert.equal((await srv.request('PUT', `${A}/subscribers/${s.SubscriberId}`, { json: { lastAccessedFromEventId: 9, lastAccessedToEventId: 3 } })).status, 400);
    assert.equal((await srv.request('DELETE', `${A}/subscribers/${s.SubscriberId}`)).status, 405);
  });
  await c.stop();
});

test('subscriptionprocessor: stop pauses delivery, start resumes it with what was missed, in order', async () => {
  const name = uniqueStream('pause');
  const c = hub(srv.url, { url: `${srv.url}/eventstreamhub` });
  const got = [];
  c.on(name, (json) => got.push(...JSON.parse(json)));
  await c.start();
  await explain(c, async () => {
    await c.invoke('Subscribe', { StreamName: name, SubscriberId: randomUUID(), SubscriberKey: randomUUID() });
    await c.invoke('Publish', name, [{ Type: 'before' }]);
    await waitFor(() => got.length === 1, 5000, 'the first event');
    let r = await post(`${A}/subscriptionprocessor`, { stop: true });
    assert.equal(r.status, 200, show(r));
    assert.deepEqual(r.json, { started: false });
    await c.invoke('Publish', name, [{ Type: 'paused-1' }, { Type: 'paused-2' }]);
    // a subscriber that arrives while paused is held too
    const late = [];
    const c2 = hub(srv.url, { url: `${srv.url}/eventstreamhub` });
    c2.on(name, (json) => late.push(...JSON.parse(json)));
    await c2.start();
    await c2.invoke('Subscribe', { StreamName: name, SubscriberId: randomUUID(), SubscriberKey: randomUUID(), From: 0 });
    await sleep(400);
    assert.equal(got.length, 1, 'nothing is delivered while stopped');
    assert.equal(late.length, 0);
    r = await post(`${A}/subscriptionprocessor`, { start: true });
    assert.deepEqual(r.json, { started: true });
    await waitFor(() => got.length === 3 && late.length === 3, 5000, 'what was published while stopped');
    assert.deepEqual(got.map((e) => e.Type), ['before', 'paused-1', 'paused-2']);
    assert.deepEqual(late.map((e) => e.Type), ['before', 'paused-1', 'paused-2']);
    await c.invoke('Publish', name, [{ Type: 'after' }]);
    await waitFor(() => got.length === 4, 5000, 'live again');
    assert.equal((await post(`${A}/subscriptionprocessor`, { start: true })).json.started, true, 'starting twice is fine');
    assert.equal((await get(`${A}/subscriptionprocessor`)).status, 405);
    await c2.stop();
  });
  await c.stop();
});

test('with auth on, every admin route needs the admin permission', { skip: !TEST_AUTH_SECRET && 'auth is off in this run' }, async () => {
  const now = Math.floor(Date.now() / 1000);
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'nobody', exp: now + 600, hubstream: { publish: ['*'], subscribe: ['*'] } })}`;
  const token = `${input}.${createHmac('sha256', TEST_AUTH_SECRET).update(input).digest('base64url')}`;
  const headers = { authorization: `Bearer ${token}` };
  for (const [m, p] of [['GET', `${A}/streams/stream/x`], ['POST', `${A}/streams/search`], ['POST', `${A}/subscriptionprocessor`], ['DELETE', `${A}/streams/1`], ['PUT', `${A}/subscribers/${randomUUID()}`]]) {
    const r = await srv.request(m, p, m === 'GET' || m === 'DELETE' ? { headers } : { json: {}, headers });
    assert.equal(r.status, 403, `${m} ${p}: ${show(r)}`);
  }
  const r = await srv.request('GET', `${A}/streams/stream/x`, { headers: { authorization: 'Bearer nope' } });
  assert.equal(r.status, 401);
});
