// /eventstreamhub, the drop-in for AspNetCore.SignalR.EventStream, driven by the stock
// @microsoft/signalr client the way that project's samples use it: Subscribe({StreamName,
// SubscriberId, SubscriberKey}), Publish(streamName, EventModel[]) with its three payload forms,
// events pushed as an invocation whose target is the stream name and whose first argument is a
// string holding a JSON array of PascalCase events, Unsubscribe(streamName, id, key).
//
// Every check is on what a seed client would see: the delivered strings field by field (against
// what the HTTP API says was stored), one array per publish, names that differ only in case
// reaching one stream, keys refused, and a subscriber that comes back (after a reconnect, a clean
// restart, or a kill -9) going on after its cursor with no gap, and with no duplicate when the
// server stopped cleanly.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startServer, publish, readAll, uniqueStream, sleep, withTimeout } from '../integration/lib/server.mjs';
import { hub, explain, waitFor } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'eventstream' });
});
after(async () => {
  await srv?.stop();
});

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
// DateTimeOffset's round-trip form with seven fraction digits, UTC
const OFFSET_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{7}\+00:00$/;

/** A connection to /eventstreamhub that records every array pushed for `target`. */
async function esClient(base, target, opts = {}) {
  const c = hub(base, { url: `${base}/eventstreamhub`, ...opts });
  c.arrays = [];
  c.on(target, (json, extra) => {
    c.arrays.push({ json, extra, events: JSON.parse(json) });
  });
  await c.start();
  return c;
}

const events = (c) => c.arrays.flatMap((a) => a.events);
const subscriber = () => ({ SubscriberId: randomUUID(), SubscriberKey: randomUUID() });

/** The seed's three payload forms (and the metadata forms), as a .NET client would send them. */
function payloads(msgpack) {
  const bytes = Buffer.from('hello bytes\u0000\u00ff', 'latin1');
  // byte[] travels as base64 in JSON and as bin in MessagePack
  const asBytes = (b) => (msgpack ? new Uint8Array(b) : b.toString('base64'));
  return [
    { Type: 'order.created', Description: 'bytes', Data: asBytes(bytes), MetaData: asBytes(Buffer.from([1, 2, 3])), IsJson: false, IsBase64String: false },
    { type: 'order.paid', description: 'base64 string', base64StringData: 'SGVsbG8=', base64StringMetaData: 'bWV0YQ==', isBase64String: true },
    { Type: 'order.shipped', JsonData: '{"id": 7, "items": ["a", "b"]}', IsJson: true },
    { Type: null, Description: 'no type' },
  ];
}

/** What the seed's subscriber gets for a stored event, built from the HTTP API's record. */
function expected(rec, sent, streamName) {
  const b64 = (v) => (v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v);
  const pick = (name) => {
    const k = Object.keys(sent).find((x) => x.toLowerCase() === name.toLowerCase());
    return k === undefined || sent[k] === null ? null : sent[k];
  };
  return {
    Id: rec.position,
    EventId: rec.id,
    OriginalEventId: null,
    CreatedAt: rec.time.replace(/Z$/, '0+00:00'),
    Description: pick('Description'),
    Type: pick('Type'),
    Data: b64(pick('Data')),
    Base64StringData: pick('Base64StringData'),
    JsonData: pick('JsonData'),
    MetaData: b64(pick('MetaData')),
    Base64StringMetaData: pick('Base64StringMetaData'),
    IsJson: pick('IsJson') === true,
    IsBase64String: pick('IsBase64String') === true,
    StreamName: streamName,
  };
}

const MODES = [
  { transport: 'WebSockets', msgpack: false },
  { transport: 'WebSockets', msgpack: true },
  { transport: 'ServerSentEvents', msgpack: false },
  { transport: 'LongPolling', msgpack: false },
  { transport: 'LongPolling', msgpack: true },
];

