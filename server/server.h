/*
 * Server internals shared by the IO-thread modules (io.c, http.c, sse.c) and server.c.
 * Private: never installed, never included by embedders.
 */
#ifndef HS_SERVER_INTERNAL_H
#define HS_SERVER_INTERNAL_H

#include <libwebsockets.h>
#include <pthread.h>
#include <stdatomic.h>

#include "hubstream/hubstream.h"
#include "proto/chunked.h"
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "fanout/fanout.h"
#include "proto/hubproto.h"
#include "util/log.h"
#include "storage/reader.h"
#include "storage/writer.h"

typedef struct hs_acceptor hs_acceptor_t;
typedef struct hs_io hs_io_t;
typedef struct hs_conn hs_conn_t;
struct hs_hub;
struct hs_hubreq;
struct hs_hubreg;

/*
 * Per-socket state that must outlive one HTTP transaction: lws frees and re-creates the
 * per-session struct (hs_conn_t) at every keep-alive transaction, so whatever belongs to the
 * socket lives here, as the wsi's opaque user data.
 */
typedef struct hs_wsi_data {
    char *path; /* the request path, kept while its body arrives */
    bool busy;  /* a request is being served: its answer is not written yet */
    struct hs_hub *hub; /* a WebSocket's hub connection (a reference) */
} hs_wsi_data_t;

/* Inbox node kinds of an IO thread (besides HS_NODE_SUB_IO). */
enum {
    HS_NODE_FD = 10,
    HS_NODE_INGEST = 11,
    HS_NODE_READ = 12,
    HS_NODE_HUB_INGEST = 13, /* a hub invocation's publish / close, acked by the writer */
    HS_NODE_HUB_READ = 14,   /* a hub invocation's read, done by a reader thread */
    HS_NODE_HUB_REQ = 15,    /* an SSE / long-polling request for a connection homed here */
    HS_NODE_HUB_REP = 16,    /* the answer to such a request, back to its origin thread */
};

#define HS_WRITE_BUDGET (64 * 1024) /* bytes an IO thread writes to one connection per turn */
#define HS_BACKLOG_MAX 16384        /* ingest entries an IO thread holds when its ring is full */
#define HS_LINGER_MAX 64            /* closed sockets an IO thread drains at once (io.c) */

struct hs_server {
    hs_config_t cfg;
    char *listen_str, *db_str;
    char host[256];
    int port;
    hs_logger_t log;
    hs_event_fn event_hook;
    void *event_ctx;
    struct hs_hubreg *hubreg; /* negotiated SignalR connections (hubhttp.c) */
    struct hs_budget *read_budget; /* catch-up pages and read answers, all connections */

    hs_writer_t *writer;
    hs_retention_t *retention; /* parsed cfg.retention, NULL when none */
    hs_reader_t *reader;
    hs_fanout_t *fanout;
    hs_acceptor_t *acceptor;
    hs_io_t **io;
    hs_mpsc_t **inboxes; /* NULL-terminated, for the fan-out workers */
    int nio;
    atomic_uint next_io;
    atomic_int live_conns;
    int max_conn_asked; /* cfg.max_connections before it was lowered to fit RLIMIT_NOFILE */
    long nofile;

    atomic_int state; /* 0 created, 1 running, 2 stop requested, 3 stopped */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    int stop_pipe[2]; /* a signal handler writes here */
};

/* One request or subscription (lws per-session data, zeroed by lws). lws frees it at the end of
 * every keep-alive transaction (after LWS_CALLBACK_HTTP_DROP_PROTOCOL): nothing that must last
 * longer than one request lives here. */
struct hs_conn {
    struct lws *wsi;
    hs_io_t *io;
    /* the request being served */
    int method;
    char *body;
    size_t body_len, body_cap;
    size_t body_limit; /* the most body bytes taken: the Content-Length, or max_body */
    bool body_too_large;
    bool chunked;      /* Transfer-Encoding: chunked, decoded here (lws passes it raw) */
    hs_chunked_t chunk;
    int64_t body_deadline_ms;         /* the whole body must have arrived by then */
    hs_conn_t *body_prev, *body_next; /* io->body_head: requests whose body is arriving */
    bool in_body_list;
    unsigned completions; /* LWS_CALLBACK_HTTP_BODY_COMPLETION calls seen */
    bool close_after; /* close once the queued response is written and the body read */
    bool body_done;   /* the request body (if any) has been read */
    const char *allow; /* the Allow header of a 405 answer */
    /* the response waiting for a writable callback (LWS_PRE bytes of headroom), written at
     * most HS_WRITE_BUDGET bytes per callback so that lws never keeps a copy of more */
    unsigned char *resp;
    size_t resp_len, resp_off;
    bool resp_final; /* end of a transaction (keep-alive), else SSE headers */
    bool retry_after; /* the next error answer says Retry-After: 1 */
    struct hs_budget *resp_budget; /* what resp is charged to (a reference), until written */
    size_t resp_charge;
    /* work in flight on other threads: they hold a pointer back, cleared on close */
    hs_ingest_t *pending;
    struct hs_http_read *pending_read;
    /* SSE */
    hs_sub_t *sub;
    bool sse, sse_ending, sse_killed, sse_closing, ping_due;
    int64_t last_write_ms;
    int64_t stuck_since_ms; /* data has waited since, with no writable callback */
    hs_conn_t *sse_prev, *sse_next;
    hs_block_t *big;    /* a block written over several turns (sse.c), with its id line */
    size_t big_off, big_idlen;
    char big_id[32];
    /* SignalR */
    struct hs_hub *hub;              /* the SSE transport of a hub connection (a reference) */
    struct hs_hubreq *pending_hub;   /* a request forwarded to a connection's home thread */
    bool hup_watched;                /* in io->hup_ep (see hs_conn_watch_hangup) */
};

