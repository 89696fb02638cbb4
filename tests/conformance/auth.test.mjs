// Auth against the real server: JWT (HS256, RS256, ES256 with kid) as the official SignalR client
// (accessTokenFactory over every transport), curl-like HTTP clients and EventSource-like SSE
// clients present it. Every refusal the API promises is checked for its status (401 with
// WWW-Authenticate: Bearer, or 403) or its hub error, and for leaving a well-behaved client on
// the same server untouched; a token that expires during an SSE or a SignalR subscription ends
// it. Tokens are made at test time (lib/jwt.mjs); nothing here trusts the server's own code.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startServer, request, subscribe, uniqueStream, withTimeout, BIN } from '../integration/lib/server.mjs';
import { hub, explain, streamItems, waitFor } from './lib/hub.mjs';
import { hs256, keyPair, writePem, signed, unsigned, claims, now } from './lib/jwt.mjs';

const SECRET = 'conformance-secret-0123456789-abcdefghij';
let tmp, rsa, ec, rsaOther, srv, keySrv;

const bearer = (t) => ({ authorization: `Bearer ${t}` });

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'hubstream-auth-'));
  rsa = keyPair('rsa');
  ec = keyPair('ec');
  rsaOther = keyPair('rsa');
  srv = await startServer({ name: 'auth-hs', flags: ['--jwt-secret', SECRET, '--jwt-leeway-s', '0', '--jwt-audience', 'events', '--jwt-issuer', 'https://id.example'] });
  keySrv = await startServer({
    name: 'auth-keys',
    flags: ['--jwt-public-key', `rsa1=${writePem(rsa, path.join(tmp, 'rsa.pem'))},ec1=${writePem(ec, path.join(tmp, 'ec.pem'))}`, '--jwt-leeway-s', '0'],
  });
});
after(async () => {
  await srv?.stop();
  await keySrv?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

// the audience / issuer the first server asks for; alice publishes and subscribes to her own
// streams, the watcher subscribes to everything, the admin may do anything
const good = (sub, perms, more = {}) => claims(sub, perms, { aud: 'events', iss: 'https://id.example', ...more });
const tokAlice = () => hs256(SECRET, good('alice', { publish: ['user-{sub}-*'], subscribe: ['user-{sub}-*'] }));
const tokWatcher = () => hs256(SECRET, good('watcher', { subscribe: ['*'] }));
const tokAdmin = () => hs256(SECRET, good('root', { publish: ['*'], subscribe: ['*'], admin: true }));

/** A well-behaved client on the same server: an SSE subscription that must keep getting events. */
async function bystander(s) {
  const stream = uniqueStream('user-alice-bystander');
  const sub = subscribe(s.url, stream, { headers: bearer(s === srv ? tokWatcher() : signed(rsa, claims('w', { subscribe: ['*'] }), { kid: 'rsa1' })) });
  await sub.established();
  let n = 0;
  const publisher = s === srv ? tokAlice() : signed(rsa, claims('p', { publish: ['*'] }), { kid: 'rsa1' });
  return {
    async check() {
      n++;
      const r = await request(s.url, 'POST', `/api/streams/${stream}/events`, { json: { type: 't', data: n }, headers: bearer(publisher) });
      assert.equal(r.status, 201, r.text);
      await sub.waitForEvents(n, 5000);
      assert.ok(!sub.done, 'the bystander\'s subscription is still open');
    },
    close: () => sub.close(),
  };
}

async function expect401(s, method, p, headers, why) {
  const r = await request(s.url, method, p, { headers, json: method === 'POST' ? { type: 't', data: 1 } : undefined });
  assert.equal(r.status, 401, `${method} ${p}: ${r.text}`);
  assert.equal(r.headers['www-authenticate'], 'Bearer');
  assert.equal(r.json?.error, 'Unauthorized');
  if (why) assert.match(r.json.message, why);
  return r;
}

test('without a token every route but /healthz and /readyz answers 401 with WWW-Authenticate: Bearer', async () => {
  const b = await bystander(srv);
  try {
    assert.equal((await request(srv.url, 'GET', '/healthz')).status, 200);
    assert.equal((await request(srv.url, 'GET', '/readyz')).status, 200);
    await expect401(srv, 'GET', '/api/streams', {}, /token is required/);
    await expect401(srv, 'POST', '/api/streams/user-alice-x/events', {});
    await expect401(srv, 'GET', '/api/streams/user-alice-x/events', {});
    await expect401(srv, 'POST', '/hub/negotiate?negotiateVersion=1', {});
    const sse = subscribe(srv.url, 'user-alice-x');
    assert.equal((await sse.response).status, 401);
    // a scheme other than Bearer is no token either
    await expect401(srv, 'GET', '/api/streams', { authorization: 'Basic YWxpY2U6cHc=' });
    await b.check();
  } finally {
    b.close();
  }
});

test('bad tokens are refused with 401 and a reason: bad signature, alg none, malformed, expired, not yet valid, wrong audience or issuer', async () => {
  const b = await bystander(srv);
  try {
    const t = tokAlice();
    const [h, p] = t.split('.');
    const cases = [
      ['a tampered signature', `${h}.${p}.${Buffer.alloc(32, 7).toString('base64url')}`, /signature/],
      ['a tampered payload', `${h}.${Buffer.from(JSON.stringify(good('alice', { publish: ['*'], subscribe: ['*'], admin: true }))).toString('base64url')}.${t.split('.')[2]}`, /signature/],
      ['another secret', hs256('another-secret-0123456789-abcdefghijkl', good('alice', {})), /signature/],
      ['alg none', unsigned(good('alice', { publish: ['*'] })), /none|alg/],
      ['alg none with a signature', `${unsigned(good('alice', {}))}${Buffer.alloc(32).toString('base64url')}`, /none|alg/],
      ['garbage', 'not.a.token', null],
      ['two parts', `${h}.${p}`, null],
      ['expired', hs256(SECRET, good('alice', {}, { exp: now() - 5 })), /expired/],
      ['not yet valid', hs256(SECRET, good('alice', {}, { nbf: now() + 600 })), /not (yet )?valid|nbf/],
      ['the wrong audience', hs256(SECRET, good('alice', {}, { aud: 'other' })), /aud/],
      ['no audience', hs256(SECRET, { sub: 'alice', exp: now() + 60, iss: 'https://id.example' }), /aud/],
      ['the wrong issuer', hs256(SECRET, good('alice', {}, { iss: 'https://evil.example' })), /iss/],
      ['an RS256 token on a server with only a secret', signed(rsa, good('alice', {})), /./],
    ];
    for (const [name, tok, why] of cases) {
      await assert.doesNotReject(expect401(srv, 'GET', '/api/streams', bearer(tok), why), name);
      // the same token in ?access_token= (browsers' WebSocket and EventSource)
      await expect401(srv, 'GET', `/api/streams?access_token=${encodeURIComponent(tok)}`, {});
    }
    await b.check();
  } finally {
    b.close();
  }
});

test('RS256 and ES256 tokens are checked against the keys their kid names; HS/RS confusion is refused', async () => {
  const b = await bystander(keySrv);
  try {
    const perms = { publish: ['*'], subscribe: ['*'] };
    const ok = async (tok, name) => {
      const r = await request(keySrv.url, 'GET', '/api/streams', { headers: bearer(tok) });
      assert.equal(r.status, 200, `${name}: ${r.text}`);
    };
    await ok(signed(rsa, claims('a', perms), { kid: 'rsa1' }), 'RS256 with kid rsa1');
    await ok(signed(ec, claims('a', perms), { kid: 'ec1' }), 'ES256 with kid ec1');
    await ok(signed(rsa, claims('a', perms)), 'RS256 without a kid (tried against every RSA key)');
    await expect401(keySrv, 'GET', '/api/streams', bearer(signed(rsa, claims('a', perms), { kid: 'ec1' })));
    await expect401(keySrv, 'GET', '/api/streams', bearer(signed(rsa, claims('a', perms), { kid: 'nope' })), /kid/);
    await expect401(keySrv, 'GET', '/api/streams', bearer(signed(rsaOther, claims('a', perms), { kid: 'rsa1' })), /signature/);
    // the classic confusion: an HS256 token whose "secret" is the server's public key
    await expect401(keySrv, 'GET', '/api/streams', bearer(hs256(rsa.pem, claims('a', perms))));
    await expect401(keySrv, 'GET', '/api/streams', bearer(hs256(rsa.pem, claims('a', perms), { kid: 'rsa1' })));
    await b.check();
  } finally {
    b.close();
  }
});

test('a token without the permission gets 403 for publish, subscribe, read, close, delete, $all and the stream list shows only what it may read', async () => {
  const b = await bystander(srv);
  try {
    const a = bearer(tokAlice());
    const mine = uniqueStream('user-alice-mine');
    const theirs = uniqueStream('user-bob-theirs');
    assert.equal((await request(srv.url, 'POST', `/api/streams/${mine}/events`, { json: { type: 't', data: 1 }, headers: a })).status, 201);
    assert.equal((await request(srv.url, 'POST', `/api/streams/${theirs}/events`, { json: { type: 't', data: 1 }, headers: bearer(tokAdmin()) })).status, 201);
    const forbidden = async (method, p, headers = a) => {
      const r = await request(srv.url, method, p, { headers, json: method === 'POST' && p.endsWith('/events') ? { type: 't', data: 2 } : undefined });
      assert.equal(r.status, 403, `${method} ${p}: ${r.text}`);
      assert.equal(r.json?.error, 'Forbidden');
    };
    await forbidden('POST', `/api/streams/${theirs}/events`);
    await forbidden('GET', `/api/streams/${theirs}/events`);
    await forbidden('GET', `/api/streams/${theirs}`);
    await forbidden('POST', `/api/streams/${theirs}/close`);
    await forbidden('DELETE', `/api/streams/${mine}`); // delete needs admin, even on one's own stream
    await forbidden('GET', '/api/streams/$all/events');
    // a pattern with {sub} is the subject's, literally: a subject "*" gets no wildcard
    const star = bearer(hs256(SECRET, good('*', { publish: ['user-{sub}'] })));
    await forbidden('POST', `/api/streams/user-x/events`, star);
    const sse = subscribe(srv.url, theirs, { headers: a });
    assert.equal((await sse.response).status, 403);
    const all = subscribe(srv.url, '$all', { headers: bearer(tokWatcher()) }); // subscribe ["*"]: $all is allowed
    await all.established();
    all.close();
    const list = await request(srv.url, 'GET', '/api/streams?limit=1000', { headers: a });
    assert.equal(list.status, 200);
    const names = list.json.streams.map((s) => s.name);
    assert.ok(names.includes(mine), 'alice sees her stream');
    assert.ok(!names.includes(theirs), 'alice does not see bob\'s stream');
    // what she may do still works, and the admin may delete
    assert.equal((await request(srv.url, 'GET', `/api/streams/${mine}/events`, { headers: a })).status, 200);
    assert.equal((await request(srv.url, 'POST', `/api/streams/${mine}/close`, { headers: a })).status, 200);
    assert.equal((await request(srv.url, 'DELETE', `/api/streams/${mine}`, { headers: bearer(tokAdmin()) })).status, 204);
    await b.check();
  } finally {
    b.close();
  }
});

const transports = [
  { name: 'WebSockets', transport: 'WebSockets' },
  { name: 'WebSockets, skipNegotiation', transport: 'WebSockets', skipNegotiation: true },
  { name: 'ServerSentEvents', transport: 'ServerSentEvents' },
  { name: 'LongPolling', transport: 'LongPolling' },
  { name: 'LongPolling + MessagePack', transport: 'LongPolling', msgpack: true },
];

for (const t of transports) {
  test(`SignalR over ${t.name} with accessTokenFactory: permitted calls work, the others answer Unauthorized, the connection lives on`, async () => {
    const c = hub(srv.url, { ...t, accessTokenFactory: () => tokAlice() });
    await explain(c, async () => {
      await c.start();
      const mine = uniqueStream('user-alice-hub');
      const res = await c.invoke('Publish', mine, { type: 't', data: { n: 1 } });
      assert.equal(res.firstVersion, 1);
      const items = streamItems(c, 'Subscribe', mine, 0);
      await waitFor(() => items.items.length === 1, 5000, 'the replayed event');
      await assert.rejects(c.invoke('Publish', 'user-bob-x', { type: 't', data: 1 }), /Unauthorized/);
      await assert.rejects(c.invoke('Read', 'user-bob-x'), /Unauthorized/);
      await assert.rejects(c.invoke('GetStream', 'user-bob-x'), /Unauthorized/);
      await assert.rejects(c.invoke('CloseStream', 'user-bob-x'), /Unauthorized/);
      await assert.rejects(c.invoke('Subscribe', '$all'), /Unauthorized/);
      const denied = streamItems(c, 'Subscribe', 'user-bob-x', 0);
      await assert.rejects(denied.done, /Unauthorized/);
      // still alive, and live delivery still flows
      await c.invoke('Publish', mine, { type: 't', data: { n: 2 } });
      await waitFor(() => items.items.length === 2, 5000, 'the live event');
      items.dispose();
      await c.stop();
    });
  });
}

test('SignalR without a token, or with a bad one, fails to start (401 at negotiate or at the upgrade)', async () => {
  for (const opts of [{ transport: 'WebSockets' }, { transport: 'LongPolling', accessTokenFactory: () => 'x.y.z' }]) {
    const c = hub(srv.url, opts);
    await assert.rejects(withTimeout(c.start(), 10000, 'start to fail'), /401|Unauthorized/, JSON.stringify(opts));
  }
  // skipNegotiation: the client only sees its WebSocket fail; the upgrade itself is answered 401
  const c = hub(srv.url, { transport: 'WebSockets', skipNegotiation: true });
  await assert.rejects(withTimeout(c.start(), 10000, 'start to fail'));
  const upgrade = { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==' };
  for (const [headers, p] of [[{}, '/hub'], [{}, `/hub?access_token=${encodeURIComponent(unsigned(good('alice', {})))}`], [bearer('x.y.z'), '/hub']]) {
    const r = await request(srv.url, 'GET', p, { headers: { ...upgrade, ...headers } });
    assert.equal(r.status, 401, `${p}: ${r.text}`);
    assert.equal(r.headers['www-authenticate'], 'Bearer');
  }
});

test('a token that expires during an SSE subscription ends it; another subscriber is untouched', async () => {
  const b = await bystander(srv);
  try {
    const stream = uniqueStream('user-alice-exp');
    const short = hs256(SECRET, good('alice', { subscribe: ['user-{sub}-*'] }, { exp: now() + 2 }));
    const sub = subscribe(srv.url, stream, { headers: bearer(short) });
    await sub.established();
    const t0 = Date.now();
    await sub.waitForEnd(8000);
    assert.ok(Date.now() - t0 < 6000, 'ended within a few seconds of exp');
    // reconnecting with the expired token is refused
    const again = subscribe(srv.url, stream, { headers: bearer(short) });
    assert.equal((await again.response).status, 401);
    await b.check();
  } finally {
    b.close();
  }
});

for (const t of [{ transport: 'WebSockets' }, { transport: 'LongPolling' }]) {
  test(`a token that expires during a SignalR subscription (${t.transport}) closes the connection with an error that asks for a new token`, async () => {
    const stream = uniqueStream('user-alice-hubexp');
    const c = hub(srv.url, { ...t, accessTokenFactory: () => hs256(SECRET, good('alice', { subscribe: ['user-{sub}-*'], publish: ['user-{sub}-*'] }, { exp: now() + 2 })) });
    const other = hub(srv.url, { transport: 'WebSockets', accessTokenFactory: () => tokAlice() });
    await explain(c, async () => {
      await c.start();
      await other.start();
      const items = streamItems(c, 'Subscribe', stream);
      const mine = streamItems(other, 'Subscribe', stream);
      const err = await withTimeout(c.closedWith, 10000, 'the close at exp');
      assert.match(String(err?.message ?? err), /expired/);
      // the other connection still gets events
      await other.invoke('Publish', stream, { type: 't', data: 1 });
      await waitFor(() => mine.items.length === 1, 5000, 'the other connection\'s event');
      items.dispose();
      mine.dispose();
      await other.stop();
    });
  });
}

test('CORS with auth on: the preflight answers without a token; only listed origins get CORS headers (loopback ones too)', async () => {
  const pre = (s, origin) =>
    request(s.url, 'OPTIONS', '/hub/negotiate', {
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
  // nothing listed: with auth on, no origin is trusted, not even a loopback one
  const r = await pre(srv, 'http://127.0.0.1:9');
  assert.equal(r.status, 204);
  assert.match(r.headers['access-control-allow-headers'], /authorization/);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
  const listed = await startServer({ name: 'auth-cors', flags: ['--jwt-secret', SECRET, '--cors-origins', 'https://app.example'] });
  try {
    const ok = await pre(listed, 'https://app.example');
    assert.equal(ok.headers['access-control-allow-origin'], 'https://app.example');
    assert.equal(ok.headers['access-control-allow-credentials'], 'true');
    assert.equal((await pre(listed, 'https://evil.example')).headers['access-control-allow-origin'], undefined);
    // a refused request from a listed origin still carries them, so the page can read the 401
    const no = await request(listed.url, 'GET', '/api/streams', { headers: { origin: 'https://app.example' } });
    assert.equal(no.status, 401);
    assert.equal(no.headers['access-control-allow-origin'], 'https://app.example');
  } finally {
    await listed.stop();
  }
  // "*": any origin, without credentials
  const any = await startServer({ name: 'auth-cors-any', flags: ['--jwt-secret', SECRET, '--cors-origins', '*'] });
  try {
    const x = await pre(any, 'https://whoever.example');
    assert.equal(x.headers['access-control-allow-origin'], '*');
    assert.equal(x.headers['access-control-allow-credentials'], undefined);
  } finally {
    await any.stop();
  }
});

test('a JWT configuration that cannot work is refused at start, saying why', () => {
  writeFileSync(path.join(tmp, 'junk.pem'), '-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n');
  const cases = [
    [['--jwt-secret', 'too-short'], /at least 32 bytes/],
    [['--jwt-public-key', path.join(tmp, 'missing.pem')], /cannot open JWT key file/],
    [['--jwt-public-key', path.join(tmp, 'junk.pem')], /JWT key file/],
    [['--jwt-public-key', `=${path.join(tmp, 'rsa.pem')}`], /KID=FILE/],
    [['--jwt-secret', SECRET, '--jwt-leeway-s', '7200'], /jwt-leeway-s|3600/],
  ];
  for (const [flags, why] of cases) {
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--db', path.join(tmp, 'x.db'), ...flags], { encoding: 'utf8', timeout: 10000 });
    assert.notEqual(r.status, 0, flags.join(' '));
    assert.match(r.stderr, why, flags.join(' '));
  }
});
