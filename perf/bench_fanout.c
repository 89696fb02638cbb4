/*
 * bench_fanout: live fan-out throughput of a running hubstream, to subscribers over Server-Sent
 * Events (--protocol sse, the default) or over SignalR WebSockets (--protocol signalr-json or
 * signalr-messagepack: each subscriber upgrades `GET /hub` without negotiating, sends the hub
 * handshake and a StreamInvocation of Subscribe(stream, 0), and reads StreamItem records, several
 * per frame; the client parses both hub protocols itself, without a library and without
 * allocating per message).
 *
 * Against a server at --url, opens S SSE subscriptions to one new stream (live: no ?from=, no
 * Last-Event-ID), waits until every one got its `retry:` line (plus --settle-ms for the server
 * to register them), then publishes E events of 128-byte data in POSTs of --post-batch events
 * over --post-conns keep-alive connections, keeping at most --window POSTs unacknowledged, and
 * reads every subscription until each has all E events. Every subscriber must see exactly E
 * `id:` blocks with ids increasing by 1 from the stream's first published version; a gap, a
 * duplicate, an early end or a timeout fails the run (exit 1).
 *
 * Reports: time from the first POST to the last delivery, deliveries/s (S x E / that time),
 * the publish rate, the server's CPU seconds over the same interval from /proc/<pid>/stat
 * (--pid) and deliveries per server CPU-second, the client's own CPU seconds. Appends one JSON
 * line to perf/results/sse.jsonl.
 *
 * Does not measure: catch-up or resume (subscriptions are live), many streams, HTTP
 * connection setup cost (connections are made before the clock starts), latency of a single
 * event, nor anything beyond loopback. The client is one thread (epoll, non-blocking sockets,
 * no allocation per message); on a small machine it competes with the server for the cores,
 * which is why its CPU is reported next to the server's, and so is the CPU every other process
 * took meanwhile (from /proc/stat): a busy neighbour makes the figures low.
 *
 * --window above --post-conns pipelines POSTs (HTTP/1.1); hubstream (at least up to 929fc21)
 * mishandles pipelined requests (perf/README.md), so the default keeps one POST in flight per
 * connection.
 * --linger-s keeps every connection open after the run (a soak check that the server survives
 * idle keep-alive and SSE connections).
 *
 * --catchup: replay instead of live fan-out. The stream (--stream) must already hold exactly
 * --events events, versions 1..E (bench_prefill writes them); nothing is published. S
 * subscribers (default 1) ask for the stream from version 0 (SSE `?from=0`; SignalR
 * Subscribe(stream, 0)) and each must receive versions 1..E once and in order. The clock runs
 * from the first connect() (the request follows on the same loopback connection) to the last
 * event of the last subscriber. Reports events/s per subscriber and in all, the time to the
 * first event, the server's CPU seconds over that interval and its RSS at the start and the end
 * and its peak (VmHWM: the whole life of the process, which run.sh starts just before).
 * Appends to perf/results/catchup.jsonl.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/client.h"

#ifndef HS_PERF_RESULTS_DIR
#define HS_PERF_RESULTS_DIR "perf/results"
#endif

#define DATA_BYTES     128
#define EVENT_TYPE     "bench.sse"
#define CARRY_MAX      8192         /* one subscriber's unfinished block (blocks are ~350 bytes) */
#define READ_MAX       (256 * 1024) /* one read() */
#define RESP_MAX       16384        /* POST responses buffered per connection */
#define CONNECTING_MAX 64           /* subscriptions connecting at once */

enum conn_kind { K_SUB, K_POST };
enum proto { P_SSE, P_SR_JSON, P_SR_MSGPACK };
static const char *const proto_names[] = {"sse", "signalr-json", "signalr-messagepack"};
enum conn_state { C_IDLE, C_CONNECTING, C_REQUEST, C_HEADERS, C_BODY, C_DONE, C_FAILED };

typedef struct conn {
    enum conn_kind kind;
    enum conn_state state;
    int fd;
    int index;
    uint32_t events; /* the epoll mask set now */
    /* request being written */
    const char *out;
    size_t out_len, out_off;
    /* bytes kept between reads: a subscriber's unfinished block or header, a POST's responses */
    char *in;
    size_t in_len, in_cap;
    /* subscriber */
    bool got_retry;   /* SSE: the retry: line; SignalR: the handshake reply */
    bool handshaken;  /* SignalR: the handshake reply was split off (bench_sr_split) */
    bench_ws_t ws;    /* SignalR: the WebSocket frame being read */
    bool ended;       /* the server ended the response */
    bool close_block; /* an `event: close` block arrived */
    int64_t count, first_id, last_id, gaps, dups;
    /* publisher */
    int inflight;            /* POSTs written and not answered */
    int inflight_events[64]; /* per pipelined POST, oldest first (ring) */
    int if_head;
} conn_t;

typedef struct opts {
    int proto;
    const char *url;
    char host[256];
    char port[16];
    int subs;
    long events;
    int post_batch;
    int post_conns;
    int window;
    long pid;
    double timeout_s;
    int settle_ms;
    char stream[128];
    const char *results;
    bool record;
    int linger_s;
    bool catchup; /* replay a prefilled stream from version 0, publish nothing */
} opts_t;

static opts_t op;
static int ep = -1;
static conn_t *subs, *posts;
static struct addrinfo *addr;
static char *rbuf; /* CARRY_MAX + READ_MAX: carried bytes, then the new read */

/* run state */
static int n_connecting, n_connected, n_ready, n_complete, n_failed_subs, next_sub;
static long posts_total, posts_sent, posts_acked, posts_retried;
static long full_left, tail_left; /* POSTs still to send (again, after a 429/503) */
static long events_acked;
static int64_t min_first_version = INT64_MAX;
static int inflight_total;
static char *req_full, *req_tail;
static size_t req_full_len, req_tail_len;
static int tail_events;
static double t_begin, t_ready, t0, t_pub_done, t_last, t_first;
static bool publishing;
static int fatal;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench_fanout: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

/* ---- sockets ---- */

static void ep_set(conn_t *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event ev = {.events = events, .data.ptr = c};
    int opn = c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (events == 0)
        opn = EPOLL_CTL_DEL;
    if (epoll_ctl(ep, opn, c->fd, &ev) && opn != EPOLL_CTL_DEL)
        die("epoll_ctl: %s", strerror(errno));
    c->events = events;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        if (c->events)
            ep_set(c, 0);
        close(c->fd);
        c->fd = -1;
    }
}

static int conn_start(conn_t *c)
{
    int fd = bench_connect(addr, NULL);
    if (fd < 0)
        return -1;
    c->fd = fd;
    c->events = 0;
    c->in_len = 0;
    c->out_off = 0;
    c->state = C_CONNECTING;
    ep_set(c, EPOLLOUT);
    return 0;
}

