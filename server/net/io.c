/*
 * IO threads: one libwebsockets context each, with no listener of its own. Sockets arrive from
 * the acceptor through the inbox; so do publish acks from the writer, read results from the
 * reader threads and outbox signals from the fan-out workers, each followed by
 * lws_cancel_service(), the one thread-safe way into a context. Everything that touches a
 * connection happens on its IO thread.
 *
 * This file knows HTTP mechanics only (see net.h): a request whose body is in goes to the
 * server's routes; a WebSocket upgrade to the endpoint registered for its path; everything else
 * (messages on the inbox, subscription signals, writable turns of a streamed answer, closes,
 * ticks) to the transport that owns it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "proto/json.h"
#include "ringbuf/budget.h"
#include "server/net/net.h"
#include "util/time.h"
#include "util/utf8.h"

typedef hs_wsi_data_t wsi_data_t;

typedef struct fd_node {
    hs_mpsc_node_t node;
    int fd;
} fd_node_t;

static hs_io_t *io_of(struct lws *wsi)
{
    return lws_context_user(lws_get_context(wsi));
}

void hs_io_wake(void *ctx, int index)
{
    hs_server_t *srv = ctx;
    lws_cancel_service(srv->io[index]->ctx);
}

void hs_io_hand_fd(hs_io_t *io, int fd)
{
    fd_node_t *n = malloc(sizeof(*n));
    if (!n) {
        close(fd);
        return;
    }
    n->node.kind = HS_NODE_FD;
    n->fd = fd;
    if (hs_mpsc_push(&io->inbox, &n->node))
        lws_cancel_service(io->ctx);
}

/* ---- responses ---- */

static void resp_uncharge(hs_conn_t *c)
{
    if (c->resp_budget) {
        hs_budget_give(c->resp_budget, c->resp_charge);
        hs_budget_unref(c->resp_budget);
        c->resp_budget = NULL;
        c->resp_charge = 0;
    }
}

void hs_conn_charge(hs_conn_t *c, hs_budget_t *budget, size_t n)
{
    resp_uncharge(c);
    c->resp_budget = hs_budget_ref(budget);
    c->resp_charge = n;
}

/* Drops a queued response (and its charge). */
static void resp_drop(hs_conn_t *c)
{
    free(c->resp);
    c->resp = NULL;
    c->resp_off = 0;
    resp_uncharge(c);
}

int hs_conn_respond(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra_name, const char *extra_value)
{
    if (c->close_after && !extra_name) {
        extra_name = "connection:";
        extra_value = "close";
    }
    if (c->retry_after && !extra_name) {
        extra_name = "retry-after:";
        extra_value = "1";
    }
    c->retry_after = false;
    size_t cap = LWS_PRE + 1024 + len;
    unsigned char *buf = malloc(cap);
    if (!buf) {
        /* no answer can be made: close the connection rather than leave the client waiting */
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + cap - len - 1;
    if (lws_add_http_common_headers(c->wsi, (unsigned int)status, ctype, (lws_filepos_t)len, &p,
                                    end) ||
        (extra_name && lws_add_http_header_by_name(c->wsi, (const unsigned char *)extra_name,
                                                   (const unsigned char *)extra_value,
                                                   (int)strlen(extra_value), &p, end)) ||
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-store", 8, &p, end) ||
        hs_cors_headers(c->wsi, &p, end) || lws_finalize_http_header(c->wsi, &p, end)) {
        free(buf);
        lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        return -1;
    }
    if (len)
        memcpy(p, body, len);
    p += len;
    resp_drop(c);
    c->resp = buf;
    c->resp_len = (size_t)(p - start);
    c->resp_final = true;
    lws_callback_on_writable(c->wsi);
    return 0;
}

int hs_conn_error(hs_conn_t *c, int status, const char *code, const char *fmt, ...)
{
    /* msg may carry client text (a path, a stream name); quoting can make every byte of it six
     * (a control character, or a byte that is not UTF-8), so body is sized for the worst case */
    char msg[512], body[sizeof(msg) * 6 + 64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t cl = strnlen(code, 32), ml = strlen(msg), o = 0;
    memcpy(body, "{\"error\":\"", 10);
    o = 10;
    memcpy(body + o, code, cl); /* a constant of ours, plain ASCII */
    o += cl;
    memcpy(body + o, "\",\"message\":", 12);
    o += 12;
    o += hs_json_quote(msg, hs_utf8_boundary(msg, ml), body + o);
    body[o++] = '}';
    const char *xn = NULL, *xv = NULL;
    if (status == 401) {
        xn = "www-authenticate:";
        xv = "Bearer";
    } else if (status == 405 && c->allow) {
        xn = "allow:";
        xv = c->allow;
    }
    return hs_conn_respond(c, status, "application/json", body, o, xn, xv);
}

int hs_cors_headers(struct lws *wsi, unsigned char **p, unsigned char *end)
{
    char origin[512];
    int n = lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN);
    if (n <= 0)
        return 0;
    if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
                                    (const unsigned char *)origin, n, p, end) ||
        lws_add_http_header_by_name(wsi,
                                    (const unsigned char *)"access-control-allow-credentials:",
                                    (const unsigned char *)"true", 4, p, end) ||
        lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:",
                                    (const unsigned char *)"Origin", 6, p, end))
        return -1;
    return 0;
}

