/*
 * The network layer: the IO threads (one libwebsockets context each), the connections they own,
 * and the interface through which the front ends serve them.
 *
 * An IO thread knows HTTP mechanics (requests, bodies, responses written in bounded pieces,
 * WebSocket upgrades, lingering closes, hang-ups) but no protocol of hubstream's: an HTTP
 * request whose body is in goes to the server's router (server.h routes, then http/); what a
 * request starts (a commit, a read, a stream of events) belongs to a transport, which the IO
 * thread calls through hs_transport_t for that connection's writes and close, for the messages
 * addressed to it on the inbox, for subscription signals and on every tick. Every handler runs
 * on the IO thread that owns the connection. Not here: routes, SSE, SignalR.
 */
#ifndef HS_NET_H
#define HS_NET_H

#include "proto/chunked.h"
#include "proto/hubproto.h"
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "server/server.h"
#include "util/metrics.h"
#include "util/rate.h"

/* Bytes of transport state inside each hs_conn_t (see hs_conn_tdata): the largest transport
 * struct (SSE's, 64 bytes), 8-byte aligned (pointers and 64-bit integers, nothing wider). Every
 * idle SSE subscriber holds one hs_conn_t: what only a request being read or answered needs
 * lives in allocations of its own (rx, the response, the access record), so that it is 136
 * bytes, a 144-byte malloc chunk. */
#define HS_CONN_TDATA 64

/*
 * Per-socket state that must outlive one HTTP transaction: lws frees and re-creates the
 * per-session struct (hs_conn_t) at every keep-alive transaction, so whatever belongs to the
 * socket lives here, as the wsi's opaque user data.
 */
/* A client's source address, as peers.c counts it (family 0: unknown). */
typedef struct hs_peer_key {
    uint8_t a[16];
    uint8_t family; /* AF_INET, AF_INET6 or 0 (17 bytes, no padding: peers.c compares keys whole) */
} hs_peer_key_t;

/* Every connection holds one for its life: 40 bytes, a 48-byte malloc chunk. */
typedef struct hs_wsi_data {
    hs_peer_key_t peer;   /* counted in peers.c until the connection closes */
    bool busy;            /* a request is being served: its answer is not written yet */
    uint8_t ws_ep;        /* a WebSocket's endpoint: its index in srv->ws (with ws_ctx set) */
    hs_rate_t *publishes; /* this TCP connection's HTTP publishes (--max-publishes-per-s):
                             allocated at its first publish while the limit is on */
    void *ws_ctx;         /* a WebSocket's connection, for srv->ws[ws_ep].t; NULL: none */
} hs_wsi_data_t;

#define HS_WRITE_BUDGET (64 * 1024) /* bytes an IO thread writes to one connection per turn */
#define HS_BACKLOG_MAX  16384       /* ingest entries an IO thread holds when its ring is full */
#define HS_LINGER_MAX   64          /* closed sockets an IO thread drains at once (io.c) */

/* How a request's announced body arrives, and the body (hs_conn_t.rx: only requests that
 * announce one have it, so an idle SSE subscriber holds none). */
typedef struct hs_conn_rx {
    char *body; /* what arrived, NUL-terminated once complete (hs_conn_body) */
    size_t body_len, body_cap;
    size_t body_limit; /* the most body bytes taken: the Content-Length, or max_body */
    hs_chunked_t chunk;
    int64_t body_deadline_ms;         /* the whole body must have arrived by then */
    hs_conn_t *body_prev, *body_next; /* io->body_head: requests whose body is arriving */
    char *path;                       /* the request path, kept while its body arrives */
} hs_conn_rx_t;

/* A queued response (hs_conn_t.resp): its bytes after LWS_PRE of headroom, written at most
 * HS_WRITE_BUDGET bytes per writable callback so that lws never keeps a copy of more. */
typedef struct hs_conn_resp {
    size_t len, off;
    struct hs_budget *budget; /* what the response is charged to (a reference), until written */
    size_t charge;
    unsigned char buf[]; /* LWS_PRE + len */
} hs_conn_resp_t;