/* Writes what is left of c->out; returns 1 when all is written, 0 when it must wait, -1. */
static int flush_out(conn_t *c)
{
    return bench_send_rest(c->fd, c->out, c->out_len, &c->out_off);
}

/* ---- subscribers ---- */

static char sub_request[1024];
static size_t sub_request_len;

static void sub_fail(conn_t *c, const char *why)
{
    if (c->state == C_FAILED || c->state == C_DONE)
        return;
    if (n_failed_subs < 10)
        fprintf(stderr, "bench_fanout: subscriber %d: %s (had %lld events, last id %lld)\n",
                c->index, why, (long long)c->count, (long long)c->last_id);
    c->state = C_FAILED;
    n_failed_subs++;
    conn_close(c);
}

static void sub_open_more(void)
{
    while (next_sub < op.subs && n_connecting < CONNECTING_MAX) {
        conn_t *c = &subs[next_sub++];
        c->out = sub_request;
        c->out_len = sub_request_len;
        if (conn_start(c)) {
            sub_fail(c, strerror(errno));
            continue;
        }
        n_connecting++;
    }
}

/* One delivered event with version `id`: checks it follows the previous one. */
static void sub_count(conn_t *c, int64_t id)
{
    {
        if (c->count == 0) {
            c->first_id = id;
            if (!t_first)
                t_first = bench_now();
        } else if (id != c->last_id + 1) {
            if (id <= c->last_id)
                c->dups++;
            else
                c->gaps++;
        }
        c->last_id = id;
        c->count++;
        if (c->count == op.events) {
            c->state = C_DONE;
            n_complete++;
            if (n_complete + n_failed_subs == op.subs)
                t_last = bench_now();
        }
    }
}

/* One complete SSE block [p, p + n), n counting the blank line. */
static void sub_block(conn_t *c, const char *p, size_t n)
{
    if (n >= 4 && memcmp(p, "id: ", 4) == 0) {
        int64_t id = 0;
        const char *q = p + 4;
        while (*q >= '0' && *q <= '9')
            id = id * 10 + (*q++ - '0');
        sub_count(c, id);
        return;
    }
    if (n >= 6 && memcmp(p, "retry:", 6) == 0) {
        if (!c->got_retry) {
            c->got_retry = true;
            n_ready++;
        }
        return;
    }
    if (p[0] == ':')
        return; /* comment (ping) */
    if (n >= 12 && memcmp(p, "event: close", 12) == 0) {
        c->close_block = true;
        return;
    }
    /* anything else is an event without an id: count it as wrong */
    c->gaps++;
}

/* Parses every complete block in [p, p + n); returns the bytes consumed. */
static size_t sub_parse(conn_t *c, const char *p, size_t n)
{
    const char *start = p, *end = p + n, *s = p;
    for (;;) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl || nl + 1 >= end)
            break;
        if (nl[1] == '\n') {
            sub_block(c, start, (size_t)(nl + 2 - start));
            start = s = nl + 2;
            continue;
        }
        s = nl + 1;
    }
    return (size_t)(start - p);
}

/* ---- SignalR over WebSockets ---- */

static char sr_hello[1024]; /* the masked handshake and Subscribe frames */
static size_t sr_hello_len;

static void sr_build_hello(void)
{
    sr_hello_len = bench_sr_hello((uint8_t *)sr_hello, op.proto == P_SR_MSGPACK, op.stream, 0);
}

/* A k-byte big-endian length at *pp, which it advances past. */
static size_t be_len(const uint8_t **pp, int k)
{
    size_t v = 0;
    for (int i = 0; i < k; i++)
        v = v << 8 | (*pp)[i];
    *pp += k;
    return v;
}

/* Skips one MessagePack value; NULL if it does not fit before end. */
static const uint8_t *mp_skip(const uint8_t *p, const uint8_t *end, int depth)
{
    if (p >= end || depth > 32)
        return NULL;
    uint8_t c = *p++;
    size_t len = 0, count = 0;
#define NEED(k)                                                                                    \
    if ((size_t)(end - p) < (k))                                                                   \
    return NULL
    if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3)
        return p;
    if ((c & 0xe0) == 0xa0) {
        len = c & 0x1f;
    } else if ((c & 0xf0) == 0x90) {
        count = c & 0x0f;
    } else if ((c & 0xf0) == 0x80) {
        count = (size_t)(c & 0x0f) * 2;
    } else {
        switch (c) {
        case 0xcc:
        case 0xd0:
            len = 1;
            break;
        case 0xcd:
        case 0xd1:
            len = 2;
            break;
        case 0xca:
        case 0xce:
        case 0xd2:
            len = 4;
            break;
        case 0xcb:
        case 0xcf:
        case 0xd3:
            len = 8;
            break;
        case 0xd9:
        case 0xc4:
            NEED(1);
            len = be_len(&p, 1);
            break;
        case 0xda:
        case 0xc5:
            NEED(2);
            len = be_len(&p, 2);
            break;
        case 0xdb:
        case 0xc6:
            NEED(4);
            len = be_len(&p, 4);
            break;
        case 0xdc:
            NEED(2);
            count = be_len(&p, 2);
            break;
        case 0xdd:
            NEED(4);
            count = be_len(&p, 4);
            break;
        case 0xde:
            NEED(2);
            count = be_len(&p, 2) * 2;
            break;
        case 0xdf:
            NEED(4);
            count = be_len(&p, 4) * 2;
            break;
        default:
            return NULL; /* ext: never sent here */
        }
    }
    if (count) {
        for (size_t i = 0; i < count && p; i++)
            p = mp_skip(p, end, depth + 1);
        return p;
    }
    NEED(len);
    return p + len;
#undef NEED
}

static void sr_record_fail(conn_t *c, const char *what, const uint8_t *r, size_t n)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s (%zu bytes: %.*s)", what, n, (int)(n < 120 ? n : 120),
             (const char *)r);
    sub_fail(c, msg);
}