int hs_wsi_respond(struct lws *wsi, int status, const char *body)
{
    size_t len = strlen(body);
    unsigned char buf[LWS_PRE + 2048];
    if (len > 1024)
        len = 1024;
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf) - len - 1;
    if (lws_add_http_common_headers(wsi, (unsigned int)status, "text/plain", (lws_filepos_t)len,
                                    &p, end) ||
        hs_cors_headers(wsi, &p, end) || lws_finalize_http_header(wsi, &p, end))
        return -1;
    memcpy(p, body, len);
    p += len;
    return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_FINAL) < 0 ? -1 : 0;
}

int hs_conn_stream_head(hs_conn_t *c, const char *ctype, const char *extra)
{
    size_t el = strlen(extra), cap = LWS_PRE + 1024 + el;
    unsigned char *rb = malloc(cap);
    if (!rb)
        return -1;
    unsigned char *start = rb + LWS_PRE, *p = start, *end = rb + cap - el;
    if (lws_add_http_common_headers(c->wsi, 200, ctype, LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"cache-control:",
                                    (const unsigned char *)"no-cache", 8, &p, end) ||
        lws_add_http_header_by_name(c->wsi, (const unsigned char *)"x-accel-buffering:",
                                    (const unsigned char *)"no", 2, &p, end) ||
        hs_cors_headers(c->wsi, &p, end) || lws_finalize_http_header(c->wsi, &p, end)) {
        free(rb);
        return -1;
    }
    memcpy(p, extra, el);
    p += el;
    resp_drop(c);
    c->resp = rb;
    c->resp_len = (size_t)(p - start);
    c->resp_final = false;
    c->stream = true;
    lws_http_mark_sse(c->wsi); /* no Content-Length: the answer ends when the socket does */
    lws_callback_on_writable(c->wsi);
    return 0;
}

/* A CORS preflight, for every path: browsers send one before a cross-origin POST with custom
 * headers (the SignalR clients' negotiate) and before DELETE. */
static void preflight(hs_conn_t *c)
{
    static const char *const h[][2] = {
        {"access-control-allow-methods:", "GET, POST, DELETE, OPTIONS"},
        {"access-control-allow-headers:", "authorization, x-requested-with, "
                                          "x-signalr-user-agent, content-type, expected-version, "
                                          "last-event-id"},
        {"access-control-max-age:", "600"},
    };
    unsigned char buf[LWS_PRE + 1024];
    unsigned char *start = buf + LWS_PRE, *p = start, *end = buf + sizeof(buf);
    if (lws_add_http_common_headers(c->wsi, 204, NULL, 0, &p, end) ||
        hs_cors_headers(c->wsi, &p, end)) {
        hs_conn_error(c, 500, "Internal", "headers do not fit");
        return;
    }
    for (size_t i = 0; i < sizeof(h) / sizeof(h[0]); i++)
        if (lws_add_http_header_by_name(c->wsi, (const unsigned char *)h[i][0],
                                        (const unsigned char *)h[i][1], (int)strlen(h[i][1]), &p,
                                        end))
            return;
    if (lws_finalize_http_header(c->wsi, &p, end))
        return;
    unsigned char *rb = malloc((size_t)(p - start) + LWS_PRE);
    if (!rb)
        return;
    memcpy(rb + LWS_PRE, start, (size_t)(p - start));
    resp_drop(c);
    c->resp = rb;
    c->resp_len = (size_t)(p - start);
    c->resp_final = true;
    lws_callback_on_writable(c->wsi);
}

/* Serves a request whose body (if any) is in: a preflight here, else the first route that
 * takes its path. */
static void route(hs_conn_t *c, const char *path)
{
    if (c->method == WSI_TOKEN_OPTIONS_URI) {
        preflight(c);
        return;
    }
    hs_server_t *srv = c->io->srv;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < srv->nroutes; i++) {
            const char *rp = srv->routes[i].path;
            if (pass == 0 ? rp && !strcmp(rp, path) : !rp) {
                srv->routes[i].fn(c, path, srv->routes[i].arg);
                return;
            }
        }
    hs_conn_error(c, 404, "NotFound", "no route for %.300s", path);
}

/* ---- query arguments ---- */

int hs_conn_arg(hs_conn_t *c, const char *name_eq, char *buf, size_t cap, const char **val)
{
    return hs_wsi_arg(c->wsi, name_eq, buf, cap, val);
}

int hs_wsi_arg(struct lws *wsi, const char *name_eq, char *buf, size_t cap, const char **val)
{
    /* lws_get_urlarg_by_name() stops at the first argument longer than its buffer: the ones
     * after it then look absent, and an over-long one is dropped without a word. Each argument
     * is looked at here instead, through the IO thread's scratch buffer (a request's arguments
     * fit: lws keeps at most max_http_header_data bytes of headers). */
    char *tmp = (char *)io_of(wsi)->wbuf;
    int tcap = LWS_PRE + HS_WRITE_BUDGET;
    size_t nl = strlen(name_eq);
    *val = NULL;
    for (int i = 0; i < 1024; i++) {
        int n = lws_hdr_copy_fragment(wsi, tmp, tcap, WSI_TOKEN_HTTP_URI_ARGS, i);
        if (n < 0)
            return 0; /* no more arguments */
        if ((size_t)n < nl || memcmp(tmp, name_eq, nl))
            continue;
        if ((size_t)n - nl >= cap)
            return -1;
        memcpy(buf, tmp + nl, (size_t)n - nl + 1);
        *val = buf;
        return 1;
    }
    return 0;
}

/* ---- ingest submission ---- */

