/*
 * loadgen: the load generator of perf/: the same scenario against hubstream or against nchan
 * (nginx's pub/sub module), one JSON object of figures on stdout. perf/compare.sh runs every
 * scenario against both; perf/run.sh runs hubstream's live fan-out (SSE, SignalR JSON, SignalR
 * MessagePack) and the catch-up of a stored stream, and keeps their history (--results).
 *
 * Targets and transports:
 *   --target hubstream: publishes with POST /api/streams/{s}/events (an array of --post-batch
 *     events); subscribes over SSE (GET /api/streams/{s}/events, Accept: text/event-stream) or
 *     over SignalR WebSockets (GET /hub upgraded without negotiating, hub handshake, then a
 *     StreamInvocation of Subscribe(stream, from)): --transport ws is the MessagePack hub
 *     protocol, --transport signalr-json the JSON one.
 *     --hub eventstreamhub: the same transports on /eventstreamhub, the drop-in for
 *     AspNetCore.SignalR.EventStream (fanout, latency and idle; live only, as it has no start
 *     point but a global position): each subscriber invokes Subscribe({StreamName, SubscriberId,
 *     SubscriberKey}) with GUIDs of its own (random per run) and is ready at its Completion;
 *     each publish then reaches it as one Invocation of target <stream> whose first argument is
 *     a string holding the batch's events as a JSON array of the seed's PascalCase objects.
 *     Each event in it is checked like a /hub delivery (the marker is in its JsonData, escaped
 *     once or, in JSON, twice), and its Id (the global position) must be above the one before.
 *     A delivery is an event received, as on /hub: deliveries/s compare like for like.
 *   --target nchan: publishes with POST /pub?id={s} (one message per request); subscribes with
 *     GET /sub?id={s} over raw WebSocket frames (--transport ws) or SSE. For the catch-up
 *     scenario (and the ingest that fills its stream, i.e. any stream named catchup*), /pub_big
 *     and /sub_oldest: locations of perf/peers/nchan.conf.in with a 1,000,000-message buffer
 *     and first message "oldest".
 *
 * Every event's data is the same 128 bytes for both targets, {"m":"~S<seq>~T<ns>","pad":"x..."}:
 * <seq> (10 digits) numbers the events of the run from 1, <ns> (19 digits) is CLOCK_MONOTONIC
 * when the publisher wrote the request (the clock is the machine's, shared by processes). A
 * subscriber finds the marker in whatever framing carries it (SSE data line, SignalR JSON or
 * MessagePack record, WebSocket frame), so the checks and the latency are the same for both
 * servers: the latency is from the publisher's write to the subscriber's read, both on loopback.
 *
 * Scenarios (--scenario):
 *   fanout    --subs S subscribers on one new stream; then --events E published over
 *             --publishers P keep-alive connections (one request in flight on each, no
 *             pipelining), at most --window events ahead of the slowest subscriber: "as fast as
 *             it is delivered". Figures: deliveries/s from the first publish to the last
 *             delivery, the server's CPU seconds over that interval (--pid: that process and its
 *             children, e.g. nginx's master and worker) and deliveries per server CPU-second.
 *   latency   S subscribers; --rate R events/s for --duration-s D, paced on a 1 ms tick over P
 *             connections. Figures: p50/p99/p99.9/max of publish-to-receive over every delivery.
 *   idle      S subscribers connect and stay idle for D seconds. Figures: connections per
 *             second (first connect to the last subscriber ready), the server's RSS before and
 *             after, and RSS per connection. Then one event is published and every subscriber
 *             must receive it (they are alive, not just counted).
 *   ingest    no subscriber; E events over P connections in requests of --post-batch events
 *             (hubstream; nchan takes one message per request), as fast as acknowledged or,
 *             with --rate R, paced at R events/s. Figures: events/s acknowledged.
 *   catchup   S subscribers (default 1) read a stream that already holds E events (an earlier
 *             ingest run of the same --stream) from the start. Figures: events/s.
 *   reconnect S subscribers get 10 live events; all drop their connections; --missed M events
 *             are published; all reconnect at once and resume (SSE: Last-Event-ID with the last
 *             id seen; SignalR: Subscribe(stream, last version)). Figures: seconds from the
 *             reconnect to the last subscriber holding every event; gaps and duplicates, which
 *             must be zero. nchan's raw WebSocket frames carry no id, so on nchan only SSE.
 *
 * Every scenario with --pid also reports server_rss_max_kb: the largest RSS of the server (the
 * process and its children: nginx's worker) sampled every 0.2 s while loadgen ran.
 *
 * Checks: each subscriber must receive each expected event exactly once (a bitmap per
 * subscriber); in the reconnect scenario (one publisher connection, so one order) also in
 * order. With --check-versions (hubstream), each subscriber must also get the server's versions
 * (SSE id, StreamItem version) in order, each once, from the first version published (the
 * lowest firstVersion the publish responses gave; 1 for a stored stream replayed from 0; on
 * /eventstreamhub the Ids, from the lowest firstPosition: nothing else may write to the
 * database meanwhile). A
 * subscriber that fails (an early end of its response or WebSocket before it has every event,
 * a refused subscription, a malformed frame or record), a gap, a duplicate or a timeout makes
 * the run fail: "ok":false with the first error, exit status 1.
 *
 * What run.sh uses beyond that (bench_fanout's features, folded in):
 *   --window 0     fanout without flow control: publish as fast as acknowledged (one request in
 *                  flight per connection); --post-batch 100 --publishers 4 is bench_fanout's load
 *   --live         subscribe without a start point (SSE without ?from=, Subscribe(stream)):
 *                  ready at the retry: line or the handshake reply, then --settle-ms
 *   --results FILE append one line in the format of perf/results/sse.jsonl, signalr.jsonl
 *                  (fanout) or catchup.jsonl (catchup): date, commit, machine, parameters, and
 *                  over the measured interval the server's CPU (--pid), its RSS at the start and
 *                  end and its peak (VmHWM), the client's CPU (this process and its subscriber
 *                  processes) and the CPU other processes took (/proc/stat); for catch-up also
 *                  the time to the first event and events/s per subscriber and in all
 *   --linger-s N   keep every connection open N seconds after the run; the server (--pid) must
 *                  still be alive then (a soak check)
 *   --progress-s N a progress line on stderr every N seconds
 *   A publish answered 429 or 503 (nothing appended) is sent again and counted (posts_retried).
 *
 * Two nodes of a cluster (perf/cluster.sh): --url2 http://HOST:PORT is a second server on the
 * same database. Subscribers alternate between the two (even indexes on --url, odd on --url2);
 * publishers too, or only on --url with --pub-nodes 1. --pid2 adds the second server's CPU to
 * the server CPU. The latency histogram is split: "lat_*" over every delivery as usual, and
 * "lat2_*" over deliveries to the subscribers of --url2 alone (with --pub-nodes 1: events that
 * crossed from one node to the other), "lat1_*" over those of --url.
 *
 * Processes: subscribers live in --procs P worker processes (fork), each with its own epoll
 * loop, non-blocking sockets, no allocation per message, and, with --src-addrs K, bound to the
 * source address 127.0.0.(2 + i % K): one process holds fewer than 20,000 descriptors here and
 * one source address reaches at most ~28,000 ports to one server port. The publishers and the
 * clock live in the parent; the processes share counters in an anonymous shared mapping.
 *
 * Not measured: anything beyond loopback; TLS; the client's own cost (reported: client_cpu_s,
 * since on a 2-core machine the client competes with the server for the cores).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "lib/clock.h"
#include "lib/client.h"

#define DATA_BYTES     128
#define SEQ_DIGITS     10
#define NS_DIGITS      19
#define CARRY_MAX      8192 /* one subscriber's unfinished block, frame or record */
#define ES_EVENT_MAX   1024 /* an /eventstreamhub event of DATA_BYTES as JSON escapes it twice */
#define READ_MAX       (256 * 1024)
#define RESP_MAX       8192      /* a publisher's unfinished response */
#define CONNECTING_MAX 256       /* connects in flight per process */
#define RING           (1 << 16) /* per-event delivery counts (fan-out flow control) */
#define HIST_N         20000
#define WARM_EVENTS    10   /* reconnect: live events before the drop */
#define PING_EVERY_S   10.0 /* SignalR keep-alive: the server drops a silent client at 30 s */
#define MAX_PROCS      64

enum target { T_HUBSTREAM, T_NCHAN };
enum hub { H_HUB, H_ES }; /* hubstream's SignalR endpoint: /hub or /eventstreamhub */
enum transport { X_WS, X_SR_JSON, X_SSE };
enum scenario { S_FANOUT, S_LATENCY, S_IDLE, S_INGEST, S_CATCHUP, S_RECONNECT };
static const char *const target_names[] = {"hubstream", "nchan"};
static const char *const hub_names[] = {"hub", "eventstreamhub"};
static const char *const transport_names[] = {"ws", "signalr-json", "sse"};
static const char *const scenario_names[] = {"fanout", "latency", "idle",
                                             "ingest", "catchup", "reconnect"};

/* what the parent tells the subscriber processes to do */
enum phase { PH_CONNECT, PH_DROP, PH_RESUME, PH_STOP };

/* Shared by the parent and the subscriber processes (MAP_SHARED | MAP_ANONYMOUS). */
typedef struct shared {
    _Atomic int phase;
    _Atomic long expect;   /* events each subscriber must hold to be complete */
    _Atomic long ready;    /* subscribers connected and subscribed */
    _Atomic long complete; /* subscribers holding `expect` events */
    _Atomic long failed;
    _Atomic long dropped;    /* reconnect: subscribers that closed their connection */
    _Atomic long deliveries; /* flushed by each process as it goes */
    _Atomic long gaps, dups;
    _Atomic uint64_t t_ready_ns, t_last_ns; /* the last subscriber ready; the last completion */
    _Atomic uint64_t t_first_ns;            /* the first event any subscriber received */
    _Atomic long bad;                       /* subscribers failed or not complete at the end */
    _Atomic int64_t first_ver_min, first_ver_max; /* --check-versions: first versions seen */
    _Atomic int procs_done;
    _Atomic int err_set;
    char err[512];
    _Atomic uint32_t ring[RING];   /* deliveries per event (seq % RING), flushed per loop */
    _Atomic uint64_t hist[HIST_N]; /* latency in microseconds, merged at exit */
    _Atomic uint64_t lat_max_us, lat_n;
    _Atomic uint64_t hist_node[2][HIST_N]; /* the same per node (--url2) */
    _Atomic uint64_t lat_node_n[2];
} shared_t;

typedef struct opts {
    int target, transport, scenario, hub;
    char host[256], port[16];
    char stream[128];
    long subs, events, rate, missed;
    bool rate_set; /* ingest: paced at --rate instead of as fast as acknowledged */
    double duration_s, timeout_s;
    int procs, src_addrs, publishers, post_batch, window, settle_ms;
    long pid, pid2;
    char host2[256], port2[16]; /* --url2: "" when not given */
    int pub_nodes;              /* publishers on 1 or 2 nodes */
    const char *label;
    bool live;           /* subscribe without a start point (SSE without ?from=) */
    bool check_versions; /* hubstream: versions in order, from the first published one */
    bool mp_name;        /* --transport was given as signalr-messagepack */
    const char *results; /* append a run.sh history line here (fanout, catchup) */
    int linger_s, progress_s;
    char auth[8300]; /* "Authorization: Bearer <--token>\r\n", or "" */
} opts_t;

enum cstate { C_IDLE, C_CONNECTING, C_REQUEST, C_HEADERS, C_BODY, C_CLOSED, C_FAILED };