struct hs_io {
    hs_server_t *srv;
    int index;
    struct lws_context *ctx;
    struct lws_vhost *vh;
    pthread_t thread;
    bool started;
    atomic_int stop;
    hs_mpsc_t inbox;
    hs_mpsc_node_t *adopt_head, *adopt_tail; /* handed sockets waiting to be adopted (FIFO) */
    lws_sorted_usec_list_t tick;
    unsigned char *wbuf; /* LWS_PRE + HS_WRITE_BUDGET + slack */
    hs_ingest_t **backlog; /* entries waiting for room in the ingest ring */
    size_t nbacklog;
    hs_conn_t *body_head;  /* requests whose body is still arriving, for their deadline */
    hs_conn_t *sse_head;   /* every SSE connection, for pings */
    size_t nsse;
    struct hs_hub *hubs;   /* the hub connections homed here */
    size_t nhubs;
    hs_hubbuf_t hubout;    /* scratch for packing hub records */
    int hup_ep;            /* epoll set of connections whose client may hang up unseen */
    struct {
        int fd;
        int64_t until_ms;
    } lingers[HS_LINGER_MAX]; /* closed by lws, drained here until the client's end (io.c) */
    size_t nlingers;
    int64_t last_sweep_ms;
};

/* server.c */
/* Starts the reader, fan-out and writer threads but no IO thread and no listener: the caller
 * runs IO thread 0 itself (lws_service on srv->io[0]->ctx). For the fuzz target that drives a
 * hub connection directly; stop and destroy as usual. */
int hs_server_start_core(hs_server_t *srv);

/* io.c */
int hs_io_create(hs_server_t *srv, int index, hs_io_t **out, char *err, size_t errlen);
int hs_io_start(hs_io_t *io);
void hs_io_stop(hs_io_t *io);
/* Shutdown in phases across every IO thread, so that no thread's answer reaches a context
 * that is gone: close (stop the thread, destroy the lws context), then end the hub
 * connections still homed there, then destroy. */
void hs_io_close(hs_io_t *io);
void hs_io_end_hubs(hs_io_t *io);
void hs_io_destroy(hs_io_t *io);
void hs_io_hand_fd(hs_io_t *io, int fd); /* acceptor thread */
void hs_io_wake(void *srv, int index);   /* any thread */
/* Queues a complete response and asks for a writable callback. Takes nothing. */
int hs_conn_respond(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra_name, const char *extra_value);
int hs_conn_error(hs_conn_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The queued response takes over a charge of n bytes to budget (a reference is taken), given
 * back once the response is written or dropped. */
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
/* The same for a request that has no hs_conn_t (a WebSocket upgrade). */
int hs_wsi_arg(struct lws *wsi, const char *name_eq, char *buf, size_t cap, const char **val);
/* Takes a request off the list of those whose body is arriving (idempotent). */
void hs_conn_body_unlist(hs_conn_t *c);
/* Submits an ingest entry from the IO thread (ring, else backlog, else 429). */
void hs_io_submit(hs_io_t *io, hs_conn_t *c, hs_ingest_t *e);
/* Submits an entry whose node kind, conn and origin fields the caller set (done and io_index
 * are set here). False when the ring and the backlog are full (the entry is untouched). */
bool hs_io_submit_entry(hs_io_t *io, hs_ingest_t *e);
/* Writer thread: completion of an entry submitted by an IO thread. */
void hs_io_ingest_done(hs_ingest_t *e);

/* http.c */
void hs_http_dispatch(hs_conn_t *c, const char *path);
void hs_http_on_ingest_done(hs_io_t *io, hs_ingest_t *e);
void hs_http_on_read_done(hs_io_t *io, struct hs_http_read *r);
void hs_http_conn_closed(hs_conn_t *c);
/* Runs the embedder's event hook over every event of an append: 0, or -1 with the hook's
 * reason in why. */
int hs_events_hook(hs_server_t *srv, hs_ingest_t *e, char *why, size_t whylen);

/* sse.c */
/* The head of a text/event-stream response (status, caching, CORS), finalized. 0 or -1. */
int hs_sse_head(struct lws *wsi, unsigned char **p, unsigned char *end);
void hs_sse_start(hs_conn_t *c, const char *stream, size_t len);
int hs_sse_writable(hs_conn_t *c);
void hs_sse_on_signal(hs_io_t *io, hs_sub_t *s);
void hs_sse_tick(hs_io_t *io, int64_t now);
void hs_sse_closed(hs_conn_t *c);

/* acceptor.c */
/* Receives an accepted socket and the first bytes the client sent (peeked, not consumed; may
 * be none). */
typedef void (*hs_acceptor_fd_fn)(void *ctx, int fd, const char *peek, size_t n);
/* log (borrowed, may be NULL) receives rate-limited warnings about failing accept() calls. */
hs_acceptor_t *hs_acceptor_create(const char *host, int port, hs_acceptor_fd_fn on_fd,
                                  void *ctx, const hs_logger_t *log, char *err, size_t errlen);
int hs_acceptor_port(const hs_acceptor_t *a);
int hs_acceptor_start(hs_acceptor_t *a);
void hs_acceptor_stop(hs_acceptor_t *a);
void hs_acceptor_destroy(hs_acceptor_t *a);

#endif
