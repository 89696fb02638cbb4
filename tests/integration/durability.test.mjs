// Durability: what was acknowledged survives a clean restart (SIGTERM) and a crash (kill -9), with
// the same versions and positions, gapless, each event exactly once.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startServer,
  killAll,
  streamPath,
  show,
  readAll,
  uuid,
  closeStream,
  sleep,
  guarded,
  withTimeout,
} from './lib/server.mjs';

after(() => killAll());

async function created(res, what = 'publish') {
  assert.equal(res.status, 201, `${what}: ${show(res)}`);
  return res.json;
}

async function infoOf(srv, s) {
  const r = await srv.get(streamPath(s));
  return r.status === 200 ? r.json : r.status;
}

describe('clean restart (SIGTERM, then the same database)', () => {
  test('every stream, event, version, position, closed flag and deletion is as it was', async () => {
    let a = await startServer({ name: 'before-restart' });
    let b;
    await guarded(
      async () => {
        const s1 = `d-orders`;
        const s2 = `d-idem`;
        const s3 = `d-closed`;
        const s4 = `d-deleted`;
        const s5 = `d-recreated`;
        await created(await a.publish(s1, [{ type: 'a', data: { n: 1.0e2 }, metadata: { m: 'x' } }, { type: 'b' }]));
        const batch2 = [
          { type: 'i1', id: uuid(), data: 'one' },
          { type: 'i2', id: uuid(), data: 'two' },
        ];
        const r2 = await created(await a.publish(s2, batch2));
        await created(await a.publish(s1, { type: 'c', data: [1, 2, 3] }));
        await created(await a.publish(s3, [{ type: 'x' }, { type: 'y' }]));
        assert.equal((await closeStream(a, s3)).status, 200);
        await created(await a.publish(s4, { type: 'gone' }));
        await created(await a.publish(s5, [{ type: 'old1' }, { type: 'old2' }]));
        assert.equal((await a.del(streamPath(s4))).status, 204);
        assert.equal((await a.del(streamPath(s5))).status, 204);
        await created(await a.publish(s5, { type: 'new1' }));
        for (let i = 0; i < 5; i++) await created(await a.publish(s1, Array.from({ length: 200 }, (_, k) => ({ type: 'bulk', data: i * 200 + k }))));

        const allBefore = await readAll(a, '$all');
        const infosBefore = {};
        for (const s of [s1, s2, s3, s5]) infosBefore[s] = await infoOf(a, s);
        const listBefore = (await a.get('/api/streams?prefix=d-&limit=1000')).json;
        assert.equal(allBefore.length, 2 + 2 + 1 + 2 + 1 + 1000);

        await a.stop({ keepDir: true });
        b = await startServer({ name: 'after-restart', dir: a.dir });

        const allAfter = await readAll(b, '$all');
        assert.equal(allAfter.length, allBefore.length, 'the same number of events in $all');
        assert.deepEqual(allAfter, allBefore, 'every EventRecord identical (ids, versions, positions, times, data)');
        for (const s of [s1, s2, s3, s5]) assert.deepEqual(await infoOf(b, s), infosBefore[s], `info of ${s}`);
        assert.deepEqual((await b.get('/api/streams?prefix=d-&limit=1000')).json, listBefore, 'the stream list');
        assert.equal(await infoOf(b, s4), 404, 'a deleted stream stays deleted');
        assert.equal((await b.publish(s3, { type: 'z' })).status, 410, 'a closed stream stays closed');

        const again = await b.publish(s2, batch2);
        assert.equal(again.status, 201, `idempotent re-publish after restart: ${show(again)}`);
        assert.deepEqual(again.json, r2, 'client ids are remembered across a restart');

        const next = await created(await b.publish(s1, { type: 'after' }));
        const lastPos = allBefore[allBefore.length - 1].position;
        assert.deepEqual(
          [next.firstVersion, next.firstPosition],
          [infosBefore[s1].version + 1, lastPos + 1],
          'versions and positions continue where they were',
        );
        const s5events = (await b.get(streamPath(s5, '/events'))).json.events;
        assert.deepEqual(s5events.map((e) => [e.version, e.type]), [[1, 'new1']]);
      },
      () => (b ? b.stop() : a.dispose()),
    );
  });
});

