// Helpers for the hubstream integration tests: start/stop the real binary, a JSON HTTP client,
// an incremental Server-Sent Events client, and a "stalled reader" (a raw TCP socket with a tiny
// receive buffer that can be told to stop and resume reading).
//
// Every process started here is tracked; anything still alive when the test process exits (even
// on a crash or a signal from the test runner) is SIGKILLed, so nothing leaks. Every wait has a
// timeout and the timeout message says what was being waited for.

import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createHmac, randomUUID } from 'node:crypto';

const HERE = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(HERE, '../../..');
export const BIN = process.env.HUBSTREAM_BIN || path.join(REPO_ROOT, 'build', 'hubstream');

// ---------------------------------------------------------------------------------------------
// process bookkeeping

const liveProcs = new Set();

function killAllSync() {
  for (const p of liveProcs) {
    try {
      p.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  liveProcs.clear();
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    killAllSync();
    process.exit(128 + (os.constants.signals[sig] || 1));
  });
}

/** SIGKILL every process these helpers started that is still running (for `after` hooks). */
export function killAll() {
  killAllSync();
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Append text to an error's message, and to its stack (which reporters print) as well. */
export function appendToError(e, text) {
  if (!(e instanceof Error)) return e;
  const old = e.message;
  e.message = old + text;
  if (typeof e.stack === 'string' && old && e.stack.includes(old)) e.stack = e.stack.replace(old, e.message);
  else if (typeof e.stack === 'string') e.stack = `${e.stack}${text}`;
  return e;
}

/**
 * Run fn, then every cleanup (even when fn failed). A cleanup failure (a server that exits badly
 * on stop, say) fails the test when fn passed; when fn failed, it is appended to fn's error
 * instead of hiding it.
 */
export async function guarded(fn, ...cleanups) {
  let err = null;
  let result;
  try {
    result = await fn();
  } catch (e) {
    err = e;
  }
  for (const c of cleanups) {
    try {
      await c();
    } catch (e) {
      if (err) appendToError(err, `\n  (and during cleanup: ${e.message})`);
      else err = e;
    }
  }
  if (err) throw err;
  return result;
}

/** Resolve `promise` or reject after `ms` with a message naming `what`. */
export function withTimeout(promise, ms, what) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

/** Poll `fn` (may be async) until it returns a truthy value; that value is returned. */
export async function until(fn, { timeoutMs = 5000, intervalMs = 50, what = 'a condition' } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) {
      const detail = last instanceof Error ? ` (last error: ${last.message})` : '';
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail}`);
    }
    await sleep(intervalMs);
  }
}

// ---------------------------------------------------------------------------------------------
// the server process

/**
 * HUBSTREAM_TEST_PG="PORT,ODBCSYSINI_DIR" runs every server on a throwaway PostgreSQL (see
 * tests/pg/pg.sh) instead of a SQLite file: one database per server directory, created on first
 * use, so that a restart on the same `dir` reopens the same data.
 */
export const TEST_PG = process.env.HUBSTREAM_TEST_PG || '';

function pgDatabase(dir) {
  const [port] = TEST_PG.split(',');
  const name = `hs_${path.basename(dir).replace(/[^A-Za-z0-9]/g, '_').toLowerCase()}`;
  const r = spawnSync('psql', [`host=127.0.0.1 port=${port} user=postgres dbname=postgres`, '-qc', `CREATE DATABASE ${name}`], { encoding: 'utf8' });
  if (r.status !== 0 && !/already exists/.test(r.stderr)) throw new Error(`creating database ${name}: ${r.stderr || r.error}`);
  return `Driver=PostgreSQL Unicode;Server=127.0.0.1;Port=${port};Database=${name};Uid=postgres;Pwd=;`;
}

// ---------------------------------------------------------------------------------------------
// auth runs: with HS_TEST_AUTH_SECRET set, every server these helpers start checks JWTs signed
// with that secret, and every request, SSE subscription and hub connection made through them
// carries a token that may do everything (the conformance suite's run with auth on)

export const TEST_AUTH_SECRET = process.env.HS_TEST_AUTH_SECRET || '';
let testTok = null;

/** The all-permitting token of an auth run (valid for an hour; renewed when half used). */
export function testToken() {
  const now = Math.floor(Date.now() / 1000);
  if (!testTok || testTok.exp - now < 1800) {
    const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const claims = { sub: 'conformance', exp: now + 3600, hubstream: { publish: ['*'], subscribe: ['*'], admin: true } };
    const input = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(claims)}`;
    const sig = createHmac('sha256', TEST_AUTH_SECRET).update(input).digest('base64url');
    testTok = { exp: claims.exp, token: `${input}.${sig}` };
  }
  return testTok.token;
}

