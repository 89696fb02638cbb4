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
#include "ringbuf/mpsc.h"
#include "ringbuf/sub.h"
#include "server/fanout.h"
#include "server/log.h"
#include "storage/reader.h"
#include "storage/writer.h"

typedef struct hs_acceptor hs_acceptor_t;
typedef struct hs_io hs_io_t;
typedef struct hs_conn hs_conn_t;

/* Inbox node kinds of an IO thread (besides HS_NODE_SUB_IO). */
enum { HS_NODE_FD = 10, HS_NODE_INGEST = 11, HS_NODE_READ = 12 };

#define HS_WRITE_BUDGET (64 * 1024) /* bytes an IO thread writes to one connection per turn */
#define HS_BACKLOG_MAX 16384        /* ingest entries an IO thread holds when its ring is full */

struct hs_server {
    hs_config_t cfg;
    char *listen_str, *db_str;
    char host[256];
    int port;
    hs_logger_t log;
    hs_event_fn event_hook;
    void *event_ctx;

    hs_writer_t *writer;
    hs_reader_t *reader;
    hs_fanout_t *fanout;
    hs_acceptor_t *acceptor;
    hs_io_t **io;
    hs_mpsc_t **inboxes; /* NULL-terminated, for the fan-out workers */
    int nio;
    atomic_uint next_io;
    atomic_int live_conns;

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
    bool body_too_large;
    bool close_after; /* close once the queued response is written and the body read */
    bool body_done;   /* the request body (if any) has been read */
    const char *allow; /* the Allow header of a 405 answer */
    /* the response waiting for a writable callback (LWS_PRE bytes of headroom) */
    unsigned char *resp;
    size_t resp_len;
    bool resp_final; /* end of a transaction (keep-alive), else SSE headers */
    /* work in flight on other threads: they hold a pointer back, cleared on close */
    hs_ingest_t *pending;
    struct hs_http_read *pending_read;
    /* SSE */
    hs_sub_t *sub;
    bool sse, sse_ending, sse_killed, sse_closing, ping_due;
    int64_t last_write_ms;
    int64_t stuck_since_ms; /* data has waited since, with no writable callback */
    hs_conn_t *sse_prev, *sse_next;
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
    lws_sorted_usec_list_t tick;
    unsigned char *wbuf; /* LWS_PRE + HS_WRITE_BUDGET + slack */
    hs_ingest_t **backlog; /* entries waiting for room in the ingest ring */
    size_t nbacklog;
    hs_conn_t *sse_head;   /* every SSE connection, for pings */
    size_t nsse;
};

/* io.c */
int hs_io_create(hs_server_t *srv, int index, hs_io_t **out, char *err, size_t errlen);
int hs_io_start(hs_io_t *io);
void hs_io_stop(hs_io_t *io);
void hs_io_destroy(hs_io_t *io);
void hs_io_hand_fd(hs_io_t *io, int fd); /* acceptor thread */
void hs_io_wake(void *srv, int index);   /* any thread */
int64_t hs_now_ms(void);
/* Queues a complete response and asks for a writable callback. Takes nothing. */
int hs_conn_respond(hs_conn_t *c, int status, const char *ctype, const char *body, size_t len,
                    const char *extra_name, const char *extra_value);
int hs_conn_error(hs_conn_t *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Submits an ingest entry from the IO thread (ring, else backlog, else 429). */
void hs_io_submit(hs_io_t *io, hs_conn_t *c, hs_ingest_t *e);
/* Writer thread: completion of an entry submitted by an IO thread. */
void hs_io_ingest_done(hs_ingest_t *e);

/* http.c */
void hs_http_dispatch(hs_conn_t *c, const char *path);
void hs_http_on_ingest_done(hs_io_t *io, hs_ingest_t *e);
void hs_http_on_read_done(hs_io_t *io, struct hs_http_read *r);
void hs_http_conn_closed(hs_conn_t *c);

/* sse.c */
void hs_sse_start(hs_conn_t *c, const char *stream, size_t len);
int hs_sse_writable(hs_conn_t *c);
void hs_sse_on_signal(hs_io_t *io, hs_sub_t *s);
void hs_sse_tick(hs_io_t *io, int64_t now);
void hs_sse_closed(hs_conn_t *c);

/* acceptor.c */
hs_acceptor_t *hs_acceptor_create(const char *host, int port, void (*on_fd)(void *, int),
                                  void *ctx, char *err, size_t errlen);
int hs_acceptor_port(const hs_acceptor_t *a);
int hs_acceptor_start(hs_acceptor_t *a);
void hs_acceptor_stop(hs_acceptor_t *a);
void hs_acceptor_destroy(hs_acceptor_t *a);

#endif
