#!/usr/bin/env node
// Per-job streams over hubstream (the "Rocket" pattern): a worker reports a job's progress on a
// stream of its own, `job-<id>`, and closes the stream when the job is done; a watcher follows
// the stream over Server-Sent Events and stops at the server's `event: close`, the end-of-job
// marker. Run the server with a retention rule for job streams so that finished jobs' events go
// away by themselves, e.g. `hubstream --retention 'job-*:max-age=1h'`.
//
//   node jobs.mjs worker <id> [--steps N] [--interval-ms MS]   run a (pretend) job
//   some-command | node jobs.mjs worker <id> --stdin           report a real one: each line
//                                                              read is a progress message
//   node jobs.mjs watch <id> [--from N]                        follow a job until it ends
//
// Common options: --server URL (default $HUBSTREAM_URL or http://127.0.0.1:5000),
// --token JWT (default $HUBSTREAM_TOKEN; needed when the server has auth on), --json (one JSON
// object per line instead of text).
//
// The worker publishes job.started (with Expected-Version: 0, so a job id cannot be started
// twice), job.progress {step, of, percent} every interval (with --stdin: {step, message} for
// each line read, as it comes), job.completed {result} (at the end of the input), then closes
// the stream: publishing to it answers 410 from then on.
//
// The watcher starts from version 0 by default: a watcher that comes late, even after the job
// ended, still gets every event that retention has kept, then the close marker. If its
// connection drops before the marker, it reconnects with Last-Event-ID and misses nothing.
// Exit status: 0 when the job's stream was closed, 3 when it was deleted, 1 on errors.
//
// Node 20 or later, no packages.

import http from 'node:http';
import https from 'node:https';
import readline from 'node:readline';

function usage(msg) {
  if (msg) console.error(`jobs.mjs: ${msg}`);
  console.error('usage: node jobs.mjs worker <id> [--steps N] [--interval-ms MS] [--stdin] | watch <id> [--from N]\n' +
    '       common: [--server URL] [--token JWT] [--json]');
  process.exit(2);
}

function parseArgs(argv) {
  const [cmd, id, ...rest] = argv;
  if (!cmd || !id) usage();
  const o = {
    cmd,
    id,
    server: process.env.HUBSTREAM_URL || 'http://127.0.0.1:5000',
    token: process.env.HUBSTREAM_TOKEN || '',
    json: false,
    steps: 5,
    stdin: false,
    intervalMs: 500,
    from: 0,
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    const val = () => {
      if (i + 1 >= rest.length) usage(`${a} needs a value`);
      return rest[++i];
    };
    const num = () => {
      const n = Number(val());
      if (!Number.isSafeInteger(n) || n < 0) usage(`${a}: a whole number >= 0`);
      return n;
    };
    if (a === '--server') o.server = val().replace(/\/+$/, '');
    else if (a === '--token') o.token = val();
    else if (a === '--json') o.json = true;
    else if (a === '--steps') o.steps = num();
    else if (a === '--stdin') o.stdin = true;
    else if (a === '--interval-ms') o.intervalMs = num();
    else if (a === '--from') o.from = num();
    else usage(`unknown option ${a}`);
  }
  return o;
}

const o = parseArgs(process.argv.slice(2));
const stream = `job-${o.id}`;
const streamUrl = (suffix = '') => `${o.server}/api/streams/${encodeURIComponent(stream)}${suffix}`;
const authHeaders = () => (o.token ? { authorization: `Bearer ${o.token}` } : {});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** One line of output: `text` for people, `obj` with --json. */
function say(text, obj) {
  process.stdout.write(o.json ? `${JSON.stringify(obj)}\n` : `${text}\n`);
}

// ---------------------------------------------------------------------------------------------
// worker

async function post(suffix, body, headers = {}) {
  const res = await fetch(streamUrl(suffix), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...authHeaders(), ...headers },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  if (res.status !== 200 && res.status !== 201) throw new Error(`POST ${suffix} answered ${res.status}: ${text}`);
  return JSON.parse(text);
}

/** The progress reports: pretend work in steps, or the lines of standard input. */
async function* progress() {
  if (o.stdin) {
    let step = 0;
    for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      if (line.trim() !== '') yield { step: ++step, message: line };
    }
    return;
  }
  for (let step = 1; step <= o.steps; step++) {
    await sleep(o.intervalMs); // the work
    yield { step, of: o.steps, percent: Math.round((step * 100) / o.steps) };
  }
}

