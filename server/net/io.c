/*
 * IO threads: one libwebsockets context each, with no listener of its own. Sockets arrive from
 * the acceptor through the inbox; so do publish acks from the writer, read results from the
 * reader threads and outbox signals from the fan-out workers, each followed by
 * lws_cancel_service(), the one thread-safe way into a context. Everything that touches a
 * connection happens on its IO thread.
 *
 * This file knows no protocol of hubstream's (see net.h): an HTTP request goes to conn.c (which
 * reads its body and routes it); a WebSocket upgrade to the endpoint registered for its path;
 * everything else (messages on the inbox, subscription signals, a WebSocket's frames, closes,
 * ticks) to the transport that owns it. Also here: adopting handed sockets in small batches,
 * lingering closes, hang-ups of connections whose answer is outstanding, and the tables the
 * front ends fill at create time (hs_server_add_transport, _route, _ws, _cors_headers).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "server/net/net.h"
#include "util/time.h"
#include "util/thread.h"

typedef hs_wsi_data_t wsi_data_t;

typedef struct fd_node {
    hs_mpsc_node_t node;
    int fd;
    hs_peer_key_t peer;
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

void hs_io_hand_fd(hs_io_t *io, int fd, const hs_peer_key_t *peer)
{
    fd_node_t *n = malloc(sizeof(*n));
    if (!n) {
        hs_peers_close(io->srv, peer);
        close(fd);
        return;
    }
    n->node.kind = HS_NODE_FD;
    n->fd = fd;
    n->peer = *peer;
    if (hs_mpsc_push(&io->inbox, &n->node))
        lws_cancel_service(io->ctx);
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

void hs_metrics_hub_publish(hs_io_t *io, int status)
{
    int code = status == 0               ? 201
               : status == HS_ECONFLICT  ? 409
               : status == HS_ECLOSED    ? 410
               : status == HS_EINVAL     ? 400
               : status == HS_ENOENT     ? 404
               : status == HS_ETOOLARGE  ? 413
               : status == HS_EBUSY      ? 429
               : status == HS_EFORBIDDEN ? 403
                                         : 503;
    hs_ctr_add(&io->m.publishes[1][hs_metrics_pub_slot(code)], 1);
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
            hs_peers_close(io->srv, &f->peer);
            atomic_fetch_sub(&io->srv->live_conns, 1);
        } else {
            /* live_conns and the peer count are given back in LWS_CALLBACK_WSI_DESTROY,
             * which frees d */
            d->peer = f->peer;
            lws_set_opaque_user_data(wsi, d);
            if (io->srv->log.level <= HS_LOG_DEBUG) {
                char peer[64] = "", fd[16];
                lws_get_peer_simple(wsi, peer, sizeof peer);
                snprintf(fd, sizeof fd, "%d", f->fd);
                hs_log(&io->srv->log, HS_LOG_DEBUG, "connection opened", "peer", peer, "fd", fd,
                       NULL);
            }
        }
        free(f);
    }
    if (io->adopt_head)
        lws_cancel_service(io->ctx); /* another turn, after these are served */
}

/* A clean stop's request to settle before the writer stops (hs_io_prestop): one per IO thread,
 * all pointing at one shared count. */
typedef struct prestop_all {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int left;
} prestop_all_t;

typedef struct prestop_req {
    hs_mpsc_node_t node;
    prestop_all_t *all;
} prestop_req_t;

static void prestop(hs_io_t *io, hs_mpsc_node_t *n)
{
    prestop_all_t *all = hs_container_of(n, prestop_req_t, node)->all;
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = io->srv->transports[i];
        if (t && t->prestop && io->tstate[i])
            t->prestop(io);
    }
    if (io->nbacklog)
        drain_backlog(io);
    pthread_mutex_lock(&all->mu);
    if (--all->left == 0)
        pthread_cond_signal(&all->cv);
    pthread_mutex_unlock(&all->mu);
}

