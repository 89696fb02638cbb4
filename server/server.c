#define _GNU_SOURCE
/*
 * The server's lifecycle (hubstream.h): wires the writer, the readers, the fan-out workers, the
 * IO threads and the acceptor together, starts them in dependency order and stops them in the
 * reverse one. Also the in-process publish path and the hooks.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/config.h"
#include "proto/codec.h"
#include "ringbuf/budget.h"
#include "server/auth.h"
#include "server/http/http.h"
#include "server/metrics.h"
#include "server/signalr/es.h"
#include "server/signalr/hub.h"
#include "util/addr.h"
#include "util/time.h"

#define HS_MIB ((size_t)1 << 20)

void hs_config_init(hs_config_t *cfg)
{
    *cfg = (hs_config_t){
        .listen = "127.0.0.1:5000",
        .db = "hubstream.db",
        .allow_anonymous = false,
        .io_threads = 0,
        .fanout_workers = 0,
        .reader_threads = 2,
        .max_connections = 100000,
        .max_body = 1 * HS_MIB,
        .request_timeout_ms = 30000,
        .max_event = 1 * HS_MIB,
        .max_message = 1 * HS_MIB,
        .max_subscriptions = 1000,
        .es_max_subscribers = 100000,
        .db_wait_s = 0,
        .outbox_bytes = 4 * HS_MIB,
        .read_budget = 256 * HS_MIB,
        .connection_read_budget = 16 * HS_MIB,
        .max_page_bytes = 4 * HS_MIB,
        .sse_ping_ms = 15000,
        .sse_retry_ms = 3000,
        .stall_timeout_ms = 30000,
        .writer_batch = 4096,
        .hub_keepalive_ms = 15000,
        .hub_client_timeout_ms = 30000,
        .hub_handshake_timeout_ms = 15000,
        .hub_disconnect_timeout_ms = 15000,
        .hub_longpoll_ms = 90000,
        .hub_max_unclaimed = 10000,
        .hub_stateful_reconnect = true,
        .hub_stateful_buffer = 100000,
        .log_level = HS_LOG_INFO,
        .log_format = "json",
        .jwt_leeway_s = 30,
    };
}

static void writer_log(void *ctx, hs_log_level_t level, const char *msg, uint64_t suppressed)
{
    hs_server_t *srv = ctx;
    hs_log_suppressed(&srv->log, suppressed, level, msg, NULL);
}

/* --db-wait-s: at start the database may not be up yet (a container started beside it): tries
 * to open it once a second until it opens or the time is up. 0 once it opened (that connection
 * is closed: the writer opens its own), else -1 with the last failure in err. */
