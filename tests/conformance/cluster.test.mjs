// Several nodes on one PostgreSQL database, each backplane (postgres LISTEN/NOTIFY, Redis
// pub/sub, polling): publishing on every node at once, SSE and SignalR (JSON and MessagePack)
// subscribers on every node, `$all` included, get every event once and in order, and closes
// reach every node. Then faults: the listeners' connections killed, PostgreSQL restarted, Redis
// restarted, a node killed with -9 and its SSE and SignalR clients resuming on another node.
//
// The test starts its own PostgreSQL (tests/pg/pg.sh) and redis-server on loopback and stops them
// by process id. ctest passes HUBSTREAM_TEST_CLUSTER="PG_SH,PORT,DIR" (skipped without it).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import net from 'node:net';
import { startServer, publish, subscribe, uniqueStream, sleep, killAll, uuid, until, request } from '../integration/lib/server.mjs';
import { hub, waitFor } from './lib/hub.mjs';

const CLUSTER = process.env.HUBSTREAM_TEST_CLUSTER || '';
const [PG_SH, PG_PORT, PG_DIR] = CLUSTER.split(',');
const skip = CLUSTER ? false : 'needs HUBSTREAM_TEST_CLUSTER (ctest runs it as cluster)';
const ODBC = { ODBCSYSINI: `${PG_DIR}/odbc` };

let redis = null; // { proc, port }
const databases = new Set();

function psql(sql, db = 'postgres') {
  const r = spawnSync('psql', [`host=127.0.0.1 port=${PG_PORT} user=postgres dbname=${db}`, '-qAtc', sql], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`psql ${sql}: ${r.stderr || r.error}`);
  return r.stdout.trim();
}

function freshDb(name) {
  psql(`DROP DATABASE IF EXISTS ${name}`);
  psql(`CREATE DATABASE ${name}`);
  databases.add(name);
  return `Driver=PostgreSQL Unicode;Server=127.0.0.1;Port=${PG_PORT};Database=${name};Uid=postgres;Pwd=;`;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

async function startRedis(port) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await until(() => new Promise((r) => {
    const c = net.connect(port, '127.0.0.1', () => { c.destroy(); r(true); });
    c.on('error', () => r(false));
  }), { timeoutMs: 10000, what: `redis-server on ${port}` });
  return { proc, port };
}

async function stopRedis() {
  if (!redis) return;
  const { proc } = redis;
  if (proc.exitCode === null) {
    const gone = new Promise((r) => proc.on('exit', r));
    proc.kill('SIGKILL');
    await gone;
  }
}

before(async () => {
  if (!CLUSTER) return;
  const r = spawnSync(PG_SH, ['start', PG_DIR, PG_PORT], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`pg.sh start: ${r.stderr}`);
  redis = await startRedis(await freePort());
});

after(async () => {
  killAll();
  await stopRedis();
  if (CLUSTER) spawnSync(PG_SH, ['stop', PG_DIR], { encoding: 'utf8' });
});

function backplaneFlag(bp) {
  return bp === 'redis' ? `redis://127.0.0.1:${redis.port}/hs-test` : bp;
}

async function startNodes(n, bp, db, extra = []) {
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push(await startServer({ db, env: ODBC, name: `node${i + 1}`, flags: ['--backplane', backplaneFlag(bp), ...extra] }));
  }
  return nodes;
}

async function stopNodes(nodes) {
  for (const n of nodes) if (n.running) await n.stop();
}

/** A SignalR push subscription on its own connection: collects `event` records and `closed`. */
async function hubSub(node, stream, { msgpack = false } = {}) {
  const c = hub(node.url, { msgpack });
  const sub = { c, events: [], closed: null, label: `${node.name} hub${msgpack ? '/msgpack' : ''} ${stream}` };
  c.on('event', (rec) => sub.events.push(rec));
  c.on('closed', (s, why) => (sub.closed = why));
  await c.start();
  await c.invoke('Subscribe', stream);
  return sub;
}

/** Checks one subscriber's records: exactly `want` (an array of ids in order), once each. */
function checkOrder(label, got, want) {
  const ids = got.map((r) => r.id);
  assert.equal(new Set(ids).size, ids.length, `${label}: a duplicate among ${ids.length} events`);
  assert.equal(ids.length, want.length, `${label}: got ${ids.length} events, want ${want.length}`);
  for (let i = 0; i < want.length; i++) assert.equal(ids[i], want[i], `${label}: event ${i} out of order or missing`);
}