/** headers plus the auth run's Authorization, unless they carry one. */
export function withTestAuth(headers = {}) {
  if (!TEST_AUTH_SECRET || Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')) return headers;
  return { ...headers, authorization: `Bearer ${testToken()}` };
}

function cleanEnv(extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    // the server reads HUBSTREAM_* settings from the environment: never let the caller's leak in
    if (k.startsWith('HUBSTREAM_')) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/**
 * Start the real binary in a fresh temp dir (or `dir`, to reopen an existing database), on the
 * SQLite file hubstream.db there, the HUBSTREAM_TEST_PG database, or the connection string `db`.
 * Resolves once the server has logged its "listening" line.
 * Returns {port, url, proc, pid, dir, db, args, stop(), kill9(), logs(), rssKb(), request(), ...}.
 */
export async function startServer({
  flags = [],
  dir,
  port = 0,
  env = {},
  timeoutMs = 15000,
  name = 'hubstream',
  db,
  prefix = [],
} = {}) {
  const ownDir = !dir;
  dir ??= await mkdtemp(path.join(os.tmpdir(), 'hubstream-it-'));
  // `db`: a connection string of the caller's (its ODBCSYSINI, if any, comes in `env`)
  if (!db) {
    db = TEST_PG ? pgDatabase(dir) : path.join(dir, 'hubstream.db');
    if (TEST_PG) env = { ODBCSYSINI: TEST_PG.split(',')[1], ...env };
  }
  if (TEST_AUTH_SECRET && !flags.some((f) => String(f).startsWith('--jwt-'))) flags = [...flags, '--jwt-secret', TEST_AUTH_SECRET];
  const args = ['--listen', `127.0.0.1:${port}`, '--db', db, ...flags.map(String)];
  // `prefix`: a command that runs the server, e.g. ['prlimit', '--nofile=200'] (the pid is then
  // the wrapper's until it execs the server; prlimit does exec)
  const proc = prefix.length
    ? spawn(prefix[0], [...prefix.slice(1), BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(env) })
    : spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env: cleanEnv(env) });
  liveProcs.add(proc);

  const logLines = [];
  const MAX_LOG = 5000;
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      liveProcs.delete(proc);
      resolve(exitInfo);
    });
  });
  let spawnError = null;
  proc.on('error', (e) => {
    spawnError = e;
  });

  let listening;
  const gotListening = new Promise((resolve) => (listening = resolve));
  let partial = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    partial += chunk;
    let i;
    while ((i = partial.indexOf('\n')) >= 0) {
      const line = partial.slice(0, i);
      partial = partial.slice(i + 1);
      logLines.push(line);
      if (logLines.length > MAX_LOG) logLines.splice(0, logLines.length - MAX_LOG);
      try {
        const rec = JSON.parse(line);
        if (rec.msg === 'listening' && rec.addr) listening(rec);
      } catch {
        /* not JSON: keep it in the log */
      }
    }
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (chunk) => {
    for (const l of chunk.split('\n')) if (l) logLines.push(`[stdout] ${l}`);
  });

  const logs = () => logLines.concat(partial ? [partial] : []).join('\n');
  const describe = () => `${BIN} ${args.join(' ')}`;

  let rec;
  try {
    rec = await withTimeout(
      Promise.race([
        gotListening,
        exited.then((x) => {
          throw new Error(
            `server exited before listening (code ${x.code}, signal ${x.signal})` +
              (spawnError ? `: ${spawnError.message}` : ''),
          );
        }),
      ]),
      timeoutMs,
      'the "listening" log line',
    );
  } catch (e) {
    try {
      proc.kill('SIGKILL');
    } catch {}
    await withTimeout(exited, 5000, 'the failed server to exit').catch(() => {});
    if (ownDir && !process.env.HUBSTREAM_KEEP_DIRS) await rm(dir, { recursive: true, force: true });
    appendToError(e, `\n  command: ${describe()}\n  server log:\n${indent(crashReport(logs()))}`);
    throw e;
  }
  const boundPort = Number(String(rec.addr).slice(String(rec.addr).lastIndexOf(':') + 1));
  const url = `http://127.0.0.1:${boundPort}`;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const srv = {
    name,
    port: boundPort,
    url,
    proc,
    pid: proc.pid,
    dir,
    db,
    args,
    agent,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    get running() {
      return exitInfo === null;
    },
    logs,
    /** Log records (parsed JSON lines). */
    logRecords() {
      return logLines.flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      });
    },
    /** Resident set size in KiB from /proc/<pid>/status. */
    rssKb() {
      const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'));
      return m ? Number(m[1]) : NaN;
    },
    /** True when the process maps AddressSanitizer's runtime (memory bounds need slack then). */
    isSanitized() {
      try {
        return /libasan|libtsan|libubsan/.test(readFileSync(`/proc/${proc.pid}/maps`, 'utf8'));
      } catch {
        return false;
      }
    },
    /** An HTTP request; if it fails because the server died, the error says so, with its log. */
    async request(method, p, opts = {}) {
      try {
        return await request(url, method, p, { agent, ...opts });
      } catch (e) {
        if (exitInfo === null) await withTimeout(exited, 300, 'exit').catch(() => {});
        if (exitInfo !== null && !e.serverDied) {
          e.serverDied = true;
          appendToError(e, `\n  ${name} (pid ${proc.pid}) has exited: code ${exitInfo.code}, signal ${exitInfo.signal}` +
            `\n  server log:\n${indent(crashReport(logs()))}`);
        }
        throw e;
      }
    },
    get(p, opts) {
      return srv.request('GET', p, opts);
    },
    post(p, body, opts = {}) {
      return srv.request('POST', p, { ...opts, json: body });
    },
    del(p, opts) {
      return srv.request('DELETE', p, opts);
    },
    publish(stream, events, opts) {
      return publish(srv, stream, events, opts);
    },
    subscribe(stream, opts) {
      return subscribe(url, stream, { server: srv, ...opts });
    },
    /**
     * SIGTERM, wait for the exit, check the exit code (0 unless `expectCode` says otherwise;
     * `expectCode: null` accepts anything) and remove the temp dir unless `keepDir`.
     */
    async stop({ expectCode = 0, timeoutMs = 15000, keepDir = false } = {}) {
      agent.destroy();
      if (exitInfo === null) {
        proc.kill('SIGTERM');
        try {
          await withTimeout(exited, timeoutMs, `${name} (pid ${proc.pid}) to exit after SIGTERM`);
        } catch (e) {
          proc.kill('SIGKILL');
          await withTimeout(exited, 5000, 'exit after SIGKILL').catch(() => {});
          if (!keepDir) await srv.removeDir();
          appendToError(e, `\n  server log:\n${indent(crashReport(logs()))}`);
          throw e;
        }
      }
      if (!keepDir) await srv.removeDir();
      if (expectCode !== null && (exitInfo.code !== expectCode || exitInfo.signal !== null)) {
        throw new Error(
          `${name} exited with code ${exitInfo.code}, signal ${exitInfo.signal}; expected code ${expectCode}` +
            `\n  server log:\n${indent(crashReport(logs()))}`,
        );
      }
      return exitInfo;
    },
    /** SIGKILL and wait for the exit. Leaves the dir (and database) in place. */
    async kill9() {
      agent.destroy();
      if (exitInfo === null) {
        proc.kill('SIGKILL');
        await withTimeout(exited, 10000, `${name} to die after SIGKILL`);
      }
      return exitInfo;
    },
    async removeDir() {
      if (!process.env.HUBSTREAM_KEEP_DIRS) await rm(dir, { recursive: true, force: true });
    },
    /** Best-effort cleanup for `after`/`finally`: never throws. */
    async dispose() {
      try {
        await srv.kill9();
      } catch {}
      try {
        await srv.removeDir();
      } catch {}
    },
  };
  return srv;
}

