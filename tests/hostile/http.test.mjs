// Hostile HTTP input: what a client that does not play by the rules can send, and what it must
// get back. Every test here once found a bug (the audit of issue 11): a crash, a hang or a
// wrong answer. The server must answer with a clear 4xx, keep serving everyone else, and exit
// cleanly at the end (stop() checks the exit code, so a sanitizer report fails the test).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startServer, killAll, guarded, show, readAll, sleep } from '../integration/lib/server.mjs';
import { rawRequest } from './lib/clients.mjs';

after(() => killAll());

/** The body must be a JSON error object with valid UTF-8 (invalid UTF-8 decodes to U+FFFD). */
function assertJsonError(r, status, code) {
  assert.equal(r.status, status, r.raw.toString('latin1').slice(0, 300));
  const t = new TextDecoder('utf-8', { fatal: true }).decode(r.body); // throws on invalid UTF-8
  const j = JSON.parse(t);
  if (code) assert.equal(j.error, code, t);
  assert.equal(typeof j.message, 'string');
  return j;
}

async function alive(srv) {
  const r = await srv.get('/healthz');
  assert.equal(r.status, 200, 'the server still serves /healthz');
}

test('error answers quote whatever the path holds (control bytes, bytes that are not UTF-8, long paths)', async () => {
  const srv = await startServer({ name: 'hostile-paths' });
  await guarded(async () => {
    // 300 x %01: lws decodes it; quoted, each byte became 6 and overran a 1,400-byte buffer
    for (const esc of ['%01', '%1F', '%FF', '%C3', '%E2%82']) {
      const r = await rawRequest(srv.port, `GET /${esc.repeat(300)} HTTP/1.1\r\nHost: x\r\n\r\n`, { waitMs: 2000 });
      assertJsonError(r, 404, 'NotFound');
    }
    const r = await rawRequest(srv.port, `GET /api/x${'%01'.repeat(150)}/events HTTP/1.1\r\nHost: x\r\n\r\n`, { waitMs: 2000 });
    assert.ok([400, 404].includes(r.status), show({ status: r.status, text: r.text }));
    // a path longer than the server takes: 414, not a cut path
    const long = await rawRequest(srv.port, `GET /${'a'.repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`, { waitMs: 2000 });
    assertJsonError(long, 414);
    await alive(srv);
  }, () => srv.stop());
});

test('stream names must be UTF-8: a name holding a quote and a stray byte is refused, listings stay UTF-8', async () => {
  const srv = await startServer({ name: 'hostile-utf8' });
  await guarded(async () => {
    const body = '{"type":"t","data":1}';
    for (const name of ['a%22%FF', 'a%5C%C3', '%C0%AF', '%ED%A0%80', 'x%F4%90%80%80']) {
      const r = await rawRequest(srv.port, `POST /api/streams/${name}/events HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`, { waitMs: 2000 });
      assertJsonError(r, 400, 'BadRequest');
    }
    // a name with a quote and a backslash in valid UTF-8 is fine, and comes back intact
    const ok = await srv.publish('q"u\\é', { type: 't', data: 1 });
    assert.equal(ok.status, 201, show(ok));
    const list = await srv.get('/api/streams');
    assert.equal(list.status, 200);
    new TextDecoder('utf-8', { fatal: true }).decode(list.raw);
    assert.deepEqual(list.json.streams.map((s) => s.name), ['q"u\\é']);
  }, () => srv.stop());
});