/** The events of a stream in version order ($all: position order), read from the database. */
async function stored(node, stream) {
  const out = [];
  let from = 0;
  for (;;) {
    const r = await request(node.url, 'GET', `/api/streams/${encodeURIComponent(stream)}/events?from=${from}&limit=1000`);
    assert.equal(r.status, 200, r.text);
    const evs = r.json.events;
    if (!evs.length) return out;
    out.push(...evs);
    from = r.json.next;
  }
}

/** Publishes `rounds` times from `workers` loops per node into the streams, round robin. */
async function publishEverywhere(nodes, streams, { workers = 2, rounds = 15, batch = 2 } = {}) {
  const acked = [];
  const loop = async (node, w) => {
    for (let i = 0; i < rounds; i++) {
      const s = streams[(i + w) % streams.length];
      const events = Array.from({ length: batch }, () => ({ type: 'cluster.test', data: { node: node.name, w, i }, id: uuid() }));
      const r = await publish(node, s, events);
      assert.equal(r.status, 201, `${node.name}: ${r.text}`);
      acked.push(...events.map((e) => e.id));
    }
  };
  await Promise.all(nodes.flatMap((n) => Array.from({ length: workers }, (_, w) => loop(n, w))));
  return acked;
}

for (const bp of ['postgres', 'redis', 'poll']) {
  test(`three nodes, --backplane ${bp}: every subscriber on every node gets every event once, in order, live`, { skip, timeout: 120000 }, async () => {
    const nodes = await startNodes(3, bp, freshDb(`hs_cluster_${bp}`));
    const subs = [];
    try {
      const s1 = uniqueStream('c1');
      const s2 = uniqueStream('c2');
      const sse = [];
      for (const n of nodes) {
        const a = subscribe(n.url, s1, { label: `${n.name} sse ${s1}`, server: n });
        const b = subscribe(n.url, '$all', { label: `${n.name} sse $all`, server: n });
        await a.established();
        await b.established();
        sse.push({ node: n, s1: a, all: b });
        subs.push(await hubSub(n, s1), await hubSub(n, '$all', { msgpack: true }));
      }
      const acked = await publishEverywhere(nodes, [s1, s2]);
      const want1 = (await stored(nodes[0], s1)).map((r) => r.id);
      const wantAll = (await stored(nodes[0], '$all')).map((r) => r.id);
      assert.equal(wantAll.length, acked.length, 'every acknowledged event is stored');
      assert.deepEqual(new Set(wantAll), new Set(acked));

      for (const { s1: a, all: b } of sse) {
        await a.waitForEvents(want1.length, 15000);
        await b.waitForEvents(wantAll.length, 15000);
      }
      for (const sub of subs) {
        const want = sub.label.endsWith('$all') ? wantAll : want1;
        await waitFor(() => sub.events.length >= want.length, 15000, `${sub.label}: ${want.length} events (has ${sub.events.length})`);
      }
      await sleep(300); // anything extra (a duplicate) would arrive now
      for (const { s1: a, all: b } of sse) {
        checkOrder(a.label, a.events.map((e) => e.json), want1);
        checkOrder(b.label, b.events.map((e) => e.json), wantAll);
        a.events.forEach((e, i) => assert.equal(e.json.version, i + 1, `${a.label}: versions gapless`));
        b.events.forEach((e, i) => assert.equal(e.json.position, i + 1, `${b.label}: positions gapless`));
      }
      for (const sub of subs) checkOrder(sub.label, sub.events, sub.label.endsWith('$all') ? wantAll : want1);

      // a close on one node reaches the subscribers of every node
      const r = await request(nodes[1].url, 'POST', `/api/streams/${s1}/close`);
      assert.equal(r.status, 200, r.text);
      for (const { s1: a } of sse) await a.waitFor((s) => s.closeBlock, 5000, 'event: close');
      for (const sub of subs.filter((x) => !x.label.endsWith('$all'))) await waitFor(() => sub.closed === 'closed', 5000, `${sub.label}: closed`);
      // and a delete on another node reaches a subscriber of the deleted stream elsewhere
      const d = subscribe(nodes[0].url, s2, { label: `node1 sse ${s2}`, server: nodes[0] });
      await d.established();
      assert.equal((await request(nodes[2].url, 'DELETE', `/api/streams/${s2}`)).status, 204);
      await d.waitFor((x) => x.closeBlock, 5000, 'event: close');
      assert.equal(d.closeBlock.json.reason, 'deleted');
      d.close();
    } finally {
      for (const s of subs) await s.c.stop().catch(() => {});
      await stopNodes(nodes);
    }
  });
}