function indent(s, pad = '    ') {
  return s
    .split('\n')
    .map((l) => pad + l)
    .join('\n');
}
function tail(s, n) {
  return s.split('\n').slice(-n).join('\n');
}

/** The interesting part of a server log: a sanitizer report from its start, else the tail. */
export function crashReport(log, n = 40) {
  const lines = log.split('\n');
  const i = lines.findIndex((l) => /ERROR: (Address|Leak|Thread|Memory)Sanitizer|runtime error:|^Segmentation fault|panic|assert/i.test(l));
  if (i >= 0) {
    const rep = lines.slice(i).filter((l) => !/^\s+0x[0-9a-f]+: |Shadow byte|^\s+(Addressable|Partially|Heap|Freed|Stack|Global|Poisoned|Container|Array|Intra|ASan|Left|Right):/i.test(l));
    return rep.slice(0, 60).join('\n');
  }
  return tail(log, n);
}

// ---------------------------------------------------------------------------------------------
// HTTP

/**
 * One HTTP request. `json` is serialized as the body (Content-Type: application/json); `body` is
 * sent as is (string or Buffer). Resolves {status, headers, text, json}; `json` is the parsed
 * body when it parses, else undefined. Rejects on network errors and after `timeoutMs`.
 */
export function request(base, method, p, { json, body, headers = {}, timeoutMs = 15000, agent } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(base);
    const hdrs = withTestAuth({ ...headers });
    let payload = body;
    if (json !== undefined) {
      payload = JSON.stringify(json);
      hdrs['content-type'] ??= 'application/json';
    }
    if (payload !== undefined) hdrs['content-length'] = Buffer.byteLength(payload);
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: p, headers: hdrs, agent: agent ?? false },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const buf = Buffer.concat(chunks);
          const text = buf.toString('utf8');
          let parsed;
          try {
            parsed = text.length ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, json: parsed, raw: buf });
        });
        res.on('error', (e) => {
          clearTimeout(timer);
          reject(e);
        });
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${p} timed out after ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      e.message = `${method} ${p}: ${e.message}`;
      reject(e);
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

