// The daemon's command line: --help, configuration sources and their precedence, the refusal to
// listen beyond loopback without auth, and clear errors for bad flags.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, startServer, killAll, request } from './lib/server.mjs';

after(() => killAll());

const env = () => Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUBSTREAM_') || k === 'HUBSTREAM_BIN'));
const run = (args, extraEnv = {}) =>
  spawnSync(BIN, args, { env: { ...env(), ...extraEnv }, encoding: 'utf8', timeout: 20000 });

test('--help lists every main flag with its environment variable and exits 0', () => {
  const r = run(['--help']);
  assert.equal(r.status, 0, r.stderr);
  for (const s of ['--listen', 'HUBSTREAM_LISTEN', '--db', '--allow-anonymous', '--config', '--outbox-bytes', '--stall-timeout-ms'])
    assert.ok(r.stdout.includes(s), `--help mentions ${s}`);
});

test('an unknown flag or a bad value exits 2 and names the culprit', () => {
  let r = run(['--lisen', '127.0.0.1:0']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--lisen/);
  r = run(['--max-body', 'lots']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--max-body/);
});

test('a non-loopback listen address without auth is refused unless --allow-anonymous', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hubstream-cli-'));
  try {
    const r = run(['--listen', '0.0.0.0:0', '--db', path.join(dir, 'a.db')]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0:0.*--allow-anonymous/s);
    // with the flag it starts; it is reached here through loopback only
    const srv = await startServer({ name: 'anon', flags: ['--listen', '0.0.0.0:0', '--allow-anonymous'] });
    const h = await request(`http://127.0.0.1:${srv.port}`, 'GET', '/healthz');
    assert.equal(h.status, 200);
    await srv.stop();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config file < environment < flags, and each is applied', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hubstream-cli-'));
  const conf = path.join(dir, 'hub.conf');
  fs.writeFileSync(conf, '# test\nsse-retry-ms = 1111\nsse_ping_ms = "60000"\nmax-body = 2MiB\n');
  try {
    const check = async (flags, extraEnv, retry) => {
      const srv = await startServer({ name: 'cfg', flags: ['--config', conf, ...flags], env: extraEnv });
      try {
        const r = await fetch(`${srv.url}/api/streams/cfg/events`, { headers: { accept: 'text/event-stream' } });
        const reader = r.body.getReader();
        const { value } = await reader.read();
        assert.match(Buffer.from(value).toString(), new RegExp(`^retry: ${retry}\\n`));
        await reader.cancel();
      } finally {
        await srv.stop();
      }
    };
    await check([], {}, 1111);
    await check([], { HUBSTREAM_SSE_RETRY_MS: '2222' }, 2222);
    await check(['--sse-retry-ms', '3333'], { HUBSTREAM_SSE_RETRY_MS: '2222' }, 3333);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second server on the same SQLite file is refused at start, and a backplane on SQLite too', async () => {
  const srv = await startServer({ name: 'first' });
  try {
    const db = path.join(srv.dir, 'hubstream.db');
    let r = run(['--listen', '127.0.0.1:0', '--db', db]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /SQLite database .*hubstream\.db is in use by another hubstream server: SQLite serves one node/);
    // the same file named by a connection string
    r = run(['--listen', '127.0.0.1:0', '--db', `Driver=SQLite3;Database=${db}`]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /is in use by another hubstream server/);
    // the first one is unharmed
    assert.equal((await request(srv.url, 'GET', '/readyz')).status, 200);
    const other = path.join(srv.dir, 'other.db');
    r = run(['--listen', '127.0.0.1:0', '--db', other, '--backplane', 'postgres']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /--backplane postgres needs --db to be a PostgreSQL connection string/);
    r = run(['--listen', '127.0.0.1:0', '--db', other, '--backplane', 'redis://127.0.0.1:1']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /the database is sqlite, which serves one node/);
    r = run(['--listen', '127.0.0.1:0', '--db', other, '--backplane', 'zeromq']);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /expected none, poll, postgres/);
  } finally {
    await srv.stop({ keepDir: true });
  }
  // once it stopped, the file is free again
  const again = await startServer({ name: 'again', dir: srv.dir });
  await again.stop();
  fs.rmSync(srv.dir, { recursive: true, force: true });
});