void hs_io_prestop(hs_io_t *const *ios, int n, int timeout_ms)
{
    /* one allocation for the count and the requests; kept, not freed, if a thread does not
     * answer in time (it may still touch them) */
    prestop_all_t *all = calloc(1, sizeof(*all) + (size_t)n * sizeof(prestop_req_t));
    if (!all)
        return;
    prestop_req_t *reqs = (prestop_req_t *)(all + 1);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&all->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&all->mu, NULL);
    pthread_mutex_lock(&all->mu);
    for (int i = 0; i < n; i++) {
        if (!ios[i] || !ios[i]->ctx)
            continue;
        reqs[i].node.kind = HS_NODE_IO_PRESTOP;
        reqs[i].all = all;
        all->left++;
        hs_io_post(ios[i], &reqs[i].node);
    }
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    while (all->left > 0 && pthread_cond_timedwait(&all->cv, &all->mu, &until) == 0)
        ;
    bool done = all->left == 0;
    pthread_mutex_unlock(&all->mu);
    if (done) {
        pthread_cond_destroy(&all->cv);
        pthread_mutex_destroy(&all->mu);
        free(all);
    }
}

static void drain_inbox(hs_io_t *io);

/* The work another layer gave this thread (server.h io_turn: the fan-out worker, when it runs
 * on the IO threads), at each wake-up and when the time it asked for has passed. What it
 * signalled to this thread's subscribers is in the inbox, drained right after. */
static void on_turn_timer(lws_sorted_usec_list_t *sul);

static void run_turn(hs_io_t *io)
{
    hs_server_t *srv = io->srv;
    if (!srv->io_turn)
        return;
    int ms = srv->io_turn(srv->io_turn_ctx, io->index);
    if (ms == 0)
        lws_cancel_service(io->ctx); /* more came meanwhile: another turn after the sockets' */
    else if (ms > 0)
        lws_sul_schedule(io->ctx, 0, &io->turn_sul, on_turn_timer, (lws_usec_t)ms * LWS_US_PER_MS);
}