bool hs_io_submit_entry(hs_io_t *io, hs_ingest_t *e)
{
    e->done = hs_io_ingest_done;
    e->origin = io;
    e->io_index = io->index;
    /* keep order: nothing overtakes entries already waiting in the backlog */
    if (!io->nbacklog && hs_writer_submit_spsc(io->srv->writer, io->index, e))
        return true;
    if (io->nbacklog < HS_BACKLOG_MAX) {
        io->backlog[io->nbacklog++] = e;
        return true;
    }
    return false;
}

static void drain_backlog(hs_io_t *io)
{
    size_t k = 0;
    while (k < io->nbacklog && hs_writer_submit_spsc(io->srv->writer, io->index, io->backlog[k]))
        k++;
    if (k) {
        memmove(io->backlog, io->backlog + k, (io->nbacklog - k) * sizeof(*io->backlog));
        io->nbacklog -= k;
    }
}

void hs_io_ingest_done(hs_ingest_t *e)
{
    hs_io_post(e->origin, &e->node);
}

void hs_io_post(hs_io_t *io, hs_mpsc_node_t *n)
{
    /* at shutdown a context may be gone already (ctx NULL): hs_io_destroy drops the node */
    if (hs_mpsc_push(&io->inbox, n) && io->ctx)
        lws_cancel_service(io->ctx);
}

/* The transport a message or signal names, or NULL. */
static const hs_transport_t *transport_of(hs_io_t *io, int id)
{
    return id >= 0 && id < HS_TRANSPORTS_MAX ? io->srv->transports[id] : NULL;
}

static const hs_transport_t *message_transport(hs_io_t *io, int kind)
{
    return kind >= HS_NODE_TRANSPORT ? transport_of(io, (kind - HS_NODE_TRANSPORT) / 16) : NULL;
}

/* ---- inbox ---- */

/*
 * lws gives an adopted HTTP connection its request-header storage (max_http_header_data, 8 KiB,
 * plus ~1 KiB of index) at once, and takes it back only once the request is handled. Adopting a
 * whole burst of handed sockets in one turn made every one of them hold that storage at the same
 * time (2,000 at once in a heap profile of 2,000 subscribers connecting); freed afterwards, it
 * left the IO threads' heaps fragmented: ~6 KB of RSS per idle subscriber, of which ~2 KB was in
 * use. So a turn adopts at most HS_ADOPT_PER_TURN sockets, those are served on the next poll,
 * and the rest wait (their bytes in the kernel) for the turns after.
 */
#define HS_ADOPT_PER_TURN 32

static void adopt_some(hs_io_t *io)
{
    for (int k = 0; k < HS_ADOPT_PER_TURN && io->adopt_head; k++) {
        fd_node_t *f = (fd_node_t *)io->adopt_head;
        io->adopt_head = f->node.next;
        if (!io->adopt_head)
            io->adopt_tail = NULL;
        wsi_data_t *d = calloc(1, sizeof(*d));
        struct lws *wsi = d ? lws_adopt_socket_vhost(io->vh, f->fd) : NULL;
        if (!wsi) {
            /* lws closes the fd when adoption fails */
            if (!d)
                close(f->fd);
            free(d);
            atomic_fetch_sub(&io->srv->live_conns, 1);
        } else {
            /* live_conns is given back in LWS_CALLBACK_WSI_DESTROY, which frees d */
            lws_set_opaque_user_data(wsi, d);
        }
        free(f);
    }
    if (io->adopt_head)
        lws_cancel_service(io->ctx); /* another turn, after these are served */
}

static void drain_inbox(hs_io_t *io)
{
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&io->inbox), *next; n; n = next) {
        next = n->next;
        switch (n->kind) {
        case HS_NODE_FD:
            n->next = NULL;
            if (io->adopt_tail)
                io->adopt_tail->next = n;
            else
                io->adopt_head = n;
            io->adopt_tail = n;
            break;
        case HS_NODE_SUB_IO: {
            hs_sub_t *s = hs_container_of(n, hs_sub_t, io_node);
            const hs_transport_t *t = transport_of(io, s->transport);
            if (t && t->on_sub_signal) {
                t->on_sub_signal(io, s);
            } else {
                hs_sub_take_io_flags(s);
                hs_sub_unref(s); /* the inbox's reference */
            }
            break;
        }
        default: {
            const hs_transport_t *t = message_transport(io, n->kind);
            if (t && t->on_message)
                t->on_message(io, n);
            break;
        }
        }
    }
    if (io->nbacklog)
        drain_backlog(io);
    if (io->adopt_head)
        adopt_some(io);
}

/* ---- lingering close ---- */

/*
 * lws 4.1 closes a socket right after shutdown(SHUT_WR), without waiting for the client's end
 * (the wait it means to do is skipped). A close() with unread input makes the kernel send a
 * reset, and a reset makes the client's kernel drop what it had received but not yet read: a
 * client still sending when the server refuses it (a 413, a SignalR Close with an error) would
 * never see why. So when lws is about to close a connection, the IO thread keeps a duplicate of
 * its descriptor: the socket outlives lws's close(), its queued answer and FIN go out, and the
 * duplicate is read and discarded until the client closes its end or HS_LINGER_MS pass.
 */
#define HS_LINGER_MS 2000