for (const mode of MODES) {
  const label = `${mode.transport} ${mode.msgpack ? 'MessagePack' : 'JSON'}`;
  test(`${label}: two subscribers get every payload form field by field, one array per publish`, async () => {
    const name = uniqueStream('Orders');
    // the seed trims names and ignores their case: all three spellings are one stream
    const a = await esClient(srv.url, name, mode);
    const b = await esClient(srv.url, name, mode);
    const pub = await esClient(srv.url, 'none', mode);
    await explain(a, async () => {
      const sa = subscriber(), sb = subscriber();
      await a.invoke('Subscribe', { StreamName: `  ${name}  `, ...sa });
      await b.invoke('Subscribe', { streamName: name.toUpperCase(), subscriberId: sb.SubscriberId, subscriberKey: sb.SubscriberKey });
      const sent = payloads(mode.msgpack);
      await pub.invoke('Publish', name.toLowerCase(), sent.slice(0, 3));
      await pub.invoke('Publish', ` ${name} `, sent.slice(3));
      await waitFor(() => events(a).length === 4 && events(b).length === 4, 5000, 'both subscribers to get 4 events');

      // stored under the first spelling, the one Subscribe created the stream with
      const stored = await readAll(srv, name);
      assert.equal(stored.length, 4, 'four events stored, in the stream named as first given');
      assert.equal(stored[3].type, 'eventstream', 'a null Type is stored as "eventstream"');
      for (const c of [a, b]) {
        assert.deepEqual(c.arrays.map((x) => x.events.length), [3, 1], 'one array per publish');
        for (const arr of c.arrays) {
          assert.equal(typeof arr.json, 'string', 'argument 0 is a string holding the array');
          assert.deepEqual(arr.extra, {}, 'argument 1 is {}');
        }
        const got = events(c);
        const guid = got[0].StreamId;
        assert.match(guid, GUID_RE);
        got.forEach((ev, i) => {
          assert.deepEqual(Object.keys(ev), ['Id', 'EventId', 'OriginalEventId', 'CreatedAt', 'Description', 'Type', 'Data', 'Base64StringData', 'JsonData', 'MetaData', 'Base64StringMetaData', 'IsJson', 'IsBase64String', 'StreamId', 'StreamName'], 'the seed\'s members, in its order');
          assert.match(ev.CreatedAt, OFFSET_TIME_RE);
          assert.equal(ev.StreamId, guid, 'one StreamId for the stream');
          const { StreamId, ...rest } = ev;
          assert.deepEqual(rest, expected(stored[i], sent[i], name), `event ${i}`);
        });
      }
      assert.deepEqual(events(a).map((e) => e.StreamId), events(b).map((e) => e.StreamId));
      // the bytes form decodes to what was sent
      assert.equal(Buffer.from(events(a)[0].Data, 'base64').toString('latin1'), 'hello bytes\u0000\u00ff');

      // Unsubscribe: a wrong key is refused and changes nothing; the right one stops delivery
      await assert.rejects(a.invoke('Unsubscribe', name, sa.SubscriberId, randomUUID()), /Forbidden/);
      await a.invoke('Unsubscribe', name, sa.SubscriberId, sa.SubscriberKey);
      await assert.rejects(a.invoke('Unsubscribe', name, sa.SubscriberId, sa.SubscriberKey), /Subscriber not found/);
      await pub.invoke('Publish', name, [{ Type: 'after', JsonData: '1', IsJson: true }]);
      await waitFor(() => events(b).length === 5, 5000, 'the remaining subscriber to get the fifth event');
      await sleep(200);
      assert.equal(events(a).length, 4, 'nothing after Unsubscribe');
    });
    await Promise.all([a.stop(), b.stop(), pub.stop()]);
  });
}

test('a subscriber id is bound to its key and its stream', async () => {
  const name = uniqueStream('keys');
  const c = await esClient(srv.url, name);
  await explain(c, async () => {
    const s = subscriber();
    await c.invoke('Subscribe', { StreamName: name, ...s });
    await assert.rejects(c.invoke('Subscribe', { StreamName: name, SubscriberId: s.SubscriberId, SubscriberKey: randomUUID() }), /Forbidden/);
    await assert.rejects(c.invoke('Subscribe', { StreamName: `${name}-other`, ...s }), /Conflict: .*another stream/);
    await assert.rejects(c.invoke('Unsubscribe', name, randomUUID(), randomUUID()), /Subscriber not found/);
    await assert.rejects(c.invoke('Unsubscribe', `${name}-other`, s.SubscriberId, s.SubscriberKey), /Subscriber not found/);
    // the same id on the same stream again (a reconnecting client) is fine: one subscription
    await c.invoke('Subscribe', { StreamName: name, ...s });
    await c.invoke('Publish', name, [{ Type: 'x', Base64StringData: 'eA==' }]);
    await waitFor(() => events(c).length === 1, 5000, 'the event');
    await sleep(200);
    assert.equal(c.arrays.length, 1, 'subscribing twice did not double the delivery');
  });
  await c.stop();
});