/**
 * A raw HTTP/1.1 connection (node:net) for what node:http hides: requests whose body the server
 * refuses early (node:http reports EPIPE instead of the response), and checking whether a
 * keep-alive connection is still usable after a response. Write errors are recorded, not thrown.
 */
export class RawConn {
  constructor(port, host = '127.0.0.1') {
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.writeError = null;
    this.waiter = null;
    this.sock = net.connect(port, host);
    this.sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.waiter?.();
    });
    const onClose = () => {
      this.closed = true;
      this.waiter?.();
    };
    this.sock.on('end', onClose);
    this.sock.on('close', onClose);
    this.sock.on('error', (e) => {
      this.writeError ??= e;
      onClose();
    });
    this.connected = new Promise((resolve, reject) => {
      this.sock.once('connect', resolve);
      this.sock.once('error', reject);
    });
  }
  send(data) {
    this.sock.write(data, (e) => {
      if (e) this.writeError ??= e;
    });
  }
  /** The next complete response ({status, headers, text, json}), or null if the connection closed first. */
  readResponse(timeoutMs = 10000) {
    return withTimeout(
      new Promise((resolve) => {
        const tryParse = () => {
          const i = this.buf.indexOf('\r\n\r\n');
          if (i >= 0) {
            const head = this.buf.subarray(0, i).toString('latin1').split('\r\n');
            const status = Number(head[0].split(' ')[1]);
            const headers = {};
            for (const l of head.slice(1)) {
              const c = l.indexOf(':');
              headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
            }
            const len = Number(headers['content-length'] ?? 0);
            if (this.buf.length >= i + 4 + len) {
              const body = this.buf.subarray(i + 4, i + 4 + len);
              this.buf = this.buf.subarray(i + 4 + len);
              const text = body.toString('utf8');
              let json;
              try {
                json = JSON.parse(text);
              } catch {}
              this.waiter = null;
              resolve({ status, headers, text, json });
              return;
            }
          }
          if (this.closed) {
            this.waiter = null;
            resolve(null);
          }
        };
        this.waiter = tryParse;
        tryParse();
      }),
      timeoutMs,
      'a raw HTTP response',
    );
  }
  close() {
    this.sock.destroy();
  }
}

/** Path of a stream's resource, with the name percent-encoded. */
export function streamPath(stream, suffix = '') {
  return `/api/streams/${encodeURIComponent(stream)}${suffix}`;
}

/** POST events (one EventInput or an array). `expectedVersion` becomes the Expected-Version header. */
export function publish(srv, stream, events, { expectedVersion, headers = {}, timeoutMs } = {}) {
  const h = { ...headers };
  if (expectedVersion !== undefined) h['expected-version'] = String(expectedVersion);
  return srv.request('POST', streamPath(stream, '/events'), { json: events, headers: h, timeoutMs });
}

/**
 * POST /api/streams/{s}/close. Sends the body "{}": a Content-Length: 0 POST (what node:http and
 * fetch send for a body-less POST) currently crashes the server (see api.test.mjs "empty-bodied
 * POSTs"), and only that test should trip over it.
 */
export function closeStream(srv, stream) {
  return srv.request('POST', streamPath(stream, '/close'), { body: '{}', headers: { 'content-type': 'application/json' } });
}

/** Short description of a response for assertion messages. */
export function show(res) {
  const t = res.text.length > 400 ? res.text.slice(0, 400) + '…' : res.text;
  return `${res.status} ${t}`;
}

