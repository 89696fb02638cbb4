/*
 * Allocation failure: every allocation the server makes on the publish, read, subscribe, SSE
 * and SignalR paths (a stateful resume relayed between IO threads too) is failed in turn, and each
 * time the request fails cleanly (an error status, a hub error, a closed connection), the server
 * keeps serving, and what it acknowledged is stored. Under AddressSanitizer, LeakSanitizer then
 * checks that no failure path leaks.
 *
 * The switch: this program is linked with -Wl,--wrap=malloc,... so that every allocation made
 * by hubstream's own code (the static library; not libwebsockets, libevent or the ODBC driver)
 * goes through the wrappers below. hs_alloc_fail_after(n) makes the nth such allocation from
 * now on fail, once, on whatever server thread makes it; allocations of this program's own
 * client thread are not counted. A scenario runs with n = 1, 2, 3, ... until a run makes fewer
 * than n allocations, i.e. every allocation of the scenario has failed once.
 *
 * The count is not deterministic (background threads allocate on their own timers), so a run
 * may fail an allocation outside the scenario: that is as good a test. A run whose client waits
 * out its 5 s timeout (a request left unanswered and open) fails with the backtrace of the
 * allocation that was failed. Bounded in time: each scenario stops its sweep after --seconds
 * (default 20) and says how far it got. To look into one: ALLOC_DEBUG=1 prints every run's
 * timing and sets the server's log to debug, ALLOC_ONLY=<name> runs that sweep alone (its
 * name as printed, e.g. "hub resume, relayed") and ALLOC_FROM=N starts it at allocation N.
 *
 * Usage: alloc_faults [--seconds N]
 */
#define _GNU_SOURCE
#include <errno.h>
#include <execinfo.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hubstream/hubstream.h"

/* ---- the switch ---- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t m);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);

static atomic_long fail_at;  /* the allocation number to fail; 0: off */
static atomic_long counted;  /* allocations counted since arming */
static atomic_long failures; /* how many were failed */
static _Thread_local bool client_thread;
static void *fail_bt[8];
static int fail_depth;

static atomic_bool paused; /* a scenario's setup: nothing counted, nothing failed */

static bool should_fail(void)
{
    if (client_thread || !atomic_load_explicit(&fail_at, memory_order_relaxed) ||
        atomic_load_explicit(&paused, memory_order_relaxed))
        return false;
    long k = atomic_fetch_add(&counted, 1) + 1;
    long n = atomic_load(&fail_at);
    if (k != n)
        return false;
    atomic_fetch_add(&failures, 1);
    fail_depth = backtrace(fail_bt, 8); /* where it failed, for the report of a hang */
    return true;
}

void *__wrap_malloc(size_t n)
{
    return should_fail() ? NULL : __real_malloc(n);
}
void *__wrap_calloc(size_t n, size_t m)
{
    return should_fail() ? NULL : __real_calloc(n, m);
}
void *__wrap_realloc(void *p, size_t n)
{
    return should_fail() ? NULL : __real_realloc(p, n);
}
char *__wrap_strdup(const char *s)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strdup(s);
}
char *__wrap_strndup(const char *s, size_t n)
{
    if (should_fail()) {
        errno = ENOMEM;
        return NULL;
    }
    return __real_strndup(s, n);
}

static void arm(long nth)
{
    atomic_store(&counted, 0);
    atomic_store(&failures, 0);
    atomic_store(&fail_at, nth);
}

static void disarm(void)
{
    atomic_store(&fail_at, 0);
    atomic_store(&paused, false);
}

/* A scenario's setup that is not under test: nothing counted or failed until resume_count(). */
static void pause_count(void)
{
    atomic_store(&paused, true);
}

static void resume_count(void)
{
    atomic_store(&counted, 0);
    atomic_store(&paused, false);
}

/* ---- checks ---- */

static int failed;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "alloc_faults: %s:%d: ", __FILE__, __LINE__);                          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            failed = 1;                                                                            \
        }                                                                                          \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- a small blocking client (this thread's allocations are not counted) ---- */

static int port;

static int dial(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
        if (k <= 0)
            return false;
        c += k;
        n -= (size_t)k;
    }
    return true;
}