/* One request or subscription (lws per-session data, zeroed by lws). lws frees it at the end of
 * every keep-alive transaction (after LWS_CALLBACK_HTTP_DROP_PROTOCOL): nothing that must last
 * longer than one request lives here. */
struct hs_conn {
    struct lws *wsi;
    hs_io_t *io;
    /* the transport that owns what the request started (a commit or read in flight, a stream
     * it answers with), and the transport's own state for it */
    const struct hs_transport *owner;
    struct hs_principal *who; /* who asked (server/auth.h), for this transaction; NULL when
                                 auth is off or nobody looked yet */
    struct hs_conn_rx *rx;    /* a request that announced a body (POST, PUT, PATCH): how it
                                 arrives, and the body; NULL for the others (an SSE GET among
                                 them) */
    struct hs_access *access; /* --access-log: the request's record until it is logged */
    hs_conn_resp_t *resp;     /* the response waiting for a writable callback */
    int method;
    bool completed; /* an LWS_CALLBACK_HTTP_BODY_COMPLETION was seen */
    bool body_too_large;
    bool chunked; /* Transfer-Encoding: chunked, decoded here (lws passes it raw) */
    bool in_body_list;
    bool close_after; /* close once the queued response is written and the body read */
    bool body_done;   /* the request body (if any) has been read */
    bool stream;      /* the owner writes a stream after the queued head (SSE) */
    bool m_publish;   /* a publish: its answer's status is counted (/metrics) */
    bool resp_final;  /* end of a transaction (keep-alive), else SSE headers */
    bool retry_after; /* the next error answer says Retry-After: 1 */
    bool hup_watched; /* in io->hup_ep (see hs_conn_watch_hangup) */
    _Alignas(8) unsigned char tdata[HS_CONN_TDATA];
};

/* /metrics: what an IO thread counts (written by that thread only: util/metrics.h). */
enum { HS_MC_SSE, HS_MC_HUB_WS, HS_MC_HUB_SSE, HS_MC_HUB_LP, HS_MC_N }; /* connection kinds */
enum { HS_MP_NONE, HS_MP_JSON, HS_MP_MSGPACK, HS_MP_N };                /* their protocols */
enum { HS_MD_SSE, HS_MD_SIGNALR, HS_MD_N };                             /* deliveries */
/* publishes by their answer: HTTP status, or for SignalR the status it stands for */
enum {
    HS_MPUB_201,
    HS_MPUB_400,
    HS_MPUB_401,
    HS_MPUB_403,
    HS_MPUB_404,
    HS_MPUB_408,
    HS_MPUB_409,
    HS_MPUB_410,
    HS_MPUB_413,
    HS_MPUB_429,
    HS_MPUB_503,
    HS_MPUB_OTHER,
    HS_MPUB_N
};
typedef struct hs_io_metrics {
    hs_gauge_t conns[HS_MC_N][HS_MP_N];
    hs_ctr_t delivered[HS_MD_N];
    hs_ctr_t bytes_out;
    hs_ctr_t publishes[2][HS_MPUB_N]; /* [0] HTTP, [1] SignalR */
} hs_io_metrics_t;

/* The publish bucket of an HTTP status; counting a SignalR publish's outcome (0 or HS_E*, as
 * the HTTP status it stands for). */
int hs_metrics_pub_slot(int status);
void hs_metrics_hub_publish(hs_io_t *io, int status);

struct hs_io {
    hs_server_t *srv;
    hs_io_metrics_t m;  /* /metrics */
    uint64_t nrequests; /* HTTP requests started on this thread (request ids) */
    int index;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    pthread_t thread;
    bool started;
    atomic_int stop;
    hs_mpsc_t inbox;
    hs_mpsc_node_t *adopt_head, *adopt_tail; /* handed sockets waiting to be adopted (FIFO) */
    lws_sorted_usec_list_t tick;
    lws_sorted_usec_list_t turn_sul; /* the next srv->io_turn the turn asked for */
    unsigned char *wbuf;             /* LWS_PRE + HS_WRITE_BUDGET + slack */
    hs_ingest_t **backlog;           /* entries waiting for room in the ingest ring */
    size_t nbacklog;
    hs_conn_t *body_head;            /* requests whose body is still arriving, for their deadline */
    void *tstate[HS_TRANSPORTS_MAX]; /* each transport's state on this thread (io_init) */
    hs_buf_t scratch;                /* a transport's scratch for packing one connection's output */
    int hup_ep;                      /* epoll set of connections whose client may hang up unseen */
    struct {
        int fd;
        int64_t until_ms;
    } lingers[HS_LINGER_MAX]; /* closed by lws, drained here until the client's end (io.c) */
    size_t nlingers;
};