async function worker() {
  const startData = o.stdin ? { id: o.id } : { id: o.id, steps: o.steps };
  const started = await post('/events', { type: 'job.started', data: startData }, { 'expected-version': '0' });
  say(`${stream} #${started.firstVersion} job.started`, { kind: 'published', type: 'job.started', version: started.firstVersion });
  for await (const data of progress()) {
    const r = await post('/events', { type: 'job.progress', data });
    const text = data.message ?? `${data.percent}%`;
    say(`${stream} #${r.firstVersion} job.progress ${text}`, { kind: 'published', type: 'job.progress', version: r.firstVersion, data });
  }
  const done = await post('/events', { type: 'job.completed', data: { id: o.id, result: 'ok' } });
  say(`${stream} #${done.firstVersion} job.completed`, { kind: 'published', type: 'job.completed', version: done.firstVersion });
  const closed = await post('/close', {});
  say(`${stream} closed at version ${closed.version}`, { kind: 'closed', version: closed.version });
}

// ---------------------------------------------------------------------------------------------
// watcher

/**
 * One SSE request. Calls onBlock({id, event, data}) per block; resolves 'close:<reason>' after
 * the close marker, 'ended' when the response ends without it. Rejects on a non-200 answer.
 */
function sseOnce(lastId, onBlock) {
  return new Promise((resolve, reject) => {
    const url = new URL(streamUrl('/events'));
    const headers = { accept: 'text/event-stream', ...authHeaders() };
    if (lastId === null) url.searchParams.set('from', String(o.from));
    else headers['last-event-id'] = String(lastId);
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.get(url, { headers }, (res) => {
      if (res.statusCode !== 200) {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (t) => (body += t));
        res.on('end', () => reject(Object.assign(new Error(`subscribing answered ${res.statusCode}: ${body}`), { status: res.statusCode })));
        return;
      }
      say(`${stream}: following`, { kind: 'open' });
      let buf = '';
      let block = {};
      let result = 'ended';
      res.setEncoding('utf8');
      res.on('data', (chunk) => {
        buf += chunk;
        let nl;
        while ((nl = buf.search(/\r\n|\n|\r/)) >= 0) {
          if (buf[nl] === '\r' && nl + 1 === buf.length) break; // maybe half of \r\n
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + (buf.startsWith('\r\n', nl) ? 2 : 1));
          if (line === '') {
            if (block.data !== undefined) {
              if (block.event === 'close') {
                result = `close:${JSON.parse(block.data).reason}`;
                req.destroy();
                resolve(result);
                return;
              }
              onBlock(block);
            }
            block = {};
          } else if (line[0] !== ':') {
            const c = line.indexOf(':');
            const field = c < 0 ? line : line.slice(0, c);
            const value = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (field === 'data') block.data = block.data === undefined ? value : `${block.data}\n${value}`;
            else if (field === 'id' || field === 'event') block[field] = value;
          }
        }
      });
      res.on('end', () => resolve(result));
      res.on('error', () => resolve(result));
      res.on('close', () => resolve(result));
    });
    req.on('error', (e) => reject(e));
    say(`${stream}: subscribing (${lastId === null ? `from ${o.from}` : `after ${lastId}`})`, {
      kind: 'subscribe',
      ...(lastId === null ? { from: o.from } : { lastEventId: lastId }),
    });
  });
}

async function watch() {
  let lastId = null;
  let failures = 0;
  for (;;) {
    let outcome;
    try {
      outcome = await sseOnce(lastId, (b) => {
        if (b.id !== undefined) lastId = Number(b.id);
        const rec = JSON.parse(b.data);
        say(`${stream} #${rec.version} ${rec.type} ${JSON.stringify(rec.data)}`, { kind: 'event', version: rec.version, type: rec.type, data: rec.data });
      });
      failures = 0;
    } catch (e) {
      if (e.status >= 400 && e.status < 500) throw e; // refused (auth, bad name): retrying will not help
      outcome = `error: ${e.message}`;
      failures++;
    }
    if (outcome.startsWith('close:')) {
      const reason = outcome.slice(6);
      say(`${stream}: ${reason} (the job is over)`, { kind: 'close', reason });
      process.exitCode = reason === 'deleted' ? 3 : 0;
      return;
    }
    // the connection ended without the marker: the server restarted, a proxy cut it...
    const delay = Math.min(10000, 250 * 2 ** Math.min(failures, 6));
    say(`${stream}: connection ended (${outcome}); again in ${delay} ms`, { kind: 'retry', outcome, delayMs: delay });
    await sleep(delay);
  }
}

try {
  if (o.cmd === 'worker') await worker();
  else if (o.cmd === 'watch') await watch();
  else usage(`unknown command ${o.cmd}`);
} catch (e) {
  console.error(`jobs.mjs ${o.cmd} ${stream}: ${e.message}`);
  process.exitCode = 1;
}