/**
 * Read a whole stream (or $all) forward from 0 with pages of 1000 events. A page also ends at
 * --max-page-bytes (4 MiB) of events, so a short page is not the end: the end is an empty one.
 */
export async function readAll(srv, stream, { pageSize = 1000 } = {}) {
  const out = [];
  let from = 0;
  for (;;) {
    const r = await srv.get(`${streamPath(stream, '/events')}?from=${from}&limit=${pageSize}`);
    if (r.status !== 200) throw new Error(`reading ${stream} from ${from}: ${show(r)}`);
    if (!r.json.events.length) return out;
    out.push(...r.json.events);
    from = r.json.next;
  }
}

export const uuid = () => randomUUID();

// ---------------------------------------------------------------------------------------------
// Server-Sent Events

/**
 * Incremental SSE parser (the WHATWG rules: lines end in \r\n, \n or \r; a blank line ends a
 * block; lines starting with ':' are comments; "field: value" with one optional space).
 * Calls onBlock({id, event, data, retry, comments, lines}) for every block, including
 * comment-only and retry-only blocks. `data` is undefined when the block had no data line.
 */
export class SseParser {
  constructor(onBlock) {
    this.onBlock = onBlock;
    this.buf = '';
    this.cur = null;
  }
  feed(text) {
    const s = this.buf ? this.buf + text : text;
    const n = s.length;
    let start = 0;
    let cr = s.indexOf('\r');
    let lf = s.indexOf('\n');
    for (;;) {
      // (the cached indexes are only recomputed once passed: linear in the chunk size)
      if (cr >= 0 && cr < start) cr = s.indexOf('\r', start);
      if (lf >= 0 && lf < start) lf = s.indexOf('\n', start);
      const j = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (j < 0) break;
      if (s.charCodeAt(j) === 13) {
        if (j + 1 >= n) break; // a trailing \r may be the first half of \r\n: wait for more
        this.line(s.slice(start, j));
        start = s.charCodeAt(j + 1) === 10 ? j + 2 : j + 1;
      } else {
        this.line(s.slice(start, j));
        start = j + 1;
      }
    }
    this.buf = s.slice(start);
  }
  line(l) {
    if (l === '') {
      if (this.cur) {
        const b = this.cur;
        this.cur = null;
        if (b.dataLines) b.data = b.dataLines.join('\n');
        delete b.dataLines;
        this.onBlock(b);
      }
      return;
    }
    const b = (this.cur ??= { id: undefined, event: undefined, data: undefined, retry: undefined, comments: [], lines: [] });
    b.lines.push(l);
    if (l[0] === ':') {
      b.comments.push(l.slice(1).replace(/^ /, ''));
      return;
    }
    const c = l.indexOf(':');
    const field = c < 0 ? l : l.slice(0, c);
    let value = c < 0 ? '' : l.slice(c + 1);
    if (value[0] === ' ') value = value.slice(1);
    if (field === 'data') (b.dataLines ??= []).push(value);
    else if (field === 'id') b.id = value;
    else if (field === 'event') b.event = value;
    else if (field === 'retry') b.retry = value;
    else (b.unknown ??= []).push(l);
  }
  /** Text received after the last complete block (should be empty when the response ends). */
  get pending() {
    return this.buf + (this.cur ? this.cur.lines.join('\n') : '');
  }
}

/**
 * Common state for an SSE consumer: collected blocks, waitFor, async iteration.
 * Subclasses feed text through `this.parser` and call `this.finish(reason)` at the end.
 */