static void on_turn_timer(lws_sorted_usec_list_t *sul)
{
    hs_io_t *io = lws_container_of(sul, hs_io_t, turn_sul);
    run_turn(io);
    drain_inbox(io);
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
        case HS_NODE_TLS_RELOAD:
            /* the files were checked (hs_server_reload_tls); lws reads them again for this
             * context: new handshakes get the new certificate, open connections keep theirs */
            free(n);
            lws_tls_cert_updated(io->ctx, io->srv->tls_cert, io->srv->tls_key, NULL, 0, NULL, 0);
            hs_log(&io->srv->log, HS_LOG_DEBUG, "TLS certificate reloaded", NULL);
            break;
        case HS_NODE_IO_PRESTOP:
            prestop(io, n);
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

static void on_tick(lws_sorted_usec_list_t *sul)
{
    hs_io_t *io = lws_container_of(sul, hs_io_t, tick);
    if (io->nbacklog)
        drain_backlog(io);
    reap_hangups(io);
    int64_t now = hs_now_ms();
    hs_conn_expire_bodies(io, now);
    reap_lingers(io, now);
    for (int i = 0; i < HS_TRANSPORTS_MAX; i++) {
        const hs_transport_t *t = io->srv->transports[i];
        if (t && t->tick)
            t->tick(io, now);
    }
    lws_sul_schedule(io->ctx, 0, &io->tick, on_tick,
                     io->nbacklog ? 1 * LWS_US_PER_MS : 250 * LWS_US_PER_MS);
}

/* ---- the lws protocol callback ---- */
/* A WebSocket upgrade: the endpoint registered for its path decides. 0 lets it go on, 1 when
 * an HTTP answer was written instead, -1 to hang up. */
static int ws_confirm(struct lws *wsi, wsi_data_t *wd)
{
    hs_server_t *srv = io_of(wsi)->srv;
    if (!hs_cors_may_act(wsi))
        /* a page of another origin (browsers send every WebSocket upgrade without asking) */
        return hs_wsi_respond(wsi, 403,
                              "WebSocket connections from this origin are not allowed "
                              "(--cors-origins)")
                   ? -1
                   : 1;
    char path[256];
    if (lws_hdr_copy(wsi, path, sizeof(path), WSI_TOKEN_GET_URI) > 0)
        for (int i = 0; i < srv->nws; i++) {
            if (strcmp(srv->ws[i].path, path))
                continue;
            void *ctx = NULL;
            int rc = srv->ws[i].confirm(wsi, srv->ws[i].arg, &ctx);
            if (rc == 0) {
                wd->ws_ep = (uint8_t)i;
                wd->ws_ctx = ctx;
            }
            return rc;
        }
    char msg[128] = "No WebSocket endpoint here";
    if (srv->nws)
        snprintf(msg, sizeof(msg), "No WebSocket endpoint here; use %s", srv->ws[0].path);
    return hs_wsi_respond(wsi, 404, msg) ? -1 : 1;
}

/* The transport of an accepted WebSocket (wd->ws_ctx set). */
static const hs_transport_t *ws_transport(struct lws *wsi, const wsi_data_t *wd)
{
    return io_of(wsi)->srv->ws[wd->ws_ep].t;
}

static void ws_closed(struct lws *wsi, wsi_data_t *wd)
{
    if (!wd || !wd->ws_ctx)
        return;
    void *ctx = wd->ws_ctx;
    wd->ws_ctx = NULL;
    const hs_transport_t *t = ws_transport(wsi, wd);
    if (t->ws_closed)
        t->ws_closed(wsi, ctx);
}

static int callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    hs_conn_t *c = user;
    switch (reason) {
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
        run_turn(io_of(wsi));
        drain_inbox(io_of(wsi));
        return 0;

    case LWS_CALLBACK_HTTP:
        return c ? hs_conn_on_request(wsi, c, in) : -1;

    case LWS_CALLBACK_HTTP_BODY:
        return c ? hs_conn_on_body(wsi, c, in, len) : 0;

    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
        return c ? hs_conn_on_body_done(wsi, c) : -1;

    case LWS_CALLBACK_HTTP_WRITEABLE:
        return c ? hs_conn_on_writable(c) : 0;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || strcasecmp((const char *)in, "websocket"))
            return -1;
        return ws_confirm(wsi, wd);
    }

    case LWS_CALLBACK_ESTABLISHED: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (c) {
            /* lws keeps the per-session struct (an hs_conn_t, 416 bytes) for a WebSocket's
             * whole life; nothing of it is used past the upgrade (the transport keeps its state
             * in wd->ws_ctx). Freed here, after lws allocated it for the last time: every later
             * callback of this wsi gets user NULL. */
            hs_conn_closed(c);
            lws_set_wsi_user(wsi, NULL);
        }
        if (!wd || !wd->ws_ctx)
            return -1;
        if (ws_transport(wsi, wd)->ws_established)
            ws_transport(wsi, wd)->ws_established(wsi, wd->ws_ctx);
        return 0;
    }

    case LWS_CALLBACK_RECEIVE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || !wd->ws_ctx || !ws_transport(wsi, wd)->ws_receive)
            return -1;
        return ws_transport(wsi, wd)->ws_receive(wsi, wd->ws_ctx, in, len);
    }

    case LWS_CALLBACK_SERVER_WRITEABLE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (!wd || !wd->ws_ctx || !ws_transport(wsi, wd)->ws_writable) {
            /* its connection was taken over by another socket: end this one */
            lws_close_reason(wsi, LWS_CLOSE_STATUS_NORMAL, NULL, 0);
            return -1;
        }
        return ws_transport(wsi, wd)->ws_writable(wsi, wd->ws_ctx);
    }

    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
        wsi_data_t *wd = lws_get_opaque_user_data(wsi);
        if (wd && wd->ws_ctx && ws_transport(wsi, wd)->ws_peer_close)
            ws_transport(wsi, wd)->ws_peer_close(wd->ws_ctx);
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
            hs_conn_closed(c);
        return 0;

    case LWS_CALLBACK_WSI_DESTROY: {
        if (c)
            hs_conn_closed(c);
        wsi_data_t *d = lws_get_opaque_user_data(wsi);
        if (d) {
            if (io_of(wsi)->srv->log.level <= HS_LOG_DEBUG) {
                /* the socket is closed by now: the address is the one the acceptor
                 * recorded (for --max-connections-per-ip and the reader threads' turns) */
                char peer[64] = "";
                if (d->peer.family && !inet_ntop(d->peer.family, d->peer.a, peer, sizeof peer))
                    peer[0] = '\0';
                hs_log(&io_of(wsi)->srv->log, HS_LOG_DEBUG, "connection closed",
                       peer[0] ? "peer" : NULL, peer, NULL);
            }
            lws_set_opaque_user_data(wsi, NULL);
            ws_closed(wsi, d); /* upgraded but never established */
            free(d->publishes);
            hs_peers_close(io_of(wsi)->srv, &d->peer);
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
 * life (default: pt_serv_buf_size, 4 KiB). 256 bytes here: an inbound message longer than that
 * reaches the callback in 256-byte pieces, which the hub's record parser takes as a byte stream
 * anyway (lws unmasks byte by byte, so the extra callbacks cost little); 3.75 KiB less per idle
 * WebSocket subscriber than the default. The cost: lws reads a WebSocket at most
 * rx_buffer_size + LWS_PRE bytes per turn of its loop, so a long message takes more turns (a
 * 64 KiB one, 241 instead of 121 at 512). Not below 128: a control frame (Ping, Close) carries
 * up to 125 bytes of payload, which lws answers from this buffer whole.
 * tx_packet_size: lws hands send() at most this many bytes per write and copies the rest to a
 * buffer of the connection's to drain on later writable turns; with 0 the cap is the receive
 * buffer size (4 KiB by default), so every turn's batch of up to HS_WRITE_BUDGET bytes was cut
 * after a few KiB and its remainder copied. 1 MiB: a turn's batch goes to the kernel in one
 * send(), and a large answer (a page of a read) in few.
 */
#define HS_WS_RX_BUFFER 256
#define HS_TX_PACKET    (1024 * 1024)

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
    if (srv->tls_cert) {
        /* adopted sockets start with a TLS handshake (lws_adopt_socket_vhost allows TLS on a
         * vhost that has it); the certificate file may hold the chain after the leaf */
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        info.ssl_cert_filepath = srv->tls_cert;
        info.ssl_private_key_filepath = srv->tls_key;
        info.alpn = "http/1.1";
    }
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
    lws_sul_cancel(&io->turn_sul);
    /* the context outlives the thread: other threads may still lws_cancel_service() it until
     * they stop; hs_io_destroy() closes its connections */
    return NULL;
}

void hs_io_reload_tls(hs_io_t *io)
{
    hs_mpsc_node_t *n = calloc(1, sizeof(*n));
    if (!n)
        return; /* this thread keeps the old certificate; the log says the reload ran */
    n->kind = HS_NODE_TLS_RELOAD;
    hs_io_post(io, n);
}

int hs_io_start(hs_io_t *io)
{
    if (pthread_create(&io->thread, NULL, run, io))
        return HS_ESYS;
    hs_thread_name(io->thread, "hs-io-", io->index);
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
        } else if (n->kind == HS_NODE_TLS_RELOAD) {
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
    hs_buf_free(&io->scratch);
    if (io->hup_ep >= 0)
        close(io->hup_ep);
    free(io);
}

/* ---- what the IO threads serve ---- */

void hs_server_add_transport(hs_server_t *srv, const hs_transport_t *t)
{
    if (t->id >= 0 && t->id < HS_TRANSPORTS_MAX && !srv->transports[t->id])
        srv->transports[t->id] = t;
    else
        abort(); /* a wiring error of ours, found by the first test that starts a server */
}

void hs_server_add_route(hs_server_t *srv, const char *path,
                         void (*fn)(hs_conn_t *c, const char *path, void *arg), void *arg)
{
    int n = (int)(sizeof(srv->routes) / sizeof(srv->routes[0]));
    if (srv->nroutes == n)
        abort();
    srv->routes[srv->nroutes].path = path;
    srv->routes[srv->nroutes].fn = fn;
    srv->routes[srv->nroutes].arg = arg;
    srv->nroutes++;
}

void hs_server_add_prefix_route(hs_server_t *srv, const char *prefix,
                                void (*fn)(hs_conn_t *c, const char *path, void *arg), void *arg)
{
    hs_server_add_route(srv, prefix, fn, arg);
    srv->routes[srv->nroutes - 1].prefix = true;
}

void hs_server_add_cors_headers(hs_server_t *srv, const char *headers)
{
    char *list = srv->cors_headers;
    size_t cap = sizeof(srv->cors_headers);
    if (!list[0])
        snprintf(list, cap, "authorization, content-type");
    size_t n = strlen(list);
    if (n + 2 + strlen(headers) >= cap)
        abort(); /* a wiring error of ours, like the tables' */
    snprintf(list + n, cap - n, ", %s", headers);
}

void hs_server_add_ws(hs_server_t *srv, const char *path, const hs_transport_t *t,
                      int (*confirm)(struct lws *wsi, void *arg, void **ctx), void *arg)
{
    int n = (int)(sizeof(srv->ws) / sizeof(srv->ws[0]));
    if (srv->nws == n)
        abort();
    srv->ws[srv->nws].path = path;
    srv->ws[srv->nws].t = t;
    srv->ws[srv->nws].confirm = confirm;
    srv->ws[srv->nws].arg = arg;
    srv->nws++;
}