/* A subscriber connection (in a worker process) or a publisher connection (in the parent). */
typedef struct conn {
    enum cstate state;
    int fd;
    long index;
    int node; /* 0: --url, 1: --url2 */
    uint32_t events;
    const char *out; /* the request being written */
    size_t out_len, out_off;
    char *in; /* carry_cap bytes: unfinished block / frame / record / response */
    size_t in_len;
    /* subscriber */
    bool ready, chunked;
    int ck_state; /* chunked transfer decoding (nchan's SSE) */
    uint64_t ck_left;
    bench_ws_t ws;   /* the frame being read */
    bool handshaken; /* SignalR: the handshake reply came */
    long count;      /* events received (all phases) */
    long last_seq;
    uint8_t *seen;               /* bitmap of seqs received */
    char last_id[64];            /* reconnect: the last event id (SSE id, SignalR version) */
    int64_t first_ver, last_ver; /* --check-versions: the versions this subscriber got */
    int64_t es_id;               /* /eventstreamhub: the last event Id (global position) */
    char *req;                   /* this subscriber's own request or hub hello (resume) */
    size_t req_len;
    /* publisher */
    char *preq;
    size_t preq_len;
    size_t *marks;  /* offsets of each event's "~S" in preq */
    int req_events; /* events preq holds */
    int batch;      /* events in the request in flight, 0 if none */
    int retry;      /* events of a request refused with 429/503, to be sent again */
    bool pub;       /* a publisher connection (in-process: they share the loop) */
} conn_t;

static opts_t op;
static shared_t *sh;
static struct addrinfo *addr, *addr2;
static int ep = -1;
static char *rbuf; /* CARRY_MAX + READ_MAX */
/* a subscriber's c->in: CARRY_MAX, or room for a whole batch on /eventstreamhub (one record) */
static size_t carry_cap = CARRY_MAX;
static uint64_t es_nonce; /* /eventstreamhub: the run's random part of the subscribers' GUIDs */
static int nfails_printed;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "loadgen: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Records the first error of the run (any process). */
static void run_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void run_error(const char *fmt, ...)
{
    int expected = 0;
    if (!atomic_compare_exchange_strong(&sh->err_set, &expected, 1))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sh->err, sizeof(sh->err), fmt, ap);
    va_end(ap);
    atomic_store(&sh->err_set, 2);
}

static void ep_set(conn_t *c, uint32_t events)
{
    if (c->events == events)
        return;
    struct epoll_event e = {.events = events, .data.ptr = c};
    int r = epoll_ctl(ep, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
    if (r && errno == ENOENT)
        r = epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &e);
    if (r)
        die("epoll_ctl: %s", strerror(errno));
    c->events = events;
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        close(c->fd); /* also leaves the epoll set */
        c->fd = -1;
    }
    c->events = 0;
}

/* Starts a non-blocking connect, from source address `src` unless it is NULL. */
static int conn_start(conn_t *c, const struct sockaddr_in *src)
{
    c->node = addr2 && (c->index % 2 == 1) && (!c->pub || op.pub_nodes == 2);
    int fd = bench_connect(c->node ? addr2 : addr, src);
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

/* Writes what is left of c->out: 1 when all is written, 0 when it must wait, -1 on error. */
static int flush_out(conn_t *c)
{
    return bench_send_rest(c->fd, c->out, c->out_len, &c->out_off);
}

/* ---- latency histogram (microseconds) ---- */

static uint64_t *hist; /* this process's, merged into sh->hist at exit */
static uint64_t hist_max, hist_n;
static uint64_t *hist_node[2], hist_node_n[2];

static int hist_bucket(uint64_t us)
{
    if (us < 10000)
        return (int)us; /* 1 us steps to 10 ms */
    if (us < 1000000)
        return 10000 + (int)((us - 10000) / 100); /* 100 us steps to 1 s */
    uint64_t b = 19900 + (us - 1000000) / 100000; /* 100 ms steps */
    return b < HIST_N ? (int)b : HIST_N - 1;
}

static uint64_t hist_value(int b)
{
    if (b < 10000)
        return (uint64_t)b;
    if (b < 19900)
        return 10000 + (uint64_t)(b - 10000) * 100;
    return 1000000 + (uint64_t)(b - 19900) * 100000;
}

/* The same over one node's subscribers (--url2). */
static double hist_node_quantile(int k, double q)
{
    uint64_t n = atomic_load(&sh->lat_node_n[k]), acc = 0;
    for (int b = 0; b < HIST_N && n; b++) {
        acc += atomic_load(&sh->hist_node[k][b]);
        if ((double)acc >= q * (double)n)
            return (double)hist_value(b);
    }
    return 0;
}

/* The smallest bucket value at or above the q quantile of the merged histogram. */
static double hist_quantile(double q)
{
    uint64_t n = atomic_load(&sh->lat_n);
    if (!n)
        return -1;
    uint64_t want = (uint64_t)(q * (double)n), acc = 0;
    if (want >= n)
        want = n - 1;
    for (int b = 0; b < HIST_N; b++) {
        acc += atomic_load(&sh->hist[b]);
        if (acc > want)
            return (double)hist_value(b);
    }
    return (double)atomic_load(&sh->lat_max_us);
}

/* ---- subscribers (in the worker processes) ---- */

static conn_t *subs;
static long nsubs, next_sub, n_connecting;
static long seq_max;      /* the highest seq a subscriber may receive */
static size_t seen_bytes; /* per subscriber */
static struct sockaddr_in src_addr;
static bool use_src;
static bool strict_order;   /* reconnect: one publisher, so one order */
static char sub_req[10240]; /* the request every subscriber sends first */
static size_t sub_req_len;
static uint8_t sr_hello_live[1024]; /* SignalR: handshake + Subscribe(stream, from 0 or nothing) */
static size_t sr_hello_live_len;
static uint32_t *lring; /* this process's deliveries per seq, not yet flushed */
static long lring_lo = -1, lring_hi = -1, local_deliveries, local_gaps, local_dups;

static bool is_sr(void)
{
    return op.target == T_HUBSTREAM && op.transport != X_SSE;
}

static bool is_ws(void)
{
    return op.transport != X_SSE;
}

static bool is_catchup_stream(void)
{
    return strncmp(op.stream, "catchup", 7) == 0;
}

static void sub_fail(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sub_fail(conn_t *c, const char *fmt, ...)
{
    if (c->state == C_FAILED)
        return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (nfails_printed++ < 5)
        fprintf(stderr, "loadgen: subscriber %ld: %s (had %ld events, last seq %ld)\n", c->index,
                msg, c->count, c->last_seq);
    run_error("subscriber %ld: %s (had %ld events)", c->index, msg, c->count);
    if (c->state == C_CONNECTING)
        n_connecting--;
    c->state = C_FAILED;
    atomic_fetch_add(&sh->failed, 1);
    conn_close(c);
}

/* The server ended c's connection (an end of the response, a WebSocket close, an SSE `event:
 * close`): a failure unless c already holds every event it expects (--linger-s keeps complete
 * subscribers open, and a server may let them go). */
static void sub_end(conn_t *c, const char *why)
{
    if (c->state == C_FAILED || c->state == C_CLOSED)
        return;
    if (c->count < atomic_load(&sh->expect)) {
        sub_fail(c, "%s", why);
        return;
    }
    conn_close(c);
    c->state = C_CLOSED;
}

static void ring_note(long seq)
{
    lring[seq & (RING - 1)]++;
    if (lring_lo < 0 || seq < lring_lo)
        lring_lo = seq;
    if (seq > lring_hi)
        lring_hi = seq;
}

/* Publishes this process's counters to the parent; called once per loop iteration. */
static void local_flush(void)
{
    if (lring_lo >= 0) {
        for (long s = lring_lo; s <= lring_hi; s++) {
            uint32_t v = lring[s & (RING - 1)];
            if (v) {
                atomic_fetch_add(&sh->ring[s & (RING - 1)], v);
                lring[s & (RING - 1)] = 0;
            }
        }
        lring_lo = lring_hi = -1;
    }
    if (local_deliveries) {
        atomic_fetch_add(&sh->deliveries, local_deliveries);
        local_deliveries = 0;
    }
    if (local_gaps) {
        atomic_fetch_add(&sh->gaps, local_gaps);
        local_gaps = 0;
    }
    if (local_dups) {
        atomic_fetch_add(&sh->dups, local_dups);
        local_dups = 0;
    }
}

static void sub_ready(conn_t *c)
{
    if (c->ready)
        return;
    c->ready = true;
    if (atomic_fetch_add(&sh->ready, 1) + 1 == op.subs)
        atomic_store(&sh->t_ready_ns, now_ns());
}

/* Reads `digits` decimal digits at p; -1 if one is not a digit. */
static int64_t digits_at(const uint8_t *p, int digits)
{
    int64_t v = 0;
    for (int i = 0; i < digits; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v;
}

/* --check-versions: the server's version of the event c just got must follow the one before
 * (the first one is checked against the first published version at the end). */
static void check_version(conn_t *c, int64_t v)
{
    if (c->first_ver < 0) {
        c->first_ver = v;
        int64_t m = atomic_load(&sh->first_ver_min);
        while (v < m && !atomic_compare_exchange_weak(&sh->first_ver_min, &m, v))
            ;
        m = atomic_load(&sh->first_ver_max);
        while (v > m && !atomic_compare_exchange_weak(&sh->first_ver_max, &m, v))
            ;
    } else if (v != c->last_ver + 1) {
        if (v <= c->last_ver)
            local_dups++;
        else
            local_gaps++;
        if (local_gaps + local_dups < 3)
            fprintf(stderr, "loadgen: subscriber %ld: version %lld after %lld\n", c->index,
                    (long long)v, (long long)c->last_ver);
    }
    c->last_ver = v;
}

/* One event delivered to c: its content [p, p + n) holds the marker; id is the server's id
 * for it (SSE id, SignalR version) or NULL; version is the server's version of it, or -1
 * (unknown: nchan, or not --check-versions). */
static void deliver(conn_t *c, const uint8_t *p, size_t n, const char *id, size_t idlen,
                    int64_t version)
{
    uint64_t t_recv = now_ns();
    if (!atomic_load(&sh->t_first_ns)) {
        uint64_t zero = 0;
        atomic_compare_exchange_strong(&sh->t_first_ns, &zero, t_recv);
    }
    /* the first "~S<10 digits>~T<19 digits>": a binary field before it (a MessagePack
     * version such as 0xcd 0x7e 0x53) may hold the bytes "~S" too */
    int64_t seq = -1, sent = -1;
    const uint8_t *m = p, *end = p + n;
    /* memchr for '~' (vectorised) rather than memmem for "~S": a third of the client's time */
    while ((m = memchr(m, '~', (size_t)(end - m)))) {
        if ((size_t)(end - m) < 2 + SEQ_DIGITS + 2 + NS_DIGITS)
            break;
        if (m[1] == 'S' && m[2 + SEQ_DIGITS] == '~' && m[3 + SEQ_DIGITS] == 'T') {
            seq = digits_at(m + 2, SEQ_DIGITS);
            sent = digits_at(m + 4 + SEQ_DIGITS, NS_DIGITS);
            if (seq >= 0 && sent >= 0)
                break;
        }
        m++;
    }
    if (seq < 0 || sent < 0) {
        sub_fail(c, "an event without the benchmark's marker (%.*s)", (int)(n < 100 ? n : 100),
                 (const char *)p);
        return;
    }
    if (seq < 1 || seq > seq_max) {
        sub_fail(c, "an event with a sequence number out of range (%lld)", (long long)seq);
        return;
    }
    if (id && strict_order && idlen < sizeof(c->last_id)) { /* reconnect: its resume point */
        memcpy(c->last_id, id, idlen);
        c->last_id[idlen] = '\0';
    }
    if ((uint64_t)sent <= t_recv) {
        uint64_t us = (t_recv - (uint64_t)sent) / 1000;
        hist[hist_bucket(us)]++;
        hist_n++;
        hist_node[c->node][hist_bucket(us)]++;
        hist_node_n[c->node]++;
        if (us > hist_max)
            hist_max = us;
    }
    uint8_t bit = (uint8_t)(1u << (seq & 7));
    if (c->seen[seq >> 3] & bit) {
        local_dups++;
        if (local_dups < 3)
            fprintf(stderr, "loadgen: subscriber %ld: event %lld again\n", c->index,
                    (long long)seq);
        return;
    }
    c->seen[seq >> 3] |= bit;
    if (op.check_versions) {
        if (version < 0) {
            sub_fail(c, "an event without a version");
            return;
        }
        check_version(c, version);
    }
    if (strict_order && seq != c->last_seq + 1) {
        local_gaps++;
        if (local_gaps < 3)
            fprintf(stderr, "loadgen: subscriber %ld: event %lld after %ld\n", c->index,
                    (long long)seq, c->last_seq);
    }
    c->last_seq = seq;
    c->count++;
    local_deliveries++;
    if (op.scenario == S_FANOUT && op.window > 0)
        ring_note(seq);
    if (c->count == atomic_load(&sh->expect)) {
        atomic_fetch_add(&sh->complete, 1);
        uint64_t prev = atomic_load(&sh->t_last_ns);
        while (prev < t_recv && !atomic_compare_exchange_weak(&sh->t_last_ns, &prev, t_recv))
            ;
    }
}

/* ---- SSE ---- */

/* One complete SSE block [p, p + n). */
static void sse_block(conn_t *c, const char *p, size_t n)
{
    const char *end = p + n, *id = NULL, *data = NULL;
    size_t idlen = 0, datalen = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        size_t l = (size_t)(nl - p);
        if (l >= 4 && memcmp(p, "id: ", 4) == 0) {
            id = p + 4;
            idlen = l - 4;
        } else if (l >= 6 && memcmp(p, "data: ", 6) == 0) {
            data = p + 6;
            datalen = l - 6;
        } else if (l >= 6 && memcmp(p, "retry:", 6) == 0) {
            sub_ready(c);
        } else if (l >= 12 && memcmp(p, "event: close", 12) == 0) {
            sub_end(c, "the stream was closed (event: close)");
            return;
        }
        p = nl + 1;
    }
    if (!data)
        return;
    int64_t version = -1;
    if (op.check_versions && id && idlen && idlen < 19) {
        version = 0;
        for (size_t i = 0; i < idlen && version >= 0; i++)
            version = id[i] >= '0' && id[i] <= '9' ? version * 10 + (id[i] - '0') : -1;
    }
    deliver(c, (const uint8_t *)data, datalen, id, idlen, version);
}

/* Parses every complete block of [p, p + n); returns the bytes consumed. */
static size_t sse_parse(conn_t *c, const char *p, size_t n)
{
    const char *start = p, *end = p + n, *s = p;
    while (c->state == C_BODY) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl || nl + 1 >= end)
            break;
        if (nl[1] == '\n') {
            sse_block(c, start, (size_t)(nl + 1 - start));
            start = s = nl + 2;
            continue;
        }
        s = nl + 1;
    }
    return (size_t)(start - p);
}

