// TLS against the real server, with a self-signed certificate made at test time (openssl):
// HTTPS for the API and SSE, the official SignalR client over wss, SSE and long polling (in a
// child process that trusts the certificate), EventSource in Chromium (certificate errors
// ignored by the browser context, the way a trusted internal CA would be), curl, a certificate
// reload on SIGHUP that keeps open connections, a bad certificate refused at start and at
// reload, and the warning for a non-loopback address without TLS.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { startServer, uniqueStream, until, withTimeout, SseParser, BIN } from '../integration/lib/server.mjs';
import { chromiumFor } from './lib/browser.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// an ASan build's TLS servers: lws 4.1's OpenSSL objects left at exit (see tests/lsan-tls.supp)
const TLS_ENV = { LSAN_OPTIONS: `suppressions=${path.join(HERE, '..', 'lsan-tls.supp')}` };
let dir, srv, base;
const files = {};

/** A self-signed P-256 certificate for 127.0.0.1 with common name cn. */
function makeCert(name, cn) {
  const key = path.join(dir, `${name}.key`), cert = path.join(dir, `${name}.crt`);
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${cn}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'], { stdio: 'ignore' });
  return { key, cert };
}

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'hubstream-tls-'));
  files.a = makeCert('a', 'hubstream-test-a');
  files.b = makeCert('b', 'hubstream-test-b');
  // the server reads these paths; a renewal replaces their content
  files.cert = path.join(dir, 'server.crt');
  files.key = path.join(dir, 'server.key');
  copyFileSync(files.a.cert, files.cert);
  copyFileSync(files.a.key, files.key);
  // two IO threads, so that a resume can land on another thread than its connection's
  srv = await startServer({ name: 'tls', env: TLS_ENV, flags: ['--tls-cert', files.cert, '--tls-key', files.key, '--io-threads', '2'] });
  base = `https://127.0.0.1:${srv.port}`;
});
after(async () => {
  await srv?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One HTTPS request trusting `ca` (PEM paths). */
function req(method, p, { body, ca = [files.a.cert, files.b.cert], headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const r = https.request(`${base}${p}`, { method, ca: ca.map((f) => readFileSync(f)), headers, agent: false, timeout: 10000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (t) => (text += t));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text }));
    });
    r.on('error', reject);
    r.on('timeout', () => r.destroy(new Error(`${method} ${p} timed out`)));
    if (body) r.write(body);
    r.end();
  });
}

/** The common name of the certificate a new TLS handshake gets. */
function peerCn() {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: srv.port, rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.end();
      resolve(cn);
    });
    s.on('error', reject);
  });
}

const publish = (stream, data) =>
  req('POST', `/api/streams/${stream}/events`, { body: JSON.stringify({ type: 't', data }), headers: { 'content-type': 'application/json' } });

test('HTTPS: publish, read and an SSE subscription over TLS; plain HTTP on the TLS port gets no answer', async () => {
  const s = uniqueStream('tls-http');
  assert.equal((await req('GET', '/healthz')).status, 200);
  assert.equal((await publish(s, 1)).status, 201);
  const read = await req('GET', `/api/streams/${s}/events`);
  assert.equal(read.status, 200);
  assert.deepEqual(JSON.parse(read.text).events.map((e) => e.data), [1]);
  // an untrusted certificate is refused by the client, as it must be
  await assert.rejects(req('GET', '/healthz', { ca: [] }), /self.signed|certificate/i);
  // plain HTTP to the TLS port: the handshake fails, nothing is served in clear text
  const plain = await new Promise((resolve) => {
    const r = http.request({ host: '127.0.0.1', port: srv.port, path: '/healthz', timeout: 3000 }, (res) => resolve(res.statusCode));
    r.on('error', (e) => resolve(e.code ?? 'error'));
    r.on('timeout', () => r.destroy());
    r.end();
  });
  assert.notEqual(plain, 200);
});

test('curl over HTTPS with the certificate as its CA', { skip: spawnSync('curl', ['--version']).status !== 0 && 'curl is not installed' }, async () => {
  const s = uniqueStream('tls-curl');
  const out = execFileSync('curl', ['-sS', '--cacert', files.a.cert, '-H', 'content-type: application/json', '-d', '{"type":"t","data":"curl"}', `${base}/api/streams/${s}/events`], { encoding: 'utf8' });
  assert.equal(JSON.parse(out).lastVersion, 1);
});

/** Runs lib/tls-client.mjs (trusting the first certificate) with args; its result line, parsed
 *  and checked to be ok, with the raw line as `line`. */
function tlsClient(args, timeout) {
  const r = spawnSync(process.execPath, [path.join(HERE, 'lib', 'tls-client.mjs'), base, ...args], {
    env: { ...process.env, NODE_EXTRA_CA_CERTS: files.a.cert },
    encoding: 'utf8',
    timeout,
  });
  const line = r.stdout.trim().split('\n').pop() || '{}';
  const res = JSON.parse(line);
  assert.ok(res.ok, `client: ${line} ${r.stderr}`);
  return { ...res, line };
}

for (const transport of ['WebSockets', 'ServerSentEvents', 'LongPolling']) {
  test(`the official SignalR client over TLS (${transport}${transport === 'WebSockets' ? ': wss' : ''})`, async () => {
    const res = tlsClient([transport, uniqueStream(`tls-hub-${transport}`)], 20000);
    assert.deepEqual(res.data, { via: transport });
  });
}

