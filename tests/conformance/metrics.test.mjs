// /metrics: the Prometheus text exposition of the server's counters. Every line is checked
// against the format's rules (and by `promtool check metrics` when Debian's prometheus package is
// installed, as scripts/deps.sh --test does), and the figures a dashboard would alert on must
// move when events flow: appended, delivered over SSE and SignalR, publishes by outcome,
// connections by transport and protocol, the writer's histograms, bytes out. With auth on it
// needs the admin permission.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { startServer, publish, uniqueStream, subscribe, sleep, show, TEST_AUTH_SECRET } from '../integration/lib/server.mjs';
import { hub, explain, waitFor, MessagePackHubProtocol } from './lib/hub.mjs';

let srv;
before(async () => {
  srv = await startServer({ name: 'metrics' });
});
after(async () => {
  await srv?.stop();
});

const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const VALUE_RE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]Inf|NaN)$/;

/**
 * Parses an exposition by the text format's rules (version 0.0.4), failing on any line that
 * breaks them. Returns {families: Map(name -> {type, help}), samples: [{name, labels, value}]}.
 */
function parseExposition(text) {
  assert.ok(text.endsWith('\n'), 'the exposition ends with a newline');
  const families = new Map();
  const samples = [];
  const seen = new Set();
  const familyOf = (name) => {
    for (const suffix of ['_bucket', '_sum', '_count']) {
      const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : null;
      if (base && families.get(base)?.type === 'histogram') return base;
    }
    return name;
  };
  const lines = text.slice(0, -1).split('\n');
  lines.forEach((line, i) => {
    const where = `line ${i + 1}: ${JSON.stringify(line)}`;
    assert.ok(line.length > 0, `${where}: no empty lines`);
    if (line.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
      assert.ok(m, `${where}: a comment is # HELP or # TYPE`);
      assert.match(m[2], NAME_RE, where);
      const f = families.get(m[2]) ?? {};
      if (m[1] === 'TYPE') {
        assert.ok(['counter', 'gauge', 'histogram', 'summary', 'untyped'].includes(m[3]), where);
        assert.equal(f.type, undefined, `${where}: one TYPE per family`);
        assert.ok(!samples.some((s) => familyOf(s.name) === m[2]), `${where}: TYPE before the samples`);
        f.type = m[3];
      } else {
        assert.equal(f.help, undefined, `${where}: one HELP per family`);
        assert.ok(m[3].length > 0, `${where}: HELP says something`);
        f.help = m[3];
      }
      families.set(m[2], f);
      return;
    }
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)(?: (-?\d+))?$/.exec(line);
    assert.ok(m, `${where}: name, labels, value`);
    const [, name, labelText, value] = m;
    assert.match(name, NAME_RE, where);
    assert.match(value, VALUE_RE, `${where}: a float value`);
    const labels = {};
    if (labelText !== undefined) {
      const re = /([^=,\s]+)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)/y;
      let at = 0;
      while (at < labelText.length) {
        re.lastIndex = at;
        const l = re.exec(labelText);
        assert.ok(l, `${where}: label syntax at ${at}`);
        assert.match(l[1], LABEL_RE, where);
        assert.ok(!l[1].startsWith('__'), `${where}: __ names are reserved`);
        assert.equal(labels[l[1]], undefined, `${where}: a label once`);
        labels[l[1]] = l[2];
        at = re.lastIndex;
      }
    }
    const family = familyOf(name);
    const f = families.get(family);
    assert.ok(f?.type, `${where}: its family ${family} has a TYPE`);
    if (f.type === 'counter') assert.ok(name.endsWith('_total'), `${where}: counters end in _total`);
    if (f.type === 'histogram' && name.endsWith('_bucket')) assert.ok('le' in labels, `${where}: a bucket has le`);
    const key = `${name}${JSON.stringify(Object.entries(labels).sort())}`;
    assert.ok(!seen.has(key), `${where}: a series once`);
    seen.add(key);
    samples.push({ name, labels, value: Number(value.replace('Inf', 'Infinity')) });
  });
  // histograms: cumulative buckets ending in +Inf, which equals the count
  for (const [name, f] of families) {
    if (f.type !== 'histogram') continue;
    const buckets = samples.filter((s) => s.name === `${name}_bucket`);
    assert.ok(buckets.length >= 2, `${name} has buckets`);
    for (let i = 1; i < buckets.length; i++) {
      assert.ok(Number(buckets[i].labels.le.replace('Inf', 'Infinity')) > Number(buckets[i - 1].labels.le), `${name}: le ascending`);
      assert.ok(buckets[i].value >= buckets[i - 1].value, `${name}: buckets are cumulative`);
    }
    assert.equal(buckets.at(-1).labels.le, '+Inf', `${name}: the last bucket is +Inf`);
    const count = samples.find((s) => s.name === `${name}_count`);
    assert.ok(count && samples.some((s) => s.name === `${name}_sum`), `${name}: _sum and _count`);
    assert.equal(buckets.at(-1).value, count.value, `${name}: +Inf equals _count`);
  }
  return { families, samples };
}

