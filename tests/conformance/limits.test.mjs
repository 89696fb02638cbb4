// Per-client limits against the real server: connections per source address, publishes per
// connection per second (HTTP and the hub), negotiates per source address per second. Each
// refusal is checked for its answer (429 with Retry-After, a hub error Completion) and for
// leaving other clients (another connection, another source address) untouched. Source
// addresses other than 127.0.0.1 are other loopback addresses (127.0.0.2, 127.0.0.3).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startServer, subscribe, uniqueStream, sleep, until } from '../integration/lib/server.mjs';
import { hub, explain } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer({
    name: 'limits',
    flags: ['--max-connections-per-ip', '4', '--max-publishes-per-s', '5', '--max-negotiates-per-ip-s', '3'],
  });
});
after(async () => {
  await srv?.stop();
});

/** One request on a keep-alive agent bound to localAddress. */
function req(agent, method, p, body) {
  return new Promise((resolve, reject) => {
    const r = http.request({ host: '127.0.0.1', port: srv.port, method, path: p, agent, headers: body ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } : {} }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (t) => (text += t));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    r.on('error', reject);
    if (body) r.write(body);
    r.end();
  });
}

/** What a raw connection from localAddress gets within 2 s: the first bytes, and whether it closed. */
function rawConnect(localAddress) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port: srv.port, localAddress });
    let data = '';
    const done = (closed) => {
      clearTimeout(t);
      resolve({ data, closed, socket: s });
    };
    const t = setTimeout(() => done(false), 2000);
    s.on('data', (d) => (data += d));
    s.on('close', () => done(true));
    s.on('error', () => {});
  });
}

test('connections per source address: the one over the limit gets 429 and is closed; other addresses and later connections are served', async () => {
  const stream = uniqueStream('limits-conn');
  const held = [];
  try {
    for (let i = 0; i < 4; i++) {
      const s = subscribe(srv.url, stream);
      await s.established();
      held.push(s);
    }
    const over = await rawConnect('127.0.0.1');
    assert.match(over.data, /^HTTP\/1\.1 429 /);
    assert.match(over.data, /too many connections/);
    assert.ok(over.closed, 'the connection over the limit is closed');
    // another source address is not counted with 127.0.0.1
    const other = await rawConnect('127.0.0.2');
    assert.equal(other.data, '', 'nothing sent to a connection under the limit');
    assert.ok(!other.closed, 'another address is served');
    other.socket.destroy();
    // the held subscriptions are untouched, and a closed one frees a place
    held.pop().close();
    await until(async () => {
      const r = await rawConnect('127.0.0.1');
      r.socket.destroy();
      return !r.closed && r.data === '';
    }, { timeoutMs: 5000, what: 'a place after one connection closed' });
    for (const s of held) assert.ok(!s.done, 'held subscriptions stay open');
  } finally {
    for (const s of held) s.close();
  }
});

test('publishes per connection per second: the sixth in a burst gets 429 with Retry-After; another connection is not held back; the bucket refills', async () => {
  const stream = uniqueStream('limits-pub');
  const a = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.3' });
  const b = new http.Agent({ keepAlive: true, maxSockets: 1, localAddress: '127.0.0.3' });
  try {
    const ev = JSON.stringify({ type: 't', data: 1 });
    // five a second, bursts of five: of a burst of ten, five pass, plus one per 200 ms the burst
    // took (a sanitizer build is slow), and the rest are refused
    const statuses = [];
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) statuses.push((await req(a, 'POST', `/api/streams/${stream}/events`, ev)).status);
    const refill = Math.floor(((Date.now() - t0) * 5) / 1000);
    const passed = statuses.filter((s) => s === 201).length;
    assert.ok(passed >= 5 && passed <= 5 + refill, `${passed} of 10 passed in ${Date.now() - t0} ms: ${statuses}`);
    assert.deepEqual(statuses.slice(0, 5), [201, 201, 201, 201, 201]);
    assert.ok(statuses.includes(429) || refill >= 5, `${statuses}`);
    const r = await req(a, 'POST', `/api/streams/${stream}/events`, ev);
    assert.equal(r.status, 429);
    assert.equal(r.headers['retry-after'], '1');
    assert.equal(JSON.parse(r.text).error, 'TooManyRequests');
    assert.equal((await req(b, 'POST', `/api/streams/${stream}/events`, ev)).status, 201, 'another connection');
    assert.equal((await req(a, 'GET', `/api/streams/${stream}/events`)).status, 200, 'reads are not counted');
    await sleep(450); // five a second: two tokens back
    assert.equal((await req(a, 'POST', `/api/streams/${stream}/events`, ev)).status, 201, 'refilled');
  } finally {
    a.destroy();
    b.destroy();
  }
});

test('publishes per hub connection per second: a burst gets TooManyRequests Completions, the connection goes on', async () => {
  const c = hub(srv.url, { transport: 'WebSockets' });
  await explain(c, async () => {
    await c.start();
    const stream = uniqueStream('limits-hub');
    const t0 = Date.now();
    const results = await Promise.allSettled(Array.from({ length: 12 }, () => c.invoke('Publish', stream, { type: 't', data: 1 })));
    const refill = Math.floor(((Date.now() - t0) * 5) / 1000);
    const ok = results.filter((r) => r.status === 'fulfilled').length;
    const refused = results.filter((r) => r.status === 'rejected');
    const what = `${ok} of 12 in ${Date.now() - t0} ms: ${JSON.stringify(results.map((r) => r.reason?.message ?? 'ok'))}`;
    assert.ok(ok >= 5 && ok <= 5 + refill, what);
    assert.ok(refused.length > 0 || refill >= 7, what);
    for (const r of refused) assert.match(r.reason.message, /TooManyRequests: more than 5 publishes per second/);
    assert.equal((await c.invoke('Read', stream)).length, ok, 'the refused publishes appended nothing');
    await sleep(300);
    assert.equal((await c.invoke('Publish', stream, { type: 't', data: 2 })).lastVersion, ok + 1);
    await c.stop();
  });
});

test('negotiates per source address per second: the fourth in a second gets 429; another address is not held back', async () => {
  const a = new http.Agent({ keepAlive: false, localAddress: '127.0.0.4' });
  const b = new http.Agent({ keepAlive: false, localAddress: '127.0.0.5' });
  try {
    await sleep(1000); // a fresh second for these addresses
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await req(a, 'POST', '/hub/negotiate?negotiateVersion=1')).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal((await req(b, 'POST', '/hub/negotiate?negotiateVersion=1')).status, 200);
    await sleep(1000);
    assert.equal((await req(a, 'POST', '/hub/negotiate?negotiateVersion=1')).status, 200, 'the next second');
  } finally {
    a.destroy();
    b.destroy();
  }
});