class SseState {
  constructor({ keep = true, parseData = true, onBlock, label = 'sse', fast = false, server } = {}) {
    this.label = label;
    this.server = server;
    this.fast = fast;
    this.fbuf = '';
    this.keep = keep;
    this.parseData = parseData;
    this.userOnBlock = onBlock;
    this.blocks = []; // every block (when keep)
    this.count = 0; // blocks with data
    this.lastId = undefined;
    this.rawHead = ''; // the first 64 KiB of the body, verbatim
    this.done = false;
    this.endReason = null;
    this.waiters = new Set();
    this.parser = new SseParser((b) => this.block(b));
    this.ended = new Promise((r) => (this.resolveEnded = r));
  }
  text(t) {
    if (this.rawHead.length < 65536) this.rawHead += t.slice(0, 65536 - this.rawHead.length);
    if (this.fast) this.fastFeed(t);
    else this.parser.feed(t);
  }
  /**
   * The `fast: true` parser for high-volume tests: assumes "\n" line ends (what the server sends;
   * the strict parser above is what the SSE tests use), keeps no `lines`, and costs about one
   * indexOf per line.
   */
  fastFeed(text) {
    const s = this.fbuf ? this.fbuf + text : text;
    let pos = 0;
    for (;;) {
      const end = s.indexOf('\n\n', pos);
      if (end < 0) break;
      if (end > pos) {
        let id;
        let event;
        let data;
        let retry;
        const comments = [];
        let p = pos;
        while (p < end) {
          let nl = s.indexOf('\n', p);
          if (nl < 0 || nl > end) nl = end;
          if (s.charCodeAt(p) === 58) comments.push(s.slice(p + 1, nl).trim());
          else if (s.startsWith('id: ', p)) id = s.slice(p + 4, nl);
          else if (s.startsWith('event: ', p)) event = s.slice(p + 7, nl);
          else if (s.startsWith('data: ', p)) data = data === undefined ? s.slice(p + 6, nl) : `${data}\n${s.slice(p + 6, nl)}`;
          else if (s.startsWith('retry: ', p)) retry = s.slice(p + 7, nl);
          p = nl + 1;
        }
        this.block({ id, event, data, retry, comments, lines: [] });
      }
      pos = end + 2;
    }
    this.fbuf = s.slice(pos);
  }
  block(b) {
    b.at = Date.now();
    if (b.data !== undefined) {
      this.count++;
      if (this.parseData && b.event !== 'close') {
        try {
          b.json = JSON.parse(b.data);
        } catch (e) {
          b.jsonError = e.message;
        }
      } else if (b.event === 'close') {
        try {
          b.json = JSON.parse(b.data);
        } catch (e) {
          b.jsonError = e.message;
        }
      }
    }
    if (b.id !== undefined) this.lastId = b.id;
    if (this.keep) this.blocks.push(b);
    if (this.userOnBlock) this.userOnBlock(b, this);
    this.check();
  }
  finish(reason) {
    if (this.done) return;
    this.done = true;
    this.endReason = reason;
    this.resolveEnded(reason);
    this.check();
  }
  check() {
    for (const w of this.waiters) w();
  }
  /** Blocks that carry an event (have data and are not the close marker). */
  get events() {
    return this.blocks.filter((b) => b.data !== undefined && b.event !== 'close');
  }
  get comments() {
    return this.blocks.flatMap((b) => b.comments);
  }
  get closeBlock() {
    return this.blocks.find((b) => b.event === 'close');
  }
  describe() {
    const last = this.blocks.slice(-3).map((b) => JSON.stringify(b.lines).slice(0, 300));
    return (
      `[${this.label}] ${this.count} data blocks, ${this.blocks.length} blocks kept, lastId=${this.lastId}, ` +
      `ended=${this.done}${this.endReason ? ` (${this.endReason})` : ''}; last blocks: ${last.join(' | ')}` +
      (this.server && this.server.exitInfo
        ? `\n  ${this.server.name} has exited: code ${this.server.exitInfo.code}, signal ${this.server.exitInfo.signal}` +
          `\n  server log:\n${indent(crashReport(this.server.logs()))}`
        : '')
    );
  }
  /**
   * Resolve once pred(this) is true; reject after timeoutMs, or as soon as the response ends with
   * pred still false (pass {allowEnd: true} to only time out).
   */
  waitFor(pred, timeoutMs = 5000, what = 'a condition') {
    return new Promise((resolve, reject) => {
      let timer;
      const finish = (err) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (err) reject(err);
        else resolve(this);
      };
      const check = () => {
        let ok;
        try {
          ok = pred(this);
        } catch (e) {
          return finish(e);
        }
        if (ok) return finish();
        if (this.done) finish(new Error(`SSE response ended while waiting for ${what}: ${this.describe()}`));
      };
      timer = setTimeout(
        () => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}: ${this.describe()}`)),
        timeoutMs,
      );
      this.waiters.add(check);
      check();
    });
  }
  waitForEvents(n, timeoutMs = 5000) {
    return this.waitFor((s) => s.events.length >= n, timeoutMs, `${n} events`);
  }
  waitForEnd(timeoutMs = 5000) {
    return withTimeout(this.ended, timeoutMs, `the end of the SSE response: ${this.describe()}`).then(() => this);
  }
  /** Async iteration over the blocks (needs keep: true); ends when the response ends. */
  async *[Symbol.asyncIterator]() {
    let i = 0;
    for (;;) {
      if (i < this.blocks.length) {
        yield this.blocks[i++];
        continue;
      }
      if (this.done) return;
      await new Promise((r) => {
        const w = () => {
          if (i < this.blocks.length || this.done) {
            this.waiters.delete(w);
            r();
          }
        };
        this.waiters.add(w);
      });
    }
  }
}

/**
 * Subscribe over HTTP (its own TCP connection). Options: from, lastEventId, types (array or
 * string), query (extra query string), headers, keep, parseData, onBlock, label.
 * `await sub.response` resolves {status, headers}; for a non-200 status `sub.errorText` holds the
 * body.
 */
export function subscribe(base, stream, opts = {}) {
  return new SseClient(base, stream, opts);
}

export class SseClient extends SseState {
  constructor(base, stream, opts = {}) {
    super({ label: `sse ${stream}`, ...opts });
    const u = new URL(base);
    const q = new URLSearchParams();
    if (opts.from !== undefined) q.set('from', String(opts.from));
    if (opts.types !== undefined) q.set('types', Array.isArray(opts.types) ? opts.types.join(',') : opts.types);
    let qs = q.toString();
    if (opts.query) qs = qs ? `${qs}&${opts.query}` : opts.query;
    const p = (opts.path ?? streamPath(stream, '/events')) + (qs ? `?${qs}` : '');
    const headers = withTestAuth({ accept: 'text/event-stream', ...(opts.headers || {}) });
    if (opts.lastEventId !== undefined) headers['last-event-id'] = String(opts.lastEventId);
    this.status = undefined;
    this.errorText = '';
    this.response = new Promise((resolve, reject) => {
      this.req = http.get({ host: u.hostname, port: u.port, path: p, headers, agent: false }, (res) => {
        this.res = res;
        this.status = res.statusCode;
        this.headers = res.headers;
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          res.on('data', (t) => (this.errorText += t));
        } else {
          res.on('data', (t) => this.text(t));
        }
        res.on('end', () => this.finish('end'));
        res.on('aborted', () => this.finish('aborted'));
        res.on('error', (e) => this.finish(`error: ${e.message}`));
        res.on('close', () => this.finish('close'));
        resolve({ status: res.statusCode, headers: res.headers });
      });
      this.req.on('error', (e) => {
        this.finish(`error: ${e.message}`);
        reject(e);
      });
    });
    this.response.catch(() => {}); // observed through finish() as well
  }
  /** Resolves once the response headers arrived and are 200 (else rejects with the body). */
  async ready(timeoutMs = 5000) {
    const r = await withTimeout(this.response, timeoutMs, `SSE response headers (${this.label})`);
    if (r.status !== 200) {
      await this.waitForEnd(timeoutMs).catch(() => {});
      throw new Error(`SSE subscribe answered ${r.status}: ${this.errorText}`);
    }
    return r;
  }
  /** Resolves once the `retry:` preamble arrived (the subscription is established). */
  async established(timeoutMs = 5000) {
    await this.ready(timeoutMs);
    await this.waitFor((s) => s.blocks.length > 0 || s.count > 0, timeoutMs, 'the retry: preamble');
    return this;
  }
  /** Stop reading the response (the kernel buffers fill and the server sees a slow reader). */
  pause() {
    this.res?.pause();
  }
  resume() {
    this.res?.resume();
  }
  close() {
    this.req?.destroy();
    this.finish('closed by client');
  }
}

// ---------------------------------------------------------------------------------------------
// a subscriber that can stop reading: a raw socket in a tiny Perl helper

const STALLED_READER = path.join(HERE, 'stalled-reader.pl');

/**
 * Open an SSE subscription on a raw TCP socket whose receive buffer is `rcvbuf` bytes (set before
 * connect, so the advertised window stays small), send the request and read NOTHING until
 * `resume()` is called. `pause()` stops reading again. Everything read is parsed as SSE (after
 * the HTTP head; chunked bodies are de-chunked).
 */
export function stalledSubscriber(base, stream, { from, rcvbuf = 4096, label, keep = false, parseData = false, onBlock, fast = false } = {}) {
  return new StalledSubscriber(base, stream, { from, rcvbuf, label: label ?? `stalled ${stream}`, keep, parseData, onBlock, fast });
}

class StalledSubscriber extends SseState {
  constructor(base, stream, opts) {
    super(opts);
    const u = new URL(base);
    const qs = opts.from !== undefined ? `?from=${opts.from}` : '';
    const req =
      `GET ${streamPath(stream, '/events')}${qs} HTTP/1.1\r\n` +
      `Host: ${u.host}\r\nAccept: text/event-stream\r\n\r\n`;
    this.proc = spawn('perl', [STALLED_READER, u.hostname, u.port, String(opts.rcvbuf), req], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    liveProcs.add(this.proc);
    this.stderr = '';
    this.head = null;
    this.headBuf = Buffer.alloc(0);
    this.chunked = false;
    this.chunkState = { left: 0, buf: Buffer.alloc(0), state: 'size' };
    this.bytes = 0;
    this.decoder = new TextDecoder('utf-8');
    this.connected = new Promise((r) => (this.resolveConnected = r));
    this.proc.stderr.setEncoding('utf8');
    this.proc.stderr.on('data', (t) => {
      this.stderr += t;
      const m = /connected (\d+)\n/.exec(this.stderr);
      if (m && !this.localPort) {
        this.localPort = Number(m[1]);
        this.resolveConnected();
      }
    });
    this.proc.stdout.on('data', (buf) => this.raw(buf));
    this.exited = new Promise((r) =>
      this.proc.on('exit', (code, signal) => {
        liveProcs.delete(this.proc);
        this.exitInfo = { code, signal };
        // exit code 0 = EOF from the server, 2 = read error (e.g. connection reset)
        this.finish(code === 0 ? 'eof' : `reader exit ${code ?? signal}: ${this.stderr.trim()}`);
        r(this.exitInfo);
      }),
    );
  }
  raw(buf) {
    this.bytes += buf.length;
    if (this.head === null) {
      this.headBuf = Buffer.concat([this.headBuf, buf]);
      const i = this.headBuf.indexOf('\r\n\r\n');
      if (i < 0) return;
      this.head = this.headBuf.subarray(0, i).toString('latin1');
      this.status = Number(this.head.split(' ')[1]);
      this.chunked = /^transfer-encoding:\s*chunked/im.test(this.head);
      buf = this.headBuf.subarray(i + 4);
      this.headBuf = null;
    }
    if (this.chunked) buf = this.dechunk(buf);
    if (buf.length) this.text(this.decoder.decode(buf, { stream: true }));
  }
  dechunk(buf) {
    const st = this.chunkState;
    st.buf = st.buf.length ? Buffer.concat([st.buf, buf]) : buf;
    const out = [];
    for (;;) {
      if (st.state === 'size') {
        const i = st.buf.indexOf('\r\n');
        if (i < 0) break;
        st.left = parseInt(st.buf.subarray(0, i).toString('latin1'), 16);
        st.buf = st.buf.subarray(i + 2);
        st.state = st.left === 0 ? 'end' : 'data';
      } else if (st.state === 'data') {
        if (!st.buf.length) break;
        const take = Math.min(st.left, st.buf.length);
        out.push(st.buf.subarray(0, take));
        st.buf = st.buf.subarray(take);
        st.left -= take;
        if (st.left === 0) st.state = 'crlf';
      } else if (st.state === 'crlf') {
        if (st.buf.length < 2) break;
        st.buf = st.buf.subarray(2);
        st.state = 'size';
      } else break;
    }
    return Buffer.concat(out);
  }
  resume() {
    this.proc.stdin.write('read\n');
  }
  /**
   * The TCP state of the server's end of this connection, from /proc/net/tcp (independent of how
   * busy the server is): 'ESTABLISHED', another state name once the server has closed it (e.g.
   * 'FIN_WAIT1' while unread data is still queued), or 'gone'.
   */
  serverSideState(serverPort) {
    const hex = (n) => n.toString(16).toUpperCase().padStart(4, '0');
    const names = { '01': 'ESTABLISHED', '02': 'SYN_SENT', '03': 'SYN_RECV', '04': 'FIN_WAIT1', '05': 'FIN_WAIT2', '06': 'TIME_WAIT', '07': 'CLOSE', '08': 'CLOSE_WAIT', '09': 'LAST_ACK', '0A': 'LISTEN', '0B': 'CLOSING' };
    for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 4) continue;
      if (f[1].endsWith(`:${hex(serverPort)}`) && f[2].endsWith(`:${hex(this.localPort)}`)) return names[f[3]] ?? f[3];
    }
    return 'gone';
  }
  pause() {
    this.proc.stdin.write('pause\n');
  }
  close() {
    try {
      this.proc.kill('SIGKILL');
    } catch {}
  }
}

// ---------------------------------------------------------------------------------------------
// assorted

export const ISO_UTC_MICROS = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/;
export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Unique stream name for a test. */
let seq = 0;
export function uniqueStream(prefix = 's') {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${++seq}`;
}
