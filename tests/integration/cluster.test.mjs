// Two server processes appending to one stream of one PostgreSQL database at the same time:
// the batch lock keeps versions and positions gapless and commit-ordered across processes,
// nothing is duplicated and every acknowledged event is stored. PostgreSQL only (skipped
// unless HUBSTREAM_TEST_PG is set; ctest runs it as pg_integration_cluster).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, publish, readAll, uniqueStream, uuid, TEST_PG } from './lib/server.mjs';

test('two servers, one PostgreSQL stream: gapless, no duplicate, every ack stored', { skip: TEST_PG ? false : 'needs HUBSTREAM_TEST_PG (a PostgreSQL)' }, async () => {
  const a = await startServer();
  const b = await startServer({ dir: a.dir });
  try {
    const s = uniqueStream('cluster');
    const acked = new Map(); // event id -> version
    const worker = async (srv, k) => {
      for (let i = 0; i < 60; i++) {
        const events = Array.from({ length: 5 }, () => ({ type: 't', data: { k, i }, id: uuid() }));
        const r = await publish(srv, s, events);
        assert.equal(r.status, 201, `publisher ${k}: ${r.text}`);
        assert.equal(r.json.lastVersion - r.json.firstVersion, 4);
        assert.equal(r.json.lastPosition - r.json.firstPosition, 4, 'a publish gets consecutive positions');
        events.forEach((e, j) => acked.set(e.id, r.json.firstVersion + j));
      }
    };
    await Promise.all([0, 1, 2, 3].map((k) => worker(a, k)).concat([4, 5, 6, 7].map((k) => worker(b, k))));
    const N = 8 * 60 * 5;
    for (const srv of [a, b]) {
      const all = await readAll(srv, s);
      assert.equal(all.length, N);
      all.forEach((r, i) => assert.equal(r.version, i + 1, 'versions gapless'));
      for (let i = 1; i < all.length; i++) assert.ok(all[i].position > all[i - 1].position, 'positions follow versions');
      assert.equal(new Set(all.map((r) => r.id)).size, N, 'no duplicate');
      for (const r of all) assert.equal(acked.get(r.id), r.version, 'stored where it was acknowledged');
    }
    const everything = await readAll(a, '$all');
    everything.forEach((r, i) => assert.equal(r.position, i + 1, 'positions gapless across the database'));
    const info = (await a.get(`/api/streams/${s}`)).json;
    assert.equal(info.version, N);
  } finally {
    await b.stop();
    await a.stop();
  }
});