enum { CK_SIZE, CK_EXT, CK_SIZE_LF, CK_DATA, CK_DATA_CR, CK_DATA_LF, CK_END };

/* Removes chunked framing from [p, p + n) in place, carrying the state in c; returns the
 * length of the body bytes now at p, or -1. */
static ssize_t dechunk(conn_t *c, char *p, size_t n)
{
    char *o = p;
    for (size_t i = 0; i < n;) {
        char ch = p[i];
        switch (c->ck_state) {
        case CK_SIZE:
            if (ch >= '0' && ch <= '9')
                c->ck_left = c->ck_left * 16 + (uint64_t)(ch - '0');
            else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
                c->ck_left = c->ck_left * 16 + (uint64_t)((ch | 0x20) - 'a' + 10);
            else if (ch == '\r')
                c->ck_state = CK_SIZE_LF;
            else if (ch == ';')
                c->ck_state = CK_EXT;
            else
                return -1;
            i++;
            break;
        case CK_EXT:
            if (ch == '\r')
                c->ck_state = CK_SIZE_LF;
            i++;
            break;
        case CK_SIZE_LF:
            if (ch != '\n')
                return -1;
            c->ck_state = c->ck_left ? CK_DATA : CK_END;
            i++;
            break;
        case CK_DATA: {
            size_t k = n - i < c->ck_left ? n - i : (size_t)c->ck_left;
            memmove(o, p + i, k);
            o += k;
            i += k;
            c->ck_left -= k;
            if (!c->ck_left)
                c->ck_state = CK_DATA_CR;
            break;
        }
        case CK_DATA_CR:
            if (ch != '\r')
                return -1;
            c->ck_state = CK_DATA_LF;
            i++;
            break;
        case CK_DATA_LF:
            if (ch != '\n')
                return -1;
            c->ck_state = CK_SIZE;
            i++;
            break;
        default: /* the last chunk: the response ended */
            i = n;
            break;
        }
    }
    return o - p;
}

/* ---- WebSocket ---- */

/* Sends one small frame whole, or fails the subscriber. */
static void ws_send_small(conn_t *c, int opcode, const uint8_t *p, size_t n)
{
    uint8_t f[8 + 256];
    size_t len = bench_ws_frame(f, opcode, p, n);
    if (send(c->fd, f, len, MSG_NOSIGNAL) != (ssize_t)len)
        sub_fail(c, "could not send a %zu-byte frame", len);
}

/* The SignalR handshake and Subscribe(stream, from) frames. */
static size_t sr_hello(uint8_t *out, long from)
{
    return bench_sr_hello(out, op.transport == X_WS, op.stream, from);
}

/* A GUID's text (the version 4 form) made of two 64-bit values. */
static void guid_text(char out[37], uint64_t a, uint64_t b)
{
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)), (unsigned long long)(b & 0xffffffffffffu));
}

/* splitmix64's output function: well-spread 64 bits from consecutive inputs. */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15u;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

/* /eventstreamhub: c's handshake and Subscribe, with a SubscriberId and a SubscriberKey of its
 * own, new in each run (the server keeps subscribers: an old id would be a returning one). */
static size_t es_hello(const conn_t *c, uint8_t *out)
{
    char id[37], key[37];
    uint64_t k = es_nonce + 4 * (uint64_t)c->index;
    guid_text(id, mix64(k), mix64(k + 1));
    guid_text(key, mix64(k + 2), mix64(k + 3));
    return bench_es_hello(out, op.transport == X_WS, op.stream, id, key);
}

/* bench_es_events' callback: one event of an /eventstreamhub delivery, checked like a /hub
 * one; the Ids (global positions) must go up. */
static bool on_es_event(void *ctx, int64_t id, const uint8_t *json_data, size_t n)
{
    conn_t *c = ctx;
    if (id <= c->es_id) {
        sub_fail(c, "event Id %lld after %lld", (long long)id, (long long)c->es_id);
        return false;
    }
    c->es_id = id;
    deliver(c, json_data, n, NULL, 0, op.check_versions ? id : -1);
    return c->state == C_BODY;
}

/* One hub record (without its framing): /hub's StreamItems; /eventstreamhub's Completion of
 * Subscribe (the subscriber is ready) and its deliveries (Invocations of the stream). */
static void sr_record(conn_t *c, const uint8_t *r, size_t n)
{
    bool mp = op.transport == X_WS;
    int type = bench_sr_type(r, n, mp);
    if (type == 1 && op.hub == H_ES) {
        const char *err = bench_es_events(r, n, mp, op.stream, on_es_event, c);
        if (err)
            sub_fail(c, "%s (%zu bytes: %.*s)", err, n, (int)(n < 120 ? n : 120), (const char *)r);
    } else if (type == 3 && op.hub == H_ES && !c->ready && bench_sr_completion(r, n, mp) == 2) {
        sub_ready(c);
    } else if (type == 2 && op.hub == H_HUB) {
        int64_t v = -1;
        char id[32];
        int idlen = 0;
        if (strict_order || op.check_versions) {
            /* reconnect: the version is where this subscriber resumes from */
            if (bench_sr_version(r, n, mp, &v)) {
                sub_fail(c, "a StreamItem without a version");
                return;
            }
            idlen = snprintf(id, sizeof(id), "%lld", (long long)v);
        }
        deliver(c, r, n, idlen ? id : NULL, (size_t)idlen, v);
    } else if (type == 7) {
        sub_end(c, "the hub sent Close");
    } else if (type != 6) {
        sub_fail(c, "an unexpected hub record (type %d, %zu bytes: %.*s)", type, n,
                 (int)(n < 120 ? n : 120), (const char *)r);
    }
}

/* bench_sr_feed's callback: the handshake reply, then each hub record. */
static bool on_record(void *ctx, const uint8_t *r, size_t n, bool handshake)
{
    conn_t *c = ctx;
    if (c->state != C_BODY)
        return false;
    if (!handshake) {
        sr_record(c, r, n);
    } else if (n != 2 || memcmp(r, "{}", 2) != 0) {
        sub_fail(c, "the hub handshake was refused: %.*s", (int)(n < 200 ? n : 200),
                 (const char *)r);
    } else if (op.hub == H_HUB) {
        sub_ready(c); /* /eventstreamhub: at the Completion of Subscribe */
    }
    return c->state == C_BODY;
}

/* bench_ws_feed's data callback: hub records for hubstream, whole messages for nchan. */
static bool on_ws_data(void *ctx, const uint8_t *p, size_t n, bool frame_end, bool fin)
{
    conn_t *c = ctx;
    if (c->state != C_BODY)
        return false;
    if (is_sr()) {
        const char *err = bench_sr_feed((uint8_t *)c->in, &c->in_len, carry_cap, p, n,
                                        op.transport == X_WS, &c->handshaken, on_record, c);
        if (err)
            sub_fail(c, "%s", err);
        return c->state == C_BODY;
    }
    /* nchan: one message per frame (a fragmented one is gathered across frames) */
    if (c->in_len + n > CARRY_MAX) {
        sub_fail(c, "a message larger than the client's buffer");
        return false;
    }
    memcpy(c->in + c->in_len, p, n);
    c->in_len += n;
    if (frame_end && fin) {
        deliver(c, (const uint8_t *)c->in, c->in_len, NULL, 0, -1);
        c->in_len = 0;
    }
    return c->state == C_BODY;
}

/* bench_ws_feed's control callback: ping → pong; close → a close back (echoing the status
 * code, RFC 6455 5.5.1), and a failure unless the subscriber already has every event. */
static bool on_ws_control(void *ctx, int opcode, const uint8_t *p, size_t n)
{
    conn_t *c = ctx;
    if (opcode == 9) {
        ws_send_small(c, 10, p, n);
    } else if (opcode == 8) {
        int code = n >= 2 ? p[0] << 8 | p[1] : 0;
        int rl = n > 2 ? (int)n - 2 : 0;
        char why[200];
        snprintf(why, sizeof(why), "the server closed the WebSocket (code %d%s%.*s)", code,
                 rl ? ": " : "", rl, (const char *)p + 2);
        ws_send_small(c, 8, p, n >= 2 ? 2 : 0);
        sub_end(c, why);
    }
    return c->state == C_BODY;
}

/* WebSocket bytes from the server. */
static void ws_bytes(conn_t *c, const uint8_t *p, size_t n)
{
    const char *err = bench_ws_feed(&c->ws, p, n, on_ws_data, on_ws_control, c);
    if (err)
        sub_fail(c, "%s", err);
}

/* ---- subscriber connections ---- */

/* The response head [p, p + n) of a subscriber's request. */
static int sub_headers(conn_t *c, const char *p, size_t n)
{
    const char *want = is_ws() ? "HTTP/1.1 101" : "HTTP/1.1 200";
    if (n < 12 || memcmp(p, want, 12) != 0) {
        size_t l = 0;
        while (l < n && l < 120 && p[l] != '\r')
            l++;
        sub_fail(c, "the subscription was refused: %.*s", (int)l, p);
        return -1;
    }
    c->chunked = memmem(p, n, "\r\nTransfer-Encoding: chunked", 28) ||
                 memmem(p, n, "\r\ntransfer-encoding: chunked", 28);
    c->ck_state = CK_SIZE;
    c->ck_left = 0;
    if (is_sr()) {
        uint8_t es[1024];
        const uint8_t *hello = c->req ? (const uint8_t *)c->req : sr_hello_live;
        size_t len = c->req ? c->req_len : sr_hello_live_len;
        if (op.hub == H_ES) {
            len = es_hello(c, es);
            hello = es;
        }
        if (send(c->fd, hello, len, MSG_NOSIGNAL) != (ssize_t)len) {
            sub_fail(c, "could not send the hub handshake");
            return -1;
        }
    } else if (op.target == T_NCHAN) {
        sub_ready(c); /* nchan answers once the subscriber is registered */
    }
    return 0;
}

