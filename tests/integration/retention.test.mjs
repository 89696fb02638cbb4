// Retention (--retention): what a client sees of a stream whose old events were dropped. Reads
// and subscriptions from 0 start at the oldest event kept, the stream's version goes on, closed
// job streams stay closed (and a reconnect gets the close at once) after their events expire, and
// a bad rule stops the server at startup with a message naming it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { BIN, startServer, killAll, readAll, streamPath, closeStream, until, guarded, show } from './lib/server.mjs';

after(() => killAll());

const ids = (events) => events.map((e) => e.version);

test('max-count: reads and subscriptions from 0 start at the newest N, versions go on', async () => {
  const srv = await startServer({ flags: ['--retention', 'log-*:max-count=5;keep:max-count=1000'] });
  await guarded(async () => {
    for (let i = 0; i < 4; i++) {
      const r = await srv.publish('log-a', Array.from({ length: 5 }, (_, k) => ({ type: 't', data: i * 5 + k })));
      assert.equal(r.status, 201, show(r));
    }
    assert.equal((await srv.publish('keep', Array.from({ length: 20 }, () => ({ type: 't' })))).status, 201);
    assert.equal((await srv.publish('other', Array.from({ length: 20 }, () => ({ type: 't' })))).status, 201);
    await until(async () => (await readAll(srv, 'log-a')).length === 5, { timeoutMs: 10000, what: 'log-a trimmed to 5' });
    const kept = await readAll(srv, 'log-a');
    assert.deepEqual(ids(kept), [16, 17, 18, 19, 20]);
    assert.deepEqual(kept.map((e) => e.data), [15, 16, 17, 18, 19]);
    const info = (await srv.get(streamPath('log-a'))).json;
    assert.equal(info.version, 20, 'the stream keeps its version');
    assert.equal((await readAll(srv, 'keep')).length, 20);
    assert.equal((await readAll(srv, 'other')).length, 20);

    const sub = srv.subscribe('log-a', { from: 0 });
    await sub.waitForEvents(5);
    assert.deepEqual(sub.events.map((b) => Number(b.id)), [16, 17, 18, 19, 20]);
    const next = await srv.publish('log-a', { type: 't', data: 'next' });
    assert.equal(next.json.firstVersion, 21);
    await sub.waitForEvents(6);
    assert.equal(Number(sub.events[5].id), 21);
    sub.close();
  }, () => srv.stop());
});

test('max-age: a closed job stream loses its events but stays closed', async () => {
  const srv = await startServer({ flags: ['--retention', 'job-*:max-age=1s'] });
  await guarded(async () => {
    assert.equal((await srv.publish('job-7', [{ type: 'progress', data: 50 }, { type: 'done' }])).status, 201);
    assert.equal((await closeStream(srv, 'job-7')).status, 200);
    await until(async () => (await readAll(srv, 'job-7')).length === 0, { timeoutMs: 10000, what: 'job-7 to expire' });
    const info = (await srv.get(streamPath('job-7'))).json;
    assert.equal(info.version, 2);
    assert.equal(info.closed, true);
    assert.equal((await srv.publish('job-7', { type: 'late' })).status, 410);
    // a reconnect after the end: the close block at once, nothing else
    const sub = srv.subscribe('job-7', { lastEventId: 1 });
    await sub.waitForEnd(5000);
    assert.equal(sub.events.length, 0);
    assert.ok(sub.closeBlock, sub.describe());
  }, () => srv.stop());
});

test('a bad --retention rule stops the server at startup and names the rule', () => {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('HUBSTREAM_')));
  const r = spawnSync(BIN, ['--listen', '127.0.0.1:0', '--db', '/nonexistent/x.db', '--retention', 'job-*:max-age=1w'],
    { env, encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /--retention/);
  assert.match(r.stderr, /job-\*:max-age=1w/);
});