/** One sample's value (labels must match exactly the given ones, in any order), or undefined. */
function value(exp, name, labels = {}) {
  const want = JSON.stringify(Object.entries(labels).sort());
  return exp.samples.find((s) => s.name === name && JSON.stringify(Object.entries(s.labels).sort()) === want)?.value;
}

async function scrape(s = srv, headers = {}) {
  const r = await s.request('GET', '/metrics', { headers });
  assert.equal(r.status, 200, show(r));
  assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  return { text: r.text, ...parseExposition(r.text) };
}

const PROMTOOL = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0;

test('the exposition follows the text format (and promtool agrees)', async () => {
  const exp = await scrape();
  for (const name of ['hubstream_events_appended_total', 'hubstream_writer_commit_seconds_count', 'hubstream_subscriptions', 'process_resident_memory_bytes', 'process_open_fds', 'hubstream_database_up']) {
    assert.ok(value(exp, name) !== undefined, `${name} is exposed`);
  }
  assert.ok(value(exp, 'process_resident_memory_bytes') > 1e6, 'RSS in bytes');
  assert.ok(value(exp, 'process_open_fds') > 3, 'open descriptors');
  assert.equal(value(exp, 'hubstream_database_up'), 1);
  if (!PROMTOOL) {
    if (process.env.HUBSTREAM_REQUIRE_PROMTOOL) assert.fail('promtool is missing (scripts/deps.sh --test installs it)');
    return;
  }
  const p = spawnSync('promtool', ['check', 'metrics'], { input: exp.text, encoding: 'utf8' });
  assert.equal(p.status, 0, `promtool check metrics: ${p.stdout}${p.stderr}`);
});