static void sub_readable(conn_t *c)
{
    if (is_ws() && c->state == C_BODY) {
        ssize_t r = recv(c->fd, rbuf, READ_MAX, 0);
        if (r < 0) {
            if (errno != EAGAIN && errno != EINTR)
                sub_fail(c, "%s", strerror(errno));
            return;
        }
        if (r == 0) {
            sub_end(c, "the server closed the connection");
            return;
        }
        ws_bytes(c, (const uint8_t *)rbuf, (size_t)r);
        return;
    }
    char *buf = rbuf + CARRY_MAX - c->in_len;
    memcpy(buf, c->in, c->in_len);
    ssize_t r = recv(c->fd, rbuf + CARRY_MAX, READ_MAX, 0);
    if (r < 0) {
        if (errno != EAGAIN && errno != EINTR)
            sub_fail(c, "%s", strerror(errno));
        return;
    }
    if (r == 0) {
        sub_end(c, "the server ended the response");
        return;
    }
    size_t n = c->in_len + (size_t)r, used = 0;
    if (c->state == C_HEADERS) {
        const char *h = memmem(buf, n, "\r\n\r\n", 4);
        if (!h) {
            if (n > CARRY_MAX) {
                sub_fail(c, "response head too large");
            } else {
                memcpy(c->in, buf, n);
                c->in_len = n;
            }
            return;
        }
        if (sub_headers(c, buf, (size_t)(h + 4 - buf)))
            return;
        used = (size_t)(h + 4 - buf);
        c->state = C_BODY;
        c->in_len = 0;
        if (is_ws()) {
            ws_bytes(c, (const uint8_t *)buf + used, n - used);
            return;
        }
        if (c->chunked) {
            ssize_t m = dechunk(c, buf + used, n - used);
            if (m < 0) {
                sub_fail(c, "bad chunked encoding");
                return;
            }
            n = used + (size_t)m;
        }
    } else if (c->chunked) {
        /* the carried bytes are already decoded; decode the new ones behind them */
        ssize_t m = dechunk(c, rbuf + CARRY_MAX, (size_t)r);
        if (m < 0) {
            sub_fail(c, "bad chunked encoding");
            return;
        }
        n = c->in_len + (size_t)m;
    }
    used += sse_parse(c, buf + used, n - used);
    if (c->state != C_BODY)
        return;
    size_t left = n - used;
    if (left > CARRY_MAX) {
        sub_fail(c, "an SSE block larger than the client's buffer");
        return;
    }
    memmove(c->in, buf + used, left);
    c->in_len = left;
}

