// Misbehaving clients for the hostile-input tests: raw HTTP requests sent in pieces, SSE and
// SignalR subscribers that reset their connection (TCP RST) at the worst moment, and SignalR
// WebSocket clients that never read or never acknowledge.
import net from 'node:net';
import WebSocket from 'ws';
import { sleep, withTimeout } from '../../integration/lib/server.mjs';

export const RS = '\x1e';

/**
 * Sends raw bytes (or `pieces`: [bytes, delayMs] pairs) on a new connection and resolves
 * {status, headers, body, text, closed, raw} with the first response once it is complete (and,
 * with expectClose, once the server closed the connection), or after `waitMs`.
 */
export function rawRequest(port, bytes, { waitMs = 5000, pieces, expectClose = false } = {}) {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const chunks = [];
    let closed = false;
    let done = false;
    let timer;
    const parse = () => {
      const raw = Buffer.concat(chunks);
      const i = raw.indexOf('\r\n\r\n');
      const head = i >= 0 ? raw.subarray(0, i).toString('latin1') : raw.toString('latin1');
      const status = Number(head.split(' ')[1]) || 0;
      const headers = {};
      for (const l of head.split('\r\n').slice(1)) {
        const c = l.indexOf(':');
        if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim();
      }
      const len = Number(headers['content-length'] ?? 0);
      const body = i >= 0 ? raw.subarray(i + 4, i + 4 + len) : Buffer.alloc(0);
      return { status, headers, body, text: body.toString('utf8'), raw, complete: i >= 0 && raw.length >= i + 4 + len };
    };
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      const r = parse();
      delete r.complete;
      s.destroy();
      resolve({ ...r, closed });
    };
    s.on('data', (d) => {
      chunks.push(d);
      if (!expectClose && parse().complete) finish();
    });
    s.on('close', () => {
      closed = true;
      finish();
    });
    s.on('error', () => {});
    s.on('connect', async () => {
      try {
        if (pieces) {
          for (const [p, delay] of pieces) {
            if (s.destroyed || done) break;
            s.write(p);
            await sleep(delay);
          }
        } else {
          s.write(bytes);
        }
      } catch (e) {
        reject(e);
      }
    });
    timer = setTimeout(finish, waitMs);
  });
}

/**
 * Opens an SSE subscription on a raw socket and resets it (RST) `delayMs` after the first bytes
 * of the answer arrived. Resolves once the socket is gone.
 */
export function sseReset(port, path, delayMs = 0) {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.on('error', () => {});
    s.on('close', () => resolve());
    s.on('connect', () => s.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n`));
    s.once('data', () => setTimeout(() => s.resetAndDestroy(), delayMs));
    setTimeout(() => s.resetAndDestroy(), 5000); // never left behind
  });
}

/** Record types a stateful connection numbers (Invocation, StreamItem, Completion,
 *  StreamInvocation, CancelInvocation). */
const SEQUENCED = new Set([1, 2, 3, 4, 5]);

/**
 * A SignalR JSON client on a raw WebSocket (skipNegotiation, or `token` from a negotiate): it
 * handshakes, then exposes send(msg) for hub messages, the records received, and the socket for
 * misbehaving (pausing, resetting). Stateful reconnect: `resume` opens the socket as a resume of
 * `token` (instead of the handshake, a Sequence record with the number of the next record it
 * sends: `resume`, or 1 for true; ready once the server's Sequence comes), `autoAck`
 * acknowledges the sequenced records it reads (numbered from the server's Sequence), and
 * `splitMs` sends the upgrade request line in two pieces that far apart.
 */
export class RawHub {
  constructor(port, { token, version = 1, resume = false, autoAck = false, splitMs = 0 } = {}) {
    this.records = [];
    this.completions = 0; /* Completion records received (type 3) */
    this.items = new Map(); /* StreamItem records received, per invocation id */
    this.waiters = new Set();
    this.closed = false;
    const q = token ? `?id=${encodeURIComponent(token)}` : '';
    this.sequenced = 0; /* sequenced records received */
    const opts = { perMessageDeflate: false };
    if (splitMs) {
      opts.createConnection = (o) => {
        const sock = net.connect(o.port, o.host ?? '127.0.0.1');
        const write = sock.write.bind(sock);
        sock.write = (data, ...rest) => {
          sock.write = write;
          const b = Buffer.from(data);
          write(b.subarray(0, 7));
          setTimeout(() => sock.destroyed || write(b.subarray(7), ...rest), splitMs);
          return true;
        };
        return sock;
      };
    }
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/hub${q}`, opts);
    this.ws.on('error', () => {});
    this.buf = '';
    this.ws.on('message', (d) => {
      this.buf += d.toString('utf8');
      let i;
      while ((i = this.buf.indexOf(RS)) >= 0) {
        const rec = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        try {
          const m = JSON.parse(rec);
          if (m.type === 3) this.completions++;
          if (m.type === 2) this.items.set(m.invocationId, (this.items.get(m.invocationId) ?? 0) + 1);
          if (SEQUENCED.has(m.type)) this.sequenced++;
          if (m.type === 9) this.sequenced = this.acked = m.sequenceId - 1;
          this.records.push(m);
        } catch {
          this.records.push({ unparsed: rec });
        }
      }
      if (autoAck && this.sequenced > (this.acked ?? 0)) {
        this.acked = this.sequenced;
        this.send({ type: 8, sequenceId: this.acked });
      }
      for (const w of this.waiters) w();
    });
    this.ws.on('close', () => {
      this.closed = true;
      for (const w of this.waiters) w();
    });
    this.ready = withTimeout(
      new Promise((resolve, reject) => {
        this.ws.once('open', () => {
          this.ws.send(JSON.stringify(resume ? { type: 9, sequenceId: Number(resume) } : { protocol: 'json', version }) + RS);
          resolve();
        });
        this.ws.once('error', reject);
      }).then(() => this.waitFor((r) => r.length >= 1, 5000, resume ? 'the server\'s Sequence' : 'the handshake reply')),
      6000 + splitMs,
      'the hub connection',
    );
  }
  get socket() {
    return this.ws._socket;
  }
  send(msg) {
    this.ws.send(JSON.stringify(msg) + RS);
  }
  invoke(id, target, ...args) {
    this.send({ type: 1, invocationId: String(id), target, arguments: args });
  }
  waitFor(pred, timeoutMs = 5000, what = 'records') {
    return withTimeout(
      new Promise((resolve) => {
        const w = () => {
          if (pred(this.records) || this.closed) {
            this.waiters.delete(w);
            resolve(this.records);
          }
        };
        this.waiters.add(w);
        w();
      }),
      timeoutMs,
      what,
    );
  }
  reset() {
    this.socket?.resetAndDestroy();
  }
  close() {
    try {
      this.ws.terminate();
    } catch {}
  }
}
