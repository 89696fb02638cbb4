// PostgreSQL stopped and started again under a publishing load, twice (a fast shutdown, then an
// immediate one, which is a crash to the clients): the server stays up, answers 503 while the
// database is away (/readyz with the reason, publishes with "nothing was appended"), reconnects by
// itself, and afterwards the database holds every acknowledged event exactly once at its
// acknowledged version, none of the events whose publish failed, and gapless versions.
//
// Runs its own cluster through tests/pg/pg.sh (HUBSTREAM_TEST_PG_OUTAGE="PG_SH,PORT,DIR", set by
// ctest as pg_outage); skipped without it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { startServer, killAll, readAll, uuid, sleep, until, guarded, show } from './lib/server.mjs';

const run = promisify(execFile);
const OUTAGE = process.env.HUBSTREAM_TEST_PG_OUTAGE || '';
after(() => killAll());

const PUBLISHERS = 4;
const SKIP = OUTAGE ? false : 'needs HUBSTREAM_TEST_PG_OUTAGE (pg.sh, a port, a directory)';

/** The test's own cluster: pg.sh, its directory, and what a server needs to reach it. */
function cluster() {
  const [pgsh, port, dir] = OUTAGE.split(',');
  return {
    port,
    dir,
    pg: (...args) => run(pgsh, args, { timeout: 60000 }),
    db: `Driver=PostgreSQL Unicode;Server=127.0.0.1;Port=${port};Database=postgres;Uid=postgres;Pwd=;`,
    env: { ODBCSYSINI: `${dir}/odbc` },
  };
}