static void linger(hs_io_t *io, struct lws *wsi)
{
    int fd = lws_get_socket_fd(wsi);
    if (fd < 0 || io->nlingers == HS_LINGER_MAX)
        return; /* too many at once: those close at once, as lws does */
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0)
        return;
    /* the FIN goes out after what is queued (lws sends it itself only on some of its paths:
     * not when a timeout kills the connection) */
    shutdown(d, SHUT_WR);
    io->lingers[io->nlingers].fd = d;
    io->lingers[io->nlingers].until_ms = hs_now_ms() + HS_LINGER_MS;
    io->nlingers++;
}

/* Tick: reads and drops what lingering sockets received; closes those done or out of time. */
static void reap_lingers(hs_io_t *io, int64_t now)
{
    char *sink = (char *)io->wbuf; /* scratch, unused between writes */
    size_t cap = LWS_PRE + HS_WRITE_BUDGET;
    for (size_t i = 0; i < io->nlingers;) {
        int fd = io->lingers[i].fd;
        bool done = now >= io->lingers[i].until_ms;
        for (int k = 0; k < 16 && !done; k++) {
            ssize_t n = recv(fd, sink, cap, MSG_DONTWAIT);
            if (n > 0)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                break;
            done = true; /* the client closed its end, or the socket failed */
        }
        if (done) {
            close(fd);
            io->lingers[i] = io->lingers[--io->nlingers];
        } else {
            i++;
        }
    }
}

/* ---- hang-ups during an outstanding answer (server.h) ---- */

void hs_conn_watch_hangup(hs_conn_t *c)
{
    if (c->hup_watched || !c->wsi || c->io->hup_ep < 0)
        return;
    int fd = lws_get_socket_fd(c->wsi);
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLET, .data.ptr = c};
    if (fd < 0)
        return;
    /* a keep-alive connection keeps its fd across requests, and each request a new c */
    if (epoll_ctl(c->io->hup_ep, EPOLL_CTL_ADD, fd, &ev) == 0 ||
        (errno == EEXIST && epoll_ctl(c->io->hup_ep, EPOLL_CTL_MOD, fd, &ev) == 0))
        c->hup_watched = true;
}

void hs_conn_unwatch_hangup(hs_conn_t *c)
{
    if (!c->hup_watched)
        return;
    c->hup_watched = false;
    int fd = lws_get_socket_fd(c->wsi);
    if (fd >= 0)
        epoll_ctl(c->io->hup_ep, EPOLL_CTL_DEL, fd, NULL);
}

/* Closes the watched connections whose client hung up. */
static void reap_hangups(hs_io_t *io)
{
    struct epoll_event ev[64];
    int n;
    while ((n = epoll_wait(io->hup_ep, ev, 64, 0)) > 0) {
        for (int i = 0; i < n; i++) {
            hs_conn_t *c = ev[i].data.ptr;
            hs_conn_unwatch_hangup(c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
        }
        if (n < 64)
            break;
    }
}

/* After a request was dispatched: watch it if its answer is not complete yet. */
static void watch_if_outstanding(hs_conn_t *c)
{
    if (!c->resp || !c->resp_final)
        hs_conn_watch_hangup(c);
}

static void expire_bodies(hs_io_t *io, int64_t now);

static void on_tick(lws_sorted_usec_list_t *sul)
{
    hs_io_t *io = lws_container_of(sul, hs_io_t, tick);
    if (io->nbacklog)
        drain_backlog(io);
    reap_hangups(io);
    int64_t now = hs_now_ms();
    expire_bodies(io, now);
    reap_lingers(io, now);
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = io->srv->transports[i];
        if (t && t->tick)
            t->tick(io, now);
    }
    lws_sul_schedule(io->ctx, 0, &io->tick, on_tick,
                     io->nbacklog ? 1 * LWS_US_PER_MS : 250 * LWS_US_PER_MS);
}

/* ---- request bodies ---- */

static void body_list_add(hs_io_t *io, hs_conn_t *c)
{
    if (c->in_body_list)
        return;
    c->in_body_list = true;
    c->body_prev = NULL;
    c->body_next = io->body_head;
    if (io->body_head)
        io->body_head->body_prev = c;
    io->body_head = c;
}

void hs_conn_body_unlist(hs_conn_t *c)
{
    if (!c->in_body_list)
        return;
    c->in_body_list = false;
    if (c->body_prev)
        c->body_prev->body_next = c->body_next;
    else
        c->io->body_head = c->body_next;
    if (c->body_next)
        c->body_next->body_prev = c->body_prev;
    c->body_prev = c->body_next = NULL;
}

/* Appends body bytes, growing the buffer as they arrive (never to a claimed length up front:
 * a client that announces 1 MiB and sends nothing costs nothing). -1 past body_limit or on
 * ENOMEM (*oom set). */
static int body_append(hs_conn_t *c, const void *in, size_t len, bool *oom)
{
    *oom = false;
    if (len > c->body_limit - c->body_len)
        return -1;
    if (c->body_len + len > c->body_cap) {
        size_t need = c->body_len + len, nc = c->body_cap ? c->body_cap : 4096;
        while (nc < need)
            nc *= 2;
        if (nc > c->body_limit)
            nc = c->body_limit;
        char *nb = realloc(c->body, nc + 1); /* + 1: room for a terminating NUL */
        if (!nb) {
            *oom = true;
            return -1;
        }
        c->body = nb;
        c->body_cap = nc;
    }
    memcpy(c->body + c->body_len, in, len);
    c->body_len += len;
    return 0;
}

/* Refuses a request whose body is still arriving (or never will): the answer goes out at once
 * and the connection closes after it (lws would go on reading what it takes for the body). */