// The subscriber rows a client can make the server keep are bounded (--es-max-subscribers):
// beyond the limit a Subscribe with a new id fails with a clear error and adds no row, while
// subscribers that exist go on and an Unsubscribe makes room again.
test('persistent subscribers are bounded by --es-max-subscribers', async () => {
  const small = await startServer({ name: 'es-max-subs', flags: ['--es-max-subscribers', '3'] });
  try {
    const name = uniqueStream('bounded');
    const c = await esClient(small.url, name);
    await explain(c, async () => {
      const subs = [subscriber(), subscriber(), subscriber()];
      for (const s of subs) await c.invoke('Subscribe', { StreamName: name, ...s });
      await assert.rejects(c.invoke('Subscribe', { StreamName: name, ...subscriber() }), /TooManySubscribers: .*at most 3 subscribers/);
      await assert.rejects(c.invoke('Subscribe', { StreamName: `${name}-b`, ...subscriber() }), /TooManySubscribers/);
      // one that exists comes back without a new row; delivery goes on
      await c.invoke('Subscribe', { StreamName: name, ...subs[1] });
      await c.invoke('Publish', name, [{ Type: 'x', JsonData: '{}', IsJson: true }]);
      await waitFor(() => events(c).length >= 1, 5000, 'the event');
      // an Unsubscribe makes room for one more, and only one
      await c.invoke('Unsubscribe', name, subs[0].SubscriberId, subs[0].SubscriberKey);
      await c.invoke('Subscribe', { StreamName: name, ...subscriber() });
      await assert.rejects(c.invoke('Subscribe', { StreamName: name, ...subscriber() }), /TooManySubscribers/);
    });
    await c.stop();
  } finally {
    await small.stop();
  }
});

test('bad arguments get clear errors and the connection goes on', async () => {
  const name = uniqueStream('bad');
  const c = await esClient(srv.url, name);
  await explain(c, async () => {
    await assert.rejects(c.invoke('Subscribe', { StreamName: name, SubscriberId: 'not-a-guid', SubscriberKey: randomUUID() }), /InvalidSubscriber/);
    await assert.rejects(c.invoke('Subscribe', { StreamName: '$all', ...subscriber() }), /InvalidStreamName/);
    await assert.rejects(c.invoke('Subscribe', { StreamName: '   ', ...subscriber() }), /InvalidStreamName/);
    await assert.rejects(c.invoke('Subscribe', { StreamName: name, ...subscriber(), From: -1 }), /InvalidSubscriber/);
    await assert.rejects(c.invoke('Publish', name, [{ Type: 't', Data: 'not base64!' }]), /InvalidEvent: .*base64/);
    await assert.rejects(c.invoke('Publish', name, [{ Type: 't', IsJson: 'yes' }]), /InvalidEvent/);
    await assert.rejects(c.invoke('Publish', name, [{ Type: 'x'.repeat(201) }]), /InvalidEvent/);
    await assert.rejects(c.invoke('Publish', name, []), /InvalidEvent: no events/);
    await assert.rejects(c.invoke('Publish', name), /Failed to invoke 'Publish'/);
    await assert.rejects(c.invoke('EventStreamEventAppeared', {}, 'secret'), /Unknown hub method/);
    // nothing of that was stored (the stream was not even created), and the connection still
    // works
    assert.equal((await srv.get(`/api/streams/${name}`)).status, 404);
    await c.invoke('Publish', name, [{ Type: 'ok', JsonData: '{}', IsJson: true }]);
    assert.equal((await readAll(srv, name)).length, 1);
  });
  await c.stop();
});

test('events published through the HTTP API or /hub reach /eventstreamhub subscribers as JSON data', async () => {
  const name = uniqueStream('native');
  const c = await esClient(srv.url, name);
  await explain(c, async () => {
    await c.invoke('Subscribe', { StreamName: name, ...subscriber() });
    const r = await publish(srv, name, [{ type: 'native.one', data: { a: [1, 'x'] }, metadata: { m: 1 } }]);
    assert.equal(r.status, 201);
    await waitFor(() => events(c).length === 1, 5000, 'the event');
    const ev = events(c)[0];
    assert.equal(ev.Type, 'native.one');
    assert.equal(ev.JsonData, '{"a":[1,"x"]}');
    assert.equal(ev.IsJson, true);
    assert.equal(ev.Data, null);
    assert.equal(ev.Id, r.json.firstPosition);
  });
  await c.stop();
});

