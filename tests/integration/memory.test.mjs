// Memory must not grow with the amount of data that went through the server (API.md "Limits":
// never a crash, whatever the clients do; a daemon that keeps every request body dies eventually).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, killAll, show, guarded, readAll } from './lib/server.mjs';

after(() => killAll());

test('publishing ~100 MB in 64 KB bodies grows the server RSS by far less than that', async (t) => {
  const srv = await startServer({ name: 'memory' });
  await guarded(
    async () => {
      if (srv.isSanitized()) {
        // ASan's quarantine holds freed memory by design; LeakSanitizer reports leaks at exit
        // (stop() then fails on the exit code), which covers the same ground
        t.skip('sanitizer build: RSS is not meaningful, LeakSanitizer checks at exit');
        return;
      }
      const pad = 'x'.repeat(8000);
      const body = Array.from({ length: 8 }, () => ({ type: 'big', data: pad })); // ~64 KB
      const publishMany = async (n) => {
        for (let i = 0; i < n; i++) {
          const r = await srv.publish(`mem-${i % 10}`, body);
          assert.equal(r.status, 201, show(r));
        }
      };
      await publishMany(100); // warm-up: caches, pools, the writer's buffers
      const base = srv.rssKb();
      const N = 1500; // ~96 MB of request bodies
      await publishMany(N);
      // and read a good part of it back, through the same connections
      const back = await readAll(srv, 'mem-0');
      assert.equal(back.length, (N + 100) / 10 * 8);
      const grown = srv.rssKb() - base;
      const sentMb = (N * JSON.stringify(body).length) / 1e6;
      console.log(`# RSS ${(base / 1024).toFixed(1)} MB → +${(grown / 1024).toFixed(1)} MB after ${sentMb.toFixed(0)} MB published`);
      assert.ok(
        grown < 40 * 1024,
        `the server RSS grew by ${(grown / 1024).toFixed(1)} MB while ${sentMb.toFixed(0)} MB were published: ` +
          'request bodies (or events) are kept',
      );
    },
    () => srv.stop(),
  );
});
