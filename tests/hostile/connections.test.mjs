// Connection floods: more connections than the process has file descriptors for. The server
// must neither spin nor flood its log, must say at startup that it lowered --max-connections to
// what the open-file limit allows, and must serve again once the flood is gone.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { startServer, killAll, guarded, sleep, until } from '../integration/lib/server.mjs';

after(() => killAll());

/** CPU seconds (user + system) the process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return (Number(rest[11]) + Number(rest[12])) / 100; // utime, stime in clock ticks (100 Hz)
}

test('at the open-file limit the server pauses accepting: no busy loop, no log flood, serves again after', async () => {
  const NOFILE = 400;
  const srv = await startServer({ name: 'hostile-fds', prefix: ['prlimit', `--nofile=${NOFILE}`], flags: ['--io-threads', '2'] });
  const socks = [];
  await guarded(async () => {
    const recs = srv.logRecords();
    const lowered = recs.find((r) => /max-connections lowered/.test(r.msg));
    assert.ok(lowered, `a startup warning names the lowered limit:\n${srv.logs()}`);
    const maxConn = Number(lowered.max_connections);
    assert.ok(maxConn > 0 && maxConn < NOFILE, `max_connections ${maxConn} fits under ${NOFILE}`);

    // hold far more connections than descriptors: first the server's own limit closes the
    // extra ones, then accept() itself fails with EMFILE (the peeked connections are not yet
    // counted), and the rest wait in the listen backlog
    for (let i = 0; i < 800; i++) {
      const s = net.connect(srv.port, '127.0.0.1');
      s.on('error', () => {});
      socks.push(s);
    }
    await sleep(1000);
    let logBytes = 0;
    srv.proc.stderr.on('data', (d) => (logBytes += d.length));
    const c0 = cpuSeconds(srv.pid);
    await sleep(3000);
    const cpu = cpuSeconds(srv.pid) - c0;
    console.log(`# at the file limit for 3 s: ${cpu.toFixed(2)} s of server CPU, ${logBytes} bytes of log`);
    // (a busy loop here was held back only by the log pipe: the server blocked on its writes)
    assert.ok(cpu < 0.3, `the server used ${cpu.toFixed(2)} s of CPU in 3 s at its file limit (a busy accept loop)`);
    assert.ok(logBytes < 4096, `${logBytes} bytes of log in 3 s at the file limit`);
    for (const s of socks) s.destroy();
    socks.length = 0;
    // once the flood is gone, new clients are served (the pause is short)
    await until(async () => (await srv.get('/healthz', { timeoutMs: 2000 })).status === 200, { timeoutMs: 10000, what: '/healthz after the flood' });
  }, () => {
    for (const s of socks) s.destroy();
    return srv.stop();
  });
});

/** Sends `pieces` on a new connection, `gapMs` apart, and resolves with the first line of the
 *  answer (or the error). */
function trickle(port, pieces, gapMs) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let got = '';
    const done = (v) => {
      s.destroy();
      resolve(v);
    };
    s.on('error', (e) => done(`error: ${e.message}`));
    s.on('data', (d) => {
      got += d;
      if (got.includes('\r\n')) done(got.split('\r\n')[0]);
    });
    s.on('connect', async () => {
      for (let i = 0; i < pieces.length; i++) {
        if (i) await sleep(gapMs);
        if (!s.destroyed) s.write(pieces[i]);
      }
    });
    setTimeout(() => done(`no answer (had ${JSON.stringify(got)})`), 10000);
  });
}

test('request lines trickled in pieces: the acceptor waits for them without spinning, and every one is answered', async () => {
  // The acceptor peeks (the bytes stay in the socket) and waits, edge-triggered, up to 200 ms
  // for the whole request line: a level-triggered wait would fire again and again for the
  // bytes already seen, a spinning acceptor thread. Half the clients finish the line within
  // the wait, half well after it (handed over with what came, the IO thread reads the rest).
  const srv = await startServer({ name: 'hostile-trickle', flags: ['--io-threads', '2'] });
  await guarded(async () => {
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    const within = ['GET /he', 'alt', `${req.slice(10)}`];
    const after = [...'GET /healthz'].concat([req.slice(12)]);
    // one client every 10 ms for 2 s: some request line is always half in; the same clients
    // sending their requests whole first, for what 200 health checks cost in this build
    const run = async (trickled) => {
      const c0 = cpuSeconds(srv.pid);
      const answers = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
        await sleep(10 * i);
        if (!trickled) return trickle(srv.port, [req], 0);
        return i % 2 ? trickle(srv.port, within, 50) : trickle(srv.port, after, 40);
      }));
      assert.deepEqual(answers.filter((a) => a !== 'HTTP/1.1 200 OK'), [], 'every request is answered 200');
      return cpuSeconds(srv.pid) - c0;
    };
    const whole = await run(false);
    const cpu = await run(true);
    console.log(`# 200 request lines over 2 s: ${whole.toFixed(2)} s of server CPU sent whole, ${cpu.toFixed(2)} s trickled`);
    // an acceptor that spun on the bytes it had seen would have kept a core busy for the 2 s
    assert.ok(cpu - whole < 0.8, `trickled request lines cost ${cpu.toFixed(2)} s of server CPU against ${whole.toFixed(2)} s whole`);
  }, () => srv.stop());
});