test('From resumes after a global event Id, with catch-up', async () => {
  const name = uniqueStream('from');
  const c = await esClient(srv.url, name);
  await explain(c, async () => {
    // interleave another stream so that Ids and versions differ
    for (let i = 0; i < 5; i++) {
      await c.invoke('Publish', name, [{ Type: `t${i}`, JsonData: String(i), IsJson: true }]);
      await publish(srv, `${name}-other`, [{ type: 'noise', data: i }]);
    }
    const stored = await readAll(srv, name);
    await c.invoke('Subscribe', { StreamName: name, ...subscriber(), From: stored[1].position });
    await waitFor(() => events(c).length === 3, 5000, 'the three events after the second');
    assert.deepEqual(events(c).map((e) => e.Id), stored.slice(2).map((e) => e.position));
    await c.invoke('Publish', name, [{ Type: 'live', JsonData: '9', IsJson: true }]);
    await waitFor(() => events(c).length === 4, 5000, 'the live event');
    assert.equal(events(c)[3].Type, 'live');
    // read back, events come one array per commit too (here: one publish each)
    assert.deepEqual(c.arrays.map((a) => a.events.length), [1, 1, 1, 1]);
  });
  await c.stop();
});

/** Publishes n events of `name` over HTTP, types `${tag}-${i}`. */
async function publishN(s, name, tag, n) {
  for (let i = 0; i < n; i++) {
    const r = await publish(s, name, [{ type: `${tag}-${i}`, data: i }]);
    assert.equal(r.status, 201);
  }
}

test('a subscriber goes on after its cursor: reconnect, clean restart (no duplicate), kill -9 (no gap)', async () => {
  const own = await startServer({ name: 'es-restart' });
  let cur = own;
  const name = uniqueStream('durable');
  const s = subscriber();
  const seen = [];
  const connect = async () => {
    const c = await esClient(cur.url, name);
    await c.invoke('Subscribe', { StreamName: name, ...s });
    return c;
  };
  try {
    let c = await connect();
    await publishN(cur, name, 'a', 3);
    await waitFor(() => events(c).length === 3, 5000, 'the first three');
    seen.push(...events(c));
    // a reconnect: what was published while away arrives, nothing twice
    await c.stop();
    await sleep(1300); // the cursor is stored when the subscription ends; give it time anyway
    await publishN(cur, name, 'b', 2);
    c = await connect();
    await waitFor(() => events(c).length === 2, 5000, 'the two published while away');
    seen.push(...events(c));

    // a clean restart with the client attached: not one event again
    await publishN(cur, name, 'c', 2);
    await waitFor(() => events(c).length === 4, 5000, 'two more');
    seen.push(...events(c).slice(2));
    await cur.stop({ keepDir: true });
    await c.stop().catch(() => {});
    cur = await startServer({ name: 'es-restart-2', dir: own.dir, port: own.port });
    await publishN(cur, name, 'd', 2);
    c = await connect();
    await waitFor(() => events(c).length === 2, 5000, 'the two published after the restart');
    seen.push(...events(c));
    await sleep(300);
    assert.equal(events(c).length, 2, 'nothing from before the restart came again');
    const stored = await readAll(cur, name);
    assert.deepEqual(seen.map((e) => e.Id), stored.map((e) => e.position), 'every event once, in order');
    assert.deepEqual(seen.map((e) => e.Type), stored.map((e) => e.type));

    // kill -9: the cursor may be up to a second old, so some events may come again, but none is
    // missing
    await publishN(cur, name, 'e', 3);
    await waitFor(() => events(c).length === 5, 5000, 'three more');
    const lastBefore = events(c)[4].Id;
    await cur.kill9();
    await c.stop().catch(() => {});
    cur = await startServer({ name: 'es-restart-3', dir: own.dir, port: own.port });
    await publishN(cur, name, 'f', 2);
    c = await connect();
    const all = await readAll(cur, name);
    await waitFor(() => events(c).some((e) => e.Id === all[all.length - 1].position), 5000, 'the newest event');
    const ids = events(c).map((e) => e.Id);
    assert.ok(ids[0] <= lastBefore + 1, `no gap: resumed at Id ${ids[0]}, the last seen was ${lastBefore}`);
    const expectIds = all.map((e) => e.position).filter((p) => p >= ids[0]);
    assert.deepEqual(ids, expectIds, 'from the resume point on, every event once and in order');
    await c.stop();
  } finally {
    if (cur !== own) await cur.stop().catch(() => {});
    await own.stop().catch(() => {});
    await own.removeDir?.().catch(() => {});
  }
});