test('the figures move when events flow', async () => {
  const before = await scrape();
  const stream = uniqueStream('m');
  // subscribers: one SSE, one SignalR JSON WebSocket, one MessagePack long poll
  const sse = subscribe(srv.url, stream);
  await sse.ready;
  const ws = hub(srv.url);
  const lp = hub(srv.url, { transport: 'LongPolling', msgpack: true });
  let wsGot = 0;
  let lpGot = 0;
  ws.on('event', () => wsGot++);
  lp.on('event', () => lpGot++);
  await ws.start();
  await lp.start();
  await explain(ws, async () => {
    await ws.invoke('Subscribe', stream);
    await lp.invoke('Subscribe', stream);
    const mid = await scrape();
    const conns = (t, p) => value(mid, 'hubstream_connections', { api: t === 'sse' ? 'sse' : 'signalr', transport: t, protocol: p }) - value(before, 'hubstream_connections', { api: t === 'sse' ? 'sse' : 'signalr', transport: t, protocol: p });
    assert.equal(conns('sse', 'none'), 1, 'one more SSE connection');
    assert.equal(conns('websockets', 'json'), 1, 'one more JSON WebSocket');
    assert.equal(conns('longpolling', 'messagepack'), 1, 'one more MessagePack long poll');
    // the fan-out worker counts a subscription when it takes it in, which may come just after
    // Subscribe's answer (the IO thread hands it over): wait for it rather than race it
    let subs = mid;
    for (let i = 0; i < 50 && value(subs, 'hubstream_subscriptions') - value(before, 'hubstream_subscriptions') < 3; i++) {
      await sleep(20);
      subs = await scrape();
    }
    assert.equal(value(subs, 'hubstream_subscriptions') - value(before, 'hubstream_subscriptions'), 3);

    // 5 events over HTTP (one publish), 2 over SignalR (one publish), 1 refused (409)
    assert.equal((await publish(srv, stream, [1, 2, 3, 4, 5].map((i) => ({ type: 't', data: i })))).status, 201);
    await ws.invoke('Publish', stream, [{ type: 't', data: 6 }, { type: 't', data: 7 }]);
    assert.equal((await publish(srv, stream, { type: 't', data: 0 }, { expectedVersion: 0 })).status, 409);
    await waitFor(() => wsGot === 7 && lpGot === 7 && sse.events.length === 7, 5000, 'every subscriber to get 7 events');
    const after = await scrape();
    const d = (name, labels) => value(after, name, labels) - (value(before, name, labels) ?? 0);
    assert.equal(d('hubstream_events_appended_total'), 7);
    assert.equal(d('hubstream_events_delivered_total', { api: 'sse' }), 7);
    assert.equal(d('hubstream_events_delivered_total', { api: 'signalr' }), 14, 'two SignalR subscribers');
    assert.equal(d('hubstream_publishes_total', { api: 'http', status: '201' }), 1);
    assert.equal(value(after, 'hubstream_publishes_total', { api: 'http', status: '409' }) - (value(before, 'hubstream_publishes_total', { api: 'http', status: '409' }) ?? 0), 1);
    assert.equal(d('hubstream_publishes_total', { api: 'signalr', status: '201' }), 1);
    assert.ok(d('hubstream_writer_batch_events_count') >= 2, 'two batches at least');
    assert.ok(d('hubstream_writer_batch_events_sum') === 7, 'their events');
    assert.ok(d('hubstream_writer_commit_seconds_count') >= 2);
    assert.ok(d('hubstream_bytes_out_total') > 7 * 100, 'the deliveries went out');
    assert.ok(d('hubstream_subscribers_caught_up_total') >= 3, 'the three reached live delivery');
  });
  await ws.stop();
  await lp.stop();
  sse.close();
  // the gauges come back down
  let end;
  for (let i = 0; i < 50; i++) {
    end = await scrape();
    if (value(end, 'hubstream_connections', { api: 'signalr', transport: 'websockets', protocol: 'json' }) === value(before, 'hubstream_connections', { api: 'signalr', transport: 'websockets', protocol: 'json' }) &&
        value(end, 'hubstream_connections', { api: 'sse', transport: 'sse', protocol: 'none' }) === value(before, 'hubstream_connections', { api: 'sse', transport: 'sse', protocol: 'none' }))
      break;
    await sleep(100);
  }
  assert.equal(value(end, 'hubstream_connections', { api: 'signalr', transport: 'websockets', protocol: 'json' }), value(before, 'hubstream_connections', { api: 'signalr', transport: 'websockets', protocol: 'json' }));
  assert.equal(value(end, 'hubstream_connections', { api: 'sse', transport: 'sse', protocol: 'none' }), value(before, 'hubstream_connections', { api: 'sse', transport: 'sse', protocol: 'none' }));
});

test('GET only; with auth on, the admin permission', async () => {
  const r = await srv.request('POST', '/metrics', { body: '{}', headers: { 'content-type': 'application/json' } });
  assert.equal(r.status, 405);
  assert.match(r.headers.allow, /GET/);
  const secret = TEST_AUTH_SECRET || 'metrics-test-secret-0123456789abcdef';
  const own = TEST_AUTH_SECRET ? srv : await startServer({ name: 'metrics-auth', flags: ['--jwt-secret', secret] });
  try {
    const now = Math.floor(Date.now() / 1000);
    const token = (perms) => {
      const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
      const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'ops', exp: now + 600, hubstream: perms })}`;
      return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
    };
    const noAdmin = await own.request('GET', '/metrics', { headers: { authorization: `Bearer ${token({ subscribe: ['*'], publish: ['*'] })}` } });
    assert.equal(noAdmin.status, 403, show(noAdmin));
    const none = await own.request('GET', '/metrics', { headers: { authorization: 'Bearer x.y.z' } });
    assert.equal(none.status, 401);
    await scrape(own, { authorization: `Bearer ${token({ admin: true })}` });
  } finally {
    if (own !== srv) await own.stop();
  }
});