/* lws_write, with what went out counted for /metrics. */
static inline int hs_io_write(hs_io_t *io, struct lws *wsi, unsigned char *p, size_t n,
                              enum lws_write_protocol wp)
{
    int w = lws_write(wsi, p, n, wp);
    if (w > 0)
        hs_ctr_add(&io->m.bytes_out, (uint64_t)w);
    return w;
}

/* io.c (conn.c below: what concerns one request) */
int hs_io_create(hs_server_t *srv, int index, hs_io_t **out, char *err, size_t errlen);
int hs_io_start(hs_io_t *io);
void hs_io_stop(hs_io_t *io);
/* Shutdown in phases across every IO thread, so that no thread's answer reaches a context
 * that is gone: close (stop the thread, destroy the lws context), then end the connections the
 * transports keep there beyond their sockets (io_end), then destroy. */
void hs_io_close(hs_io_t *io);
/* Before the writer stops: every running IO thread runs its transports' prestop and hands its
 * backlog to the writer; returns once all have, or after timeout_ms. */
void hs_io_prestop(hs_io_t *const *ios, int n, int timeout_ms);
void hs_io_end(hs_io_t *io);
void hs_io_destroy(hs_io_t *io);
void hs_io_hand_fd(hs_io_t *io, int fd, const hs_peer_key_t *peer); /* acceptor thread */

/* peers.c: per source address, connections (--max-connections-per-ip) and negotiates
 * (--max-negotiates-per-ip-s); nothing while both limits are off. Any thread. */
int hs_peers_create(hs_server_t *srv);
void hs_peers_destroy(hs_server_t *srv);
void hs_peer_key_of(int fd, hs_peer_key_t *k);
/* A connection from k opens (false: k holds the most it may) / closes. */
bool hs_peers_open(hs_server_t *srv, const hs_peer_key_t *k);
void hs_peers_close(hs_server_t *srv, const hs_peer_key_t *k);
/* A negotiate from k: false when k negotiated the most it may this second. */
bool hs_peers_negotiate(hs_server_t *srv, const hs_peer_key_t *k);
/* Whose turn a database read made over wsi takes (storage/reader.h: fairness): its source
 * address, so that one client's reads over many connections share one turn; `fallback` (the
 * connection itself) when the socket has no address on record. */
uint64_t hs_read_owner(struct lws *wsi, const void *fallback);
void hs_io_wake(void *srv, int index); /* any thread */
/* Asks the IO thread to load the TLS certificate files again (any thread). */
void hs_io_reload_tls(hs_io_t *io);
/* Queues a complete response and asks for a writable callback. Takes nothing. It carries
 * `cache-control: no-store` unless the extra header is a cache-control of the caller's. */