/* Reads until `needle` appears, the peer closes, or 5 s pass; returns bytes read (buf
 * NUL-terminated). */
static size_t read_until(int fd, char *buf, size_t cap, const char *needle)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0)
            break;
        n += (size_t)k;
        buf[n] = '\0';
        if (needle && memmem(buf, n, needle, strlen(needle)))
            break;
    }
    buf[n] = '\0';
    return n;
}

/* One HTTP request on a new connection: the status (0 when the connection closed first). */
static int http(const char *method, const char *path, const char *body, char *resp, size_t cap)
{
    int fd = dial();
    if (fd < 0)
        return -1;
    char req[4096];
    int n =
        snprintf(req, sizeof(req),
                 "%s %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                 method, path, body ? strlen(body) : 0, body ? body : "");
    int status = 0;
    if (send_all(fd, req, (size_t)n)) {
        read_until(fd, resp, cap, NULL);
        if (!strncmp(resp, "HTTP/1.1 ", 9))
            status = atoi(resp + 9);
    }
    close(fd);
    return status;
}

/* A JSON field's integer value in s ("\"name\":123"), or -1. */
static long long field(const char *s, const char *name)
{
    char pat[64];
    snprintf(pat, sizeof(pat), "\"%s\":", name);
    const char *p = strstr(s, pat);
    return p ? atoll(p + strlen(pat)) : -1;
}

/* WebSocket: the upgrade, then masked text frames out and unmasked frames in. split_ms > 0
 * sends the request line in two pieces that far apart. The response head is read byte by
 * byte: a resumed connection's Sequence record may follow it in the same segment, and is read
 * as a frame after it. The socket after the 101, or -1. */
static int ws_open(const char *path, int split_ms)
{
    int fd = dial();
    if (fd < 0)
        return -1;
    char req[512];
    int n =
        snprintf(req, sizeof(req),
                 "GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
                 path);
    size_t first = split_ms > 0 ? 5 : (size_t)n;
    bool ok = send_all(fd, req, first);
    if (first < (size_t)n) {
        usleep((useconds_t)split_ms * 1000);
        ok = ok && send_all(fd, req + first, (size_t)n - first);
    }
    char resp[2048];
    size_t got = 0;
    while (ok && got + 1 < sizeof(resp) && (got < 4 || memcmp(resp + got - 4, "\r\n\r\n", 4) != 0))
        ok = recv(fd, resp + got++, 1, 0) == 1;
    resp[got] = '\0';
    if (!ok || strncmp(resp, "HTTP/1.1 101", 12)) {
        close(fd);
        return -1;
    }
    return fd;
}

static bool ws_send(int fd, const char *text)
{
    size_t n = strlen(text);
    unsigned char h[14];
    size_t hl = 0;
    h[hl++] = 0x81;
    if (n < 126) {
        h[hl++] = (unsigned char)(0x80 | n);
    } else {
        h[hl++] = 0x80 | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    }
    memset(h + hl, 0, 4); /* a zero mask: the payload goes as is */
    hl += 4;
    return send_all(fd, h, hl) && send_all(fd, text, n);
}

/* Reads frames' payloads into buf until `needle` appears in them, a close frame or EOF (false),
 * or 5 s. */
static bool ws_read_until(int fd, char *buf, size_t cap, const char *needle)
{
    size_t n = 0;
    for (;;) {
        unsigned char h[10];
        if (recv(fd, h, 2, MSG_WAITALL) != 2)
            return false;
        uint64_t len = h[1] & 0x7f;
        if (len == 126) {
            if (recv(fd, h + 2, 2, MSG_WAITALL) != 2)
                return false;
            len = (uint64_t)h[2] << 8 | h[3];
        } else if (len == 127) {
            if (recv(fd, h + 2, 8, MSG_WAITALL) != 8)
                return false;
            len = 0;
            for (int i = 0; i < 8; i++)
                len = len << 8 | h[2 + i];
        }
        if ((h[0] & 0x0f) == 8)
            return false; /* close */
        while (len) {
            char tmp[4096];
            size_t k = len > sizeof(tmp) ? sizeof(tmp) : (size_t)len;
            if (recv(fd, tmp, k, MSG_WAITALL) != (ssize_t)k)
                return false;
            len -= k;
            size_t room = cap - 1 - n;
            size_t c = k < room ? k : room;
            memcpy(buf + n, tmp, c);
            n += c;
            buf[n] = '\0';
        }
        if (strstr(buf, needle))
            return true;
        if (n + 1 >= cap)
            n = 0; /* keep looking in what comes next */
    }
}

/* ---- scenarios: each returns how many events it got acknowledged ---- */

static long acked; /* events acknowledged to stream "af" over every run */

static void publish_http(void)
{
    char resp[4096];
    int st = http("POST", "/api/streams/af/events",
                  "[{\"type\":\"a\",\"data\":{\"n\":1}},{\"type\":\"b\",\"data\":[1,2,3]}]", resp,
                  sizeof(resp));
    CHECK(st == 201 || st == 503 || st == 429 || st == 400 || st == 0,
          "publish answered %d: %.200s", st, resp);
    if (st == 201)
        acked += field(resp, "lastVersion") - field(resp, "firstVersion") + 1;
}

static void read_http(void)
{
    char resp[65536];
    int st = http("GET", "/api/streams/af/events?from=0&limit=50", NULL, resp, sizeof(resp));
    CHECK(st == 200 || st == 503 || st == 404 || st == 0, "read answered %d", st);
}

static void subscribe_sse(void)
{
    int fd = dial();
    if (fd < 0)
        return;
    const char *req =
        "GET /api/streams/af/events?from=0 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        "Accept: text/event-stream\r\n\r\n";
    char resp[16384];
    if (send_all(fd, req, strlen(req))) {
        size_t n = read_until(fd, resp, sizeof(resp), "\nid: 2\n");
        int st = n > 12 ? atoi(resp + 9) : 0;
        CHECK(st == 200 || st == 503 || st == 0, "SSE answered %d", st);
    }
    close(fd);
}

static void hub_session(void)
{
    int fd = ws_open("/hub", 0);
    if (fd < 0)
        return;
    char buf[65536];
    if (ws_send(fd, "{\"protocol\":\"json\",\"version\":1}\x1e") &&
        ws_read_until(fd, buf, sizeof(buf), "\x1e") && !strstr(buf, "error") &&
        ws_send(fd, "{\"type\":1,\"invocationId\":\"1\",\"target\":\"Publish\",\"arguments\":"
                    "[\"af\",{\"type\":\"h\",\"data\":7}]}\x1e")) {
        buf[0] = '\0';
        if (ws_read_until(fd, buf, sizeof(buf), "\"invocationId\":\"1\"")) {
            if (strstr(buf, "\"result\":{"))
                acked += 1;
            else
                CHECK(strstr(buf, "\"error\":\"Unavailable") || strstr(buf, "TooManyRequests"),
                      "Publish completion: %.300s", buf);
            if (ws_send(fd, "{\"type\":1,\"invocationId\":\"2\",\"target\":\"Read\",\"arguments\":"
                            "[\"af\",0,5]}\x1e") &&
                ws_read_until(fd, buf, sizeof(buf), "\"invocationId\":\"2\"") &&
                ws_send(fd, "{\"type\":4,\"invocationId\":\"3\",\"target\":\"Subscribe\","
                            "\"arguments\":[\"af\",0]}\x1e"))
                ws_read_until(fd, buf, sizeof(buf), "\"invocationId\":\"3\"");
        }
    }
    close(fd);
}

/* A stateful connection's token (negotiate with useStatefulReconnect), or false. */
static bool negotiate_stateful(char *token, size_t cap)
{
    char resp[4096];
    int st = http("POST", "/hub/negotiate?negotiateVersion=1&useStatefulReconnect=true", "", resp,
                  sizeof(resp));
    const char *key = "\"connectionToken\":\"";
    const char *p = st == 200 ? strstr(resp, key) : NULL;
    const char *e = p ? strchr(p + strlen(key), '"') : NULL;
    if (!e || (size_t)(e - p - strlen(key)) >= cap)
        return false;
    p += strlen(key);
    memcpy(token, p, (size_t)(e - p));
    token[e - p] = '\0';
    return true;
}

/* A stateful connection whose socket drops, resumed twice (one of the two relayed): every
 * allocation from the first resume on is failed in turn (the negotiate and the first socket
 * are setup). Each resume is what a client does: a Sequence naming its first record, every
 * record it sent before again (it never saw them acknowledged; the server skips those it
 * has), then one more Publish. */
static long relay_runs;

static void hub_relay(void)
{
    relay_runs++;
    pause_count();
    char token[128], path[200], buf[16384];
    bool ok = negotiate_stateful(token, sizeof(token));
    if (ok) {
        snprintf(path, sizeof(path), "/hub?id=%s", token);
        int fd = ws_open(path, 0);
        /* hub protocol version 2: stateful reconnect */
        ok = fd >= 0 && ws_send(fd, "{\"protocol\":\"json\",\"version\":2}\x1e") &&
             ws_read_until(fd, buf, sizeof(buf), "\x1e") && !strstr(buf, "error");
        if (fd >= 0)
            close(fd); /* the connection waits for its resume */
    }
    CHECK(ok, "the stateful connection's setup failed with nothing failed: %.200s", buf);
    resume_count();
    char sent[2][256];
    for (int r = 0; ok && r < 2; r++) {
        snprintf(sent[r], sizeof(sent[r]),
                 "{\"type\":1,\"invocationId\":\"r%d\",\"target\":\"Publish\","
                 "\"arguments\":[\"af\",{\"type\":\"r\",\"data\":%d}]}\x1e",
                 r, r);
        /* the request line in two pieces 250 ms apart: the acceptor stops waiting for the
         * line after 200 ms, cannot see the token and hands the socket round-robin, so of two
         * such resumes in a row (two IO threads) one reaches the connection's other thread
         * and is relayed (server/signalr/relay.c) */
        int fd = ws_open(path, 250);
        if (fd < 0)
            break; /* a failed allocation ended the connection: a 404 for its token */
        bool up = ws_send(fd, "{\"type\":9,\"sequenceId\":1}\x1e");
        for (int k = 0; up && k <= r; k++)
            up = ws_send(fd, sent[k]);
        char id[16];
        snprintf(id, sizeof(id), "\"r%d\"", r);
        buf[0] = '\0';
        /* the server's Sequence, what it replays, then this Publish's completion */
        if (up && ws_read_until(fd, buf, sizeof(buf), id)) {
            const char *c = strstr(buf, id);
            if (strstr(c, "\"result\":{"))
                acked += 1;
            else
                CHECK(strstr(c, "\"error\":\"Unavailable") || strstr(c, "TooManyRequests"),
                      "Publish completion after a resume: %.300s", c);
        }
        close(fd);
    }
}

static void negotiate(void)
{
    char resp[4096];
    int st = http("POST", "/hub/negotiate?negotiateVersion=1", "", resp, sizeof(resp));
    CHECK(st == 200 || st == 503 || st == 429 || st == 0, "negotiate answered %d", st);
}

/* After every run, with the switch off: the server serves, and holds exactly what it acked. */
static void healthy(const char *scenario, long nth)
{
    char resp[8192];
    int st = 0;
    for (int i = 0; i < 50 && st != 200; i++) {
        st = http("GET", "/healthz", NULL, resp, sizeof(resp));
        if (st != 200)
            usleep(20000);
    }
    CHECK(st == 200, "%s, allocation %ld failed: /healthz answers %d", scenario, nth, st);
    st = http("GET", "/api/streams/af", NULL, resp, sizeof(resp));
    if (acked)
        CHECK(st == 200 && field(resp, "version") >= acked,
              "%s, allocation %ld failed: stream af answers %d with version %lld, %ld acked",
              scenario, nth, st, field(resp, "version"), acked);
}

static double sweep_seconds = 20;

static void sweep(const char *name, void (*scenario)(void))
{
    const char *only = getenv("ALLOC_ONLY");
    if (only && strcmp(only, name))
        return;
    double t0 = now_s();
    long nth = getenv("ALLOC_FROM") ? atol(getenv("ALLOC_FROM")) : 1, failed_runs = 0;
    for (;; nth++) {
        arm(nth);
        double ta = now_s();
        scenario();
        double tb = now_s();
        long made = atomic_load(&counted);
        disarm();
        failed_runs += atomic_load(&failures) ? 1 : 0;
        healthy(name, nth);
        if (getenv("ALLOC_DEBUG"))
            printf("  %s nth %ld made %ld: %.3f s + %.3f s\n", name, nth, made, tb - ta,
                   now_s() - tb);
        if (tb - ta > 4) {
            /* the client waited out its 5 s timeout: a request left unanswered and open */
            fprintf(stderr,
                    "alloc_faults: %s, allocation %ld failed: no answer within 5 s; "
                    "the allocation that failed:\n",
                    name, nth);
            backtrace_symbols_fd(fail_bt, fail_depth, 2);
            failed = 1;
        }
        if (failed)
            break;
        if (made < nth)
            break; /* every allocation of the scenario has failed once */
        if (now_s() - t0 > sweep_seconds) {
            printf("alloc_faults: %s: stopped after %.0f s at allocation %ld\n", name,
                   sweep_seconds, nth);
            break;
        }
    }
    printf("alloc_faults: %s: %ld runs, %ld with a failed allocation, %.1f s\n", name, nth,
           failed_runs, now_s() - t0);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            sweep_seconds = atof(argv[++i]);
    client_thread = true; /* the server's threads are the counted ones */
    char dir[] = "/tmp/hs-alloc-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    char db[256], err[256];
    snprintf(db, sizeof(db), "%s/alloc.db", dir);
    hs_config_t cfg;
    hs_config_init(&cfg);
    cfg.listen = "127.0.0.1:0";
    cfg.db = db;
    cfg.io_threads = 2;
    cfg.log_level = getenv("ALLOC_DEBUG") ? HS_LOG_DEBUG : HS_LOG_ERROR;
    hs_server_t *srv = hs_server_create(&cfg, err, sizeof(err));
    if (!srv || hs_server_start(srv)) {
        fprintf(stderr, "alloc_faults: server: %s\n", err);
        return 2;
    }
    port = hs_server_port(srv);
    /* a stream with history, for the reads and catch-ups */
    for (int i = 0; i < 3; i++)
        publish_http();
    CHECK(acked == 6, "the first publishes: %ld acked", acked);

    sweep("publish", publish_http);
    sweep("read", read_http);
    sweep("sse", subscribe_sse);
    sweep("hub", hub_session);
    sweep("hub resume, relayed", hub_relay);
    if (relay_runs) {
        /* the relay was exercised: resumes reached the other IO thread */
        char resp[65536];
        int st = http("GET", "/metrics", NULL, resp, sizeof(resp));
        const char *m = strstr(resp, "\nhubstream_signalr_relayed_resumes_total ");
        long relayed = m ? atol(m + strlen("\nhubstream_signalr_relayed_resumes_total ")) : -1;
        printf("alloc_faults: %ld resumes relayed\n", relayed);
        CHECK(st == 200 && relayed > 0, "/metrics %d: %ld relayed resumes", st, relayed);
    }
    sweep("negotiate", negotiate);

    hs_server_stop(srv);
    hs_server_wait(srv);
    hs_server_destroy(srv);
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd)) {
    }
    if (failed) {
        fprintf(stderr, "alloc_faults: FAILED\n");
        return 1;
    }
    printf("alloc_faults: ok, %ld events acknowledged\n", acked);
    return 0;
}