static void sub_event(conn_t *c, uint32_t ev)
{
    if (c->fd < 0)
        return; /* failed earlier in this batch of events */
    if (c->state == C_CONNECTING) {
        n_connecting--;
        if (bench_connected(c->fd)) {
            c->state = C_REQUEST; /* so that sub_fail does not count it twice */
            sub_fail(c, "connect: %s", strerror(errno));
            return;
        }
        c->state = C_REQUEST;
    }
    if (c->state == C_REQUEST) {
        int r = flush_out(c);
        if (r < 0) {
            sub_fail(c, "send: %s", strerror(errno));
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

/* Starts connects while fewer than CONNECTING_MAX are in flight. */
static void sub_open_more(void)
{
    while (next_sub < nsubs && n_connecting < CONNECTING_MAX) {
        conn_t *c = &subs[next_sub++];
        if (c->state == C_FAILED)
            continue;
        if (c->req && !is_sr()) {
            c->out = c->req;
            c->out_len = c->req_len;
        } else {
            c->out = sub_req;
            c->out_len = sub_req_len;
        }
        c->ready = false;
        c->handshaken = false;
        memset(&c->ws, 0, sizeof(c->ws));
        if (conn_start(c, use_src ? &src_addr : NULL)) {
            c->state = C_REQUEST;
            sub_fail(c, "connect: %s", strerror(errno));
            continue;
        }
        n_connecting++;
    }
}

/* The request (SSE) or the hub hello (SignalR) with which c resumes after its last event. */
static void sub_resume_request(conn_t *c)
{
    free(c->req);
    size_t cap = 1024 + sizeof(op.auth);
    c->req = malloc(cap);
    if (!c->req)
        die("out of memory");
    if (is_sr()) {
        c->req_len = sr_hello((uint8_t *)c->req, atol(c->last_id));
        return;
    }
    const char *path = op.target == T_NCHAN ? "/sub?id=" : "/api/streams/";
    const char *tail = op.target == T_NCHAN ? "" : "/events";
    int n = snprintf(c->req, cap,
                     "GET %s%s%s HTTP/1.1\r\nHost: %s:%s\r\nAccept: text/event-stream\r\n"
                     "%sLast-Event-ID: %s\r\n\r\n",
                     path, op.stream, tail, op.host, op.port, op.auth, c->last_id);
    c->req_len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

/* Sends the SignalR keep-alive ping to every subscribed hub connection. */
static void sr_ping_all(void)
{
    static const uint8_t json_ping[] = "{\"type\":6}\x1e";
    static const uint8_t mp_ping[] = {0x02, 0x91, 0x06};
    for (long i = 0; i < nsubs; i++) {
        conn_t *c = &subs[i];
        if (c->state != C_BODY || !c->ready)
            continue;
        if (op.transport == X_SR_JSON)
            ws_send_small(c, 1, json_ping, sizeof(json_ping) - 1);
        else
            ws_send_small(c, 2, mp_ping, sizeof(mp_ping));
    }
}

static void on_phase(int ph)
{
    if (ph == PH_DROP) {
        for (long i = 0; i < nsubs; i++) {
            conn_t *c = &subs[i];
            if (c->state == C_FAILED)
                continue;
            if (c->state == C_CONNECTING)
                n_connecting--;
            conn_close(c);
            c->state = C_CLOSED;
            c->in_len = 0;
            atomic_fetch_add(&sh->dropped, 1);
        }
    } else if (ph == PH_RESUME) {
        for (long i = 0; i < nsubs; i++)
            if (subs[i].state != C_FAILED)
                sub_resume_request(&subs[i]);
        next_sub = 0;
    }
}

static bool inproc; /* --procs 0: the subscribers live in the publishing process */
static int seen_phase = -1;
static double next_ping;

/* Subscribers [first, first + count) of worker w: their memory and source address. */
static void worker_setup(int w, long first, long count)
{
    nsubs = count;
    subs = calloc((size_t)(count ? count : 1), sizeof(*subs));
    char *inbufs = malloc((size_t)(count ? count : 1) * carry_cap);
    seen_bytes = (size_t)(seq_max / 8 + 1);
    uint8_t *seen = calloc((size_t)(count ? count : 1), seen_bytes);
    hist = calloc(HIST_N, sizeof(*hist));
    hist_node[0] = calloc(HIST_N, sizeof(*hist));
    hist_node[1] = calloc(HIST_N, sizeof(*hist));
    lring = calloc(RING, sizeof(*lring));
    rbuf = malloc(CARRY_MAX + READ_MAX);
    if (!subs || !inbufs || !seen || !hist || !hist_node[0] || !hist_node[1] || !lring || !rbuf)
        die("out of memory for %ld subscribers", count);
    for (long i = 0; i < count; i++) {
        subs[i].fd = -1;
        subs[i].index = first + i;
        subs[i].in = inbufs + (size_t)i * carry_cap;
        subs[i].seen = seen + (size_t)i * seen_bytes;
        subs[i].first_ver = -1;
    }
    if (op.src_addrs > 0) {
        use_src = true;
        src_addr.sin_family = AF_INET;
        src_addr.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)(w % op.src_addrs));
    }
    next_ping = bench_now() + PING_EVERY_S;
}

static void pub_event(conn_t *c, uint32_t ev);

/* One turn of a subscriber loop: the parent's phase, connects, up to timeout_ms of socket
 * events (in-process also the publishers'), the counters, the keep-alive pings. Returns false
 * once the parent said stop. */
static bool worker_turn(int timeout_ms)
{
    int ph = atomic_load(&sh->phase);
    if (ph != seen_phase) {
        on_phase(ph);
        seen_phase = ph;
    }
    if (ph == PH_STOP)
        return false;
    if (ph == PH_CONNECT || ph == PH_RESUME)
        sub_open_more();
    struct epoll_event evs[1024];
    int n = epoll_wait(ep, evs, 1024, timeout_ms);
    for (int i = 0; i < n; i++) {
        conn_t *c = evs[i].data.ptr;
        if (c->pub)
            pub_event(c, evs[i].events);
        else
            sub_event(c, evs[i].events);
    }
    local_flush();
    if (is_sr() && bench_now() >= next_ping) {
        sr_ping_all();
        next_ping = bench_now() + PING_EVERY_S;
    }
    return true;
}

/* The end of a subscriber loop: its counts, bad subscribers and latencies to the parent. */
static void worker_finish(void)
{
    local_flush();
    long bad = 0, expect = atomic_load(&sh->expect);
    for (long i = 0; i < nsubs; i++)
        bad += subs[i].state == C_FAILED || subs[i].count != expect;
    atomic_fetch_add(&sh->bad, bad);
    for (int b = 0; b < HIST_N; b++)
        if (hist[b])
            atomic_fetch_add(&sh->hist[b], hist[b]);
    atomic_fetch_add(&sh->lat_n, hist_n);
    for (int k = 0; k < 2; k++) {
        for (int b = 0; b < HIST_N; b++)
            if (hist_node[k][b])
                atomic_fetch_add(&sh->hist_node[k][b], hist_node[k][b]);
        atomic_fetch_add(&sh->lat_node_n[k], hist_node_n[k]);
    }
    uint64_t prev = atomic_load(&sh->lat_max_us);
    while (prev < hist_max && !atomic_compare_exchange_weak(&sh->lat_max_us, &prev, hist_max))
        ;
    atomic_fetch_add(&sh->procs_done, 1);
}

/* A subscriber process: subscribers [first, first + count), until the parent says stop. */
static void worker(int w, long first, long count)
{
    worker_setup(w, first, count);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* a parent that dies does not leave us behind */
    if (getppid() == 1)
        _exit(1);
    close(ep); /* the parent's */
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    while (worker_turn(5))
        ;
    worker_finish();
    _exit(0);
}

/* ---- publishers (in the parent) ---- */

enum pmode { PM_FREE, PM_FLOW, PM_PACED };

static conn_t *pubs;
static int npubs;
static long next_seq = 1;  /* the next event to publish */
static long acked_events;  /* events acknowledged by the server */
static long full_seq;      /* fan-out: every live subscriber has every event up to here */
static long late_sends;    /* paced: events sent more than 5 ms after their time */
static long posts_retried; /* requests refused with 429 or 503 (nothing appended), sent again */
static int64_t min_first_version = INT64_MAX; /* hubstream: the lowest firstVersion acknowledged */
static bool pub_fatal;

/* The 128 bytes of an event's data; "~S" sits at offset 6. */
static void fill_data(char *d)
{
    static const char head[] = "{\"m\":\"~S0000000000~T0000000000000000000\",\"pad\":\"";
    size_t h = sizeof(head) - 1;
    memcpy(d, head, h);
    memset(d + h, 'x', DATA_BYTES - h - 2);
    d[DATA_BYTES - 2] = '"';
    d[DATA_BYTES - 1] = '}';
}

/* Builds c's request for n events (rarely: once, and again for a shorter last request). */
static void pub_build(conn_t *c, int n)
{
    static const char pre[] = "{\"type\":\"bench\",\"data\":";
    size_t pl = sizeof(pre) - 1;
    bool hub = op.target == T_HUBSTREAM;
    size_t body = hub ? 2 + (size_t)n * (pl + DATA_BYTES + 1) + (size_t)(n - 1) : DATA_BYTES;
    free(c->preq);
    free(c->marks);
    c->preq = malloc(body + 512 + strlen(op.auth));
    c->marks = malloc((size_t)n * sizeof(*c->marks));
    if (!c->preq || !c->marks)
        die("out of memory");
    char path[300];
    if (hub)
        snprintf(path, sizeof(path), "/api/streams/%s/events", op.stream);
    else
        snprintf(path, sizeof(path), "/%s?id=%s", is_catchup_stream() ? "pub_big" : "pub",
                 op.stream);
    int h = snprintf(c->preq, 512 + strlen(op.auth),
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     path, op.host, op.port, op.auth, body);
    char *o = c->preq + h;
    if (hub)
        *o++ = '[';
    for (int i = 0; i < n; i++) {
        if (hub) {
            if (i)
                *o++ = ',';
            memcpy(o, pre, pl);
            o += pl;
        }
        fill_data(o);
        c->marks[i] = (size_t)(o - c->preq) + 6;
        o += DATA_BYTES;
        if (hub)
            *o++ = '}';
    }
    if (hub)
        *o++ = ']';
    c->preq_len = (size_t)(o - c->preq);
    c->batch = 0;
    c->req_events = n;
}

static void put_digits(char *p, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        p[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

static void pub_fail(conn_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void pub_fail(conn_t *c, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "loadgen: publisher %ld: %s\n", c->index, msg);
    run_error("publisher %ld: %s", c->index, msg);
    pub_fatal = true;
    conn_close(c);
    c->state = C_FAILED;
}

/* Sends events next_seq .. next_seq + n - 1 on the idle connection c; n = 0: sends c's last
 * request again (its events were refused with 429/503), with the same sequence numbers. */
static void pub_send(conn_t *c, int n)
{
    uint64_t t = now_ns();
    if (n) {
        if (c->req_events != n)
            pub_build(c, n);
        for (int i = 0; i < n; i++)
            put_digits(c->preq + c->marks[i] + 2, (uint64_t)(next_seq + i), SEQ_DIGITS);
        next_seq += n;
    } else {
        n = c->retry;
        c->retry = 0;
    }
    for (int i = 0; i < n; i++)
        put_digits(c->preq + c->marks[i] + 4 + SEQ_DIGITS, t, NS_DIGITS);
    c->batch = n;
    c->out = c->preq;
    c->out_len = c->preq_len;
    c->out_off = 0;
    c->state = C_REQUEST;
    int r = flush_out(c);
    if (r < 0) {
        pub_fail(c, "send: %s", strerror(errno));
        return;
    }
    c->state = r ? C_HEADERS : C_REQUEST;
    ep_set(c, r ? EPOLLIN | EPOLLRDHUP : EPOLLOUT | EPOLLIN | EPOLLRDHUP);
}

/* Whole responses in c->in: each acknowledges the request in flight. */
static void pub_responses(conn_t *c)
{
    for (;;) {
        char *h = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!h)
            return;
        size_t head = (size_t)(h + 4 - c->in), body = 0;
        char *cl = memmem(c->in, head, "\r\nContent-Length:", 17);
        if (!cl)
            cl = memmem(c->in, head, "\r\ncontent-length:", 17);
        if (cl)
            body = (size_t)strtoul(cl + 17, NULL, 10);
        else if (memmem(c->in, head, "chunked", 7)) {
            pub_fail(c, "a chunked publish response (not supported by this client)");
            return;
        }
        if (c->in_len < head + body)
            return;
        int status = c->in_len > 12 ? atoi(c->in + 9) : 0;
        if (!c->batch) {
            pub_fail(c, "a response to no request");
            return;
        }
        if ((status == 429 || status == 503) && op.target == T_HUBSTREAM) {
            /* nothing was appended (back-pressure): the same events go again */
            posts_retried++;
            c->retry = c->batch;
            c->batch = 0;
            c->state = C_IDLE;
        } else if (status < 200 || status > 299) {
            size_t l = 0;
            while (l < head && l < 200 && c->in[l] != '\r')
                l++;
            pub_fail(c, "publish refused: %.*s %.*s", (int)l, c->in, (int)(body < 200 ? body : 200),
                     c->in + head);
            return;
        } else {
            /* --check-versions: /eventstreamhub's subscribers see global positions */
            const char *key = op.hub == H_ES ? "\"firstPosition\":" : "\"firstVersion\":";
            size_t kl = strlen(key);
            const char *fv = op.target == T_HUBSTREAM ? memmem(c->in + head, body, key, kl) : NULL;
            if (fv && fv + kl < c->in + head + body) {
                int64_t v = strtoll(fv + kl, NULL, 10);
                if (v < min_first_version)
                    min_first_version = v;
            }
            acked_events += c->batch;
            c->batch = 0;
            c->state = C_IDLE;
        }
        if (memmem(c->in, head, "\r\nConnection: close", 19) ||
            memmem(c->in, head, "\r\nconnection: close", 19)) {
            /* e.g. nginx's keepalive_requests: this connection takes no more requests */
            conn_close(c);
            if (conn_start(c, NULL))
                pub_fail(c, "connect: %s", strerror(errno));
            return;
        }
        memmove(c->in, c->in + head + body, c->in_len - head - body);
        c->in_len -= head + body;
    }
}

static void pub_event(conn_t *c, uint32_t ev)
{
    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (bench_connected(c->fd)) {
            pub_fail(c, "connect: %s", strerror(errno));
            return;
        }
        c->state = C_IDLE;
        ep_set(c, EPOLLIN | EPOLLRDHUP);
        return;
    }
    if (c->state == C_REQUEST) {
        int r = flush_out(c);
        if (r < 0) {
            pub_fail(c, "send: %s", strerror(errno));
            return;
        }
        if (r) {
            c->state = C_HEADERS;
            ep_set(c, EPOLLIN | EPOLLRDHUP);
        }
    }
    if (!(ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    ssize_t r = recv(c->fd, c->in + c->in_len, RESP_MAX - c->in_len, 0);
    if (r < 0) {
        if (errno != EAGAIN && errno != EINTR)
            pub_fail(c, "recv: %s", strerror(errno));
        return;
    }
    if (r == 0) {
        if (c->batch) {
            pub_fail(c, "the server closed the connection with a publish in flight");
            return;
        }
        /* an idle keep-alive connection the server let go: open another */
        conn_close(c);
        if (conn_start(c, NULL))
            pub_fail(c, "connect: %s", strerror(errno));
        return;
    }
    c->in_len += (size_t)r;
    pub_responses(c);
    if (c->in_len == RESP_MAX)
        pub_fail(c, "a response larger than the client's buffer");
}

static void pubs_open(void)
{
    pubs = calloc((size_t)npubs, sizeof(*pubs));
    char *in = malloc((size_t)npubs * RESP_MAX);
    if (!pubs || !in)
        die("out of memory");
    for (int i = 0; i < npubs; i++) {
        pubs[i].fd = -1;
        pubs[i].index = i;
        pubs[i].pub = true;
        pubs[i].in = in + (size_t)i * RESP_MAX;
        if (conn_start(&pubs[i], NULL))
            die("connect to %s:%s: %s", op.host, op.port, strerror(errno));
    }
}

static double deadline;

static double t_start, next_progress, next_rss_sample;
static long rss_max_kb = -1; /* the server's largest RSS seen (--pid and its children) */

/* --progress-s: one line on stderr every so often, from the parent's waits. Also where the
 * server's RSS is sampled (every 0.2 s: server_rss_max_kb; nginx's VmHWM is not its workers'). */
static void progress(void)
{
    double now = bench_now();
    if (op.pid > 0 && now >= next_rss_sample) {
        next_rss_sample = now + 0.2;
        long kb = bench_tree_rss_kb(op.pid);
        if (kb > rss_max_kb)
            rss_max_kb = kb;
    }
    if (op.progress_s <= 0 || now < next_progress)
        return;
    next_progress = now + op.progress_s;
    fprintf(stderr,
            "loadgen: %6.1fs acked %ld events, deliveries %ld, ready %ld, complete %ld/%ld, "
            "failed %ld\n",
            now - t_start, acked_events, atomic_load(&sh->deliveries), atomic_load(&sh->ready),
            atomic_load(&sh->complete), op.subs, atomic_load(&sh->failed));
}

/* Waits up to timeout_ms for publisher connection events and handles them. */
static void pubs_serve(int timeout_ms)
{
    if (inproc) {
        worker_turn(timeout_ms);
        progress();
        return;
    }
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    for (int i = 0; i < n; i++)
        pub_event(evs[i].data.ptr, evs[i].events);
    progress();
}

static bool past_deadline(const char *what)
{
    if (bench_now() < deadline)
        return false;
    run_error("timeout (%.0f s) %s", op.timeout_s, what);
    return true;
}

/* Advances full_seq over the events every live subscriber now holds. */
static void flow_advance(void)
{
    long live = op.subs - atomic_load(&sh->failed);
    while (full_seq + 1 < next_seq &&
           (long)atomic_load(&sh->ring[(full_seq + 1) & (RING - 1)]) >= live) {
        /* nobody adds to this slot again before event full_seq + 1 + RING, which is not
         * published before full_seq has moved past the window */
        atomic_store(&sh->ring[(full_seq + 1) & (RING - 1)], 0);
        full_seq++;
    }
}

/* Publishes events up to `upto` and waits for their acknowledgements: 0, or -1 on an error, a
 * failed subscriber (not in PM_FREE) or the deadline. */
static int publish(long upto, enum pmode mode)
{
    uint64_t t0 = now_ns();
    long first = next_seq;
    while (acked_events < upto) {
        if (pub_fatal || past_deadline("while publishing"))
            return -1;
        if ((mode != PM_FREE || op.scenario == S_FANOUT) && atomic_load(&sh->failed))
            return -1;
        if (mode == PM_FLOW)
            flow_advance();
        uint64_t now = now_ns();
        for (int i = 0; i < npubs; i++) {
            conn_t *c = &pubs[i];
            if (c->state != C_IDLE)
                continue;
            if (c->retry) {
                pub_send(c, 0);
                continue;
            }
            if (next_seq > upto)
                continue; /* a retry on a later connection may still go */
            long left = upto - next_seq + 1;
            int n = op.target == T_HUBSTREAM && left > op.post_batch ? op.post_batch
                    : op.target == T_HUBSTREAM                       ? (int)left
                                                                     : 1;
            if (mode == PM_FLOW && next_seq + n - 1 - full_seq > op.window)
                continue; /* a retry on a later connection may still go */
            if (mode == PM_PACED) {
                uint64_t due = t0 + (uint64_t)((double)(next_seq - first) * 1e9 / (double)op.rate);
                if (due > now)
                    break;
                if (now - due > 5000000)
                    late_sends++; /* all connections busy: the server is not keeping up */
            }
            pub_send(c, n);
        }
        pubs_serve(mode == PM_FREE ? 50 : 1);
    }
    return 0;
}

/* Waits until every publisher connection is connected. */
static int pubs_connected(void)
{
    for (;;) {
        int idle = 0;
        for (int i = 0; i < npubs; i++)
            idle += pubs[i].state == C_IDLE;
        if (idle == npubs)
            return 0;
        if (pub_fatal || past_deadline("connecting the publishers"))
            return -1;
        pubs_serve(10);
    }
}

/* ---- the subscriber processes, seen from the parent ---- */

static pid_t kids[MAX_PROCS];
static int nkids;

static void workers_start(void)
{
    if (inproc) {
        worker_setup(0, 0, op.subs);
        return;
    }
    long per = op.subs / op.procs, rem = op.subs % op.procs, first = 0;
    fflush(NULL);
    for (int w = 0; w < op.procs; w++) {
        long count = per + (w < rem);
        pid_t p = fork();
        if (p < 0)
            die("fork: %s", strerror(errno));
        if (p == 0)
            worker(w, first, count);
        kids[nkids++] = p;
        first += count;
    }
}

static bool worker_died(void)
{
    for (int i = 0; i < nkids; i++) {
        int st;
        if (kids[i] > 0 && waitpid(kids[i], &st, WNOHANG) == kids[i]) {
            kids[i] = -1;
            run_error("subscriber process %d ended early (status %d)", i, st);
            return true;
        }
    }
    return false;
}

static void workers_stop(void)
{
    atomic_store(&sh->phase, PH_STOP);
    if (inproc) {
        if (subs)
            worker_finish();
        return;
    }
    double until = bench_now() + 30;
    for (int i = 0; i < nkids; i++) {
        while (kids[i] > 0) {
            int st;
            pid_t r = waitpid(kids[i], &st, WNOHANG);
            if (r == kids[i] || r < 0) {
                kids[i] = -1;
                break;
            }
            if (bench_now() > until) {
                kill(kids[i], SIGKILL);
                waitpid(kids[i], &st, 0);
                kids[i] = -1;
                run_error("subscriber process %d did not stop", i);
                break;
            }
            usleep(2000);
        }
    }
}

/* Waits until *counter reaches want: 0, or -1 on a failed subscriber or the deadline. Keeps the
 * publisher connections served meanwhile. */
static int wait_count(_Atomic long *counter, long want, const char *what)
{
    while (atomic_load(counter) < want) {
        if (atomic_load(&sh->failed) || pub_fatal || worker_died())
            return -1;
        if (bench_now() >= deadline) {
            run_error("timeout (%.0f s) waiting for %s (%ld of %ld)", op.timeout_s, what,
                      atomic_load(counter), want);
            return -1;
        }
        pubs_serve(1);
    }
    return 0;
}

/* Sleeps s seconds, serving the publishers: -1 if a subscriber failed meanwhile. */
static int hold(double s)
{
    double until = bench_now() + s;
    while (bench_now() < until) {
        if (atomic_load(&sh->failed) || worker_died())
            return -1;
        pubs_serve(20);
    }
    return 0;
}

static double server_cpu(void)
{
    if (op.pid <= 0)
        return -1;
    double c = bench_tree_cpu(op.pid);
    if (op.pid2 > 0 && c >= 0) {
        double c2 = bench_tree_cpu(op.pid2);
        c = c2 >= 0 ? c + c2 : -1;
    }
    return c;
}

static long server_rss(void)
{
    return op.pid > 0 ? bench_tree_rss_kb(op.pid) : -1;
}

/* CPU seconds of this process and its living subscriber processes so far (from /proc, so that
 * an interval can be measured while they run). */
static double client_cpu(void)
{
    double s = bench_self_cpu();
    for (int i = 0; i < nkids; i++) {
        double k = kids[i] > 0 ? bench_pid_cpu(kids[i]) : -1;
        if (k > 0)
            s += k;
    }
    return s;
}

/* ---- scenarios ---- */

typedef struct result {
    bool ok;
    double elapsed_s, server_cpu_s, publish_s;
    double conns_per_s, recover_s;
    long rss_base_kb, rss_kb, rss_end_kb;
    /* over the measured interval (measure_begin .. measure_end) */
    double client_cpu_s, other_cpu_s;
    long rss_start_kb, rss_peak_kb;
} result_t;

static result_t res;
static double m_srv0, m_cli0, m_busy0, m_t0;
static bool m_ended;

/* The measured interval starts: the server's CPU and RSS, the client's CPU, the machine's. */
static void measure_begin(void)
{
    m_srv0 = server_cpu();
    m_cli0 = client_cpu();
    m_busy0 = bench_sys_busy();
    res.rss_start_kb = server_rss();
    m_t0 = bench_now();
}

/* It ends: server_cpu_s, client_cpu_s, other_cpu_s (what neither took of the machine), the
 * server's RSS now and its peak (VmHWM, over its whole life). */
static void measure_end(void)
{
    m_ended = true;
    double srv1 = server_cpu(), cli1 = client_cpu(), busy1 = bench_sys_busy();
    double el = bench_now() - m_t0;
    res.server_cpu_s = m_srv0 >= 0 && srv1 >= 0 ? srv1 - m_srv0 : -1;
    if (res.server_cpu_s >= 0 && el > 1 && res.server_cpu_s < 0.01 * el) {
        fprintf(stderr,
                "loadgen: pid %ld used almost no CPU (%.2f s in %.1f s): is it the server itself "
                "and not a wrapper? Its CPU is not reported.\n",
                op.pid, res.server_cpu_s, el);
        res.server_cpu_s = -1;
    }
    res.client_cpu_s = cli1 - m_cli0;
    res.other_cpu_s =
        busy1 - m_busy0 - res.client_cpu_s - (res.server_cpu_s > 0 ? res.server_cpu_s : 0);
    if (m_busy0 < 0 || busy1 < 0 || res.other_cpu_s < 0)
        res.other_cpu_s = 0;
    res.rss_end_kb = server_rss();
    /* hubstream is one process; nginx's master is not where its memory is */
    res.rss_peak_kb = op.pid > 0 && op.target == T_HUBSTREAM ? bench_pid_hwm_kb(op.pid) : -1;
}

static void sub_requests_build(void)
{
    bool hub = op.target == T_HUBSTREAM;
    /* a new stream (or a stored one replayed): from 0, so nothing published is missed */
    bool oldest = op.scenario == S_CATCHUP;
    char path[400];
    if (hub)
        snprintf(path, sizeof(path), "/api/streams/%s/events%s", op.stream,
                 op.live ? "" : "?from=0");
    else
        snprintf(path, sizeof(path), "/%s?id=%s", oldest ? "sub_oldest" : "sub", op.stream);
    if (hub && is_ws())
        snprintf(path, sizeof(path), "/%s", hub_names[op.hub]);
    if (is_ws())
        sub_req_len = (size_t)snprintf(sub_req, sizeof(sub_req),
                                       "GET %s HTTP/1.1\r\nHost: %s:%s\r\nUpgrade: websocket\r\n"
                                       "Connection: Upgrade\r\n"
                                       "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                       "Sec-WebSocket-Version: 13\r\n%s\r\n",
                                       path, op.host, op.port, op.auth);
    else
        sub_req_len = (size_t)snprintf(sub_req, sizeof(sub_req),
                                       "GET %s HTTP/1.1\r\nHost: %s:%s\r\n"
                                       "Accept: text/event-stream\r\n%s\r\n",
                                       path, op.host, op.port, op.auth);
    if (is_sr() && op.hub == H_HUB)
        sr_hello_live_len = sr_hello(sr_hello_live, op.live ? -1 : 0);
}

static int run_fanout(void)
{
    atomic_store(&sh->expect, op.events);
    workers_start();
    pubs_open();
    if (pubs_connected() || wait_count(&sh->ready, op.subs, "subscribers") ||
        hold(op.settle_ms / 1000.0))
        return -1;
    measure_begin();
    double t0 = m_t0;
    int r = publish(op.events, op.scenario == S_LATENCY ? PM_PACED
                               : op.window > 0          ? PM_FLOW
                                                        : PM_FREE);
    res.publish_s = bench_now() - t0;
    if (r || wait_count(&sh->complete, op.subs, "every delivery"))
        return -1;
    measure_end();
    res.elapsed_s = (double)atomic_load(&sh->t_last_ns) / 1e9 - t0;
    return 0;
}

static int run_idle(void)
{
    atomic_store(&sh->expect, 1);
    res.rss_base_kb = server_rss();
    double t0 = bench_now();
    workers_start();
    pubs_open();
    if (pubs_connected() || wait_count(&sh->ready, op.subs, "subscribers"))
        return -1;
    res.conns_per_s = (double)op.subs / ((double)atomic_load(&sh->t_ready_ns) / 1e9 - t0);
    if (hold(2.0))
        return -1;
    res.rss_kb = server_rss();
    if (hold(op.duration_s))
        return -1;
    res.rss_end_kb = server_rss();
    /* still alive: one event reaches every subscriber */
    double t1 = bench_now();
    if (publish(1, PM_FREE) || wait_count(&sh->complete, op.subs, "the final event"))
        return -1;
    res.elapsed_s = bench_now() - t1;
    return 0;
}

static int run_ingest(void)
{
    pubs_open();
    if (pubs_connected())
        return -1;
    measure_begin();
    if (publish(op.events, op.rate_set ? PM_PACED : PM_FREE))
        return -1;
    res.elapsed_s = bench_now() - m_t0;
    measure_end();
    return 0;
}

static int run_catchup(void)
{
    atomic_store(&sh->expect, op.events);
    /* the clock starts before the subscriber processes: the first connect follows at once */
    measure_begin();
    workers_start();
    if (wait_count(&sh->complete, op.subs, "every event"))
        return -1;
    measure_end();
    res.elapsed_s = (double)atomic_load(&sh->t_last_ns) / 1e9 - m_t0;
    return 0;
}

static int run_reconnect(void)
{
    atomic_store(&sh->expect, WARM_EVENTS);
    workers_start();
    pubs_open();
    if (pubs_connected() || wait_count(&sh->ready, op.subs, "subscribers") ||
        hold(op.settle_ms / 1000.0) || publish(WARM_EVENTS, PM_FREE) ||
        wait_count(&sh->complete, op.subs, "the live events"))
        return -1;
    atomic_store(&sh->complete, 0);
    atomic_store(&sh->ready, 0);
    atomic_store(&sh->t_last_ns, 0);
    atomic_store(&sh->expect, WARM_EVENTS + op.missed);
    atomic_store(&sh->phase, PH_DROP);
    if (wait_count(&sh->dropped, op.subs, "the subscribers to drop") ||
        publish(WARM_EVENTS + op.missed, PM_FREE))
        return -1;
    measure_begin();
    double t0 = m_t0;
    atomic_store(&sh->phase, PH_RESUME);
    if (wait_count(&sh->complete, op.subs, "every subscriber to catch up"))
        return -1;
    measure_end();
    res.recover_s = (double)atomic_load(&sh->t_last_ns) / 1e9 - t0;
    res.elapsed_s = res.recover_s;
    res.conns_per_s = (double)op.subs / ((double)atomic_load(&sh->t_ready_ns) / 1e9 - t0);
    return 0;
}

/* ---- output ---- */

static void json_num(const char *name, double v, int decimals)
{
    if (v < 0 || v != v)
        return;
    printf(",\"%s\":%.*f", name, decimals, v);
}

/* Seconds from the start of the measured interval to the first event any subscriber got. */
static double first_event_s(void)
{
    uint64_t t = atomic_load(&sh->t_first_ns);
    return t && m_t0 > 0 ? (double)t / 1e9 - m_t0 : -1;
}

/* The name of the transport in run.sh's history files. */
static const char *proto_name(void)
{
    return op.transport == X_WS && op.target == T_HUBSTREAM ? "signalr-messagepack"
                                                            : transport_names[op.transport];
}

/* --results: one line in the format of perf/results/sse.jsonl and signalr.jsonl (fanout) or
 * catchup.jsonl (catchup), the keys bench_fanout wrote before loadgen took its place, so that
 * the history stays comparable; a few keys more ("client", "live", "procs", latency). */
static int record(const bench_env_t *env, bool ok)
{
    long deliveries = atomic_load(&sh->deliveries), bad = atomic_load(&sh->bad);
    double el = res.elapsed_s > 0 ? res.elapsed_s : 0, srv = res.server_cpu_s;
    char *line = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (!f)
        return -1;
    bool cu = op.scenario == S_CATCHUP;
    fprintf(f, "{\"bench\":\"%s%s\",", cu ? "catchup-" : "", proto_name());
    bench_env_json(f, env);
    if (cu) {
        fprintf(f, ",\"params\":{\"subs\":%ld,\"events\":%ld,\"timeout_s\":%.0f,", op.subs,
                op.events, op.timeout_s);
    } else {
        /* window: the most unacknowledged POSTs (one per connection, no pipelining), as
         * bench_fanout counted it; flow_window: loadgen's events ahead of the slowest
         * subscriber (0: none, publishing as fast as acknowledged) */
        fprintf(f,
                ",\"params\":{\"subs\":%ld,\"events\":%ld,\"data_bytes\":%d,\"post_batch\":%d,"
                "\"post_conns\":%d,\"window\":%d,\"flow_window\":%d,\"settle_ms\":%d,"
                "\"timeout_s\":%.0f,\"live\":%s,",
                op.subs, op.events, DATA_BYTES, op.post_batch, npubs, npubs, op.window,
                op.settle_ms, op.timeout_s, op.live ? "true" : "false");
    }
    fprintf(f, "\"procs\":%d,\"client\":\"loadgen\"},", op.procs);
    if (cu) {
        double eps = el > 0 ? (double)deliveries / el : 0;
        fprintf(f,
                "\"elapsed_s\":%.3f,\"first_event_s\":%.3f,\"events_received\":%ld,"
                "\"events_s\":%.0f,\"events_s_per_sub\":%.0f,",
                el, first_event_s(), deliveries, eps, eps / (double)op.subs);
        if (srv >= 0)
            fprintf(f,
                    "\"server_cpu_s\":%.2f,\"events_per_server_cpu_s\":%.0f,"
                    "\"server_rss_start_kb\":%ld,\"server_rss_end_kb\":%ld,"
                    "\"server_peak_rss_kb\":%ld,",
                    srv, srv > 0 ? (double)deliveries / srv : 0, res.rss_start_kb, res.rss_end_kb,
                    res.rss_peak_kb);
        else
            fprintf(f, "\"server_cpu_s\":null,");
    } else {
        double pub = res.publish_s;
        fprintf(f,
                "\"elapsed_s\":%.3f,\"publish_s\":%.3f,\"publish_events_s\":%.0f,"
                "\"deliveries\":%ld,\"deliveries_s\":%.0f,",
                el, pub, pub > 0 ? (double)acked_events / pub : 0, deliveries,
                el > 0 ? (double)deliveries / el : 0);
        if (srv >= 0)
            fprintf(f,
                    "\"server_cpu_s\":%.2f,\"deliveries_per_server_cpu_s\":%.0f,"
                    "\"server_rss_kb\":%ld,",
                    srv, srv > 0 ? (double)deliveries / srv : 0, res.rss_end_kb);
        else
            fprintf(f, "\"server_cpu_s\":null,");
        if (atomic_load(&sh->lat_n))
            fprintf(f, "\"lat_p50_us\":%.0f,\"lat_p99_us\":%.0f,\"lat_max_us\":%llu,",
                    hist_quantile(0.50), hist_quantile(0.99),
                    (unsigned long long)atomic_load(&sh->lat_max_us));
    }
    fprintf(f, "\"client_cpu_s\":%.2f,\"other_cpu_s\":%.2f,", res.client_cpu_s, res.other_cpu_s);
    if (!cu)
        fprintf(f, "\"posts_retried\":%ld,", posts_retried);
    fprintf(f, "\"bad_subs\":%ld,\"ok\":%s", bad, ok ? "true" : "false");
    if (!ok) {
        fprintf(f, ",\"error\":");
        bench_json_str(f, atomic_load(&sh->err_set) == 2 ? sh->err : "unknown");
    }
    fprintf(f, "}");
    fclose(f);
    int rc = bench_append_line(op.results, line);
    if (rc == 0)
        fprintf(stderr, "loadgen: appended to %s\n", op.results);
    free(line);
    return rc;
}

static void report(bool ok)
{
    long deliveries = atomic_load(&sh->deliveries);
    long gaps = atomic_load(&sh->gaps), dups = atomic_load(&sh->dups);
    printf("{\"target\":\"%s\",\"scenario\":\"%s\"", target_names[op.target],
           scenario_names[op.scenario]);
    if (op.scenario != S_INGEST)
        printf(",\"transport\":\"%s\",\"subs\":%ld", transport_names[op.transport], op.subs);
    if (op.scenario != S_INGEST && is_sr())
        printf(",\"hub\":\"%s\"", hub_names[op.hub]);
    printf(",\"events\":%ld,\"ok\":%s", op.scenario == S_RECONNECT ? op.missed : op.events,
           ok ? "true" : "false");
    if (!ok) {
        printf(",\"error\":");
        bench_json_str(stdout, atomic_load(&sh->err_set) == 2 ? sh->err : "unknown");
    }
    if (op.label) {
        printf(",\"label\":");
        bench_json_str(stdout, op.label);
    }
    printf(",\"stream\":");
    bench_json_str(stdout, op.stream);
    json_num("elapsed_s", res.elapsed_s, 3);
    json_num("server_cpu_s", res.server_cpu_s, 3);
    switch (op.scenario) {
    case S_FANOUT:
    case S_LATENCY:
        printf(",\"deliveries\":%ld", deliveries);
        if (res.elapsed_s > 0)
            json_num("deliveries_per_s", (double)deliveries / res.elapsed_s, 0);
        if (res.server_cpu_s > 0)
            json_num("deliveries_per_cpu_s", (double)deliveries / res.server_cpu_s, 0);
        if (res.publish_s > 0)
            json_num("publish_per_s", (double)op.events / res.publish_s, 0);
        printf(",\"publishers\":%d,\"window\":%d", npubs, op.window);
        if (op.scenario == S_LATENCY)
            printf(",\"rate\":%ld,\"duration_s\":%.1f,\"late_sends\":%ld", op.rate, op.duration_s,
                   late_sends);
        if (res.rss_end_kb > 0)
            printf(",\"server_rss_kb\":%ld", res.rss_end_kb);
        break;
    case S_IDLE:
        printf(",\"conns\":%ld", op.subs);
        json_num("conns_per_s", res.conns_per_s, 0);
        printf(",\"rss_base_kb\":%ld,\"rss_kb\":%ld,\"rss_end_kb\":%ld", res.rss_base_kb,
               res.rss_kb, res.rss_end_kb);
        if (res.rss_kb > 0 && res.rss_base_kb > 0)
            json_num("rss_per_conn_bytes",
                     (double)(res.rss_kb - res.rss_base_kb) * 1024.0 / (double)op.subs, 0);
        printf(",\"hold_s\":%.1f", op.duration_s);
        break;
    case S_INGEST:
        printf(",\"publishers\":%d,\"post_batch\":%d", npubs,
               op.target == T_HUBSTREAM ? op.post_batch : 1);
        if (res.elapsed_s > 0)
            json_num("events_per_s", (double)acked_events / res.elapsed_s, 0);
        break;
    case S_CATCHUP:
        printf(",\"deliveries\":%ld", deliveries);
        if (res.elapsed_s > 0) {
            json_num("events_per_s", (double)deliveries / res.elapsed_s, 0);
            json_num("events_per_s_per_sub", (double)deliveries / res.elapsed_s / (double)op.subs,
                     0);
        }
        json_num("first_event_s", first_event_s(), 3);
        if (res.server_cpu_s > 0)
            json_num("events_per_cpu_s", (double)deliveries / res.server_cpu_s, 0);
        if (res.rss_start_kb > 0)
            printf(",\"server_rss_start_kb\":%ld,\"server_rss_end_kb\":%ld,"
                   "\"server_peak_rss_kb\":%ld",
                   res.rss_start_kb, res.rss_end_kb, res.rss_peak_kb);
        break;
    case S_RECONNECT:
        json_num("recover_s", res.recover_s, 3);
        json_num("conns_per_s", res.conns_per_s, 0);
        printf(",\"deliveries\":%ld", deliveries);
        break;
    }
    if (rss_max_kb > 0)
        printf(",\"server_rss_max_kb\":%ld", rss_max_kb);
    if (op.scenario != S_INGEST)
        printf(",\"gaps\":%ld,\"dups\":%ld", gaps, dups);
    /* a replay's events were published long before: their age is no latency */
    if (op.scenario != S_CATCHUP && op.scenario != S_RECONNECT) {
        if (atomic_load(&sh->lat_n)) {
            json_num("lat_p50_us", hist_quantile(0.50), 0);
            json_num("lat_p99_us", hist_quantile(0.99), 0);
            json_num("lat_p999_us", hist_quantile(0.999), 0);
            printf(",\"lat_max_us\":%llu", (unsigned long long)atomic_load(&sh->lat_max_us));
            for (int k = 0; addr2 && k < 2; k++) {
                if (!atomic_load(&sh->lat_node_n[k]))
                    continue;
                char key[32];
                snprintf(key, sizeof key, "lat%d_p50_us", k + 1);
                json_num(key, hist_node_quantile(k, 0.50), 0);
                snprintf(key, sizeof key, "lat%d_p99_us", k + 1);
                json_num(key, hist_node_quantile(k, 0.99), 0);
            }
        }
    }
    struct rusage me, kids_ru;
    getrusage(RUSAGE_SELF, &me);
    getrusage(RUSAGE_CHILDREN, &kids_ru);
    double cpu = (double)(me.ru_utime.tv_sec + me.ru_stime.tv_sec + kids_ru.ru_utime.tv_sec +
                          kids_ru.ru_stime.tv_sec) +
                 (double)(me.ru_utime.tv_usec + me.ru_stime.tv_usec + kids_ru.ru_utime.tv_usec +
                          kids_ru.ru_stime.tv_usec) /
                     1e6;
    json_num("client_cpu_s", cpu, 3);
    if (m_ended) {
        json_num("client_cpu_interval_s", res.client_cpu_s, 3);
        json_num("other_cpu_s", res.other_cpu_s, 3);
    }
    if (npubs)
        printf(",\"posts_retried\":%ld", posts_retried);
    if (op.scenario != S_INGEST)
        printf(",\"bad_subs\":%ld", atomic_load(&sh->bad));
    printf(",\"procs\":%d,\"src_addrs\":%d}\n", op.procs, op.src_addrs);
    fflush(stdout);
}

/* ---- options ---- */

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --target hubstream|nchan --url http://127.0.0.1:PORT\n"
               "               --scenario fanout|latency|idle|ingest|catchup|reconnect\n"
               "               [--transport ws|signalr-json|sse] [--hub hub|eventstreamhub]\n"
               "               [--stream NAME] [--subs N]\n"
               "               [--events N] [--rate R] [--duration-s D] [--missed M]\n"
               "               [--publishers N] [--post-batch B] [--window W] [--settle-ms MS]\n"
               "               [--procs P] [--src-addrs K] [--pid SERVER_PID] [--timeout-s T]\n"
               "               [--url2 http://HOST:PORT [--pid2 PID] [--pub-nodes 1|2]]\n"
               "               [--label TEXT] [--live] [--check-versions] [--results FILE]\n"
               "               [--no-record] [--linger-s N] [--progress-s N] [--token JWT]\n"
               "--transport signalr-messagepack is ws; --post-conns is --publishers; --protocol\n"
               "is --transport (bench_fanout's names). --window 0: no flow control (fanout).\n"
               "--procs 0: the subscribers share the publishers' loop (one process).\n"
               "One JSON object on stdout; exit 0 if the run was ok, 1 if not, 2 on bad usage.\n"
               "The top of perf/loadgen.c describes each scenario.\n");
}

static int pick(const char *s, const char *const *names, int n, const char *flag)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    die("%s: unknown value '%s'", flag, s);
}

static void parse_args(int argc, char **argv)
{
    static const struct option lo[] = {
        {"target", 1, 0, 't'},
        {"token", 1, 0, 1001},
        {"hub", 1, 0, 1002},
        {"url", 1, 0, 'u'},
        {"scenario", 1, 0, 's'},
        {"transport", 1, 0, 'x'},
        {"stream", 1, 0, 'S'},
        {"subs", 1, 0, 'n'},
        {"events", 1, 0, 'e'},
        {"rate", 1, 0, 'r'},
        {"duration-s", 1, 0, 'd'},
        {"missed", 1, 0, 'm'},
        {"publishers", 1, 0, 'p'},
        {"post-batch", 1, 0, 'b'},
        {"window", 1, 0, 'w'},
        {"settle-ms", 1, 0, 'W'},
        {"procs", 1, 0, 'P'},
        {"src-addrs", 1, 0, 'A'},
        {"pid", 1, 0, 'i'},
        {"url2", 1, 0, '2'},
        {"pid2", 1, 0, '3'},
        {"pub-nodes", 1, 0, '4'},
        {"timeout-s", 1, 0, 'T'},
        {"label", 1, 0, 'l'},
        {"help", 0, 0, 'h'},
        {"live", 0, 0, 'L'},
        {"check-versions", 0, 0, 'V'},
        {"results", 1, 0, 'R'},
        {"no-record", 0, 0, 'N'},
        {"linger-s", 1, 0, 'G'},
        {"progress-s", 1, 0, 'g'},
        /* bench_fanout's names, so that run.sh's SSE_ARGS and CATCHUP_ARGS keep working */
        {"post-conns", 1, 0, 'p'},
        {"protocol", 1, 0, 'x'},
        {0, 0, 0, 0}};
    bool no_record = false;
    op.target = -1;
    op.scenario = -1;
    op.transport = X_WS;
    op.subs = -1;
    op.events = -1;
    op.rate = 1000;
    op.duration_s = -1;
    op.missed = 100;
    op.publishers = -1;
    op.post_batch = 1;
    op.window = 500;
    op.settle_ms = 500;
    op.procs = 1;
    op.timeout_s = 300;
    const char *url = NULL, *url2 = NULL;
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            op.target = pick(optarg, target_names, 2, "--target");
            break;
        case 'u':
            url = optarg;
            break;
        case 1002:
            op.hub = pick(optarg, hub_names, 2, "--hub");
            break;
        case 's':
            op.scenario = pick(optarg, scenario_names, 6, "--scenario");
            break;
        case 'x':
            op.mp_name = strcmp(optarg, "signalr-messagepack") == 0;
            op.transport = op.mp_name ? X_WS : pick(optarg, transport_names, 3, "--transport");
            break;
        case 1001:
            if (strlen(optarg) > 8192 || strpbrk(optarg, "\r\n"))
                die("--token: at most 8 KiB, one line");
            snprintf(op.auth, sizeof(op.auth), "Authorization: Bearer %s\r\n", optarg);
            break;
        case 'S':
            if (!*optarg || strlen(optarg) > 100 ||
                strspn(optarg, "abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                               "0123456789-_.") != strlen(optarg))
                die("--stream wants 1-100 characters of [A-Za-z0-9._-]");
            snprintf(op.stream, sizeof(op.stream), "%s", optarg);
            break;
        case 'n':
            op.subs = bench_parse_long(optarg, "--subs", 0);
            break;
        case 'e':
            op.events = bench_parse_long(optarg, "--events", 1);
            break;
        case 'r':
            op.rate = bench_parse_long(optarg, "--rate", 1);
            op.rate_set = true;
            break;
        case 'd':
            op.duration_s = (double)bench_parse_long(optarg, "--duration-s", 0);
            break;
        case 'm':
            op.missed = bench_parse_long(optarg, "--missed", 1);
            break;
        case 'p':
            op.publishers = (int)bench_parse_long(optarg, "--publishers", 1);
            break;
        case 'b':
            op.post_batch = (int)bench_parse_long(optarg, "--post-batch", 1);
            break;
        case 'w':
            op.window = (int)bench_parse_long(optarg, "--window", 0);
            break;
        case 'W':
            op.settle_ms = (int)bench_parse_long(optarg, "--settle-ms", 0);
            break;
        case 'P':
            op.procs = (int)bench_parse_long(optarg, "--procs", 0);
            break;
        case 'A':
            op.src_addrs = (int)bench_parse_long(optarg, "--src-addrs", 0);
            break;
        case 'i':
            op.pid = bench_parse_long(optarg, "--pid", 1);
            break;
        case '2':
            url2 = optarg;
            break;
        case '3':
            op.pid2 = bench_parse_long(optarg, "--pid2", 1);
            break;
        case '4':
            op.pub_nodes = (int)bench_parse_long(optarg, "--pub-nodes", 1);
            if (op.pub_nodes > 2)
                die("--pub-nodes: 1 or 2");
            break;
        case 'T':
            op.timeout_s = (double)bench_parse_long(optarg, "--timeout-s", 1);
            break;
        case 'l':
            op.label = optarg;
            break;
        case 'L':
            op.live = true;
            break;
        case 'V':
            op.check_versions = true;
            break;
        case 'R':
            op.results = optarg;
            break;
        case 'N':
            no_record = true;
            break;
        case 'G':
            op.linger_s = (int)bench_parse_long(optarg, "--linger-s", 0);
            break;
        case 'g':
            op.progress_s = (int)bench_parse_long(optarg, "--progress-s", 0);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind < argc || op.target < 0 || op.scenario < 0 || !url) {
        usage(stderr);
        exit(2);
    }
    const char *hp = strncmp(url, "http://", 7) == 0 ? url + 7 : url;
    const char *colon = strrchr(hp, ':');
    if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(op.host))
        die("--url wants http://HOST:PORT");
    memcpy(op.host, hp, (size_t)(colon - hp));
    snprintf(op.port, sizeof(op.port), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
    if (url2) {
        hp = strncmp(url2, "http://", 7) == 0 ? url2 + 7 : url2;
        colon = strrchr(hp, ':');
        if (!colon || colon == hp || (size_t)(colon - hp) >= sizeof(op.host2))
            die("--url2 wants http://HOST:PORT");
        memcpy(op.host2, hp, (size_t)(colon - hp));
        snprintf(op.port2, sizeof(op.port2), "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
        if (op.target != T_HUBSTREAM || op.scenario == S_RECONNECT || op.scenario == S_CATCHUP)
            die("--url2: hubstream's fanout, latency, idle and ingest scenarios");
    }
    if (!op.pub_nodes)
        op.pub_nodes = url2 ? 2 : 1;
    if (op.procs > MAX_PROCS)
        die("--procs: at most %d", MAX_PROCS);
    if (op.window >= RING)
        die("--window: below %d", RING);
    if (op.post_batch > 1000)
        die("--post-batch: at most 1000 (hubstream's largest batch)");
    if (op.target == T_NCHAN && (op.transport == X_SR_JSON || op.mp_name))
        die("--transport signalr-json and signalr-messagepack are hubstream's; nchan speaks ws "
            "and sse");
    if (no_record)
        op.results = NULL;
    if (op.results &&
        (op.target != T_HUBSTREAM || (op.scenario != S_FANOUT && op.scenario != S_CATCHUP)))
        die("--results records hubstream fanout and catchup runs (run.sh's history files)");
    if (op.hub == H_ES) {
        if (!is_sr())
            die("--hub eventstreamhub: hubstream's SignalR transports (ws, signalr-json)");
        if (op.scenario != S_FANOUT && op.scenario != S_LATENCY && op.scenario != S_IDLE)
            die("--hub eventstreamhub: the fanout, latency and idle scenarios");
        if (op.results)
            die("--results keeps run.sh's /hub history: not for --hub eventstreamhub");
        op.live = true; /* Subscribe without From: what is committed after its Completion */
        carry_cap = CARRY_MAX + (size_t)op.post_batch * ES_EVENT_MAX;
    }
    if (op.check_versions && op.target != T_HUBSTREAM)
        die("--check-versions: nchan's events carry no version");
    if (op.live && (op.scenario == S_CATCHUP || op.scenario == S_RECONNECT))
        die("--live: this scenario reads stored events");
    if (op.window == 0 && op.scenario != S_FANOUT)
        die("--window 0 (no flow control) is for the fanout scenario");
    if (op.scenario == S_RECONNECT && op.target == T_NCHAN && op.transport == X_WS)
        die("nchan's raw WebSocket frames carry no event id to resume from: use --transport sse");
    /* per-scenario defaults */
    static const long def_subs[] = {1000, 1000, 1000, 0, 1, 1000};
    static const long def_events[] = {20000, 0, 1, 100000, 1000000, 0};
    if (op.subs < 0)
        op.subs = def_subs[op.scenario];
    if (op.events < 0)
        op.events = def_events[op.scenario];
    if (op.duration_s < 0)
        op.duration_s = op.scenario == S_IDLE ? 10 : 20;
    if (op.publishers < 0)
        op.publishers = op.scenario == S_LATENCY ? 16 : op.scenario == S_RECONNECT ? 1 : 4;
    if (op.scenario == S_RECONNECT)
        op.publishers = 1; /* one order of events, checked by every subscriber */
    if (op.scenario == S_LATENCY)
        op.events = (long)((double)op.rate * op.duration_s);
    if (op.scenario == S_INGEST)
        op.subs = 0;
    if (op.scenario != S_INGEST && op.subs < 1)
        die("--subs: at least 1 for this scenario");
    if (op.scenario == S_LATENCY && op.events < 1)
        die("--rate x --duration-s gives no event");
    if (op.procs > op.subs && op.subs > 0)
        op.procs = (int)op.subs;
    inproc = op.procs == 0 && op.scenario != S_INGEST;
    if (inproc && op.src_addrs > 1)
        die("--src-addrs above 1 needs subscriber processes (--procs)");
    if (op.scenario == S_INGEST)
        op.procs = 0;
    if (!op.stream[0])
        snprintf(op.stream, sizeof(op.stream), "bench-%s-%ld-%ld", scenario_names[op.scenario],
                 (long)getpid(), (long)time(NULL));
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    int gr = getaddrinfo(op.host, op.port, &hints, &addr);
    if (gr)
        die("%s:%s: %s", op.host, op.port, gai_strerror(gr));
    if (op.src_addrs > 0 && addr->ai_family != AF_INET)
        die("--src-addrs needs an IPv4 (loopback) server address");
    if (op.host2[0] && (gr = getaddrinfo(op.host2, op.port2, &hints, &addr2)))
        die("%s:%s: %s", op.host2, op.port2, gai_strerror(gr));
    seq_max = op.scenario == S_RECONNECT ? WARM_EVENTS + op.missed : op.events;
    if ((double)op.subs * (double)(seq_max / 8 + 1) > 8.0 * 1024 * 1024 * 1024)
        die("--subs x --events needs more than 8 GiB of bitmaps");
    strict_order = op.scenario == S_RECONNECT;
    npubs = op.scenario == S_CATCHUP ? 0 : op.publishers;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    long per_proc = op.procs > 0 ? (op.subs + op.procs - 1) / op.procs : op.subs + npubs;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
        (rlim_t)(per_proc > npubs ? per_proc : npubs) + 32 > rl.rlim_cur)
        die("%ld subscribers per process need more than the %llu open files allowed (--procs)",
            per_proc, (unsigned long long)rl.rlim_cur);
    bench_env_t env;
    if (op.results)
        bench_env_read(&env); /* before the clock: it runs git */
    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED)
        die("mmap: %s", strerror(errno));
    atomic_store(&sh->first_ver_min, INT64_MAX);
    atomic_store(&sh->first_ver_max, -1);
    sub_requests_build();
    if (getrandom(&es_nonce, sizeof(es_nonce), 0) != (ssize_t)sizeof(es_nonce))
        es_nonce = now_ns() ^ (uint64_t)getpid() << 32;
    t_start = bench_now();
    next_progress = t_start + op.progress_s;
    deadline = t_start + op.timeout_s;
    /* the parent's own loop (publishers), made after the fork so the workers do not share it */
    int (*run)(void) = op.scenario == S_FANOUT || op.scenario == S_LATENCY ? run_fanout
                       : op.scenario == S_IDLE                             ? run_idle
                       : op.scenario == S_INGEST                           ? run_ingest
                       : op.scenario == S_CATCHUP                          ? run_catchup
                                                                           : run_reconnect;
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    int r = run();
    if (m_t0 > 0 && !m_ended) {
        measure_end(); /* a failed run: its figures up to now */
        if (res.elapsed_s <= 0)
            res.elapsed_s = bench_now() - m_t0;
    }
    if (r == 0 && op.check_versions) {
        /* every subscriber started at the first version published (1 for a stored stream
         * replayed from 0, which nothing is published to) */
        int64_t want = npubs && min_first_version != INT64_MAX ? min_first_version : 1;
        int64_t lo = atomic_load(&sh->first_ver_min), hi = atomic_load(&sh->first_ver_max);
        if (lo != want || hi != want) {
            run_error("subscribers started at versions %lld..%lld, not at the first published "
                      "version %lld",
                      (long long)lo, (long long)hi, (long long)want);
            r = -1;
        }
    }
    if (op.linger_s > 0) {
        /* every connection stays open (SignalR keep-alive pings go on); the server must too */
        fprintf(stderr, "loadgen: lingering %d s with every connection open\n", op.linger_s);
        double until = bench_now() + op.linger_s;
        while (bench_now() < until && !worker_died())
            pubs_serve(200);
        if (op.pid > 0 && bench_pid_cpu(op.pid) < 0) {
            run_error("the server (pid %ld) died while lingering", op.pid);
            r = -1;
        }
    }
    workers_stop();
    bool ok = r == 0 && !atomic_load(&sh->failed) && !atomic_load(&sh->gaps) &&
              !atomic_load(&sh->dups) && !pub_fatal && atomic_load(&sh->err_set) == 0;
    if (r == 0 && !ok && atomic_load(&sh->err_set) == 0)
        run_error("%ld gaps and %ld duplicates", atomic_load(&sh->gaps), atomic_load(&sh->dups));
    report(ok);
    if (op.results && record(&env, ok))
        return 1;
    return ok ? 0 : 1;
}