/** Live SSE subscribers to `stream` on every node; their events are checked against the store. */
async function watchers(nodes, stream) {
  const out = [];
  for (const n of nodes) {
    const w = subscribe(n.url, stream, { label: `${n.name} sse ${stream}`, server: n });
    await w.established();
    out.push(w);
  }
  return out;
}

async function publishSome(node, stream, n) {
  const ids = [];
  for (let i = 0; i < n; i++) {
    const r = await publish(node, stream, [{ type: 'fault', data: { i }, id: uuid() }]);
    if (r.status === 201) ids.push(r.json.firstVersion);
  }
  return ids;
}

async function allDelivered(ws, node, stream, ms = 15000) {
  const want = (await stored(node, stream)).map((r) => r.id);
  for (const w of ws) await w.waitForEvents(want.length, ms);
  await sleep(200);
  for (const w of ws) checkOrder(w.label, w.events.map((e) => e.json), want);
  return want.length;
}

test('faults with --backplane postgres: killed listeners and a PostgreSQL restart lose and double nothing', { skip, timeout: 120000 }, async () => {
  const nodes = await startNodes(3, 'postgres', freshDb('hs_cluster_faults'));
  try {
    const s = uniqueStream('f');
    const ws = await watchers(nodes, s);
    await publishSome(nodes[0], s, 5);
    await allDelivered(ws, nodes[0], s);

    // every node's listening connection killed by the database
    const killed = Number(psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'hubstream-listen'"));
    assert.equal(killed, 3, 'three listeners were connected');
    await publishSome(nodes[0], s, 5);
    await allDelivered(ws, nodes[0], s);
    for (const n of nodes) await until(() => n.logRecords().some((r) => r.msg === 'backplane connected again'), { timeoutMs: 10000, what: `${n.name} listening again` });
    await publishSome(nodes[2], s, 5);
    await allDelivered(ws, nodes[0], s);

    // PostgreSQL restarted while every node publishes: only acknowledged events count
    const load = Promise.all(nodes.map((n) => publishSome(n, s, 30)));
    await sleep(200);
    let r = spawnSync(PG_SH, ['halt', PG_DIR, 'fast'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await sleep(1500);
    r = spawnSync(PG_SH, ['resume', PG_DIR, PG_PORT], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    await load;
    // the writers reconnect with backoff: publish until each node's publish works again
    for (const n of nodes) await until(async () => (await publishSome(n, s, 1)).length === 1, { timeoutMs: 20000, what: `${n.name} publishing again` });
    const total = await allDelivered(ws, nodes[1], s, 30000);
    assert.ok(total >= 18, `events stored: ${total}`);
  } finally {
    await stopNodes(nodes);
  }
});

test('faults with a Redis backplane: Redis restarted, nothing lost or doubled', { skip, timeout: 120000 }, async () => {
  const nodes = await startNodes(3, 'redis', freshDb('hs_cluster_redis_faults'));
  try {
    const s = uniqueStream('r');
    const ws = await watchers(nodes, s);
    await publishSome(nodes[0], s, 5);
    await allDelivered(ws, nodes[0], s);
    const port = redis.port;
    await stopRedis();
    // no backplane: the nodes still read the heads every second
    await publishSome(nodes[1], s, 5);
    await allDelivered(ws, nodes[0], s);
    redis = await startRedis(port);
    for (const n of nodes) await until(() => n.logRecords().some((r) => r.msg === 'backplane connected again'), { timeoutMs: 15000, what: `${n.name} subscribed again` });
    const t0 = Date.now();
    await publishSome(nodes[2], s, 5);
    await allDelivered(ws, nodes[0], s);
    assert.ok(Date.now() - t0 < 5000);
  } finally {
    await stopNodes(nodes);
  }
});

/** A TCP proxy whose upstream port can be switched: the load balancer of the last test. */
async function switchableProxy(port) {
  const pairs = new Set();
  const px = { target: port };
  const server = net.createServer((c) => {
    const s = net.connect(px.target, '127.0.0.1');
    c.pipe(s);
    s.pipe(c);
    const pair = { c, s };
    pairs.add(pair);
    const end = () => {
      c.destroy();
      s.destroy();
      pairs.delete(pair);
    };
    for (const x of [c, s]) {
      x.on('error', end);
      x.on('close', end);
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  px.port = server.address().port;
  px.url = `http://127.0.0.1:${px.port}`;
  px.close = () => {
    for (const { c, s } of pairs) {
      c.destroy();
      s.destroy();
    }
    return new Promise((r) => server.close(r));
  };
  return px;
}

test('a node killed with -9: its SSE and SignalR clients resume on another node with no gap and no duplicate', { skip, timeout: 120000 }, async () => {
  const nodes = await startNodes(3, 'postgres', freshDb('hs_cluster_kill'));
  const px = await switchableProxy(nodes[2].port);
  let c;
  try {
    const s = uniqueStream('k');
    const others = await watchers(nodes.slice(0, 2), s);
    // on node 3: an SSE client and a SignalR client with stateful reconnect, through the proxy
    const sse = subscribe(nodes[2].url, s, { label: 'node3 sse', server: nodes[2] });
    await sse.established();
    c = hub(px.url, { stateful: true, reconnect: [0, 200, 500, 1000, 2000] });
    const got = [];
    let last = 0;
    c.on('event', (rec) => {
      got.push(rec);
      last = rec.version;
    });
    // the application's part: after any reconnect, subscribe again from the last version seen
    c.onreconnected(() => c.invoke('Subscribe', s, last).catch(() => {}));
    await c.start();
    await c.invoke('Subscribe', s);

    const pub = (async () => {
      for (let i = 0; i < 60; i++) {
        await publishSome(nodes[i % 2], s, 1);
        await sleep(20);
      }
    })();
    await sse.waitForEvents(10, 10000);
    await waitFor(() => got.length >= 10, 10000, 'the hub client to get 10 events');
    nodes[2].proc.kill('SIGKILL');
    await nodes[2].exited;
    px.target = nodes[0].port; // the load balancer fails over
    // the SSE client comes back on node 1 with Last-Event-ID, as EventSource does
    const again = subscribe(nodes[0].url, s, { label: 'node3 sse on node1', lastEventId: sse.lastId, server: nodes[0] });
    await again.established();
    await pub;
    const want = (await stored(nodes[0], s)).map((r) => r.id);
    await again.waitFor(() => sse.events.length + again.events.length >= want.length, 15000, 'every event');
    await waitFor(() => got.length >= want.length, 20000, `the hub client to get ${want.length} events (has ${got.length})`);
    await sleep(300);
    checkOrder('sse across the failover', sse.events.concat(again.events).map((e) => e.json), want);
    checkOrder('hub client across the failover', got, want);
    for (const w of others) {
      await w.waitForEvents(want.length, 10000);
      checkOrder(w.label, w.events.map((e) => e.json), want);
    }
  } finally {
    await c?.stop().catch(() => {});
    await px.close();
    await stopNodes(nodes);
  }
});

test('retention sweeps run on one node at a time, and another node takes over when it stops', { skip, timeout: 120000 }, async () => {
  const nodes = await startNodes(2, 'postgres', freshDb('hs_cluster_leader'), ['--retention', 'ret-*:max-count=5']);
  try {
    const leads = (n) => n.logRecords().some((r) => r.msg === 'this node now runs the retention sweeps for the cluster');
    await until(() => nodes.some(leads), { timeoutMs: 10000, what: 'a retention leader' });
    await sleep(6000); // longer than a non-leader waits between two tries for the lock
    assert.equal(nodes.filter(leads).length, 1, 'exactly one node leads');
    const leader = nodes.find(leads);
    const other = nodes.find((n) => n !== leader);
    const s = uniqueStream('ret-');
    await publishSome(other, s, 20);
    await until(async () => (await stored(other, s)).length === 5, { timeoutMs: 10000, what: 'the sweep to keep 5 events' });

    await leader.stop();
    await until(() => leads(other), { timeoutMs: 15000, what: 'the other node to take over' });
    await publishSome(other, s, 20);
    await until(async () => (await stored(other, s)).length === 5, { timeoutMs: 10000, what: 'the new leader to sweep' });
  } finally {
    await stopNodes(nodes);
  }
});

test('a node on a shared database says why other nodes\' events may be late, or not live', { skip, timeout: 60000 }, async () => {
  const db = freshDb('hs_cluster_warn');
  const polling = await startServer({ db, env: ODBC, name: 'polling' });
  const none = await startServer({ db, env: ODBC, name: 'none', flags: ['--backplane', 'none'] });
  try {
    const warned = (n, re) => n.logRecords().some((r) => r.level === 'warn' && re.test(r.msg));
    assert.ok(warned(polling, /no --backplane configured for a shared database: this node polls it .* up to 100 ms late/), polling.logs());
    assert.ok(warned(none, /--backplane none on a shared database: .* not live/), none.logs());
  } finally {
    await none.stop();
    await polling.stop();
  }
});
