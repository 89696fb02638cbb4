/*
 * The acceptor thread: owns the listening socket (libevent evconnlistener) and hands each new
 * connection to an IO thread. Debian's libwebsockets runs one service thread per context and
 * cannot share a listen port, so one listener feeds N lws contexts instead (see DESIGN.md).
 * It does no I/O on connections itself.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util/time.h"
#include "server/net/net.h"
#include "util/thread.h"

struct hs_acceptor {
    struct event_base *base;
    struct evconnlistener *lis;
    struct event *stop_ev;   /* activated from any thread; breaks the loop from inside it */
    struct event *resume_ev; /* re-enables accepting after a pause (see on_accept_error) */
    const hs_logger_t *log;
    hs_log_limit_t accept_warn; /* "accept failed" (util/log.h): the acceptor thread's */
    pthread_t thread;
    bool started;
    int port;
    hs_acceptor_fd_fn on_fd;
    void *ctx;
    struct peek *peeks; /* connections waiting for their first bytes */
    /* the event backend is edge-triggered (epoll): a connection may wait for its whole request
     * line; without it the first bytes decide (a level-triggered wait would spin on them) */
    bool whole_lines;
};

/* A new connection whose request line the acceptor waits for (at most PEEK_WAIT_MS in all) so
 * that the hand-off can pick a thread by what the request names (a SignalR connection's token:
 * its home thread). Nothing is read: MSG_PEEK leaves the bytes for the IO thread, so the event
 * is edge-triggered (a level-triggered one would fire again at once for bytes already seen)
 * and re-armed, for what is left of the wait, each time more bytes come without a line end. */
typedef struct peek {
    hs_acceptor_t *a;
    int fd;
    struct event *ev;
    int64_t deadline_us; /* hs_mono_us() */
    struct peek *prev, *next;
} peek_t;

#define PEEK_WAIT_MS 200
#define PEEK_BYTES   512

/* After a failed accept() (out of file descriptors, or of memory): the connection stays queued
 * in the kernel and the listening socket readable, so retrying at once is a busy loop (100 % of
 * a core at the file limit, and a log line per try). Accepting pauses this long instead, and
 * the failures are logged at most once per interval, with their count ("pauses": this one and
 * those not logged since the last record; "suppressed": those not logged). */
#define ACCEPT_PAUSE_MS     100
#define ACCEPT_LOG_EVERY_US (10 * 1000000LL)

static void peek_free(peek_t *pk)
{
    hs_acceptor_t *a = pk->a;
    if (pk->prev)
        pk->prev->next = pk->next;
    else
        a->peeks = pk->next;
    if (pk->next)
        pk->next->prev = pk->prev;
    event_free(pk->ev);
    free(pk);
}

/* Whether the bytes peeked so far are all there is to route by: the request line whole (or as
 * much as is peeked), the peer done sending, or bytes that are no HTTP request line at all (a
 * TLS ClientHello, which waits for the server's answer: it must not wait here). */
static bool line_in(const char *buf, ssize_t n)
{
    if (n <= 0 || (size_t)n == PEEK_BYTES)
        return true;
    for (ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)buf[i];
        if (ch == '\n' || ((ch < 0x20 || ch > 0x7e) && ch != '\r'))
            return true;
    }
    return false;
}

static void on_first_bytes(evutil_socket_t fd, short what, void *arg)
{
    peek_t *pk = arg;
    hs_acceptor_t *a = pk->a;
    char buf[PEEK_BYTES];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        n = 0;
    else if (n == 0)
        n = -1; /* the peer closed: nothing more will come */
    int64_t left = pk->deadline_us - hs_mono_us();
    if ((what & EV_READ) && a->whole_lines && n >= 0 && (n == 0 || !line_in(buf, n)) && left > 0) {
        /* none or part of the request line: wait for more. The event stays in the kernel's
         * set (persistent), so it fires at the next bytes only; this sets what is left of the
         * wait as its timeout. */
        struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000)};
        if (event_add(pk->ev, &tv) == 0)
            return;
    }
    peek_free(pk);
    a->on_fd(a->ctx, (int)fd, buf, n > 0 ? (size_t)n : 0);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int len,
                      void *arg)
{
    hs_acceptor_t *a = arg;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    /* The first bytes are often in already (the client wrote its request right after connect,
     * and a burst of connects waits in the listen queue): hand the connection over at once,
     * with no event and no entry in libevent's descriptor map, which keeps one for every
     * descriptor it ever watched (memory the acceptor would hold at its high-water mark). */
    char buf[PEEK_BYTES];
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK | MSG_DONTWAIT);
    if (n > 0 && (line_in(buf, n) || !a->whole_lines)) {
        a->on_fd(a->ctx, (int)fd, buf, (size_t)n);
        return;
    }
    peek_t *pk = calloc(1, sizeof(*pk));
    if (pk)
        pk->ev = event_new(a->base, fd, a->whole_lines ? EV_READ | EV_ET | EV_PERSIST : EV_READ,
                           on_first_bytes, pk);
    struct timeval tv = {0, PEEK_WAIT_MS * 1000};
    if (!pk || !pk->ev || event_add(pk->ev, &tv)) {
        if (pk && pk->ev)
            event_free(pk->ev);
        free(pk);
        a->on_fd(a->ctx, fd, n > 0 ? buf : NULL, n > 0 ? (size_t)n : 0);
        return;
    }
    pk->a = a;
    pk->fd = fd;
    pk->deadline_us = hs_mono_us() + PEEK_WAIT_MS * 1000;
    pk->next = a->peeks;
    if (a->peeks)
        a->peeks->prev = pk;
    a->peeks = pk;
}

