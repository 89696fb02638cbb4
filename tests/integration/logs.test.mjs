// Logs: the default JSON lines, --log-format text, --access-log (a record per HTTP request
// answered, with a request id) and the debug records of connections, read from the real
// server's standard error.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { BIN, startServer, publish, withTimeout, sleep } from './lib/server.mjs';

const env = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUBSTREAM_')));

test('--access-log: one JSON record per request answered, with status, bytes, time and an id', async () => {
  const srv = await startServer({ name: 'access', flags: ['--access-log'] });
  try {
    const health = await srv.get('/healthz');
    assert.equal(health.status, 200);
    assert.equal((await publish(srv, 'logs-a', [{ type: 't', data: 1 }])).status, 201);
    const missing = await srv.get('/api/streams/nothing-here');
    assert.equal(missing.status, 404);
    const tooLong = await srv.get(`/api/streams/${'x'.repeat(2000)}`);
    assert.equal(tooLong.status, 414);
    // an SSE answer's head carries its id too (the stream goes on; the head is what counts)
    const sseId = await new Promise((resolve, reject) => {
      const req = http.get(`${srv.url}/api/streams/logs-a/events`, { headers: { accept: 'text/event-stream' } }, (res) => {
        resolve(res.headers['x-request-id']);
        req.destroy();
      });
      req.on('error', reject);
    });
    assert.equal((await srv.request('GET', '/api/streams/logs-a/events?limit=x')).status, 400);
    await sleep(100);
    const recs = srv.logRecords().filter((r) => r.msg === 'request');
    const find = (method, p) => recs.find((r) => r.method === method && r.path === p);
    const h = find('GET', '/healthz');
    assert.ok(h, `a record of GET /healthz in ${JSON.stringify(recs)}`);
    assert.equal(h.status, '200');
    assert.equal(h.bytes, '3');
    assert.equal(h.level, 'info');
    assert.match(h.ms, /^\d+\.\d{3}$/);
    assert.equal(h.peer, '127.0.0.1');
    assert.match(h.request_id, /^[0-9a-f]+-[0-9a-f]+$/);
    // the answer names its record: X-Request-Id is the record's request_id
    assert.equal(health.headers['x-request-id'], h.request_id);
    assert.equal(missing.headers['x-request-id'], find('GET', '/api/streams/nothing-here').request_id);
    assert.equal(sseId, find('GET', '/api/streams/logs-a/events').request_id);
    // a path too long for the server is logged by its first 1023 bytes
    const long = recs.find((r) => r.status === '414');
    assert.ok(long, 'a record of the 414');
    assert.equal(long.path, `/api/streams/${'x'.repeat(1023 - 13)}`);
    assert.equal(long.request_id, tooLong.headers['x-request-id']);
    assert.equal(find('POST', '/api/streams/logs-a/events').status, '201');
    assert.equal(find('GET', '/api/streams/nothing-here').status, '404');
    assert.equal(recs.find((r) => r.path === '/api/streams/logs-a/events' && r.status === '400').method, 'GET');
    assert.equal(new Set(recs.map((r) => r.request_id)).size, recs.length, 'each request its own id');
  } finally {
    await srv.stop();
  }
  // off by default
  const quiet = await startServer({ name: 'quiet' });
  try {
    const r = await quiet.get('/healthz');
    assert.equal(r.headers['x-request-id'], undefined, 'no X-Request-Id without the access log');
    await sleep(100);
    assert.equal(quiet.logRecords().filter((r) => r.msg === 'request').length, 0);
  } finally {
    await quiet.stop();
  }
});

test("--access-log with auth: the record names the token's user", async () => {
  const secret = 'logs-test-secret-0123456789abcdef';
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ sub: 'ann', exp: Math.floor(Date.now() / 1000) + 600, hubstream: { subscribe: ['*'] } })}`;
  const token = `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
  const srv = await startServer({ name: 'access-auth', flags: ['--access-log', '--jwt-secret', secret] });
  try {
    const ok = await srv.request('GET', '/api/streams', { headers: { authorization: `Bearer ${token}` } });
    assert.equal(ok.status, 200);
    const no = await srv.request('GET', '/api/streams', { headers: { authorization: 'Bearer nope' } });
    assert.equal(no.status, 401);
    await sleep(100);
    const recs = srv.logRecords().filter((r) => r.msg === 'request');
    const byId = (res) => recs.find((r) => r.request_id === res.headers['x-request-id']);
    assert.equal(byId(ok).user, 'ann');
    assert.equal(byId(ok).status, '200');
    assert.equal(byId(no).status, '401');
    assert.equal(byId(no).user, undefined, 'no user for a refused token');
  } finally {
    await srv.stop();
  }
});

test('--log-format text: TIME LEVEL message key=value, quoted when needed; debug connection records', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hubstream-logs-'));
  const proc = spawn(BIN, ['--listen', '127.0.0.1:0', '--db', path.join(dir, 'x.db'), '--log-format', 'text', '--access-log', '--log-level', 'debug'], { stdio: ['ignore', 'ignore', 'pipe'], env: env() });
  let err = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => (err += d));
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  try {
    const port = await withTimeout(
      (async () => {
        for (;;) {
          const m = /^\S+ INFO listening addr=127\.0\.0\.1:(\d+) /m.exec(err);
          if (m) return Number(m[1]);
          await sleep(20);
        }
      })(),
      10000,
      'the listening line',
    );
    const r = await fetch(`http://127.0.0.1:${port}/api/streams/${encodeURIComponent('a b')}`);
    assert.equal(r.status, 404);
    await sleep(200);
    const lines = err.trim().split('\n');
    for (const l of lines) assert.match(l, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z (DEBUG|INFO|WARN|ERROR) \S/, `a text line: ${l}`);
    assert.ok(lines.some((l) => / DEBUG connection opened peer=127\.0\.0\.1 fd=\d+$/.test(l)), err);
    const req = lines.find((l) => / INFO request /.test(l));
    assert.match(req, / INFO request method=GET path="\/api\/streams\/a b" status=404 bytes=\d+ ms=\d+\.\d{3} peer=127\.0\.0\.1 request_id=[0-9a-f]+-[0-9a-f]+$/);
    assert.ok(!lines.some((l) => l.startsWith('{')), 'no JSON line');
  } finally {
    proc.kill('SIGTERM');
    const x = await withTimeout(exited, 10000, 'the server to stop');
    assert.equal(x.code, 0);
    assert.match(err, / INFO stopped$/m);
    await rm(dir, { recursive: true, force: true });
  }
});

test('a log format that does not exist is refused at start', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'hubstream-logs-'));
  try {
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--db', path.join(dir, 'x.db'), '--log-format', 'xml'], { env: env(), encoding: 'utf8', timeout: 20000 });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /log format 'xml'/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