static void refuse_body(hs_conn_t *c, int status, const char *code, const char *msg)
{
    hs_conn_body_unlist(c);
    c->close_after = true;
    c->body_done = true;
    hs_conn_error(c, status, code, "%s", msg);
}

/* Strict Content-Length: decimal digits only (no sign, no list, no white space inside). */
static bool parse_content_length(const char *s, long long *out)
{
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    while (n && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    if (!n || n > 18)
        return false;
    long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* The body is complete: serve the request whose path was kept for it. */
static void body_complete(hs_conn_t *c)
{
    wsi_data_t *d = lws_get_opaque_user_data(c->wsi);
    char *pcopy = d ? d->path : NULL;
    if (d)
        d->path = NULL;
    hs_conn_body_unlist(c);
    c->body_done = true;
    if (c->body)
        c->body[c->body_len] = '\0';
    route(c, pcopy ? pcopy : "/");
    free(pcopy);
    watch_if_outstanding(c);
}

/* Decodes a piece of a chunked body. Returns -1 to close the connection now. */
static int chunked_body(hs_conn_t *c, const uint8_t *p, size_t len)
{
    const uint8_t *end = p + len;
    while (!c->body_done) {
        const uint8_t *data;
        size_t dl;
        int rc = hs_chunked_next(&c->chunk, &p, end, &data, &dl);
        if (rc == HS_CHUNKED_NEED)
            return 0;
        if (rc == HS_CHUNKED_ERROR) {
            char why[128];
            snprintf(why, sizeof(why), "malformed chunked body: %s", c->chunk.why);
            refuse_body(c, 400, "BadRequest", why);
            return 0;
        }
        if (rc == HS_CHUNKED_DATA) {
            bool oom;
            if (c->body_too_large)
                continue; /* refused already: read to its end, then close */
            if (body_append(c, data, dl, &oom)) {
                if (oom)
                    return -1;
                char why[128];
                snprintf(why, sizeof(why), "the body is over the %zu-byte limit",
                         c->io->srv->cfg.max_body);
                c->body_too_large = true;
                c->close_after = true;
                hs_conn_error(c, 413, "TooLarge", "%s", why);
            }
            continue;
        }
        /* HS_CHUNKED_DONE: whatever follows is not ours to read (lws still counts it as body) */
        if (c->body_too_large) {
            hs_conn_body_unlist(c);
            c->body_done = true;
            return c->resp ? 0 : -1; /* the refusal is out: close now, else after it */
        }
        c->close_after = true;
        body_complete(c);
    }
    return 0;
}

/* Tick: requests whose body did not arrive whole by its deadline get 408 and are closed. */
static void expire_bodies(hs_io_t *io, int64_t now)
{
    for (hs_conn_t *c = io->body_head, *next; c; c = next) {
        next = c->body_next;
        if (now < c->body_deadline_ms)
            continue;
        if (c->close_after) {
            /* already refused (413), and still sending: stop waiting for its end */
            hs_conn_body_unlist(c);
            lws_set_timeout(c->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
            continue;
        }
        refuse_body(c, 408, "RequestTimeout", "the request body did not arrive in time");
    }
}

/* ---- the lws protocol callback ---- */

static int method_of(struct lws *wsi)
{
    static const enum lws_token_indexes toks[] = {WSI_TOKEN_GET_URI, WSI_TOKEN_POST_URI,
                                                  WSI_TOKEN_PUT_URI, WSI_TOKEN_DELETE_URI,
                                                  WSI_TOKEN_PATCH_URI, WSI_TOKEN_OPTIONS_URI,
                                                  WSI_TOKEN_HEAD_URI};
    for (size_t i = 0; i < sizeof(toks) / sizeof(toks[0]); i++)
        if (lws_hdr_total_length(wsi, toks[i]))
            return (int)toks[i];
    return -1;
}

/* Writes the next piece of the queued response: -1 to close, 1 while pieces remain (a writable
 * callback is requested), 0 once it is all out (c may then be gone: a completed transaction
 * frees it). */
static int write_response(hs_conn_t *c)
{
    size_t left = c->resp_len - c->resp_off;
    size_t n = left > HS_WRITE_BUDGET ? HS_WRITE_BUDGET : left;
    bool last = n == left, final = c->resp_final;
    /* lws may write framing before the buffer it is given: each piece goes from the IO
     * thread's write buffer, which has the headroom */
    unsigned char *out = c->io->wbuf + LWS_PRE;
    memcpy(out, c->resp + LWS_PRE + c->resp_off, n);
    int w = lws_write(c->wsi, out, n, last && final ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
    if (w < (int)n)
        return -1;
    c->resp_off += n;
    if (!last) {
        lws_callback_on_writable(c->wsi);
        return 1;
    }
    resp_drop(c);
    if (c->close_after && c->body_done)
        return -1;
    wsi_data_t *wd = lws_get_opaque_user_data(c->wsi);
    if (wd && final)
        wd->busy = false;
    if (final)
        hs_conn_unwatch_hangup(c);
    if (c->close_after)
        return 0; /* keep reading (and dropping) the body; close at its end */
    if (final)
        return lws_http_transaction_completed(c->wsi) ? -1 : 0;
    return 0;
}

/* The end of a request (its transaction or its connection): whatever it holds goes. */
static void conn_closed(hs_conn_t *c)
{
    hs_conn_unwatch_hangup(c);
    hs_conn_body_unlist(c);
    if (c->owner && c->owner->http_closed)
        c->owner->http_closed(c);
    c->owner = NULL;
    c->stream = false;
    resp_drop(c);
    free(c->body);
    c->body = NULL;
    c->body_cap = c->body_len = 0;
}

/* A WebSocket upgrade: the endpoint registered for its path decides. 0 lets it go on, 1 when
 * an HTTP answer was written instead, -1 to hang up. */
static int ws_confirm(struct lws *wsi, wsi_data_t *wd)
{
    hs_server_t *srv = io_of(wsi)->srv;
    char path[256];
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0)
        for (int i = 0; i < srv->nws; i++) {
            if (strcmp(srv->ws[i].path, path))
                continue;
            void *ctx = NULL;
            int rc = srv->ws[i].confirm(wsi, srv->ws[i].arg, &ctx);
            if (rc == 0) {
                wd->ws_t = srv->ws[i].t;
                wd->ws_ctx = ctx;
            }
            return rc;
        }
    char msg[128] = "No WebSocket endpoint here";
    if (srv->nws)
        snprintf(msg, sizeof(msg), "No WebSocket endpoint here; use %s", srv->ws[0].path);
    return hs_wsi_respond(wsi, 404, msg) ? -1 : 1;
}

static void ws_closed(struct lws *wsi, wsi_data_t *wd)
{
    if (!wd || !wd->ws_ctx)
        return;
    void *ctx = wd->ws_ctx;
    wd->ws_ctx = NULL;
    if (wd->ws_t->ws_closed)
        wd->ws_t->ws_closed(wsi, ctx);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    hs_conn_t *c = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        drain_inbox(io_of(wsi));
        return 0;

    case LWS_CALLBACK_HTTP: {
        if (!c)
            return -1;
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || wd->busy) {
            /* HTTP/1.1 pipelining: lws starts the next request before this one's answer is
             * out, which the asynchronous answers here cannot order; close the connection (the
             * client retries unanswered requests on a new one) */
            return -1;
        }
        wd->busy = true;
        hs_io_t *io = io_of(wsi);
        c->wsi = wsi;
        c->io = io;
        c->body_len = 0;
        c->body_too_large = false;
        c->close_after = false;
        c->body_done = false;
        c->method = method_of(wsi);
        char path[1024];
        if (c->method >= 0 && lws_hdr_total_length(wsi, c->method) >= (int)sizeof(path)) {
            c->body_done = true;
            c->close_after = true;
            hs_conn_error(c, 414, "TooLarge", "the path is over %zu bytes", sizeof(path) - 1);
            return 0;
        }
        size_t pl = strnlen((const char *)in, sizeof(path) - 1);
        memcpy(path, in, pl);
        path[pl] = '\0';
        /* lws decodes %00 into the URI and cuts it there, and takes a decoded %0A or %0D for
         * the end of the request line (the HTTP version then goes missing): refuse what it cut
         * rather than serve a shorter path, which could name another stream */
        if (c->method >= 0 && ((size_t)lws_hdr_total_length(wsi, c->method) != pl ||
                               lws_hdr_total_length(wsi, WSI_TOKEN_HTTP) <= 0)) {
            c->body_done = true;
            c->close_after = true;
            hs_conn_error(c, 400, "BadRequest", "the path holds a NUL or control character");
            return 0;
        }
        if (c->method == WSI_TOKEN_POST_URI || c->method == WSI_TOKEN_PUT_URI ||
            c->method == WSI_TOKEN_PATCH_URI) {
            hs_server_t *srv = io->srv;
            bool has_te = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0;
            bool has_cl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) > 0;
            c->chunked = false;
            c->body_too_large = false;
            if (has_te) {
                char te[64] = "";
                if (lws_hdr_copy(wsi, te, sizeof(te), WSI_TOKEN_HTTP_TRANSFER_ENCODING) <= 0 ||
                    strcasecmp(te, "chunked")) {
                    refuse_body(c, 400, "BadRequest",
                                "the only transfer coding taken is 'chunked'");
                    return 0;
                }
                if (has_cl) {
                    /* RFC 9112 6.3: a message with both is a smuggling attempt or broken */
                    refuse_body(c, 400, "BadRequest",
                                "Content-Length and Transfer-Encoding together");
                    return 0;
                }
                c->chunked = true;
                hs_chunked_init(&c->chunk);
                c->body_limit = srv->cfg.max_body;
            } else if (has_cl) {
                char cl[32] = "";
                long long n = 0;
                if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH) >= (int)sizeof(cl) ||
                    lws_hdr_copy(wsi, cl, sizeof(cl), WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0 ||
                    !parse_content_length(cl, &n)) {
                    refuse_body(c, 400, "BadRequest", "Content-Length must be a decimal number");
                    return 0;
                }
                if (n > (long long)srv->cfg.max_body) {
                    /* answer now, read and drop the body (within the deadline), then close */
                    c->close_after = true;
                    hs_conn_error(c, 413, "TooLarge",
                                  "the body is %lld bytes, over the %zu-byte limit", n,
                                  srv->cfg.max_body);
                    c->body_deadline_ms = hs_now_ms() + srv->cfg.request_timeout_ms;
                    body_list_add(io, c);
                    return 0;
                }
                c->body_limit = (size_t)n;
            } else {
                /* neither: the body is empty (RFC 9112 6.3). lws 4.1 would read on as if a
                 * body of 100 MiB followed, so the connection closes after the answer. */
                c->close_after = true;
                c->body_done = true;
                route(c, path);
                watch_if_outstanding(c);
                return 0;
            }
            free(c->body);
            c->body = NULL;
            c->body_cap = 0;
            char *pcopy = malloc(pl + 1);
            wsi_data_t *d = lws_get_opaque_user_data(wsi);
            if (!pcopy || !d) {
                free(pcopy);
                return -1;
            }
            memcpy(pcopy, path, pl + 1);
            free(d->path);
            d->path = pcopy;
            c->body_deadline_ms = hs_now_ms() + srv->cfg.request_timeout_ms;
            body_list_add(io, c);
            return 0;
        }
        route(c, path);
        watch_if_outstanding(c);
        return 0;
    }

    case LWS_CALLBACK_HTTP_BODY: {
        if (!c || !len || c->body_done)
            return 0;
        if (c->chunked)
            return chunked_body(c, in, len);
        if (c->close_after)
            return 0; /* refused: read and drop */
        bool oom;
        if (body_append(c, in, len, &oom)) {
            if (oom)
                return -1;
            c->body_too_large = true; /* lws bounds it by Content-Length: cannot happen */
        }
        return 0;
    }

    case LWS_CALLBACK_HTTP_BODY_COMPLETION: {
        if (!c)
            return -1;
        if (c->chunked)
            return 0; /* a chunked body ended at its last chunk; lws's count is moot */
        if (c->body_done) {
            if (!c->completions++)
                /* refused before its body (close_after): close once the answer is out */
                return c->close_after && c->resp ? 0 : -1;
            /* lws 4.1 calls this again for bytes after a completed body (a pipelined request)
             * without consuming them: close, or, with an answer still to write, stop reading
             * until it is out (write_response then closes) */
            if (!c->close_after || !c->resp)
                return -1;
            lws_rx_flow_control(wsi, 0);
            return 0;
        }
        c->completions++;
        hs_conn_body_unlist(c);
        if (c->close_after) {
            wsi_data_t *d = lws_get_opaque_user_data(wsi);
            if (d) {
                free(d->path);
                d->path = NULL;
            }
            c->body_done = true;
            /* the refusal was queued before the body: close once it is out */
            return c->resp ? 0 : -1;
        }
        wsi_data_t *d = lws_get_opaque_user_data(wsi);
        if (!d || !d->path)
            return -1; /* a body with no request of ours: lws ran on into a pipelined one */
        if (c->body_too_large) {
            c->body_done = true;
            free(d->path);
            d->path = NULL;
            hs_conn_error(c, 413, "TooLarge", "the body is longer than its Content-Length");
            return 0;
        }
        body_complete(c);
        return 0;
    }

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (!c)
            return 0;
        if (c->resp) {
            bool stream = c->stream;
            /* a completed transaction frees c (lws re-creates it for the next request) */
            int rc = write_response(c);
            if (rc < 0)
                return -1;
            if (rc > 0 || !stream)
                return 0;
        }
        if (c->stream && c->owner && c->owner->http_writable)
            return c->owner->http_writable(c);
        return 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || strcasecmp((const char *)in, "websocket"))
            return -1;
        return ws_confirm(wsi, wd);
    }

    case LWS_CALLBACK_ESTABLISHED: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || !wd->ws_ctx)
            return -1;
        if (wd->ws_t->ws_established)
            wd->ws_t->ws_established(wsi, wd->ws_ctx);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || !wd->ws_ctx || !wd->ws_t->ws_receive)
            return -1;
        return wd->ws_t->ws_receive(wsi, wd->ws_ctx, in, len);
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || !wd->ws_ctx || !wd->ws_t->ws_writable) {
            /* its connection was taken over by another socket: end this one */
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return wd->ws_t->ws_writable(wsi, wd->ws_ctx);
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (wd && wd->ws_ctx && wd->ws_t->ws_peer_close)
            wd->ws_t->ws_peer_close(wd->ws_ctx);
        return 0;
    }

    case LWS_CALLBACK_CLOSED:
        linger(io_of(wsi), wsi);
        ws_closed(wsi, lws_get_opaque_user_data(wsi));
        return 0;

    case LWS_CALLBACK_CLOSED_HTTP:
        linger(io_of(wsi), wsi);
        /* fall through */
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL: /* end of a transaction: lws frees c next */
        if (c)
            conn_closed(c);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY: {
        if (c)
            conn_closed(c);
        wsi_data_t *d = lws_get_opaque_user_data(wsi);
        if (d) {
            lws_set_opaque_user_data(wsi, NULL);
            ws_closed(wsi, d); /* upgraded but never established */
            free(d->path);
            free(d);
            atomic_fetch_sub(&io_of(wsi)->srv->live_conns, 1);
        }
        return 0;
    }

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/*
 * rx_buffer_size: the WebSocket receive buffer lws keeps for each upgraded connection's whole
 * life (default: pt_serv_buf_size, 4 KiB). 512 bytes here: an inbound message longer than that
 * reaches the callback in 512-byte pieces, which the hub's record parser takes as a byte stream
 * anyway (lws unmasks byte by byte, so the extra callbacks cost little); 3.5 KiB less per idle
 * WebSocket subscriber.
 * tx_packet_size: lws hands send() at most this many bytes per write and copies the rest to a
 * buffer of the connection's to drain on later writable turns; with 0 the cap is the receive
 * buffer size (4 KiB by default), so every turn's batch of up to HS_WRITE_BUDGET bytes was cut
 * after a few KiB and its remainder copied. 1 MiB: a turn's batch goes to the kernel in one
 * send(), and a large answer (a page of a read) in few.
 */