static void on_accept_error(struct evconnlistener *lis, void *arg)
{
    hs_acceptor_t *a = arg;
    int err = EVUTIL_SOCKET_ERROR();
    evconnlistener_disable(lis);
    struct timeval tv = {0, ACCEPT_PAUSE_MS * 1000};
    event_add(a->resume_ev, &tv);
    uint64_t suppressed;
    if (a->log &&
        hs_log_limit_pass(&a->accept_warn, hs_mono_us(), ACCEPT_LOG_EVERY_US, &suppressed)) {
        char n[24], ms[16];
        snprintf(n, sizeof(n), "%" PRIu64, suppressed + 1);
        snprintf(ms, sizeof(ms), "%d", ACCEPT_PAUSE_MS);
        hs_log_suppressed(a->log, suppressed, HS_LOG_WARN, "accept failed: new connections wait",
                          "error", evutil_socket_error_to_string(err), "pauses", n, "pause_ms", ms,
                          NULL);
    }
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
    hs_acceptor_t *a = arg;
    evconnlistener_enable(a->lis);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    hs_acceptor_t *a = arg;
    event_base_loopbreak(a->base);
}

hs_acceptor_t *hs_acceptor_create(const char *host, int port, hs_acceptor_fd_fn on_fd, void *ctx,
                                  const hs_logger_t *log, char *err, size_t errlen)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, (void (*)(void))evthread_use_pthreads);
    hs_acceptor_t *a = calloc(1, sizeof(*a));
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->on_fd = on_fd;
    a->ctx = ctx;
    a->log = log;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*s6);
    } else if (strcmp(host, "localhost") == 0) {
        s4->sin_family = AF_INET;
        s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof(*s4);
    } else {
        snprintf(err, errlen, "listen address '%s' is not an IP address", host);
        free(a);
        return NULL;
    }
    a->base = event_base_new();
    if (!a->base) {
        snprintf(err, errlen, "event_base_new failed");
        free(a);
        return NULL;
    }
    a->whole_lines = (event_base_get_features(a->base) & EV_FEATURE_ET) != 0;
    a->lis = evconnlistener_new_bind(a->base, on_accept, a,
                                     LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE |
                                         LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_DISABLED,
                                     4096, (struct sockaddr *)&ss, (int)sl);
    if (!a->lis) {
        snprintf(err, errlen, "cannot listen on %s:%d: %s", host, port,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        event_base_free(a->base);
        free(a);
        return NULL;
    }
    evconnlistener_set_error_cb(a->lis, on_accept_error);
    a->stop_ev = event_new(a->base, -1, 0, on_stop, a);
    a->resume_ev = evtimer_new(a->base, on_resume, a);
    if (!a->stop_ev || !a->resume_ev) {
        snprintf(err, errlen, "event_new failed");
        if (a->stop_ev)
            event_free(a->stop_ev);
        if (a->resume_ev)
            event_free(a->resume_ev);
        evconnlistener_free(a->lis);
        event_base_free(a->base);
        free(a);
        return NULL;
    }
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    getsockname(evconnlistener_get_fd(a->lis), (struct sockaddr *)&bound, &bl);
    a->port = bound.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&bound)->sin6_port)
                                          : ntohs(((struct sockaddr_in *)&bound)->sin_port);
    return a;
}

int hs_acceptor_port(const hs_acceptor_t *a)
{
    return a->port;
}

static void *run(void *arg)
{
    hs_acceptor_t *a = arg;
    event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

int hs_acceptor_start(hs_acceptor_t *a)
{
    evconnlistener_enable(a->lis);
    if (pthread_create(&a->thread, NULL, run, a))
        return HS_ESYS;
    hs_thread_name(a->thread, "hs-accept", -1);
    a->started = true;
    return 0;
}

void hs_acceptor_stop(hs_acceptor_t *a)
{
    if (!a || !a->started)
        return;
    /* not event_base_loopbreak() from here: a loop that has not started yet clears that flag
     * when it starts and would run forever; an activated event waits for the loop instead
     * (thread-safe: evthread_use_pthreads()) */
    event_active(a->stop_ev, 0, 0);
    pthread_join(a->thread, NULL);
    a->started = false;
    while (a->peeks) { /* never handed over: close them */
        int fd = a->peeks->fd;
        peek_free(a->peeks);
        close(fd);
    }
}

void hs_acceptor_destroy(hs_acceptor_t *a)
{
    if (!a)
        return;
    hs_acceptor_stop(a);
    event_free(a->stop_ev);
    event_free(a->resume_ev);
    evconnlistener_free(a->lis);
    event_base_free(a->base);
    free(a);
}