/* One hub record (without framing) of the subscription. */
static void sr_record(conn_t *c, const uint8_t *r, size_t n)
{
    if (op.proto == P_SR_JSON) {
        if (n >= 10 && memcmp(r, "{\"type\":2,", 10) == 0) {
            const uint8_t *v = memmem(r, n, "\"version\":", 10);
            if (!v) {
                sr_record_fail(c, "a StreamItem without a version", r, n);
                return;
            }
            int64_t id = 0;
            for (v += 10; v < r + n && *v >= '0' && *v <= '9'; v++)
                id = id * 10 + (*v - '0');
            sub_count(c, id);
        } else if (!(n == 10 && memcmp(r, "{\"type\":6}", 10) == 0)) {
            sr_record_fail(c, "an unexpected record", r, n);
        }
        return;
    }
    const uint8_t *p = r, *end = r + n;
    if (n >= 2 && p[0] == 0x91 && p[1] == 0x06)
        return; /* Ping */
    if (n < 2 || p[0] != 0x94 || p[1] != 0x02) {
        sr_record_fail(c, "an unexpected record", r, n);
        return;
    }
    p = mp_skip(p + 2, end, 0);        /* headers */
    p = p ? mp_skip(p, end, 0) : NULL; /* invocation id */
    size_t count = 0;
    if (p && p < end && (*p & 0xf0) == 0x80) {
        count = *p++ & 0x0f;
    } else if (p && end - p >= 3 && *p == 0xde) {
        count = (size_t)p[1] << 8 | p[2];
        p += 3;
    } else {
        sr_record_fail(c, "a StreamItem whose item is not a map", r, n);
        return;
    }
    for (size_t i = 0; i < count && p; i++) {
        if (end - p >= 8 && p[0] == 0xa7 && memcmp(p + 1, "version", 7) == 0) {
            p += 8;
            uint64_t v = 0;
            if (p < end && *p <= 0x7f) {
                v = *p;
            } else if (p < end && *p >= 0xcc && *p <= 0xcf) {
                int k = 1 << (*p - 0xcc);
                if (end - p <= k)
                    break;
                for (int j = 1; j <= k; j++)
                    v = v << 8 | p[j];
            } else {
                break;
            }
            sub_count(c, (int64_t)v);
            return;
        }
        p = mp_skip(p, end, 0);
        p = p ? mp_skip(p, end, 0) : NULL;
    }
    sr_record_fail(c, "a StreamItem without a version", r, n);
}

/* bench_sr_feed's callback: the handshake reply, then each hub record. */
static bool on_record(void *ctx, const uint8_t *r, size_t n, bool handshake)
{
    conn_t *c = ctx;
    if (c->state == C_FAILED)
        return false;
    if (!handshake) {
        sr_record(c, r, n);
    } else if (n != 2 || memcmp(r, "{}", 2)) {
        sr_record_fail(c, "the handshake was refused", r, n);
    } else {
        c->got_retry = true;
        n_ready++;
    }
    return c->state != C_FAILED;
}

/* bench_ws_feed's data callback: record bytes, parsed in place, the unfinished tail kept in
 * c->in. */
static bool on_ws_data(void *ctx, const uint8_t *p, size_t n, bool frame_end, bool fin)
{
    conn_t *c = ctx;
    (void)frame_end;
    (void)fin;
    if (c->state == C_FAILED)
        return false;
    const char *err = bench_sr_feed((uint8_t *)c->in, &c->in_len, c->in_cap, p, n,
                                    op.proto == P_SR_MSGPACK, &c->handshaken, on_record, c);
    if (err)
        sub_fail(c, err);
    return c->state != C_FAILED;
}

/* Sends one masked control frame (a pong or a close reply) with payload p[0..n), n <= 125.
 * A subscriber has written nothing since its hello, so its socket buffer takes the frame. */
static int ws_send_ctl(conn_t *c, int opcode, const uint8_t *p, size_t n)
{
    uint8_t f[6 + 125];
    size_t len = bench_ws_frame(f, opcode, p, n);
    return send(c->fd, f, len, MSG_NOSIGNAL) == (ssize_t)len ? 0 : -1;
}

/* bench_ws_feed's control callback: ping (answered with a pong carrying the same payload),
 * pong (ignored), close (answered with a close echoing the status code, as RFC 6455 5.5.1 asks;
 * a failure unless the subscriber already has every event). */
static bool on_ws_control(void *ctx, int opcode, const uint8_t *p, size_t n)
{
    conn_t *c = ctx;
    if (opcode == 9) {
        if (ws_send_ctl(c, 10, p, n))
            sub_fail(c, "could not send a pong");
    } else if (opcode == 8) {
        int code = n >= 2 ? p[0] << 8 | p[1] : 0;
        (void)ws_send_ctl(c, 8, p, n >= 2 ? 2 : 0);
        c->ended = true;
        if (c->state == C_DONE) {
            conn_close(c);
            return false;
        }
        char why[200];
        int rl = n > 2 ? (int)n - 2 : 0;
        snprintf(why, sizeof(why), "the server closed the WebSocket (code %d%s%.*s)", code,
                 rl ? ": " : "", rl, (const char *)p + 2);
        sub_fail(c, why);
    }
    return c->fd >= 0 && c->state != C_FAILED;
}

/* WebSocket bytes from the server (unmasked frames). */
static void sr_bytes(conn_t *c, const uint8_t *p, size_t n)
{
    const char *err = bench_ws_feed(&c->ws, p, n, on_ws_data, on_ws_control, c);
    if (err)
        sub_fail(c, err);
}

/* The response head in [p, p + n): 200, text/event-stream, not chunked. */
static int sub_headers(conn_t *c, const char *p, size_t n)
{
    if (op.proto != P_SSE) {
        if (n < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            sub_fail(c, "the WebSocket upgrade was refused");
            return -1;
        }
        /* the handshake and the Subscribe invocation: small enough for the socket buffer */
        if (send(c->fd, sr_hello, sr_hello_len, 0) != (ssize_t)sr_hello_len) {
            sub_fail(c, "could not send the hub handshake");
            return -1;
        }
        return 0;
    }
    if (n < 12 || memcmp(p, "HTTP/1.1 200", 12) != 0) {
        char line[128];
        size_t l = 0;
        while (l < n && l < sizeof(line) - 1 && p[l] != '\r')
            line[l] = p[l], l++;
        line[l] = '\0';
        sub_fail(c, line);
        return -1;
    }
    if (memmem(p, n, "chunked", 7)) {
        sub_fail(c, "chunked SSE responses are not supported by this client");
        return -1;
    }
    return 0;
}