#define HS_WS_RX_BUFFER 512
#define HS_TX_PACKET (1024 * 1024)

static const struct lws_protocols protocols[] = {
    {"hubstream", callback, sizeof(hs_conn_t), HS_WS_RX_BUFFER, 0, NULL, HS_TX_PACKET},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static void lws_quiet(int level, const char *line)
{
    (void)level;
    (void)line;
}

int hs_io_create(hs_server_t *srv, int index, hs_io_t **out, char *err, size_t errlen)
{
    /* lws 4.1 formats log lines in a static buffer shared by every context (a data race
     * between IO threads), so it gets no log level at all */
    lws_set_log_level(0, lws_quiet);
    hs_io_t *io = calloc(1, sizeof(*io));
    if (!io)
        goto nomem;
    io->srv = srv;
    io->index = index;
    io->hup_ep = epoll_create1(EPOLL_CLOEXEC);
    hs_mpsc_init(&io->inbox);
    io->wbuf = malloc(LWS_PRE + HS_WRITE_BUDGET + 4096);
    io->backlog = malloc(HS_BACKLOG_MAX * sizeof(*io->backlog));
    if (!io->wbuf || !io->backlog)
        goto nomem;
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.protocols = protocols;
    info.user = io;
    info.vhost_name = "default";
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    info.max_http_header_data = 8192;
    info.keepalive_timeout = 75;
    info.timeout_secs = 30;
    io->ctx = lws_create_context(&info);
    if (!io->ctx) {
        snprintf(err, errlen, "lws_create_context failed for IO thread %d", index);
        hs_io_destroy(io);
        return HS_ESYS;
    }
    io->vh = lws_get_vhost_by_name(io->ctx, "default");
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = srv->transports[i];
        if (t && t->io_init && t->io_init(io, &io->tstate[i])) {
            snprintf(err, errlen, "out of memory");
            hs_io_destroy(io);
            return HS_ENOMEM;
        }
    }
    *out = io;
    return 0;
nomem:
    snprintf(err, errlen, "out of memory");
    hs_io_destroy(io);
    return HS_ENOMEM;
}