int hs_conn_respond(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra_name, const char *extra_value);
/* The same with a list of headers: "name:", "value", ..., NULL (at most 5 pairs are taken). */
int hs_conn_respond_hdrs(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                         const char *const *hdrs);
int hs_conn_error(hs_conn_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* 405 MethodNotAllowed with an Allow header: `allow` lists the methods the path takes. */
int hs_conn_not_allowed(hs_conn_t *c, const char *allow);
/* The request's body, NUL-terminated, once complete (NULL and 0 for a request without one). */
const char *hs_conn_body(const hs_conn_t *c, size_t *len);
/* The same, handed over to the caller (who frees it); the request then has none. */
char *hs_conn_take_body(hs_conn_t *c, size_t *len);
/* cors.c: writes CORS headers for the request's Origin when the policy allows it: 0 or -1. */
int hs_cors_headers(struct lws *wsi, unsigned char **p, unsigned char *end);
/* cors.c: whether the request may make the server act (a POST, PUT, PATCH or DELETE, a
 * WebSocket upgrade): it has no Origin (not a browser's cross-origin request), or its Origin is
 * one the CORS policy allows, or the server's own (it names the Host the request was sent to, or
 * the X-Forwarded-Host a proxy set). */
bool hs_cors_may_act(struct lws *wsi);
/* The same from the headers' values (NULL: absent; Host and X-Forwarded-Host as sent), for the
 * fuzz target: any thread, no lws. */
bool hs_cors_origin_may_act(const hs_server_t *srv, const char *origin, const char *host,
                            const char *fwd_host);
/* cors.c: the policy from --cors-origins (server creation): 0, or an error with err. */
int hs_cors_configure(hs_server_t *srv, const char *list, char *err, size_t errlen);
void hs_cors_free(hs_server_t *srv);
/* Writes a whole text/plain answer at once, where no writable callback will follow (a refused
 * WebSocket upgrade): 0 or -1. */
int hs_wsi_respond(struct lws *wsi, int status, const char *body);
/* Queues the head of a streamed answer (status, headers, CORS; `extra` after it, e.g. SSE's
 * retry advice) and marks the connection as streaming: its owner's http_writable writes the
 * rest. 0, or -1 (nothing queued) on ENOMEM or headers that do not fit. */
int hs_conn_stream_head(hs_conn_t *c, const char *ctype, const char *extra);
/* The queued response takes over a charge of n bytes to budget (a reference is taken), given
 * back once the response is written or dropped; with no response queued (its hs_conn_respond
 * failed) the charge is given back at once. */
void hs_conn_charge(hs_conn_t *c, struct hs_budget *budget, size_t n);
/*
 * While a request's answer is outstanding (an SSE stream, a parked long poll, a publish waiting
 * for its commit), lws 4.1 does not read the connection, so a client that hangs up leaves its
 * EOF pending: poll() reports it at once on every turn and the IO thread spins until the next
 * write fails. Such connections are watched for the hang-up (EPOLLRDHUP) in a set of the IO
 * thread's own, which its tick reads; a hang-up closes the connection.
 */
void hs_conn_watch_hangup(hs_conn_t *c);
void hs_conn_unwatch_hangup(hs_conn_t *c);
/* The value of the query argument `name_eq` ("from=") of c's request, decoded, copied into buf
 * (cap bytes, NUL-terminated) with *val pointing at it: 1. 0 when absent, -1 when longer than
 * buf. The first occurrence counts. IO thread, during the request's callback. */
int hs_conn_arg(hs_conn_t *c, const char *name_eq, char *buf, size_t cap, const char **val);
/* wsi.c: the same for a request that has no hs_conn_t (a WebSocket upgrade). */
int hs_wsi_arg(struct lws *wsi, const char *name_eq, char *buf, size_t cap, const char **val);
/* wsi.c: the value of request header `name` (any case) copied into buf, NUL-terminated: its
 * length, or -1 when absent or not shorter than cap. */
int hs_wsi_header(struct lws *wsi, const char *name, char *buf, size_t cap);
/* wsi.c: the request's method as lws's token (WSI_TOKEN_GET_URI, ...) or -1, and its name. */
int hs_wsi_method(struct lws *wsi);
const char *hs_wsi_method_name(int method);
/* Takes a request off the list of those whose body is arriving (idempotent). */
void hs_conn_body_unlist(hs_conn_t *c);
/* Submits an entry whose node kind, conn and origin fields the caller set (done and io_index
 * are set here). False when the ring and the backlog are full (the entry is untouched). */
bool hs_io_submit_entry(hs_io_t *io, hs_ingest_t *e);
/* Writer thread: completion of an entry submitted by an IO thread. */
void hs_io_ingest_done(hs_ingest_t *e);

/* conn.c, for io.c's lws callback: a request's line and headers (in: its path), a piece of
 * its body, its body's end, a writable turn (lws's return conventions: -1 closes); its end
 * (the transaction's or the connection's); the tick's expiry of bodies past their deadline. */
int hs_conn_on_request(struct lws *wsi, hs_conn_t *c, const char *in);
int hs_conn_on_body(struct lws *wsi, hs_conn_t *c, const void *in, size_t len);
int hs_conn_on_body_done(struct lws *wsi, hs_conn_t *c);
int hs_conn_on_writable(hs_conn_t *c);
void hs_conn_closed(hs_conn_t *c);
void hs_conn_expire_bodies(hs_io_t *io, int64_t now);

/* acceptor.c */
/* Receives an accepted socket and the first bytes the client sent (peeked, not consumed; may
 * be none). */
typedef void (*hs_acceptor_fd_fn)(void *ctx, int fd, const char *peek, size_t n);
/* log (borrowed, may be NULL) receives rate-limited warnings about failing accept() calls. */
hs_acceptor_t *hs_acceptor_create(const char *host, int port, hs_acceptor_fd_fn on_fd, void *ctx,
                                  const hs_logger_t *log, char *err, size_t errlen);
int hs_acceptor_port(const hs_acceptor_t *a);
int hs_acceptor_start(hs_acceptor_t *a);
void hs_acceptor_stop(hs_acceptor_t *a);
void hs_acceptor_destroy(hs_acceptor_t *a);

/* ---- the transport interface ---- */

/* Node kind of transport `id`'s message `what` (0..15) on an IO thread's inbox. */
#define HS_NODE_T(id, what) (HS_NODE_TRANSPORT + (id)*16 + (what))

/*
 * A transport: how a front end serves what its requests start. Registered per server under its
 * id (hs_server_add_transport); any handler may be NULL. All run on the IO thread.
 */
typedef struct hs_transport {
    int id; /* HS_T_*: names it in messages, subscriptions and connections */
    const char *name;
    /* its state on an IO thread: created with the thread, freed last */
    int (*io_init)(hs_io_t *io, void **state);
    void (*io_fini)(hs_io_t *io, void *state);
    /* at shutdown, before io_fini: end what it keeps beyond sockets (hs_io_end) */
    void (*io_end)(hs_io_t *io);
    /* every 250 ms */
    void (*tick)(hs_io_t *io, int64_t now);
    /* at a clean stop, while the writer still takes entries: submit what must be stored (the
     * last cursors) and deliver nothing more that would need storing */
    void (*prestop)(hs_io_t *io);
    /* a message of its own (kind HS_NODE_T(id, ...)); drop_message at shutdown */
    void (*on_message)(hs_io_t *io, hs_mpsc_node_t *n);
    void (*drop_message)(hs_io_t *io, hs_mpsc_node_t *n);
    /* a subscription it consumes (s->transport == id) was signalled by its fan-out worker; the
     * handler drops the inbox's reference */
    void (*on_sub_signal)(hs_io_t *io, hs_sub_t *s);
    /* an HTTP connection it owns (c->owner): writable (after any queued response is out), and
     * its end (the transaction or the connection). -1 from writable closes it. */
    int (*http_writable)(hs_conn_t *c);
    void (*http_closed)(hs_conn_t *c);
    /* a WebSocket accepted at one of its endpoints (ctx from the endpoint's confirm) */
    void (*ws_established)(struct lws *wsi, void *ctx);
    int (*ws_receive)(struct lws *wsi, void *ctx, const void *in, size_t len);
    int (*ws_writable)(struct lws *wsi, void *ctx);
    void (*ws_peer_close)(void *ctx);
    void (*ws_closed)(struct lws *wsi, void *ctx); /* also when never established */
} hs_transport_t;

/* A connection's transport state: a struct of its owner's, zeroed with the connection (each
 * transport checks that its struct fits HS_CONN_TDATA with a static assertion; its alignment
 * must be at most 8). */
#define hs_conn_tdata(c, type) ((type *)(void *)(c)->tdata)

/* This IO thread's state of transport `id`. */
static inline void *hs_io_tstate(hs_io_t *io, int id)
{
    return io->tstate[id];
}

/* Pushes a transport message onto an IO thread's inbox and wakes it (any thread). */
void hs_io_post(hs_io_t *io, hs_mpsc_node_t *n);

#endif