test('stateful reconnect over TLS: killed sockets resume the same connection, whichever IO thread they reach', async () => {
  // the acceptor cannot read the token of an encrypted request: a resume reaches either IO
  // thread, and one that is not the connection's is relayed to it
  const res = tlsClient(['WebSockets', uniqueStream('tls-stateful'), '6'], 30000);
  assert.equal(res.reconnecting, 0, `no resume failed into a full reconnect: ${res.line}`);
  assert.equal(res.sameId, true, 'the same connection throughout');
  assert.deepEqual(res.versions, [1, 2, 3, 4, 5, 6], 'each Publish sent during an outage ran once, in order');
  assert.deepEqual(res.data, { via: 'WebSockets' });
});

test('EventSource in Chromium over HTTPS', { timeout: 30000 }, async (t) => {
  const exe = chromiumFor(t);
  if (!exe) return;
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({ executablePath: exe, args: ['--no-sandbox'] });
  try {
    const ctx = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await ctx.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    const s = uniqueStream('tls-browser');
    assert.equal((await publish(s, { n: 1 })).status, 201);
    await page.goto(`${base}/healthz`);
    const got = await page.evaluate(
      (stream) =>
        new Promise((resolve, reject) => {
          const es = new EventSource(`/api/streams/${stream}/events?from=0`);
          es.onmessage = () => {};
          es.addEventListener('t', (e) => {
            es.close();
            resolve({ id: e.lastEventId, data: JSON.parse(e.data).data, origin: location.origin });
          });
          es.onerror = () => reject(new Error('EventSource error'));
          setTimeout(() => reject(new Error('no event within 5 s')), 5000);
        }),
      s,
    );
    assert.deepEqual(got, { id: '1', data: { n: 1 }, origin: base });
    assert.deepEqual(errors, []);
  } finally {
    await withTimeout(browser.close(), 5000, 'chromium to close');
  }
});

test('SIGHUP loads a renewed certificate: new handshakes get it, an open SSE subscription goes on', async () => {
  assert.equal(await peerCn(), 'hubstream-test-a');
  const s = uniqueStream('tls-reload');
  // an SSE subscription over TLS that stays open across the reload
  const parser = { events: [] };
  const p = new SseParser((b) => {
    if (b.data !== undefined) parser.events.push(JSON.parse(b.data).data);
  });
  const sse = https.get(`${base}/api/streams/${s}/events`, { ca: [readFileSync(files.a.cert)], headers: { accept: 'text/event-stream' }, agent: false }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (t) => p.feed(t));
  });
  sse.on('error', () => {});
  try {
    await until(async () => (await publish(s, 'before')).status === 201 && parser.events.includes('before'), { timeoutMs: 5000, what: 'the first event' });
    copyFileSync(files.b.cert, files.cert);
    copyFileSync(files.b.key, files.key);
    process.kill(srv.pid, 'SIGHUP');
    await until(async () => (await peerCn()) === 'hubstream-test-b', { timeoutMs: 5000, what: 'a handshake with the new certificate' });
    assert.equal((await publish(s, 'after')).status, 201);
    await until(() => parser.events.includes('after'), { timeoutMs: 5000, what: 'the event after the reload on the old connection' });
    // a broken renewal is refused and logged; the good certificate stays
    writeFileSync(files.cert, 'not a certificate\n');
    process.kill(srv.pid, 'SIGHUP');
    await until(() => srv.logs().includes('TLS reload refused'), { timeoutMs: 5000, what: 'the refusal in the log' });
    assert.equal(await peerCn(), 'hubstream-test-b');
    assert.equal((await req('GET', '/healthz')).status, 200);
  } finally {
    sse.destroy();
    copyFileSync(files.b.cert, files.cert);
  }
});

test('a bad certificate or key is refused at start with a clear error; so is a key without a certificate', () => {
  const other = makeCert('other', 'other');
  const cases = [
    [['--tls-cert', path.join(dir, 'missing.crt'), '--tls-key', files.a.key], /cannot load the TLS certificate/],
    [['--tls-cert', files.a.cert, '--tls-key', other.key], /does not belong to the certificate/],
    [['--tls-key', files.a.key], /both a certificate/],
  ];
  for (const [flags, why] of cases) {
    const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--db', path.join(dir, 'x.db'), ...flags], { encoding: 'utf8', timeout: 10000, env: { ...process.env, ...TLS_ENV } });
    assert.notEqual(r.status, 0, flags.join(' '));
    assert.match(r.stderr, why);
  }
});

test('a non-loopback address without TLS logs a warning, unless --allow-plaintext', async () => {
  for (const [flags, warned] of [[[], true], [['--allow-plaintext'], false], [['--tls-cert', files.a.cert, '--tls-key', files.a.key], false]]) {
    const s = await startServer({ name: 'tls-warn', env: TLS_ENV, flags: ['--listen', '0.0.0.0:0', '--allow-anonymous', ...flags] });
    try {
      const warn = s.logs().includes('without TLS');
      assert.equal(warn, warned, `${flags.join(' ') || 'no flag'}: ${s.logs()}`);
    } finally {
      await s.stop();
    }
  }
});