static void *run(void *arg)
{
    hs_io_t *io = arg;
    lws_sul_schedule(io->ctx, 0, &io->tick, on_tick, 250 * LWS_US_PER_MS);
    while (!atomic_load(&io->stop))
        if (lws_service(io->ctx, 0) < 0)
            break;
    lws_sul_cancel(&io->tick);
    /* the context outlives the thread: other threads may still lws_cancel_service() it until
     * they stop; hs_io_destroy() closes its connections */
    return NULL;
}

int hs_io_start(hs_io_t *io)
{
    if (pthread_create(&io->thread, NULL, run, io))
        return HS_ESYS;
    io->started = true;
    return 0;
}

void hs_io_stop(hs_io_t *io)
{
    if (!io || !io->started)
        return;
    atomic_store(&io->stop, 1);
    lws_cancel_service(io->ctx);
    pthread_join(io->thread, NULL);
    io->started = false;
}

void hs_io_close(hs_io_t *io)
{
    if (!io)
        return;
    hs_io_stop(io);
    if (io->ctx)
        lws_context_destroy(io->ctx);
    io->ctx = NULL;
}

void hs_io_end(hs_io_t *io)
{
    if (!io)
        return;
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = io->srv->transports[i];
        if (t && t->io_end && io->tstate[i])
            t->io_end(io);
    }
}