test('PostgreSQL stopped and restarted during publishing: the server recovers by itself, nothing acknowledged is lost', {
  skip: SKIP,
  timeout: 240000,
}, async () => {
  const { port, dir, pg, db, env } = cluster();
  await pg('start', dir, port);
  let srv;
  await guarded(async () => {
    srv = await startServer({ db, env, name: 'outage' });
    const pid = srv.pid;
    const events = new Map(); // id -> {stream, outcome: 'acked' | 'failed' | 'unknown', version}
    const count = { acked: 0, failed: 0, unknown: 0 };
    let stop = false;
    const unexpected = [];

    const publisher = async (k) => {
      for (let i = 0; !stop; i++) {
        // own stream, and every third publish to a stream they all share
        const stream = i % 3 === 2 ? 'outage-shared' : `outage-${k}`;
        const batch = Array.from({ length: 5 }, () => ({ type: 't', id: uuid(), data: { k, i } }));
        const r = await srv.publish(stream, batch, { timeoutMs: 40000 });
        let outcome;
        if (r.status === 201) outcome = 'acked';
        else if (r.status === 503 && /nothing was appended/.test(r.text)) outcome = 'failed';
        else if (r.status === 503 && /may have been appended/.test(r.text)) outcome = 'unknown';
        else {
          unexpected.push(show(r));
          outcome = 'failed';
        }
        count[outcome] += batch.length;
        batch.forEach((e, j) =>
          events.set(e.id, { stream, outcome, version: outcome === 'acked' ? r.json.firstVersion + j : 0 }));
        if (outcome !== 'acked') await sleep(20);
      }
    };

    const acked = () => count.acked;
    const ready = async () => (await srv.get('/readyz')).status;
    const load = Array.from({ length: PUBLISHERS }, (_, k) => publisher(k));
    try {
      for (const mode of ['fast', 'immediate']) {
        const before = acked();
        await until(() => acked() >= before + 200, { timeoutMs: 30000, what: `acks before the ${mode} stop` });
        const failedBefore = count.failed + count.unknown;
        await pg('halt', dir, mode);
        const r = await until(async () => {
          const x = await srv.get('/readyz');
          return x.status === 503 ? x : null;
        }, { timeoutMs: 10000, what: '/readyz to answer 503 with PostgreSQL down' });
        assert.match(r.text, /database unavailable/, `/readyz body: ${r.text}`);
        await until(() => count.failed + count.unknown >= failedBefore + 20,
          { timeoutMs: 10000, what: 'publishes to fail while PostgreSQL is down' });
        // while down, a publish fails fast rather than hanging
        const t0 = Date.now();
        const down = await srv.publish('outage-probe', { type: 'p' });
        assert.equal(down.status, 503, show(down));
        assert.match(down.text, /"error":"Unavailable"/);
        assert.ok(Date.now() - t0 < 2000, `a publish with the database down took ${Date.now() - t0} ms`);
        await sleep(1500);
        await pg('resume', dir, port);
        await until(async () => (await ready()) === 200, { timeoutMs: 30000, what: `/readyz 200 after the ${mode} restart` });
        const back = acked();
        await until(() => acked() >= back + 200, { timeoutMs: 30000, what: `acks after the ${mode} restart` });
      }
    } finally {
      stop = true;
      await Promise.all(load);
    }
    assert.deepEqual(unexpected, [], 'every publish got 201 or 503');
    assert.ok(srv.running && srv.pid === pid, 'the same server process throughout');
    assert.ok(count.failed > 0, 'some publishes failed during the outages');

    // what the database holds
    const streams = ['outage-shared', ...Array.from({ length: PUBLISHERS }, (_, k) => `outage-${k}`)];
    let stored = 0;
    for (const s of streams) {
      const all = await readAll(srv, s);
      all.forEach((r, i) => assert.equal(r.version, i + 1, `${s}: versions gapless`));
      const ids = new Set();
      for (const r of all) {
        assert.ok(!ids.has(r.id), `${s}: ${r.id} stored twice`);
        ids.add(r.id);
        const e = events.get(r.id);
        assert.ok(e, `${s}: ${r.id} was never published`);
        assert.notEqual(e.outcome, 'failed', `${s}: ${r.id} is stored although its publish failed`);
        if (e.outcome === 'acked') assert.equal(r.version, e.version, `${s}: ${r.id} stored where acknowledged`);
      }
      for (const [id, e] of events)
        if (e.stream === s && e.outcome === 'acked') assert.ok(ids.has(id), `${s}: acknowledged ${id} is missing`);
      stored += all.length;
    }
    assert.ok(stored >= count.acked && stored <= count.acked + count.unknown,
      `stored ${stored}, acknowledged ${count.acked}, unknown ${count.unknown}`);
    const logs = srv.logs();
    assert.match(logs, /database connection lost/);
    assert.match(logs, /database connection restored/);
    console.log(`outage: ${count.acked} acknowledged, ${count.failed} failed, ${count.unknown} unknown, ${stored} stored`);
  }, async () => {
    if (srv) await srv.stop();
  }, async () => {
    await pg('stop', dir);
  });
});

// A node started before its database (a container beside it): by default it exits at once with
// the reason; with --db-wait-s it waits, trying once a second, and serves once the database is
// up.
test('--db-wait-s: a server started before PostgreSQL waits for it, then serves', {
  skip: SKIP,
  timeout: 180000,
}, async () => {
  const { port, dir, pg, db, env } = cluster();
  await assert.rejects(startServer({ db, env, name: 'no-wait', timeoutMs: 20000 }), /exited before listening/);
  let srv;
  await guarded(async () => {
    const t0 = Date.now();
    const started = startServer({ db, env, name: 'db-wait', flags: ['--db-wait-s', '120'], timeoutMs: 150000 });
    await sleep(2500);
    await pg('start', dir, port);
    srv = await started;
    assert.ok(Date.now() - t0 >= 2500, 'it listened before the database was there');
    assert.match(srv.logs(), /database not reachable yet; waiting/);
    assert.match(srv.logs(), /database reachable/);
    const r = await srv.publish('db-wait', [{ type: 't', data: { n: 1 } }]);
    assert.equal(r.status, 201, show(r));
    assert.equal((await readAll(srv, 'db-wait')).length, 1);
  }, async () => {
    if (srv) await srv.stop();
  }, async () => {
    await pg('stop', dir);
  });
});