static int wait_for_db(hs_server_t *srv, char *err, size_t errlen)
{
    int64_t start = hs_mono_us(), deadline = start + (int64_t)srv->cfg.db_wait_s * 1000000;
    int64_t next_log = start;
    for (int tries = 1;; tries++) {
        hs_store_t *st = hs_store_open(srv->db_str, err, errlen);
        int64_t now = hs_mono_us();
        char waited[24];
        snprintf(waited, sizeof waited, "%.1f", (double)(now - start) / 1e6);
        if (st) {
            hs_store_close(st);
            if (tries > 1)
                hs_log(&srv->log, HS_LOG_INFO, "database reachable", "waited_s", waited, NULL);
            return 0;
        }
        if (now >= deadline)
            return -1;
        if (now >= next_log) { /* the first failure, then one line per 10 s */
            hs_log(&srv->log, HS_LOG_WARN, "database not reachable yet; waiting (--db-wait-s)",
                   "error", err, "waited_s", waited, NULL);
            next_log = now + 10 * 1000000LL;
        }
        int64_t nap = deadline - now < 1000000 ? deadline - now : 1000000;
        struct timespec ts = {(time_t)(nap / 1000000), (long)(nap % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
}

/* srv->io_turn when the fan-out workers run on the IO threads */
static int fanout_turn(void *ctx, int index)
{
    return hs_fanout_io_step(ctx, index);
}

static void on_fd(void *ctx, int fd, const char *peek, size_t n)
{
    hs_server_t *srv = ctx;
    if (atomic_fetch_add(&srv->live_conns, 1) >= srv->cfg.max_connections) {
        atomic_fetch_sub(&srv->live_conns, 1);
        close(fd);
        return;
    }
    /* always: the per-address limits use it when they are on, the reader threads' turns
     * (storage/reader.h) always */
    hs_peer_key_t peer = {0};
    hs_peer_key_of(fd, &peer);
    if (!hs_peers_open(srv, &peer)) {
        /* the address holds --max-connections-per-ip already: a short answer, then close
         * (best effort: a full socket buffer just gets the close) */
        static const char body[] =
            "{\"error\":\"TooManyRequests\",\"message\":\"too many connections from this "
            "address\"}";
        char busy[256];
        int bl = snprintf(busy, sizeof(busy),
                          "HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
                          "Retry-After: 1\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                          sizeof(body) - 1, body);
        ssize_t w = send(fd, busy, (size_t)bl, MSG_DONTWAIT | MSG_NOSIGNAL);
        (void)w;
        close(fd);
        atomic_fetch_sub(&srv->live_conns, 1);
        return;
    }
    /* a request for a SignalR connection goes to the connection's home thread (a stateful
     * WebSocket resume must; the rest saves a hop); anything else round-robin */
    int home = hs_hubreg_route(srv, peek, n);
    unsigned i =
        home >= 0 ? (unsigned)home : atomic_fetch_add(&srv->next_io, 1) % (unsigned)srv->nio;
    hs_io_hand_fd(srv->io[i], fd, &peer);
}

static int ncores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

hs_server_t *hs_server_create(const hs_config_t *cfg, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    hs_server_t *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    srv->cfg = *cfg;
    srv->started_wall_us = hs_wall_us();
    srv->listen_str = strdup(cfg->listen ? cfg->listen : "127.0.0.1:5000");
    srv->db_str = strdup(cfg->db ? cfg->db : "hubstream.db");
    srv->cfg.listen = srv->listen_str;
    srv->cfg.db = srv->db_str;
    srv->log.level = cfg->log_level;
    srv->port = -1;
    srv->stop_pipe[0] = srv->stop_pipe[1] = -1;
    srv->db_claim = -1;
    pthread_mutex_init(&srv->stop_mu, NULL);
    pthread_cond_init(&srv->stop_cv, NULL);
    if (!srv->listen_str || !srv->db_str) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (cfg->log_format && strcmp(cfg->log_format, "json") && strcmp(cfg->log_format, "text")) {
        snprintf(err, errlen, "bad log format '%.40s' (want json or text)", cfg->log_format);
        goto fail;
    }
    srv->log.text = cfg->log_format && !strcmp(cfg->log_format, "text");
    srv->cfg.log_format = NULL; /* not kept: the caller's string */
    int port;
    if (hs_listen_parse(srv->listen_str, srv->host, sizeof(srv->host), &port)) {
        snprintf(err, errlen, "bad listen address '%s' (want host:port)", srv->listen_str);
        goto fail;
    }
    /* a non-loopback address without auth is refused by hs_server_start, once an embedder's
     * auth hook had its chance to be set */
    if (hs_auth_create(srv, err, errlen) ||
        hs_cors_configure(srv, cfg->cors_origins, err, errlen) ||
        hs_tls_configure(srv, err, errlen))
        goto fail;
    if (hs_peers_create(srv)) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    srv->cfg.cors_origins = NULL; /* parsed; the caller's string is not kept */
    srv->port = -1;
    if (srv->cfg.io_threads <= 0)
        srv->cfg.io_threads = ncores();
    /* 0: each IO thread runs the fan-out worker of its own subscribers (no thread of their own,
     * one hand-off fewer); N: N worker threads. A worker serves the subscribers of whole IO
     * threads, so there are never more than IO threads. */
    srv->fanout_on_io = srv->cfg.fanout_workers <= 0;
    if (srv->fanout_on_io || srv->cfg.fanout_workers > srv->cfg.io_threads)
        srv->cfg.fanout_workers = srv->cfg.io_threads;
    if (srv->cfg.reader_threads <= 0)
        srv->cfg.reader_threads = 2;
    srv->nio = srv->cfg.io_threads;
    /* a connection takes a descriptor; the rest of the process needs some too (listening and
     * epoll sockets, wake-up pipes, database files) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long reserve =
            64 + 4L * (srv->cfg.io_threads + srv->cfg.reader_threads + srv->cfg.fanout_workers) +
            (long)HS_LINGER_MAX * srv->cfg.io_threads;
        long room = (long)rl.rlim_cur - reserve;
        if (room < 1)
            room = 1;
        if (srv->cfg.max_connections > room) {
            srv->max_conn_asked = srv->cfg.max_connections;
            srv->nofile = (long)rl.rlim_cur;
            srv->cfg.max_connections = (int)room;
        }
    }
    if (pipe2(srv->stop_pipe, O_CLOEXEC | O_NONBLOCK)) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        goto fail;
    }

    if (hs_retention_parse(srv->cfg.retention, &srv->retention, err, errlen))
        goto fail;
    srv->cfg.retention = NULL; /* the caller's string; the parsed rules are kept instead */
    hs_writer_config_t wc = {
        .db = srv->db_str,
        .nrings = srv->nio,
        .ring_size = 4096,
        .batch_max = srv->cfg.writer_batch,
        .encode = hs_codec_encode,
        .encode_marker = hs_codec_encode_marker,
        .sink = hs_fanout_sink,
        .log = writer_log,
        .log_ctx = srv,
        .retention = srv->retention,
        .es_max_subscribers = srv->cfg.es_max_subscribers,
    };
    if (hs_cluster_configure(srv, &wc, err, errlen))
        goto fail;
    if (srv->cfg.db_wait_s > 0 && wait_for_db(srv, err, errlen))
        goto fail;
    /* the sink context is the fan-out, created below; the writer does not run before start */
    srv->writer = hs_writer_create(&wc, err, errlen);
    if (!srv->writer || hs_cluster_check(srv, err, errlen))
        goto fail;
    srv->reader = hs_reader_create(srv->db_str, srv->cfg.reader_threads, err, errlen);
    if (!srv->reader)
        goto fail;
    if (hs_hubreg_create(srv) ||
        !(srv->read_budget = hs_budget_create(srv->cfg.read_budget, NULL))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    /* the front ends: each registers its transports, routes and WebSocket endpoints before the
     * IO threads exist (an IO thread creates each transport's state) */
    hs_http_register(srv);
    hs_openapi_register(srv);
    hs_dashboard_register(srv);
    hs_signalr_register(srv);
    hs_esadmin_register(srv);
    hs_metrics_register(srv);
    srv->io = calloc((size_t)srv->nio, sizeof(hs_io_t *));
    srv->inboxes = calloc((size_t)srv->nio + 1, sizeof(hs_mpsc_t *));
    if (!srv->io || !srv->inboxes) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    for (int i = 0; i < srv->nio; i++) {
        if (hs_io_create(srv, i, &srv->io[i], err, errlen))
            goto fail;
        srv->inboxes[i] = &srv->io[i]->inbox;
    }
    hs_fanout_config_t fc = {
        .nworkers = srv->cfg.fanout_workers,
        .reader = srv->reader,
        .encode = hs_codec_encode,
        .encode_marker = hs_codec_encode_marker,
        .io_inboxes = srv->inboxes,
        .wake_io = hs_io_wake,
        .wake_ctx = srv,
        .stall_timeout_ms = srv->cfg.stall_timeout_ms,
        .catchup_events = 1000,
        .read_budget = srv->read_budget,
        .prepare_mp = hs_hub_prepare_mp,
        .on_io = srv->fanout_on_io,
    };
    srv->fanout = hs_fanout_create(&fc);
    if (!srv->fanout) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    hs_writer_set_sink_ctx(srv->writer, srv->fanout);
    if (srv->fanout_on_io) {
        srv->io_turn = fanout_turn;
        srv->io_turn_ctx = srv->fanout;
    }
    srv->acceptor = hs_acceptor_create(srv->host, port, on_fd, srv, &srv->log, err, errlen);
    if (!srv->acceptor)
        goto fail;
    srv->port = hs_acceptor_port(srv->acceptor);
    return srv;
fail:
    hs_server_destroy(srv);
    return NULL;
}

int hs_server_start_core(hs_server_t *srv)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&srv->state, &expect, 1))
        return HS_EINVAL;
    int rc;
    if ((rc = hs_reader_start(srv->reader)) || (rc = hs_fanout_start(srv->fanout)) ||
        (rc = hs_writer_start(srv->writer)))
        return rc;
    return 0;
}

int hs_server_start(hs_server_t *srv)
{
    if (!hs_listen_is_loopback(srv->host) && !srv->cfg.allow_anonymous && !hs_auth_on(srv)) {
        char msg[400];
        snprintf(msg, sizeof(msg),
                 "refusing to listen on %s without authentication: no auth is configured, so "
                 "anyone who can reach it could publish and read; listen on 127.0.0.1, configure "
                 "--jwt-secret or --jwt-public-key, or pass --allow-anonymous",
                 srv->listen_str);
        hs_log(&srv->log, HS_LOG_ERROR, msg, NULL);
        return HS_EFORBIDDEN;
    }
    srv->cors_loopback = !hs_auth_on(srv);
    if (!hs_listen_is_loopback(srv->host) && !srv->tls_cert && !srv->cfg.allow_plaintext)
        hs_log(&srv->log, HS_LOG_WARN,
               "listening on a non-loopback address without TLS: tokens and events cross the "
               "network in clear text (configure --tls-cert and --tls-key, or terminate TLS in a "
               "proxy and pass --allow-plaintext)",
               "addr", srv->listen_str, NULL);
    int expect = 0;
    if (!atomic_compare_exchange_strong(&srv->state, &expect, 1))
        return HS_EINVAL;
    int rc;
    if ((rc = hs_reader_start(srv->reader)) || (rc = hs_fanout_start(srv->fanout)) ||
        (rc = hs_writer_start(srv->writer)) || (rc = hs_cluster_start(srv)))
        return rc;
    for (int i = 0; i < srv->nio; i++)
        if ((rc = hs_io_start(srv->io[i])))
            return rc;
    if ((rc = hs_acceptor_start(srv->acceptor)))
        return rc;
    char addr[300], th[16];
    snprintf(addr, sizeof(addr), "%s:%d", srv->host, srv->port);
    snprintf(th, sizeof(th), "%d", srv->nio);
    char db[1024];
    hs_redact_conn(srv->db_str, db, sizeof(db));
    char mc[16];
    snprintf(mc, sizeof(mc), "%d", srv->cfg.max_connections);
    if (srv->max_conn_asked) {
        char asked[16], nofile[24];
        snprintf(asked, sizeof(asked), "%d", srv->max_conn_asked);
        snprintf(nofile, sizeof(nofile), "%ld", srv->nofile);
        hs_log(&srv->log, HS_LOG_WARN,
               "max-connections lowered to fit the open-file limit (raise it with ulimit -n)",
               "asked", asked, "max_connections", mc, "nofile", nofile, NULL);
    }
    hs_log(&srv->log, HS_LOG_INFO, "listening", "addr", addr, "db", db, "io_threads", th,
           "max_connections", mc, NULL);
    return 0;
}

void hs_server_stop(hs_server_t *srv)
{
    /* async-signal-safe: an atomic and a write(2) */
    int expect = 1;
    if (atomic_compare_exchange_strong(&srv->state, &expect, 2) || expect == 0) {
        char b = 1;
        ssize_t n = write(srv->stop_pipe[1], &b, 1);
        (void)n;
    }
}

static void finish_stop(hs_server_t *srv)
{
    pthread_mutex_lock(&srv->stop_mu);
    if (atomic_load(&srv->state) == 3) {
        pthread_mutex_unlock(&srv->stop_mu);
        return;
    }
    /* no new connections; what the writer took is committed and acked; then connections close */
    hs_acceptor_stop(srv->acceptor);
    hs_cluster_stop(srv);
    /* what the IO threads still owe the database (subscribers' cursors) goes in first */
    hs_io_prestop(srv->io, srv->nio, 2000);
    hs_writer_stop(srv->writer);
    /* let the IO threads write the last acks out */
    usleep(100 * 1000);
    for (int i = 0; i < srv->nio; i++)
        hs_io_stop(srv->io[i]);
    hs_fanout_stop(srv->fanout);
    hs_reader_stop(srv->reader);
    atomic_store(&srv->state, 3);
    pthread_cond_broadcast(&srv->stop_cv);
    pthread_mutex_unlock(&srv->stop_mu);
    hs_log(&srv->log, HS_LOG_INFO, "stopped", NULL);
}

void hs_server_wait(hs_server_t *srv)
{
    if (atomic_load(&srv->state) == 0)
        return;
    struct pollfd p = {srv->stop_pipe[0], POLLIN, 0};
    /* the pipe, not only the state: a signal that came before hs_server_start() finished wrote
     * the pipe while the state still said "created" */
    bool stop = false;
    while (atomic_load(&srv->state) == 1 && !stop) {
        if (poll(&p, 1, 1000) <= 0)
            continue;
        /* bytes: 1 from hs_server_stop, 2 from hs_server_request_reload */
        char b[16];
        ssize_t n;
        while ((n = read(srv->stop_pipe[0], b, sizeof(b))) > 0)
            stop |= memchr(b, 1, (size_t)n) != NULL;
        if (atomic_exchange(&srv->reload_requested, 0) && !stop)
            hs_server_reload_tls(srv);
    }
    finish_stop(srv);
}

void hs_server_destroy(hs_server_t *srv)
{
    if (!srv)
        return;
    if (atomic_load(&srv->state) == 1 || atomic_load(&srv->state) == 2)
        finish_stop(srv);
    hs_acceptor_destroy(srv->acceptor);
    /* every thread that could wake an IO context stops before the contexts go */
    hs_cluster_stop(srv);
    if (srv->writer)
        hs_writer_stop(srv->writer);
    if (srv->fanout)
        hs_fanout_stop(srv->fanout);
    if (srv->reader)
        hs_reader_stop(srv->reader);
    for (int i = 0; srv->io && i < srv->nio; i++)
        hs_io_close(srv->io[i]);
    for (int i = 0; srv->io && i < srv->nio; i++)
        hs_io_end(srv->io[i]);
    for (int i = 0; srv->io && i < srv->nio; i++)
        hs_io_destroy(srv->io[i]);
    hs_hubreg_destroy(srv);
    hs_auth_destroy(srv);
    hs_cors_free(srv);
    hs_tls_free(srv);
    hs_peers_destroy(srv);
    hs_fanout_destroy(srv->fanout);
    hs_reader_destroy(srv->reader);
    hs_cluster_free(srv);
    hs_writer_destroy(srv->writer);
    hs_retention_free(srv->retention);
    hs_budget_unref(srv->read_budget); /* blocks still charged hold their own references */
    free(srv->io);
    free(srv->inboxes);
    if (srv->stop_pipe[0] >= 0) {
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
    }
    pthread_mutex_destroy(&srv->stop_mu);
    pthread_cond_destroy(&srv->stop_cv);
    free(srv->listen_str);
    free(srv->db_str);
    free(srv);
}

int hs_server_port(const hs_server_t *srv)
{
    return srv->port;
}

/* ---- in-process publish ---- */

typedef struct sync_done {
    sem_t sem;
} sync_done_t;

static void publish_done(hs_ingest_t *e)
{
    sync_done_t *d = e->origin;
    sem_post(&d->sem);
}

int hs_server_publish(hs_server_t *srv, const char *stream, const hs_event_t *events, size_t n,
                      int64_t expected_version, hs_publish_result_t *result)
{
    if (atomic_load(&srv->state) != 1)
        return HS_EUNAVAIL;
    if (!stream || hs_stream_name_check_publish(stream, strlen(stream)))
        return HS_EINVAL;
    if (expected_version < HS_ANY_VERSION)
        return HS_EINVAL;
    hs_ingest_t *e;
    char why[256];
    int rc = hs_codec_build_publish(stream, events, n, srv->cfg.max_event, &e, why, sizeof(why));
    if (rc)
        return rc;
    e->expected_version = expected_version;
    if (srv->event_hook) {
        for (size_t i = 0; i < n; i++) {
            char reason[256] = "rejected";
            if (srv->event_hook(srv->event_ctx, stream, &events[i], reason, sizeof(reason))) {
                hs_ingest_free(e);
                return HS_EREJECTED;
            }
        }
    }
    sync_done_t d;
    sem_init(&d.sem, 0, 0);
    e->done = publish_done;
    e->origin = &d;
    while (!hs_writer_submit_mpsc(srv->writer, e)) {
        if (atomic_load(&srv->state) != 1) {
            sem_destroy(&d.sem);
            hs_ingest_free(e);
            return HS_EUNAVAIL;
        }
        usleep(100); /* the shared ring is full: the writer is behind */
    }
    while (sem_wait(&d.sem) && errno == EINTR)
        ;
    sem_destroy(&d.sem);
    rc = e->status;
    if (result)
        *result = e->result;
    hs_ingest_free(e);
    return rc;
}
