/*
 * The server's shared context: its configuration, its threads and the registry of what its IO
 * threads serve. Every module of server/ sees this struct; server.c creates it, wires the
 * modules together (each front end registers its transports, HTTP routes and WebSocket
 * endpoints) and runs the lifecycle of include/hubstream/hubstream.h. Private: never installed.
 *
 * Layers, each using only those before it: net/ (connections, IO threads, the transport
 * interface), http/ (the HTTP API and SSE), signalr/ (the SignalR hub); server.c on top.
 */
#ifndef HS_SERVER_INTERNAL_H
#define HS_SERVER_INTERNAL_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>

#include "fanout/fanout.h"
#include "hubstream/hubstream.h"
#include "storage/reader.h"
#include "storage/writer.h"
#include "util/log.h"

typedef struct hs_server hs_server_t;
typedef struct hs_acceptor hs_acceptor_t;
typedef struct hs_io hs_io_t;
typedef struct hs_conn hs_conn_t;
struct hs_transport;
struct hs_hubreg;
struct hs_budget;

/* Transport ids: an IO thread's messages, subscriptions and connections name their transport
 * by it (server/net/net.h). */
enum { HS_T_HTTP = 0, HS_T_SSE = 1, HS_T_SIGNALR = 2, HS_T_ESADMIN = 3, HS_TRANSPORTS_MAX = 8 };

struct hs_server {
    hs_config_t cfg;
    char *listen_str, *db_str;
    char host[256];
    int port;
    hs_logger_t log;
    hs_event_fn event_hook;
    void *event_ctx;
    /* auth (server/auth.c) */
    hs_auth_fn auth_hook;
    void *auth_ctx;
    hs_authorize_fn authorize_hook;
    void *authorize_ctx;
    struct hs_jwt_keys *jwt; /* NULL when no JWT key is configured */
    char *jwt_audience, *jwt_issuer;
    struct hs_hubreg *hubreg;      /* negotiated SignalR connections (server/signalr) */
    struct hs_budget *read_budget; /* catch-up pages and read answers, all connections */

    hs_writer_t *writer;
    struct hs_backplane *backplane; /* NULL unless postgres or redis (server/cluster.c) */
    int bp_kind;                    /* hs_bp_kind_t */
    int db_claim;                   /* flock on a SQLite file, or -1 */
    hs_retention_t *retention;      /* parsed cfg.retention, NULL when none */
    hs_reader_t *reader;
    hs_fanout_t *fanout;
    /* Work another layer hands each IO thread (the fan-out's workers, when they run on the IO
     * threads): called on IO thread `index` at each of its wake-ups and when the time it last
     * returned (ms; 0 at once, -1 never) has passed. NULL: none. */
    int (*io_turn)(void *ctx, int index);
    bool fanout_on_io;
    void *io_turn_ctx;
    hs_acceptor_t *acceptor;
    hs_io_t **io;
    hs_mpsc_t **inboxes; /* NULL-terminated, for the fan-out workers */
    int nio;
    atomic_uint next_io;
    atomic_int live_conns;
    int max_conn_asked; /* cfg.max_connections before it was lowered to fit RLIMIT_NOFILE */
    long nofile;

    /* what the IO threads serve (registered by each front end at hs_server_create) */
    const struct hs_transport *transports[HS_TRANSPORTS_MAX]; /* by id (HS_T_*) */
    struct {
        const char *path; /* exact, e.g. "/hub/negotiate"; NULL: every path no other takes */
        bool prefix;      /* path is a prefix ending in '/', matched ignoring ASCII case */
        void (*fn)(struct hs_conn *c, const char *path, void *arg);
        void *arg;
    } routes[16]; /* HTTP routes, matched in order (an OPTIONS preflight is net's) */
    int nroutes;
    struct {
        const char *path; /* exact, e.g. "/hub" */
        const struct hs_transport *t;
        /* 0 with *ctx set to go on with the upgrade, 1 when it answered over HTTP, -1 */
        int (*confirm)(struct lws *wsi, void *arg, void **ctx);
        void *arg;
    } ws[4]; /* WebSocket endpoints */
    int nws;
    /* the request headers a CORS preflight allows: net's own (authorization, content-type) and
     * those each front end reads, comma-separated */
    char cors_headers[256];
    /* which origins get CORS headers (server/net/cors.c) */
    char *cors[16];
    int ncors;
    bool cors_listed;   /* --cors-origins was given */
    bool cors_any;      /* it holds "*" */
    bool cors_loopback; /* nothing listed and no auth: loopback origins (set at start) */

    char *tls_cert, *tls_key; /* NULL: plain HTTP (server/tls.c) */
    struct hs_peers *peers;   /* per source address (server/net/peers.c); NULL: no limit */
    atomic_int reload_requested;

    atomic_int state;        /* 0 created, 1 running, 2 stop requested, 3 stopped */
    atomic_int es_paused;    /* /eventstreamhub's delivery paused (POST subscriptionprocessor) */
    int64_t started_wall_us; /* when the server was created (/metrics) */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int stop_pipe[2]; /* a signal handler writes here */
};

/* Registers a transport under its id, an HTTP path, a WebSocket endpoint (at create time). */
void hs_server_add_transport(hs_server_t *srv, const struct hs_transport *t);
/* A route for every path under `prefix` (ending in '/', ASCII case ignored), matched after the
 * exact paths and before the catch-all. */
void hs_server_add_prefix_route(hs_server_t *srv, const char *prefix,
                                void (*fn)(struct hs_conn *c, const char *path, void *arg),
                                void *arg);
void hs_server_add_route(hs_server_t *srv, const char *path,
                         void (*fn)(struct hs_conn *c, const char *path, void *arg), void *arg);
/* Runs the embedder's event hook (hs_server_set_event_hook) over every event of an append: 0,
 * or -1 with the hook's reason in why. */
int hs_server_events_hook(hs_server_t *srv, hs_ingest_t *e, char *why, size_t whylen);
void hs_server_add_ws(hs_server_t *srv, const char *path, const struct hs_transport *t,
                      int (*confirm)(struct lws *wsi, void *arg, void **ctx), void *arg);
/* Adds request headers (lower case, comma-separated) that a CORS preflight allows. */
void hs_server_add_cors_headers(hs_server_t *srv, const char *headers);

/* Starts the reader, fan-out and writer threads but no IO thread and no listener: the caller
 * runs IO thread 0 itself (lws_service on srv->io[0]->ctx). For the fuzz target that drives a
 * hub connection directly; stop and destroy as usual. */
int hs_server_start_core(hs_server_t *srv);

/* cluster.c: the backplane and the writer's feed settings (before the writer exists); the
 * checks and the SQLite claim (after); the listener's thread; freeing. 0 or an error with err. */
int hs_cluster_configure(hs_server_t *srv, hs_writer_config_t *wc, char *err, size_t errlen);
int hs_cluster_check(hs_server_t *srv, char *err, size_t errlen);
int hs_cluster_start(hs_server_t *srv);
void hs_cluster_stop(hs_server_t *srv);
void hs_cluster_free(hs_server_t *srv);

/* tls.c: checks and keeps the certificate and key of the configuration (creation): 0, or an
 * error with err. */
int hs_tls_configure(hs_server_t *srv, char *err, size_t errlen);
void hs_tls_free(hs_server_t *srv);

#endif