describe('shutdown', () => {
  test('SIGTERM exits 0 while a client holds a connection that has not sent a request yet', async () => {
    const srv = await startServer({ name: 'idle-conn' });
    const sock = net.connect(srv.port, '127.0.0.1');
    await guarded(
      async () => {
        await withTimeout(new Promise((r) => sock.once('connect', r)), 5000, 'connect');
        await sleep(100);
        await srv.stop({ timeoutMs: 10000 });
      },
      () => sock.destroy(),
      () => srv.dispose(),
    );
  });

  test('SIGTERM exits 0 with live SSE subscribers, whose responses end', async () => {
    const srv = await startServer({ name: 'sse-term' });
    const subs = [];
    await guarded(
      async () => {
        await created(await srv.publish('t', { type: 'x' }));
        for (let i = 0; i < 5; i++) subs.push(srv.subscribe('t', { from: 0 }));
        await Promise.all(subs.map((s) => s.waitForEvents(1)));
        await srv.stop({ timeoutMs: 10000 });
        await Promise.all(subs.map((s) => s.waitForEnd(5000)));
      },
      () => subs.forEach((s) => s.close()),
      () => srv.dispose(),
    );
  });
});

// ---------------------------------------------------------------------------------------------
// crash during concurrent publishing

const PUBLISHERS = 8;
const STREAMS = ['k-0', 'k-1', 'k-2', 'k-3'];

/**
 * Run PUBLISHERS concurrent publishers (client ids on every event) against srv until `stop()`.
 * Every attempt is recorded in `attempts`: {stream, events, result (PublishResult) | error}.
 */
function runPublishers(srv, attempts, label, { maxMs = 60000 } = {}) {
  let stopped = false;
  let seq = 0;
  const deadline = Date.now() + maxMs; // bounded even if nobody calls stop()
  const workers = Array.from({ length: PUBLISHERS }, async (_, p) => {
    let i = 0;
    while (!stopped && Date.now() < deadline) {
      const stream = p < 4 ? STREAMS[(p + i) % STREAMS.length] : STREAMS[p % STREAMS.length];
      const n = 1 + ((p * 7 + i * 13) % 20);
      const events = Array.from({ length: n }, (_, k) => ({ type: 'k', id: uuid(), data: { label, p, i, k, seq: seq++ } }));
      const at = { stream, events, result: null, error: null, status: null };
      attempts.push(at);
      try {
        const r = await srv.publish(stream, events, { timeoutMs: 10000 });
        at.status = r.status;
        if (r.status === 201) at.result = r.json;
        else at.error = show(r);
      } catch (e) {
        at.error = e.message;
        await sleep(20); // the server is gone: no hot loop
      }
      i++;
    }
  });
  return {
    stop() {
      stopped = true;
    },
    done: Promise.all(workers),
  };
}

/** Verify $all and every stream of a (restarted) server against the attempts. */
async function verify(srv, attempts, { requireAllAttempts = false } = {}) {
  const all = await readAll(srv, '$all');
  const problems = [];
  const note = (m) => {
    if (problems.length < 30) problems.push(m);
  };
  // gapless positions
  all.forEach((e, i) => {
    if (e.position !== i + 1) note(`$all[${i}] has position ${e.position}, expected ${i + 1}`);
  });
  // gapless versions per stream, in position order
  const perStream = new Map();
  for (const e of all) {
    const v = (perStream.get(e.stream) ?? 0) + 1;
    if (e.version !== v) note(`${e.stream}: version ${e.version} at position ${e.position}, expected ${v}`);
    perStream.set(e.stream, e.version);
  }
  for (const [s, v] of perStream) {
    const info = await srv.get(streamPath(s));
    if (info.status !== 200 || info.json.version !== v) note(`info of ${s}: ${show(info)}, expected version ${v}`);
  }
  // each id once
  const byId = new Map();
  for (const e of all) {
    if (byId.has(e.id)) note(`id ${e.id} appears twice (positions ${byId.get(e.id).position} and ${e.position})`);
    byId.set(e.id, e);
  }
  // every acknowledged event exactly where its PublishResult said; unacknowledged batches all or nothing
  let acked = 0;
  let unackedPresent = 0;
  let unackedAbsent = 0;
  for (const at of attempts) {
    const found = at.events.map((ev) => byId.get(ev.id));
    if (at.result) {
      acked += at.events.length;
      found.forEach((e, k) => {
        if (!e) return note(`acknowledged event ${at.events[k].id} (${at.stream} v${at.result.firstVersion + k}) is missing`);
        const want = [at.stream, at.result.firstVersion + k, at.result.firstPosition + k];
        const got = [e.stream, e.version, e.position];
        if (JSON.stringify(got) !== JSON.stringify(want)) note(`acknowledged event ${e.id}: got ${got}, PublishResult said ${want}`);
        if (JSON.stringify(e.data) !== JSON.stringify(at.events[k].data)) note(`event ${e.id}: data ${JSON.stringify(e.data)}`);
      });
    } else {
      const present = found.filter(Boolean);
      if (present.length && present.length !== at.events.length)
        note(`a batch of ${at.events.length} (not acknowledged: ${at.error}) is partly there: ${present.length} events`);
      if (present.length) {
        unackedPresent++;
        present.forEach((e, k) => {
          if (e.version !== present[0].version + k || e.stream !== at.stream) note(`batch not contiguous at ${e.id}`);
        });
      } else unackedAbsent++;
      if (requireAllAttempts && !present.length) note(`retried batch ${at.events[0].id}… is missing`);
    }
  }
  assert.deepEqual(problems, [], `${problems.length} problems after the restart`);
  return { total: all.length, acked, unackedPresent, unackedAbsent, perStream };
}