static void sub_readable(conn_t *c)
{
    if (op.proto != P_SSE && (c->state == C_BODY || c->state == C_DONE)) {
        ssize_t r = recv(c->fd, rbuf, READ_MAX, 0);
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                sub_fail(c, strerror(errno));
            return;
        }
        if (r == 0) {
            c->ended = true;
            if (c->state == C_DONE)
                conn_close(c);
            else
                sub_fail(c, "the server closed the connection");
            return;
        }
        sr_bytes(c, (const uint8_t *)rbuf, (size_t)r);
        return;
    }
    char *buf = rbuf + CARRY_MAX - c->in_len;
    memcpy(buf, c->in, c->in_len);
    ssize_t r = recv(c->fd, rbuf + CARRY_MAX, READ_MAX, 0);
    if (r < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return;
        sub_fail(c, strerror(errno));
        return;
    }
    if (r == 0) {
        c->ended = true;
        if (c->state == C_DONE) {
            conn_close(c);
            return;
        }
        sub_fail(c, c->close_block ? "the server closed the stream (event: close)"
                                   : "the server ended the response");
        return;
    }
    size_t n = c->in_len + (size_t)r, used = 0;
    if (c->state == C_HEADERS) {
        const char *h = memmem(buf, n, "\r\n\r\n", 4);
        if (!h) {
            if (n > CARRY_MAX)
                sub_fail(c, "response head too large");
            else {
                memcpy(c->in, buf, n);
                c->in_len = n;
            }
            return;
        }
        if (sub_headers(c, buf, (size_t)(h + 4 - buf)))
            return;
        used = (size_t)(h + 4 - buf);
        c->state = C_BODY;
        if (op.proto != P_SSE) {
            c->in_len = 0; /* from here on c->in carries an unfinished hub record */
            sr_bytes(c, (const uint8_t *)buf + used, n - used);
            return;
        }
    }
    used += sub_parse(c, buf + used, n - used);
    size_t left = n - used;
    if (left > CARRY_MAX) {
        sub_fail(c, "an SSE block larger than the client's buffer");
        return;
    }
    memcpy(c->in, buf + used, left);
    c->in_len = left;
}

static void sub_event(conn_t *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        n_connecting--;
        if (bench_connected(c->fd)) {
            sub_fail(c, strerror(errno));
            return;
        }
        n_connected++;
        c->state = C_REQUEST;
    }
    if (c->state == C_REQUEST) {
        int r = flush_out(c);
        if (r < 0) {
            sub_fail(c, strerror(errno));
            return;
        }
        if (r == 0)
            return;
        c->state = C_HEADERS;
        ep_set(c, EPOLLIN | EPOLLRDHUP);
        return;
    }
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        sub_readable(c);
}

/* ---- publishers ---- */

static void post_fatal(conn_t *c, const char *why)
{
    fprintf(stderr, "bench_fanout: publisher %d: %s\n", c->index, why);
    fatal = 1;
    conn_close(c);
    c->state = C_FAILED;
}

static int per_conn_max(void)
{
    return (op.window + op.post_conns - 1) / op.post_conns;
}

/* Starts POSTs on c while the window allows and c has written everything before. */
static void post_pump(conn_t *c)
{
    if (c->state == C_FAILED || c->state == C_CONNECTING)
        return;
    for (;;) {
        if (c->out_off < c->out_len) {
            int r = flush_out(c);
            if (r < 0) {
                post_fatal(c, strerror(errno));
                return;
            }
            if (r == 0) {
                ep_set(c, EPOLLIN | EPOLLOUT);
                return;
            }
        }
        if (!publishing || (full_left == 0 && tail_left == 0) || inflight_total >= op.window ||
            c->inflight >= per_conn_max() || c->inflight >= 64)
            break;
        bool tail = full_left == 0;
        if (tail)
            tail_left--;
        else
            full_left--;
        c->out = tail ? req_tail : req_full;
        c->out_len = tail ? req_tail_len : req_full_len;
        c->out_off = 0;
        c->inflight_events[(c->if_head + c->inflight) % 64] = tail ? tail_events : op.post_batch;
        c->inflight++;
        inflight_total++;
        if (posts_sent++ == 0) {
            t0 = bench_now();
        }
    }
    ep_set(c, EPOLLIN);
}

static void post_pump_all(void)
{
    for (int i = 0; i < op.post_conns; i++)
        post_pump(&posts[i]);
}

static const char *find_header(const char *p, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (const char *s = p; s + nl < p + n; s++) {
        if ((s == p || s[-1] == '\n') && strncasecmp(s, name, nl) == 0)
            return s + nl;
    }
    return NULL;
}