void hs_io_destroy(hs_io_t *io)
{
    if (!io)
        return;
    hs_io_close(io);
    hs_io_end(io);
    /* sockets handed over but not adopted yet */
    for (hs_mpsc_node_t *n = io->adopt_head, *next; n; n = next) {
        next = n->next;
        close(((fd_node_t *)n)->fd);
        free(n);
    }
    io->adopt_head = io->adopt_tail = NULL;
    /* whatever is still queued: acks the writer produced after the connections closed */
    for (hs_mpsc_node_t *n = hs_mpsc_take_all(&io->inbox), *next; n; n = next) {
        next = n->next;
        if (n->kind == HS_NODE_FD) {
            close(((fd_node_t *)n)->fd);
            free(n);
        } else if (n->kind == HS_NODE_SUB_IO) {
            hs_sub_t *s = hs_container_of(n, hs_sub_t, io_node);
            hs_sub_take_io_flags(s);
            hs_sub_unref(s);
        } else {
            const hs_transport_t *t = message_transport(io, n->kind);
            if (t && t->drop_message)
                t->drop_message(io, n);
        }
    }
    /* entries never submitted: their transports drop them like undelivered acks */
    for (size_t i = 0; i < io->nbacklog; i++) {
        hs_ingest_t *e = io->backlog[i];
        const hs_transport_t *t = message_transport(io, e->node.kind);
        if (t && t->drop_message)
            t->drop_message(io, &e->node);
        else
            hs_ingest_free(e);
    }
    for (size_t i = 0; i < io->nlingers; i++)
        close(io->lingers[i].fd);
    io->nlingers = 0;
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = io->srv->transports[i];
        if (t && t->io_fini && io->tstate[i])
            t->io_fini(io, io->tstate[i]);
        io->tstate[i] = NULL;
    }
    free(io->backlog);
    free(io->wbuf);
    hs_hubbuf_free(&io->scratch);
    if (io->hup_ep >= 0)
        close(io->hup_ep);
    free(io);
}