test('POST bodies: none at all is empty, chunked is decoded, malformed framing is a 400', async () => {
  const srv = await startServer({ name: 'hostile-bodies', flags: ['--max-body', '4096'] });
  await guarded(async () => {
    const ev = JSON.stringify({ type: 'chunky', data: { n: 1, s: 'x'.repeat(100) } });
    const first = await srv.publish('b', { type: 't', data: 0 });
    assert.equal(first.status, 201, show(first));

    // no Content-Length, no Transfer-Encoding: an empty body (curl -X POST .../close)
    let r = await rawRequest(srv.port, 'POST /api/streams/b/close HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(r.status, 200, r.raw.toString());
    assert.equal(JSON.parse(r.text).closed, true);
    r = await rawRequest(srv.port, 'POST /api/streams/c/events HTTP/1.1\r\nHost: x\r\n\r\n');
    assertJsonError(r, 400, 'BadRequest');

    // chunked, in pieces of any size, with an extension and a trailer
    const parts = [ev.slice(0, 5), ev.slice(5, 60), ev.slice(60)];
    const chunked =
      parts.map((p, i) => `${Buffer.byteLength(p).toString(16)}${i === 1 ? ';ext=1' : ''}\r\n${p}\r\n`).join('') +
      '0\r\nX-Trailer: yes\r\n\r\n';
    const head = 'POST /api/streams/d/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n';
    const whole = head + chunked;
    const pieces = [];
    for (let i = 0; i < whole.length; i += 7) pieces.push([whole.slice(i, i + 7), 2]);
    r = await rawRequest(srv.port, null, { pieces });
    assert.equal(r.status, 201, r.raw.toString());
    const back = await readAll(srv, 'd');
    assert.equal(back.length, 1);
    assert.deepEqual(back[0].data, JSON.parse(ev).data);

    // chunked over --max-body: 413, and the connection is closed
    const big = 'POST /api/streams/d/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n' +
      `1000\r\n${'y'.repeat(4096)}\r\n10\r\n${'y'.repeat(16)}\r\n0\r\n\r\n`;
    r = await rawRequest(srv.port, big, { expectClose: true });
    assertJsonError(r, 413, 'TooLarge');
    assert.ok(r.closed, 'the connection is closed after a 413');

    for (const [what, req] of [
      ['a size that is not hex', 'zz\r\n'],
      ['a size line without CRLF', '5\nhello\r\n0\r\n\r\n'],
      ['data longer than its size', '2\r\nhello\r\n0\r\n\r\n'],
      ['a size of 16 hex digits', 'ffffffffffffffff\r\n'],
    ]) {
      r = await rawRequest(srv.port, head.replace('/d/', '/e/') + req);
      assert.equal(r.status, 400, `${what}: ${r.raw.toString().slice(0, 200)}`);
    }
    for (const [what, hdrs] of [
      ['Content-Length: abc', 'Content-Length: abc\r\n'],
      ['Content-Length: -1', 'Content-Length: -1\r\n'],
      ['Content-Length: 5, 5', 'Content-Length: 5, 5\r\n'],
      ['Content-Length: +5', 'Content-Length: +5\r\n'],
      ['Content-Length with Transfer-Encoding', 'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n'],
      ['Transfer-Encoding: gzip', 'Transfer-Encoding: gzip\r\n'],
    ]) {
      r = await rawRequest(srv.port, `POST /api/streams/e/events HTTP/1.1\r\nHost: x\r\n${hdrs}\r\nhello`, { expectClose: true });
      assertJsonError(r, 400, 'BadRequest');
      assert.ok(r.closed, `${what}: the connection is closed`);
    }
    assert.equal((await srv.get('/api/streams/e')).status, 404, 'nothing reached stream e');
    await alive(srv);
  }, () => srv.stop());
});

test('a body trickled byte by byte hits the whole-request deadline (408), however steadily it trickles', async () => {
  const srv = await startServer({ name: 'hostile-trickle', flags: ['--request-timeout-ms', '1500'] });
  await guarded(async () => {
    const body = JSON.stringify({ type: 't', data: 'z'.repeat(100) });
    const head = `POST /api/streams/t/events HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n`;
    const pieces = [[head, 100], ...[...body].map((ch) => [ch, 250])]; // ~30 s if let through
    const t0 = Date.now();
    const r = await rawRequest(srv.port, null, { pieces, waitMs: 10000, expectClose: true });
    const took = Date.now() - t0;
    assertJsonError(r, 408, 'RequestTimeout');
    assert.ok(r.closed, 'the connection is closed');
    assert.ok(took < 5000, `answered after ${took} ms`);
    // the same for a chunked body, and for one that never comes
    const ch = await rawRequest(srv.port, null, {
      pieces: [['POST /api/streams/t/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', 100],
        ...Array.from({ length: 40 }, () => ['1\r\nx\r\n', 250])],
      waitMs: 10000,
    });
    assertJsonError(ch, 408, 'RequestTimeout');
    const none = await rawRequest(srv.port, head, { waitMs: 10000 });
    assertJsonError(none, 408, 'RequestTimeout');
    assert.equal((await srv.get('/api/streams/t')).status, 404, 'nothing was published');
  }, () => srv.stop());
});

test('a claimed Content-Length is not allocated before its bytes arrive', async (t) => {
  const srv = await startServer({ name: 'hostile-claims' });
  await guarded(async () => {
    if (srv.isSanitized()) {
      t.skip('sanitizer build: the allocator reserves its own address space');
      return;
    }
    const vmData = () => Number(/VmData:\s+(\d+)/.exec(readFileSync(`/proc/${srv.pid}/status`, 'utf8'))[1]);
    const before = vmData();
    const socks = [];
    const N = 300;
    for (let i = 0; i < N; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', () => {});
      s.write(`POST /api/streams/m/events HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n{`);
      socks.push(s);
    }
    await sleep(1500);
    const grown = vmData() - before;
    for (const s of socks) s.destroy();
    // 300 bodies of 1 MiB allocated up front would be 300 MB of address space
    assert.ok(grown < 100 * 1024, `VmData grew by ${grown} kB with ${N} bodies claimed and not sent`);
    await alive(srv);
  }, () => srv.stop());
});

test('query arguments: an over-long one is refused (400), not dropped along with those after it', async () => {
  const srv = await startServer({ name: 'hostile-args' });
  await guarded(async () => {
    const ok = await srv.publish('q', [{ type: 'a' }, { type: 'b' }, { type: 'c' }]);
    assert.equal(ok.status, 201, show(ok));
    const long = 'x'.repeat(5000);
    // lws's own lookup stopped at an argument longer than its buffer: `from` after it was lost
    // and the subscription silently became live-only
    let r = await rawRequest(srv.port, `GET /api/streams/q/events?types=${long}&from=1 HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    r = await rawRequest(srv.port, `GET /api/streams/q/events?direction=${long}&from=1 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    r = await rawRequest(srv.port, `GET /api/streams?prefix=${'p'.repeat(201)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    r = await rawRequest(srv.port, `GET /api/streams/q/events?from=99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    r = await rawRequest(srv.port, `GET /api/streams/q/events?limit=-3 HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    // 65 types are more than a subscription takes
    const types = Array.from({ length: 65 }, (_, i) => `t${i}`).join(',');
    r = await rawRequest(srv.port, `GET /api/streams/q/events?types=${types} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`);
    assertJsonError(r, 400, 'BadRequest');
    // an argument after a normal one still counts
    r = await srv.get('/api/streams/q/events?x=1&from=2&limit=5');
    assert.equal(r.status, 200);
    assert.deepEqual(r.json.events.map((e) => e.version), [3]);
    // an id longer than any token names no connection
    r = await rawRequest(srv.port, `POST /hub?id=${'t'.repeat(200)} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n`);
    assert.equal(r.status, 404);
  }, () => srv.stop());
});