/* Consumes complete responses from c->in. */
static void post_responses(conn_t *c)
{
    size_t off = 0;
    for (;;) {
        const char *p = c->in + off;
        size_t n = c->in_len - off;
        const char *h = memmem(p, n, "\r\n\r\n", 4);
        if (!h)
            break;
        size_t head = (size_t)(h + 4 - p);
        const char *cl = find_header(p, head, "content-length:");
        long body = cl ? strtol(cl, NULL, 10) : 0;
        if (head + (size_t)body > n)
            break;
        int status = n > 12 ? atoi(p + 9) : 0;
        if (c->inflight == 0) {
            post_fatal(c, "a response without a request");
            return;
        }
        int nev = c->inflight_events[c->if_head];
        c->if_head = (c->if_head + 1) % 64;
        c->inflight--;
        inflight_total--;
        if (status == 201) {
            posts_acked++;
            events_acked += nev;
            const char *fv = memmem(p + head, (size_t)body, "\"firstVersion\":", 15);
            if (fv) {
                int64_t v = strtoll(fv + 15, NULL, 10);
                if (v < min_first_version)
                    min_first_version = v;
            }
            if (posts_acked == posts_total)
                t_pub_done = bench_now();
        } else if (status == 429 || status == 503) {
            posts_retried++; /* nothing was appended: send it again */
            if (nev == op.post_batch)
                full_left++;
            else
                tail_left++;
        } else {
            char msg[300];
            snprintf(msg, sizeof(msg), "POST answered %d: %.*s", status,
                     (int)(body < 200 ? body : 200), p + head);
            post_fatal(c, msg);
            return;
        }
        if (find_header(p, head, "connection: close")) {
            /* reconnect once everything sent on this connection is answered */
            if (c->inflight) {
                post_fatal(c, "the server closed a connection with POSTs in flight");
                return;
            }
            conn_close(c);
            if (conn_start(c)) {
                post_fatal(c, strerror(errno));
                return;
            }
            c->out_len = c->out_off = 0;
            return;
        }
        off += head + (size_t)body;
    }
    if (off) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void post_event(conn_t *c, uint32_t ev)
{
    if (c->state == C_CONNECTING) {
        if (bench_connected(c->fd)) {
            post_fatal(c, strerror(errno));
            return;
        }
        c->state = C_BODY;
        c->out_len = c->out_off = 0;
        post_pump(c);
        return;
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t r = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (r == 0) {
            if (c->inflight) {
                post_fatal(c, "the server closed a connection with POSTs in flight");
                return;
            }
            conn_close(c);
            if (conn_start(c))
                post_fatal(c, strerror(errno));
            return;
        }
        if (r < 0 && errno != EAGAIN && errno != EINTR) {
            post_fatal(c, strerror(errno));
            return;
        }
        if (r > 0) {
            c->in_len += (size_t)r;
            post_responses(c);
            if (c->state == C_FAILED)
                return;
            if (c->in_len == c->in_cap) {
                post_fatal(c, "response larger than the client's buffer");
                return;
            }
        }
    }
    /* an answer frees the window for every connection */
    post_pump_all();
}

/* ---- requests ---- */

static char *build_post(int nevents, size_t *len)
{
    char data[DATA_BYTES + 1];
    int n = snprintf(data, sizeof(data), "{\"bench\":\"sse\",\"pad\":\"");
    memset(data + n, 'x', (size_t)(DATA_BYTES - 2 - n));
    data[DATA_BYTES - 2] = '"';
    data[DATA_BYTES - 1] = '}';
    data[DATA_BYTES] = '\0';
    char one[512];
    int ol = snprintf(one, sizeof(one), "{\"type\":\"%s\",\"data\":%s}", EVENT_TYPE, data);
    size_t body = 2 + (size_t)nevents * (size_t)ol + (size_t)(nevents - 1);
    size_t cap = body + 512;
    char *r = malloc(cap);
    if (!r)
        die("out of memory");
    int h = snprintf(r, cap,
                     "POST /api/streams/%s/events HTTP/1.1\r\nHost: %s:%s\r\n"
                     "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                     op.stream, op.host, op.port, body);
    char *o = r + h;
    *o++ = '[';
    for (int i = 0; i < nevents; i++) {
        if (i)
            *o++ = ',';
        memcpy(o, one, (size_t)ol);
        o += ol;
    }
    *o++ = ']';
    *len = (size_t)(o - r);
    return r;
}

/* ---- main ---- */

static void usage(FILE *f)
{
    fprintf(f, "Usage: bench_fanout --url HOST:PORT [--pid PID] [options]\n"
               "  --protocol P     sse (default), signalr-json or signalr-messagepack\n"
               "  --subs S         subscriptions, default 1000\n"
               "  --events E       events to publish, default 100000\n"
               "  --post-batch B   events per POST, default 100\n"
               "  --post-conns P   keep-alive publishing connections, default 4\n"
               "  --window W       most unacknowledged POSTs, default 4 (above P: pipelining)\n"
               "  --pid PID        the server's pid, for its CPU time\n"
               "  --timeout-s T    give up after T seconds, default 120\n"
               "  --settle-ms M    wait after the last retry: line, default 200\n"
               "  --stream NAME    stream to use, default a new bench-sse-<time>-<pid>\n"
               "  --results FILE   JSON line destination, default perf/results/sse.jsonl\n"
               "  --no-record      print only\n"
               "  --linger-s N     keep every connection open N more seconds after the run,\n"
               "                   reading what arrives (soak check; the server must stay up)\n"
               "  --catchup        replay: --stream holds --events events already; S subscribers\n"
               "                   (default 1) read it from version 0; nothing is published;\n"
               "                   results go to perf/results/catchup.jsonl\n");
}

static void parse_args(int argc, char **argv)
{
    op.subs = 1000;
    op.events = 100000;
    op.post_batch = 100;
    op.post_conns = 4;
    op.window = 4;
    op.timeout_s = 120;
    op.settle_ms = 200;
    op.results = NULL;
    op.record = true;
    bool subs_given = false;
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'},
        {"subs", required_argument, NULL, 's'},
        {"events", required_argument, NULL, 'e'},
        {"post-batch", required_argument, NULL, 'b'},
        {"post-conns", required_argument, NULL, 'c'},
        {"window", required_argument, NULL, 'w'},
        {"pid", required_argument, NULL, 'p'},
        {"timeout-s", required_argument, NULL, 't'},
        {"settle-ms", required_argument, NULL, 'm'},
        {"stream", required_argument, NULL, 'n'},
        {"results", required_argument, NULL, 'r'},
        {"no-record", no_argument, NULL, 'N'},
        {"linger-s", required_argument, NULL, 'L'},
        {"help", no_argument, NULL, 'h'},
        {"protocol", required_argument, NULL, 'P'},
        {"catchup", no_argument, NULL, 'C'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (ch) {
        case 'u':
            op.url = optarg;
            break;
        case 's':
            op.subs = (int)bench_parse_long(optarg, "--subs", 1);
            subs_given = true;
            break;
        case 'e':
            op.events = bench_parse_long(optarg, "--events", 1);
            break;
        case 'b':
            op.post_batch = (int)bench_parse_long(optarg, "--post-batch", 1);
            break;
        case 'c':
            op.post_conns = (int)bench_parse_long(optarg, "--post-conns", 1);
            break;
        case 'w':
            op.window = (int)bench_parse_long(optarg, "--window", 1);
            break;
        case 'p':
            op.pid = bench_parse_long(optarg, "--pid", 1);
            break;
        case 't':
            op.timeout_s = (double)bench_parse_long(optarg, "--timeout-s", 1);
            break;
        case 'm':
            op.settle_ms = (int)bench_parse_long(optarg, "--settle-ms", 0);
            break;
        case 'n':
            snprintf(op.stream, sizeof(op.stream), "%s", optarg);
            break;
        case 'r':
            op.results = optarg;
            break;
        case 'N':
            op.record = false;
            break;
        case 'L':
            op.linger_s = (int)bench_parse_long(optarg, "--linger-s", 0);
            break;
        case 'C':
            op.catchup = true;
            break;
        case 'P':
            for (op.proto = 0; op.proto < 3 && strcmp(optarg, proto_names[op.proto]); op.proto++)
                ;
            if (op.proto == 3) {
                fprintf(stderr, "bench_fanout: --protocol is sse, signalr-json or "
                                "signalr-messagepack\n");
                exit(2);
            }
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || !op.url) {
        usage(stderr);
        exit(2);
    }
    if (op.window > op.post_conns * 64) {
        fprintf(stderr, "bench_fanout: --window is at most 64 per publishing connection\n");
        exit(2);
    }
    const char *u = op.url;
    if (strncmp(u, "http://", 7) == 0)
        u += 7;
    const char *colon = strrchr(u, ':');
    if (!colon || colon == u || strlen(colon + 1) == 0 || strlen(colon + 1) >= sizeof(op.port)) {
        fprintf(stderr, "bench_fanout: --url wants HOST:PORT\n");
        exit(2);
    }
    snprintf(op.host, sizeof(op.host), "%.*s", (int)(colon - u), u);
    snprintf(op.port, sizeof(op.port), "%s", colon + 1);
    size_t pl = strlen(op.port);
    if (pl && op.port[pl - 1] == '/')
        op.port[pl - 1] = '\0';
    if (op.catchup) {
        if (!op.stream[0]) {
            fprintf(stderr, "bench_fanout: --catchup needs --stream (a stream holding --events"
                            " events)\n");
            exit(2);
        }
        if (!subs_given)
            op.subs = 1;
    }
    if (!op.stream[0])
        snprintf(op.stream, sizeof(op.stream), "bench-%s-%ld-%ld", proto_names[op.proto],
                 (long)time(NULL), (long)getpid());
    if (!op.results)
        op.results = op.catchup          ? HS_PERF_RESULTS_DIR "/catchup.jsonl"
                     : op.proto == P_SSE ? HS_PERF_RESULTS_DIR "/sse.jsonl"
                                         : HS_PERF_RESULTS_DIR "/signalr.jsonl";
}

static void progress(double now)
{
    int64_t min = INT64_MAX, sum = 0;
    for (int i = 0; i < op.subs; i++) {
        if (subs[i].state == C_FAILED)
            continue;
        if (subs[i].count < min)
            min = subs[i].count;
        sum += subs[i].count;
    }
    if (min == INT64_MAX)
        min = 0;
    if (op.catchup) {
        fprintf(stderr,
                "bench_fanout: %6.1fs received %lld events (min %lld per sub), %d/%d subs"
                " complete\n",
                now - t_begin, (long long)sum, (long long)min, n_complete, op.subs);
        return;
    }
    fprintf(stderr,
            "bench_fanout: %6.1fs acked %ld/%ld events, deliveries %lld (min %lld per sub), "
            "%d/%d subs complete\n",
            now - t_begin, events_acked, op.events, (long long)sum, (long long)min, n_complete,
            op.subs);
}

/* The result of a --catchup run: a table on stdout and a line in catchup.jsonl; 0 or 1. */
static int report_catchup(const bench_env_t *env, bool ok, const char *outcome, double elapsed,
                          int64_t deliveries, double srv_cpu, long rss0, long rss1, long hwm,
                          double cli_cpu, double other_cpu, long bad, long incomplete,
                          int64_t min_count, int64_t gaps, int64_t dups)
{
    double eps = elapsed > 0 ? (double)deliveries / elapsed : 0;
    double first = t_first && t0 ? t_first - t0 : -1;
    printf("\n%-36s %s\n", "result", ok ? "ok" : (outcome ? outcome : "deliveries wrong"));
    printf("%-36s %.3f\n", "request -> last event (s)", elapsed);
    printf("%-36s %.3f\n", "request -> first event (s)", first);
    printf("%-36s %lld of %lld\n", "events received", (long long)deliveries,
           (long long)op.subs * op.events);
    printf("%-36s %.0f%s\n", "events/s", eps, op.subs > 1 ? " (all subscribers)" : "");
    if (op.subs > 1)
        printf("%-36s %.0f\n", "events/s per subscriber", eps / op.subs);
    if (srv_cpu >= 0) {
        printf("%-36s %.2f (%.0f%% of one core)\n", "server CPU (s)", srv_cpu,
               elapsed > 0 ? 100 * srv_cpu / elapsed : 0);
        printf("%-36s %.0f\n", "events per server CPU-second",
               srv_cpu > 0 ? (double)deliveries / srv_cpu : 0);
        printf("%-36s %ld -> %ld, peak %ld\n", "server RSS (KiB)", rss0, rss1, hwm);
    }
    printf("%-36s %.2f (%.0f%% of one core)\n", "client CPU (s)", cli_cpu,
           elapsed > 0 ? 100 * cli_cpu / elapsed : 0);
    printf("%-36s %.2f%s\n", "other processes' CPU (s)", other_cpu,
           elapsed > 0 && other_cpu > 0.1 * elapsed ? "  (busy machine: figures are low)" : "");
    if (!ok)
        printf("%-36s %ld bad, %ld incomplete, min %lld events, %lld gaps, %lld dups\n",
               "subscribers", bad, incomplete, (long long)min_count, (long long)gaps,
               (long long)dups);
    int rc = ok ? 0 : 1;
    if (!op.record)
        return rc;
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    fprintf(f, "{\"bench\":\"catchup-%s\",", proto_names[op.proto]);
    bench_env_json(f, env);
    fprintf(f, ",\"params\":{\"subs\":%d,\"events\":%ld,\"timeout_s\":%.0f},", op.subs, op.events,
            op.timeout_s);
    fprintf(f,
            "\"elapsed_s\":%.3f,\"first_event_s\":%.3f,\"events_received\":%lld,"
            "\"events_s\":%.0f,",
            elapsed, first, (long long)deliveries, eps);
    if (srv_cpu >= 0)
        fprintf(f,
                "\"server_cpu_s\":%.2f,\"events_per_server_cpu_s\":%.0f,"
                "\"server_rss_start_kb\":%ld,\"server_rss_end_kb\":%ld,"
                "\"server_peak_rss_kb\":%ld,",
                srv_cpu, srv_cpu > 0 ? (double)deliveries / srv_cpu : 0, rss0, rss1, hwm);
    else
        fprintf(f, "\"server_cpu_s\":null,");
    fprintf(f, "\"client_cpu_s\":%.2f,\"other_cpu_s\":%.2f,\"bad_subs\":%ld,\"ok\":%s", cli_cpu,
            other_cpu, bad, ok ? "true" : "false");
    if (!ok) {
        fprintf(f, ",\"error\":");
        bench_json_str(f, outcome ? outcome : "deliveries wrong");
    }
    fprintf(f, "}");
    fclose(f);
    if (bench_append_line(op.results, line) == 0)
        printf("appended to %s\n", op.results);
    else
        rc = 1;
    free(line);
    return rc;
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (rlim_t)(op.subs + op.post_conns + 32) > rl.rlim_cur)
        die("%d subscriptions need more than the %llu open files allowed", op.subs,
            (unsigned long long)rl.rlim_cur);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gr = getaddrinfo(op.host, op.port, &hints, &addr);
    if (gr)
        die("%s:%s: %s", op.host, op.port, gai_strerror(gr));

    ep = epoll_create1(EPOLL_CLOEXEC);
    rbuf = malloc(CARRY_MAX + READ_MAX);
    subs = calloc((size_t)op.subs, sizeof(*subs));
    posts = calloc((size_t)op.post_conns, sizeof(*posts));
    char *carry = malloc((size_t)op.subs * CARRY_MAX);
    char *resp = malloc((size_t)op.post_conns * RESP_MAX);
    if (ep < 0 || !rbuf || !subs || !posts || !carry || !resp)
        die("setup failed");
    for (int i = 0; i < op.subs; i++) {
        subs[i] = (conn_t){.kind = K_SUB,
                           .fd = -1,
                           .index = i,
                           .in = carry + (size_t)i * CARRY_MAX,
                           .in_cap = CARRY_MAX};
    }
    for (int i = 0; i < op.post_conns; i++)
        posts[i] = (conn_t){.kind = K_POST,
                            .fd = -1,
                            .index = i,
                            .in = resp + (size_t)i * RESP_MAX,
                            .in_cap = RESP_MAX};
    if (op.proto == P_SSE)
        sub_request_len =
            (size_t)snprintf(sub_request, sizeof(sub_request),
                             "GET /api/streams/%s/events%s HTTP/1.1\r\nHost: %s:%s\r\n"
                             "Accept: text/event-stream\r\nCache-Control: no-cache\r\n"
                             "\r\n",
                             op.stream, op.catchup ? "?from=0" : "", op.host, op.port);
    else
        sub_request_len = (size_t)snprintf(sub_request, sizeof(sub_request),
                                           "GET /hub HTTP/1.1\r\nHost: %s:%s\r\n"
                                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                                           "Sec-WebSocket-Key: aHVic3RyZWFtLWJlbmNoIQ==\r\n"
                                           "Sec-WebSocket-Version: 13\r\n\r\n",
                                           op.host, op.port);
    if (op.proto != P_SSE)
        sr_build_hello();
    posts_total = op.catchup ? 0 : (op.events + op.post_batch - 1) / op.post_batch;
    tail_events = op.catchup ? 0 : (int)(op.events % op.post_batch);
    full_left = op.catchup ? 0 : op.events / op.post_batch;
    tail_left = tail_events ? 1 : 0;
    req_full = build_post(op.post_batch, &req_full_len);
    if (tail_events)
        req_tail = build_post(tail_events, &req_tail_len);

    bench_env_t env;
    bench_env_read(&env);
    if (op.catchup)
        printf("bench_fanout: catch-up, %s, %s, stream %s, %d subscription%s from version 0, %ld"
               " stored events each\n",
               op.url, proto_names[op.proto], op.stream, op.subs, op.subs == 1 ? "" : "s",
               op.events);
    else
        printf("bench_fanout: %s, %s, stream %s, %d subscriptions, %ld events of %d-byte data, "
               "POSTs of %d"
               " over %d connections, window %d\n",
               op.url, proto_names[op.proto], op.stream, op.subs, op.events, DATA_BYTES,
               op.post_batch, op.post_conns, op.window);
    printf("machine: %d x %s, %ld MiB, kernel %s; commit %s; %s; load %.2f\n", env.nproc, env.cpu,
           env.mem_mb, env.kernel, env.commit, env.date, env.load1);
    if (env.load1 > 0.5)
        printf("WARNING: the machine is busy (load %.2f): figures will be low and noisy\n",
               env.load1);
    fflush(stdout);

    t_begin = bench_now();
    double deadline = t_begin + op.timeout_s, next_progress = t_begin + 5;
    double settle_until = 0, srv_cpu0 = -1, srv_cpu1 = -1, cpu0 = 0, cpu1 = 0, busy0 = 0, busy1 = 0;
    long rss0 = -1, rss1 = -1;
    if (op.catchup) {
        /* nothing to publish and nothing to wait for: the clock starts with the first connect */
        srv_cpu0 = op.pid ? bench_pid_cpu(op.pid) : -1;
        rss0 = op.pid ? bench_pid_rss_kb(op.pid) : -1;
        cpu0 = bench_self_cpu();
        busy0 = bench_sys_busy();
        publishing = true;
        t0 = bench_now();
    }
    sub_open_more();
    struct epoll_event evs[1024];
    const char *outcome = NULL;
    for (;;) {
        double now = bench_now();
        if (now >= deadline) {
            outcome = "timeout";
            break;
        }
        if (fatal) {
            outcome = "publish failed";
            break;
        }
        if (!publishing && n_failed_subs) {
            outcome = "subscriptions failed before publishing";
            break;
        }
        if (!publishing && n_ready == op.subs) {
            if (!t_ready) {
                t_ready = now;
                settle_until = now + op.settle_ms / 1000.0;
                fprintf(stderr, "bench_fanout: %d subscriptions ready in %.2fs\n", op.subs,
                        t_ready - t_begin);
            }
            if (now >= settle_until) {
                srv_cpu0 = op.pid ? bench_pid_cpu(op.pid) : -1;
                rss0 = op.pid ? bench_pid_rss_kb(op.pid) : -1;
                cpu0 = bench_self_cpu();
                busy0 = bench_sys_busy();
                publishing = true;
                for (int i = 0; i < op.post_conns; i++)
                    if (conn_start(&posts[i]))
                        die("connect: %s", strerror(errno));
            }
        }
        if (publishing && n_complete + n_failed_subs == op.subs && posts_acked == posts_total) {
            srv_cpu1 = op.pid ? bench_pid_cpu(op.pid) : -1;
            rss1 = op.pid ? bench_pid_rss_kb(op.pid) : -1;
            cpu1 = bench_self_cpu();
            busy1 = bench_sys_busy();
            outcome = n_failed_subs ? "subscriptions failed" : NULL;
            break;
        }
        if (now >= next_progress) {
            progress(now);
            next_progress = now + 5;
        }
        int timeout_ms = 100;
        if (settle_until > now && !publishing)
            timeout_ms = (int)((settle_until - now) * 1000) + 1;
        int n = epoll_wait(ep, evs, 1024, timeout_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->kind == K_SUB) {
                if (c->fd >= 0)
                    sub_event(c, evs[i].events);
            } else if (c->fd >= 0) {
                post_event(c, evs[i].events);
            }
        }
        sub_open_more();
    }
    if (outcome && srv_cpu1 < 0) {
        srv_cpu1 = op.pid ? bench_pid_cpu(op.pid) : -1;
        rss1 = op.pid ? bench_pid_rss_kb(op.pid) : -1;
        cpu1 = bench_self_cpu();
        busy1 = bench_sys_busy();
    }
    double t_end = t_last ? t_last : bench_now();
    if (op.linger_s > 0) {
        /* keep reading (and discarding) so that the connections stay healthy and idle */
        fprintf(stderr, "bench_fanout: lingering %ds with every connection open\n", op.linger_s);
        double until = bench_now() + op.linger_s;
        while (bench_now() < until) {
            int n = epoll_wait(ep, evs, 1024, 200);
            for (int i = 0; i < n; i++) {
                conn_t *c = evs[i].data.ptr;
                if (c->fd < 0)
                    continue;
                if (c->kind == K_SUB)
                    sub_event(c, evs[i].events);
                else
                    post_event(c, evs[i].events);
            }
        }
        if (op.pid && bench_pid_cpu(op.pid) < 0) {
            fprintf(stderr, "bench_fanout: the server (pid %ld) is gone after lingering\n", op.pid);
            outcome = "server died while lingering";
        }
    }

    /* verify every subscriber */
    int64_t first = min_first_version == INT64_MAX ? 1 : min_first_version;
    long bad = 0, incomplete = 0;
    int64_t deliveries = 0, min_count = INT64_MAX, gaps = 0, dups = 0;
    for (int i = 0; i < op.subs; i++) {
        conn_t *c = &subs[i];
        deliveries += c->count;
        if (c->count < min_count)
            min_count = c->count;
        gaps += c->gaps;
        dups += c->dups;
        bool ok = c->count == op.events && c->gaps == 0 && c->dups == 0 && c->first_id == first &&
                  c->last_id == first + op.events - 1;
        if (c->count != op.events)
            incomplete++;
        if (!ok) {
            if (bad < 10)
                fprintf(stderr,
                        "bench_fanout: subscriber %d: %lld events (want %ld), ids %lld..%lld (want"
                        " %lld..%lld), %lld gaps, %lld duplicates%s\n",
                        i, (long long)c->count, op.events, (long long)c->first_id,
                        (long long)c->last_id, (long long)first, (long long)(first + op.events - 1),
                        (long long)c->gaps, (long long)c->dups,
                        c->ended ? ", ended by the server" : "");
            bad++;
        }
        conn_close(c);
    }
    for (int i = 0; i < op.post_conns; i++)
        conn_close(&posts[i]);
    bool ok = !outcome && bad == 0 && posts_acked == posts_total;

    double elapsed = publishing && t0 ? t_end - t0 : 0;
    double pub_elapsed = t_pub_done ? t_pub_done - t0 : 0;
    double dps = elapsed > 0 ? (double)deliveries / elapsed : 0;
    double srv_cpu = srv_cpu0 >= 0 && srv_cpu1 >= 0 ? srv_cpu1 - srv_cpu0 : -1;
    double cli_cpu = cpu1 - cpu0;
    double other_cpu = busy1 - busy0 - cli_cpu - (srv_cpu > 0 ? srv_cpu : 0);
    if (!publishing || other_cpu < 0)
        other_cpu = 0;
    if (op.catchup) {
        int rc = report_catchup(&env, ok, outcome, elapsed, deliveries, srv_cpu, rss0, rss1,
                                op.pid ? bench_pid_hwm_kb(op.pid) : -1, cli_cpu, other_cpu, bad,
                                incomplete, min_count, gaps, dups);
        freeaddrinfo(addr);
        return rc;
    }
    printf("\n%-36s %s\n", "result", ok ? "ok" : (outcome ? outcome : "deliveries wrong"));
    printf("%-36s %.2f\n", "subscriptions ready (s)", t_ready ? t_ready - t_begin : -1);
    printf("%-36s %.3f\n", "first POST -> last delivery (s)", elapsed);
    printf("%-36s %.3f\n", "first POST -> last ack (s)", pub_elapsed);
    printf("%-36s %.0f\n", "publish rate (events/s)",
           pub_elapsed > 0 ? (double)op.events / pub_elapsed : 0);
    printf("%-36s %lld of %lld\n", "deliveries", (long long)deliveries,
           (long long)op.subs * op.events);
    printf("%-36s %.0f\n", "deliveries/s", dps);
    if (srv_cpu >= 0 && elapsed > 1 && srv_cpu < 0.01 * elapsed) {
        fprintf(stderr,
                "bench_fanout: pid %ld used almost no CPU (%.2f s in %.1f s): is it the server"
                " itself and not a wrapper? Its CPU is not reported.\n",
                op.pid, srv_cpu, elapsed);
        srv_cpu = -1;
    }
    if (srv_cpu >= 0) {
        printf("%-36s %.2f (%.0f%% of one core)\n", "server CPU (s)", srv_cpu,
               elapsed > 0 ? 100 * srv_cpu / elapsed : 0);
        printf("%-36s %.0f\n", "deliveries per server CPU-second",
               srv_cpu > 0 ? (double)deliveries / srv_cpu : 0);
        printf("%-36s %ld -> %ld\n", "server RSS (KiB)", rss0, rss1);
    }
    printf("%-36s %.2f (%.0f%% of one core)\n", "client CPU (s)", cli_cpu,
           elapsed > 0 ? 100 * cli_cpu / elapsed : 0);
    printf("%-36s %.2f%s\n", "other processes' CPU (s)", other_cpu,
           elapsed > 0 && other_cpu > 0.1 * elapsed ? "  (busy machine: figures are low)" : "");
    printf("%-36s %ld\n", "POSTs retried (429/503)", posts_retried);
    if (!ok)
        printf("%-36s %ld bad, %ld incomplete, min %lld events, %lld gaps, %lld dups\n",
               "subscribers", bad, incomplete, (long long)min_count, (long long)gaps,
               (long long)dups);

    int rc = ok ? 0 : 1;
    if (op.record) {
        char *line = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&line, &len);
        fprintf(f, "{\"bench\":\"%s\",", proto_names[op.proto]);
        bench_env_json(f, &env);
        fprintf(f,
                ",\"params\":{\"subs\":%d,\"events\":%ld,\"data_bytes\":%d,\"post_batch\":%d,"
                "\"post_conns\":%d,\"window\":%d,\"settle_ms\":%d,\"timeout_s\":%.0f},",
                op.subs, op.events, DATA_BYTES, op.post_batch, op.post_conns, op.window,
                op.settle_ms, op.timeout_s);
        fprintf(f,
                "\"elapsed_s\":%.3f,\"publish_s\":%.3f,\"publish_events_s\":%.0f,"
                "\"deliveries\":%lld,\"deliveries_s\":%.0f,",
                elapsed, pub_elapsed, pub_elapsed > 0 ? (double)op.events / pub_elapsed : 0,
                (long long)deliveries, dps);
        if (srv_cpu >= 0)
            fprintf(f,
                    "\"server_cpu_s\":%.2f,\"deliveries_per_server_cpu_s\":%.0f,"
                    "\"server_rss_kb\":%ld,",
                    srv_cpu, srv_cpu > 0 ? (double)deliveries / srv_cpu : 0, rss1);
        else
            fprintf(f, "\"server_cpu_s\":null,");
        fprintf(f,
                "\"client_cpu_s\":%.2f,\"other_cpu_s\":%.2f,\"posts_retried\":%ld,"
                "\"bad_subs\":%ld,\"ok\":%s",
                cli_cpu, other_cpu, posts_retried, bad, ok ? "true" : "false");
        if (!ok) {
            fprintf(f, ",\"error\":");
            bench_json_str(f, outcome ? outcome : "deliveries wrong");
        }
        fprintf(f, "}");
        fclose(f);
        if (bench_append_line(op.results, line) == 0)
            printf("appended to %s\n", op.results);
        else
            rc = 1;
        free(line);
    }
    freeaddrinfo(addr);
    return rc;
}