describe('crash (kill -9) during concurrent publishing', () => {
  test(`${PUBLISHERS} publishers with client ids, kill -9 twice: acknowledged events all there exactly once, gapless`, async () => {
    let srv = await startServer({ name: 'crash-1' });
    const dir = srv.dir;
    const attempts = [];
    let pubs;
    await guarded(
      async () => {
        for (let round = 1; round <= 2; round++) {
          pubs = runPublishers(srv, attempts, `r${round}`);
          // let them run, and make sure many acknowledgements came in before the crash
          const t0 = Date.now();
          while (Date.now() - t0 < 1200 || attempts.filter((a) => a.result).length < 100 * round) {
            if (Date.now() - t0 > 15000) break;
            await sleep(50);
          }
          try {
            await srv.kill9();
          } finally {
            pubs.stop();
          }
          await withTimeout(pubs.done, 20000, 'the publishers to notice the crash');
          const failed = attempts.filter((a) => !a.result);
          const inflight = failed.filter((a) => a.status === null).length;
          assert.ok(attempts.filter((a) => a.result).length > 0, 'some publishes were acknowledged');
          // unexpected refusals (not network errors) are server bugs
          assert.deepEqual(failed.filter((a) => a.status !== null).map((a) => a.error), [], 'non-network failures');

          srv = await startServer({ name: `crash-restart-${round}`, dir });
          const v = await verify(srv, attempts);
          assert.ok(inflight >= 1, 'the crash interrupted at least one publish');
          console.log(
            `# round ${round}: ${attempts.length} batches, ${v.acked} acknowledged events, ${v.total} in $all; ` +
              `interrupted batches: ${v.unackedPresent} committed, ${v.unackedAbsent} not`,
          );
        }
        // retry every batch that was never acknowledged, with the same client ids: each must end
        // up there exactly once, and a batch that had in fact been committed gets its original result
        const byIdBefore = new Map((await readAll(srv, '$all')).map((e) => [e.id, e]));
        for (const at of attempts.filter((a) => !a.result)) {
          const r = await srv.publish(at.stream, at.events);
          assert.equal(r.status, 201, `retry: ${show(r)}`);
          const prior = byIdBefore.get(at.events[0].id);
          if (prior) {
            assert.deepEqual(
              [r.json.firstVersion, r.json.firstPosition],
              [prior.version, prior.position],
              'a retried batch that had been committed returns its original PublishResult',
            );
          }
          at.result = r.json;
        }
        await verify(srv, attempts, { requireAllAttempts: true });
      },
      () => pubs?.stop(),
      () => srv.stop(),
      () => srv.dispose(),
    );
  });

  test('SIGTERM during concurrent publishing: exit 0 and every acknowledged event is there', async () => {
    let srv = await startServer({ name: 'term-1' });
    const dir = srv.dir;
    const attempts = [];
    let pubs;
    await guarded(
      async () => {
        pubs = runPublishers(srv, attempts, 'term');
        await sleep(800);
        try {
          await srv.stop({ keepDir: true, timeoutMs: 15000 });
        } finally {
          pubs.stop();
        }
        await withTimeout(pubs.done, 20000, 'the publishers to stop');
        srv = await startServer({ name: 'term-restart', dir });
        const v = await verify(srv, attempts);
        assert.ok(v.acked > 0);
        // refusals other than network errors while stopping must be 503 Unavailable at most
        const odd = attempts.filter((a) => a.status !== null && a.status !== 201 && a.status !== 503);
        assert.deepEqual(odd.map((a) => a.error), [], 'unexpected statuses while stopping');
      },
      () => pubs?.stop(),
      () => srv.stop(),
      () => srv.dispose(),
    );
  });
});
