// Subscribers that misbehave: connections reset (TCP RST) while their catch-up reads are in
// flight, and clients that ask for a lot and read nothing. The server must survive with every
// acknowledged event intact, and its memory must stay within the documented bounds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, killAll, guarded, show } from '../integration/lib/server.mjs';
import { sseReset, RawHub } from './lib/clients.mjs';

after(() => killAll());

/** Publishes n events of about `size` bytes to `stream`, 500 per request. */
async function fill(srv, stream, n, size = 200) {
  const pad = 'p'.repeat(size);
  for (let i = 0; i < n; i += 500) {
    const batch = Array.from({ length: Math.min(500, n - i) }, (_, k) => ({ type: 'fill', data: { i: i + k, pad } }));
    const r = await srv.publish(stream, batch);
    assert.equal(r.status, 201, show(r));
  }
}

/** Runs `n` calls of fn(i), `par` at a time. */
async function inParallel(n, par, fn) {
  let next = 0;
  await Promise.all(Array.from({ length: par }, async () => {
    while (next < n) await fn(next++);
  }));
}

test('SSE subscribers reset during their catch-up reads, 200 times: the server survives', async () => {
  // the audit's use-after-free: a read that completed ahead of the one issued before it was
  // looked up on a subscription whose last reference the earlier read had just dropped
  const srv = await startServer({ name: 'hostile-sse-reset' });
  await guarded(async () => {
    await fill(srv, 'deep', 20000);
    await inParallel(200, 8, (i) => sseReset(srv.port, '/api/streams/deep/events?from=0', i % 4));
    await inParallel(50, 8, (i) => sseReset(srv.port, '/api/streams/$all/events?from=0', i % 3));
    const info = await srv.get('/api/streams/deep');
    assert.equal(info.status, 200);
    assert.equal(info.json.version, 20000, 'every acknowledged event is there');
    assert.equal(info.json.subscribers, 0, 'every reset subscription is gone');
  }, () => srv.stop());
});

test('SignalR subscribers (push and streaming) reset during their catch-up reads: the server survives', async () => {
  const srv = await startServer({ name: 'hostile-hub-reset' });
  await guarded(async () => {
    await fill(srv, 'deep', 20000);
    await inParallel(120, 6, async (i) => {
      const h = new RawHub(srv.port);
      try {
        await h.ready;
        if (i % 2) h.invoke(1, 'Subscribe', 'deep', 0);
        else h.send({ type: 4, invocationId: '1', target: 'Subscribe', arguments: ['deep', 0] });
        await h.waitFor((r) => r.length >= 2, 5000, 'the first subscription data');
        await new Promise((r) => setTimeout(r, i % 3));
        h.reset();
      } finally {
        h.close();
      }
    });
    const info = await srv.get('/api/streams/deep');
    assert.equal(info.status, 200);
    assert.equal(info.json.version, 20000);
  }, () => srv.stop());
});
